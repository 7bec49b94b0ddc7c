//! Client configuration (TOML), fully checked before the API port is bound.

use std::net::SocketAddr;

use cocoon_attest::PeerPolicyConfig;
use cocoon_net::config::check_all_seconds;
use serde::{Deserialize, Serialize};

/// The reference client's API port.
pub const DEFAULT_API_PORT: u16 = 10000;
/// The reference's default request timeout, in seconds.
pub const DEFAULT_TIMEOUT_SECS: f64 = 120.0;
/// The reference's default: pay at most 4.0× the base price.
pub const DEFAULT_MAX_COEFFICIENT: i32 = 4000;
/// Refuse proxies demanding more proof-of-work bits than this (the reference's limit).
pub const DEFAULT_MAX_POW_DIFFICULTY: i32 = 28;
/// Time given to in-flight requests after SIGTERM.
pub const DEFAULT_GRACE_PERIOD_SECS: f64 = 30.0;
/// Longest wait between reconnection attempts.
pub const DEFAULT_MAX_RECONNECT_SECS: f64 = 10.0;

/// Everything a client needs to run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Where the OpenAI-compatible API listens. Keep it on loopback: whoever reaches it spends
    /// your stake.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Proxies to use, in order of preference ("host:port" of their client ports). The first
    /// reachable one serves; the others take over when it fails.
    pub proxies: Vec<String>,
    /// What proxies must prove, `[proxy_policy]`. Clients themselves are not TEEs.
    pub proxy_policy: PeerPolicyConfig,
    /// Owner wallet address (identifies the client to proxies).
    #[serde(default)]
    pub owner_address: String,
    /// Secret for short authorisation with proxies.
    #[serde(default)]
    pub secret: String,
    /// Request timeout when the body does not set `timeout`, in seconds.
    #[serde(default = "default_timeout")]
    pub default_timeout_secs: f64,
    /// Highest worker price coefficient accepted when the body does not set `max_coefficient`
    /// (1000 = 1.0×).
    #[serde(default = "default_max_coefficient")]
    pub default_max_coefficient: i32,
    /// Browser origins allowed to call the API (CORS). Empty: no cross-origin access, which is
    /// the safe default, since a web page could otherwise spend your stake.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Refuse proxies demanding more proof-of-work bits than this.
    #[serde(default = "default_max_pow")]
    pub max_pow_difficulty: i32,
    /// Grace period for draining on shutdown, in seconds.
    #[serde(default = "default_grace")]
    pub grace_period_secs: f64,
    /// Longest wait between reconnection attempts, in seconds.
    #[serde(default = "default_reconnect")]
    pub max_reconnect_secs: f64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_API_PORT))
}
fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT_SECS
}
fn default_max_coefficient() -> i32 {
    DEFAULT_MAX_COEFFICIENT
}
fn default_max_pow() -> i32 {
    DEFAULT_MAX_POW_DIFFICULTY
}
fn default_grace() -> f64 {
    DEFAULT_GRACE_PERIOD_SECS
}
fn default_reconnect() -> f64 {
    DEFAULT_MAX_RECONNECT_SECS
}

impl ClientConfig {
    /// A config with defaults for everything but the essentials.
    pub fn new(proxies: Vec<String>, proxy_policy: PeerPolicyConfig) -> ClientConfig {
        ClientConfig {
            listen: default_listen(),
            proxies,
            proxy_policy,
            owner_address: String::new(),
            secret: String::new(),
            default_timeout_secs: DEFAULT_TIMEOUT_SECS,
            default_max_coefficient: DEFAULT_MAX_COEFFICIENT,
            cors_origins: Vec::new(),
            max_pow_difficulty: DEFAULT_MAX_POW_DIFFICULTY,
            grace_period_secs: DEFAULT_GRACE_PERIOD_SECS,
            max_reconnect_secs: DEFAULT_MAX_RECONNECT_SECS,
        }
    }

    /// Every problem with the config; empty when usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.proxy_policy.problems("proxy_policy");
        if self.proxies.is_empty() {
            problems.push("proxies: at least one proxy address is needed".into());
        }
        for proxy in &self.proxies {
            if !proxy.contains(':') {
                problems.push(format!("proxies: '{proxy}' is not host:port"));
            }
        }
        check_all_seconds(
            &mut problems,
            &[
                ("default_timeout_secs", self.default_timeout_secs, false),
                ("max_reconnect_secs", self.max_reconnect_secs, false),
                ("grace_period_secs", self.grace_period_secs, true),
            ],
        );
        if self.default_max_coefficient < 0 {
            problems.push("default_max_coefficient must not be negative".into());
        }
        for origin in &self.cors_origins {
            if origin != "*" && origin.parse::<http::HeaderValue>().is_err() {
                problems.push(format!("cors_origins: '{origin}' is not a valid origin"));
            }
        }
        problems
    }
}
