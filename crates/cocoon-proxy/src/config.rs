//! Proxy configuration (TOML), fully checked before any port is bound.

use std::net::SocketAddr;
use std::time::Duration;

use cocoon_attest::{PeerPolicyConfig, TeeConfig};
use cocoon_net::config::check_all_seconds;
use serde::{Deserialize, Serialize};

use crate::payments::PaymentsConfig;

/// Default port for clients, next to the client's 10000.
pub const DEFAULT_CLIENT_PORT: u16 = 10001;
/// Default port for workers.
pub const DEFAULT_WORKER_PORT: u16 = 10002;
/// Default port for `/metrics` and `/stats`.
pub const DEFAULT_HTTP_PORT: u16 = 10003;
/// The reference's server default: about a million hashes, well under a second for an honest
/// client, a real cost for a connection flood.
pub const DEFAULT_POW_DIFFICULTY: i32 = 20;
/// Longest per-request timeout a client may ask for.
pub const DEFAULT_MAX_REQUEST_TIMEOUT_SECS: f64 = 600.0;
/// Time given to in-flight requests after SIGTERM.
pub const DEFAULT_GRACE_PERIOD_SECS: f64 = 30.0;

/// Everything a proxy needs to run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where clients connect (PoW + TLS + COCOON packets).
    #[serde(default = "default_client_listen")]
    pub client_listen: SocketAddr,
    /// Where workers connect.
    #[serde(default = "default_worker_listen")]
    pub worker_listen: SocketAddr,
    /// Plain HTTP for `/metrics` and `/stats` (keep it on loopback).
    #[serde(default = "default_http_listen")]
    pub http_listen: SocketAddr,
    /// This proxy's own evidence, `[tee]`: `kind = "tdx"` inside a TD, `"danger_fake"` for
    /// development.
    pub tee: TeeConfig,
    /// What workers must prove, `[worker_policy]`. Clients are not TEEs and are accepted
    /// unattested (they are authenticated by their payment channel).
    pub worker_policy: PeerPolicyConfig,
    /// Models this proxy serves. A listed model with no live worker answers 503 (try later);
    /// an unlisted one 404. Empty: any model a worker announces is served. (The chain's root
    /// registry feeds this list in a later release.)
    #[serde(default)]
    pub models: Vec<String>,
    /// Proof-of-work bits demanded of every connecting peer.
    #[serde(default = "default_pow")]
    pub pow_difficulty: i32,
    /// Upper bound on a client's requested timeout, in seconds.
    #[serde(default = "default_max_timeout")]
    pub max_request_timeout_secs: f64,
    /// Grace period for draining on shutdown, in seconds.
    #[serde(default = "default_grace")]
    pub grace_period_secs: f64,
    /// `[payments]`: the chain, the ledger and the keys. Without it the proxy serves every
    /// client for free and pays no worker (it says so loudly at start).
    #[serde(default)]
    pub payments: Option<PaymentsConfig>,
}

fn default_client_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_CLIENT_PORT))
}
fn default_worker_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_WORKER_PORT))
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT))
}
fn default_pow() -> i32 {
    DEFAULT_POW_DIFFICULTY
}
fn default_max_timeout() -> f64 {
    DEFAULT_MAX_REQUEST_TIMEOUT_SECS
}
fn default_grace() -> f64 {
    DEFAULT_GRACE_PERIOD_SECS
}

impl ProxyConfig {
    /// A config with the given attestation and every other field at its default.
    pub fn new(tee: TeeConfig, worker_policy: PeerPolicyConfig) -> ProxyConfig {
        ProxyConfig {
            client_listen: default_client_listen(),
            worker_listen: default_worker_listen(),
            http_listen: default_http_listen(),
            tee,
            worker_policy,
            models: Vec::new(),
            pow_difficulty: DEFAULT_POW_DIFFICULTY,
            max_request_timeout_secs: DEFAULT_MAX_REQUEST_TIMEOUT_SECS,
            grace_period_secs: DEFAULT_GRACE_PERIOD_SECS,
            payments: None,
        }
    }

    /// Every problem with the config, one per line; empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.tee.problems();
        problems.extend(self.worker_policy.problems("worker_policy"));
        if self.models.iter().any(|m| m.trim().is_empty()) {
            problems.push("models: names must not be empty".into());
        }
        if !(0..=64).contains(&self.pow_difficulty) {
            problems.push(format!(
                "pow_difficulty = {} is outside 0..=64",
                self.pow_difficulty
            ));
        }
        check_all_seconds(
            &mut problems,
            &[
                (
                    "max_request_timeout_secs",
                    self.max_request_timeout_secs,
                    false,
                ),
                ("grace_period_secs", self.grace_period_secs, true),
            ],
        );
        if let Some(payments) = &self.payments {
            problems.extend(payments.problems());
        }
        problems
    }

    pub(crate) fn grace_period(&self) -> Duration {
        Duration::from_secs_f64(self.grace_period_secs)
    }
}
