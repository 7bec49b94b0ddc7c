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
/// Connections one port (clients, workers: each its own) holds at once, counted from TCP
/// accept, before the proof of work. Each costs a file descriptor and ~38 KiB once
/// established; raise the process's descriptor limit (`ulimit -n`) above twice this.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Connections one source address (an IPv6 /64) holds on one port. A client daemon needs one;
/// a host running many workers behind one address may need this raised.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// Time from TCP accept until a client must be authorised (`authorizeWithProxy*`, answered
/// within a few round trips) or a worker registered (`connectToProxy`). Generous for the PoW
/// and a slow link; a long authorisation waiting for its transaction on chain gets that wait
/// on top.
pub const DEFAULT_AUTH_TIMEOUT_SECS: f64 = 20.0;
/// How long output queued for a peer may wait without the peer taking any before the
/// connection is cut.
pub const DEFAULT_WRITE_STALL_SECS: f64 = 30.0;
/// Output queued for one connection before further sends to it are refused (each refused send
/// fails its own request; the connection stays up).
pub const DEFAULT_MAX_QUEUED_OUTPUT_BYTES: usize = cocoon_net::limits::DEFAULT_MAX_QUEUED_OUTPUT;
/// The smallest cap allowed: one packet of the largest size (16 MiB) must always fit.
pub const MIN_MAX_QUEUED_OUTPUT_BYTES: usize = 17 << 20;
/// Identities (owner addresses) one client connection may present to a free proxy. A free
/// proxy counts every identity it serves for as long as it runs, so one connection must not be
/// able to invent them in bulk; an honest client uses one.
pub const DEFAULT_MAX_FREE_IDENTITIES_PER_CONNECTION: usize = 4;

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
    /// Connections each port holds at once (checked at TCP accept, before the PoW).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one source address (IPv6: one /64) holds on each port.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Seconds from TCP accept until a client is authorised or a worker registered; the
    /// connection is closed otherwise, pings or not.
    #[serde(default = "default_auth_timeout")]
    pub auth_timeout_secs: f64,
    /// Seconds queued output may wait without the peer reading any before it is cut.
    #[serde(default = "default_write_stall")]
    pub write_stall_secs: f64,
    /// Bytes queued for one connection before further sends to it are refused.
    #[serde(default = "default_max_queued_output")]
    pub max_queued_output_bytes: usize,
    /// Owner identities one client connection may present to a free proxy.
    #[serde(default = "default_max_free_identities")]
    pub max_free_identities_per_connection: usize,
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
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_max_connections_per_ip() -> usize {
    DEFAULT_MAX_CONNECTIONS_PER_IP
}
fn default_auth_timeout() -> f64 {
    DEFAULT_AUTH_TIMEOUT_SECS
}
fn default_write_stall() -> f64 {
    DEFAULT_WRITE_STALL_SECS
}
fn default_max_queued_output() -> usize {
    DEFAULT_MAX_QUEUED_OUTPUT_BYTES
}
fn default_max_free_identities() -> usize {
    DEFAULT_MAX_FREE_IDENTITIES_PER_CONNECTION
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
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            auth_timeout_secs: DEFAULT_AUTH_TIMEOUT_SECS,
            write_stall_secs: DEFAULT_WRITE_STALL_SECS,
            max_queued_output_bytes: DEFAULT_MAX_QUEUED_OUTPUT_BYTES,
            max_free_identities_per_connection: DEFAULT_MAX_FREE_IDENTITIES_PER_CONNECTION,
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
                ("auth_timeout_secs", self.auth_timeout_secs, false),
                ("write_stall_secs", self.write_stall_secs, false),
            ],
        );
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            problems.push("max_connections and max_connections_per_ip must be at least 1".into());
        }
        if self.max_queued_output_bytes < MIN_MAX_QUEUED_OUTPUT_BYTES {
            problems.push(format!(
                "max_queued_output_bytes = {} is below {MIN_MAX_QUEUED_OUTPUT_BYTES} (a 16 MiB packet must fit)",
                self.max_queued_output_bytes
            ));
        }
        if self.max_free_identities_per_connection == 0 {
            problems.push("max_free_identities_per_connection must be at least 1".into());
        }
        if let Some(payments) = &self.payments {
            problems.extend(payments.problems());
        }
        problems
    }

    pub(crate) fn grace_period(&self) -> Duration {
        Duration::from_secs_f64(self.grace_period_secs)
    }

    /// The bounds every accepted connection gets (both ports).
    pub(crate) fn connection_limits(&self) -> cocoon_net::ConnectionLimits {
        cocoon_net::ConnectionLimits {
            max_queued_output: self.max_queued_output_bytes,
            write_stall_timeout: Duration::from_secs_f64(self.write_stall_secs),
            auth_timeout: Some(Duration::from_secs_f64(self.auth_timeout_secs)),
        }
    }
}
