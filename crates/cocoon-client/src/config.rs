//! Client configuration (TOML), fully checked before the API port is bound.

use std::net::SocketAddr;
use std::path::PathBuf;

use cocoon_attest::PeerPolicyConfig;
use cocoon_net::config::check_all_seconds;
use cocoon_ton::Coins;
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
/// Registered proxies a client keeps connected when it takes them from the root.
pub const DEFAULT_PROXY_CONNECTIONS: usize = 3;
/// Seconds between reads of the root for changes of its registry.
pub const DEFAULT_ROOT_REFRESH_SECS: f64 = 45.0;
/// Time an API connection gets to send a request's headers (also the idle limit between
/// keep-alive requests). Any local app sends them at once; a connection that trickles them
/// (slowloris) is closed.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: f64 = 10.0;
/// Time a request gets to send its whole body once its headers arrived: 15 MiB over loopback
/// takes milliseconds, so this only ends bodies that are trickled or stalled.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: f64 = 30.0;
/// The shortest `api_token` accepted: a guessable token would be no better than none.
pub const MIN_API_TOKEN_LEN: usize = 16;

/// Everything a client needs to run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Where the OpenAI-compatible API listens. Keep it on loopback: whoever reaches it spends
    /// your stake.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Proxies to use, in order of preference ("host:port" of their client ports). The first
    /// reachable one serves; the others take over when it fails. Empty with `[chain]`: the
    /// proxies the root registers.
    #[serde(default)]
    pub proxies: Vec<String>,
    /// What proxies must prove, `[proxy_policy]`. Clients themselves are not TEEs.
    pub proxy_policy: PeerPolicyConfig,
    /// Seal requests to the worker that runs them, so the proxy sees only the model and sizes:
    /// `required` (no capable, verified worker: 503), `preferred` (the default: sealed when a
    /// worker can take it, in the clear otherwise) or `off`.
    #[serde(default)]
    pub e2e: crate::sealing::E2e,
    /// How sealed requests are padded, so their size tells the proxy only a bucket: `"pow2"`
    /// (powers of two from 1 KiB, then multiples of 64 KiB; the default), `"pow2:BYTES"` (another
    /// smallest bucket) or `"none"`.
    #[serde(default = "cocoon_attest::sealed::Padding::requests")]
    pub request_padding: cocoon_attest::sealed::Padding,
    /// What a worker must prove before a request is sealed to it, `[worker_policy]`: checked
    /// here, on the certificate the proxy hands over. Unset: `proxy_policy`'s checks, with the
    /// root's worker images (`worker_hashes`) as the allow-list under `[chain]` when
    /// `proxy_policy` lists no images itself.
    #[serde(default)]
    pub worker_policy: Option<PeerPolicyConfig>,
    /// Owner wallet address (identifies the client to proxies). With `[chain]` it is the
    /// address of `chain.wallet_key`'s wallet (leave it empty or set the same).
    #[serde(default)]
    pub owner_address: String,
    /// Secret for short authorisation with proxies. With `[chain]` the client keeps its client
    /// contract's secret hash equal to SHA-256 of it.
    #[serde(default)]
    pub secret: String,
    /// `[chain]`: the TON network the client pays on. With it the client checks each proxy's
    /// contract against the root, deploys its client contract when allowed, authorises the long
    /// way (an on-chain register) when it must, keeps its secret hash and tops up within limits.
    /// Without it the client only connects with `owner_address` and `secret` (a devnet set
    /// up for it, or a free proxy).
    #[serde(default)]
    pub chain: Option<ChainConfig>,
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
    /// Host names (or IP addresses), without port, under which the API may be addressed
    /// besides loopback addresses and `localhost`. A request whose `Host` names anything else is
    /// refused (421), which defeats DNS rebinding: a web page cannot reach the API through a
    /// name of its own that resolves to this machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// When set, every API request must carry `Authorization: Bearer <api_token>` (401
    /// otherwise), and a request that does is served whatever its `Host` and `Origin`. Without
    /// it only loopback `Host`s (and `allowed_hosts`) and loopback or `cors_origins` origins
    /// are served. At least 16 characters; keep the config file private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
    /// Seconds an API connection gets to send a request's headers (and to start the next
    /// request on a kept-alive connection).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: f64,
    /// Seconds a request gets to send its whole body once its headers arrived (408 after).
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: f64,
    /// Refuse proxies demanding more proof-of-work bits than this.
    #[serde(default = "default_max_pow")]
    pub max_pow_difficulty: i32,
    /// Grace period for draining on shutdown, in seconds.
    #[serde(default = "default_grace")]
    pub grace_period_secs: f64,
    /// Longest wait between reconnection attempts, in seconds.
    #[serde(default = "default_reconnect")]
    pub max_reconnect_secs: f64,
    /// With `[chain]` and no `proxies`: how many of the root's registered proxies to keep
    /// connected, chosen at random; one that cannot be reached is swapped for another. A
    /// `proxies` list is kept connected whole.
    #[serde(default = "default_proxy_connections")]
    pub proxy_connections: usize,
}

pub use cocoon_ton::ton::{MAINNET_ROOT, MAINNET_TONCENTER};

pub use cocoon_ton::ton::NetworkKind;

/// `[chain]` of the client config.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// `local`, `toncenter` or `mainnet`.
    pub network: NetworkKind,
    /// The embedded network's directory (`network = "local"`).
    #[serde(default)]
    pub local_dir: Option<PathBuf>,
    /// The toncenter v2 API (`network = "toncenter"`; mainnet's by default with `"mainnet"`).
    #[serde(default)]
    pub toncenter_url: Option<String>,
    /// Sent as `X-API-Key` (without one toncenter allows about one request per second).
    #[serde(default)]
    pub toncenter_api_key: Option<String>,
    /// The COCOON root. Default: the published one on mainnet, `<local_dir>/root` on a local
    /// network; required with `"toncenter"`.
    #[serde(default)]
    pub root_address: Option<String>,
    /// Key file of the client's wallet (64 hex digits): the client contract's owner, which pays
    /// for deploys, registrations and top-ups.
    pub wallet_key: PathBuf,
    /// Deploy the client contract at a proxy when it is not there yet (0.8 TON, plus the first
    /// deposit of `top_up_amount`). Off by default: nothing is spent without it.
    #[serde(default)]
    pub allow_deploy: bool,
    /// The highest stake a deploy may lock (the root's `min_client_stake`); a root asking more
    /// is refused.
    #[serde(default = "default_max_stake", with = "cocoon_ton::coins::text")]
    pub max_stake: Coins,
    /// What one top-up (and the first deposit after a deploy) puts in the client contract.
    #[serde(default = "default_top_up_amount", with = "cocoon_ton::coins::text")]
    pub top_up_amount: Coins,
    /// The most this client deposits in all (first deposits and top-ups) while it runs; 0, the
    /// default, turns deposits off.
    #[serde(default = "default_max_top_up", with = "cocoon_ton::coins::text")]
    pub max_top_up: Coins,
    /// Seconds between checks of the client contract's balance (top-ups).
    #[serde(default = "default_balance_check")]
    pub balance_check_secs: f64,
    /// Seconds between reads of the root (the reference's runners: 30–60): when its version
    /// grew, registered proxies are connected or drained live.
    #[serde(default = "default_root_refresh")]
    pub root_refresh_secs: f64,
}

fn default_max_stake() -> Coins {
    Coins::ton(1)
}
fn default_top_up_amount() -> Coins {
    Coins::ton(1)
}
fn default_max_top_up() -> Coins {
    Coins::ZERO
}
fn default_balance_check() -> f64 {
    10.0
}
fn default_root_refresh() -> f64 {
    DEFAULT_ROOT_REFRESH_SECS
}
fn default_proxy_connections() -> usize {
    DEFAULT_PROXY_CONNECTIONS
}

impl ChainConfig {
    /// The config of a local (embedded) network in `local_dir` paid from `wallet_key`.
    pub fn local(local_dir: PathBuf, wallet_key: PathBuf) -> ChainConfig {
        ChainConfig {
            network: NetworkKind::Local,
            local_dir: Some(local_dir),
            toncenter_url: None,
            toncenter_api_key: None,
            root_address: None,
            wallet_key,
            allow_deploy: false,
            max_stake: default_max_stake(),
            top_up_amount: default_top_up_amount(),
            max_top_up: default_max_top_up(),
            balance_check_secs: default_balance_check(),
            root_refresh_secs: default_root_refresh(),
        }
    }

    fn problems(&self, problems: &mut Vec<String>) {
        match self.network {
            NetworkKind::Local if self.local_dir.is_none() => {
                problems.push("chain: network = \"local\" needs local_dir".into())
            }
            NetworkKind::Toncenter if self.toncenter_url.is_none() => {
                problems.push("chain: network = \"toncenter\" needs toncenter_url".into())
            }
            NetworkKind::Toncenter if self.root_address.is_none() => {
                problems.push("chain: network = \"toncenter\" needs root_address".into())
            }
            _ => {}
        }
        if let Some(url) = &self.toncenter_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                problems.push(format!(
                    "chain.toncenter_url {url:?} must be an http(s) URL"
                ));
            }
        }
        if let Some(root) = &self.root_address {
            if root.parse::<cocoon_ton::Address>().is_err() {
                problems.push(format!("chain.root_address {root:?} is not a TON address"));
            }
        }
        check_all_seconds(
            problems,
            &[
                ("chain.balance_check_secs", self.balance_check_secs, false),
                ("chain.root_refresh_secs", self.root_refresh_secs, false),
            ],
        );
    }
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
fn default_header_read_timeout() -> f64 {
    DEFAULT_HEADER_READ_TIMEOUT_SECS
}
fn default_body_read_timeout() -> f64 {
    DEFAULT_BODY_READ_TIMEOUT_SECS
}

impl ClientConfig {
    /// A config with defaults for everything but the essentials.
    pub fn new(proxies: Vec<String>, proxy_policy: PeerPolicyConfig) -> ClientConfig {
        ClientConfig {
            listen: default_listen(),
            proxies,
            proxy_policy,
            e2e: Default::default(),
            request_padding: cocoon_attest::sealed::Padding::requests(),
            worker_policy: None,
            owner_address: String::new(),
            secret: String::new(),
            chain: None,
            default_timeout_secs: DEFAULT_TIMEOUT_SECS,
            default_max_coefficient: DEFAULT_MAX_COEFFICIENT,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            api_token: None,
            header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            body_read_timeout_secs: DEFAULT_BODY_READ_TIMEOUT_SECS,
            max_pow_difficulty: DEFAULT_MAX_POW_DIFFICULTY,
            grace_period_secs: DEFAULT_GRACE_PERIOD_SECS,
            max_reconnect_secs: DEFAULT_MAX_RECONNECT_SECS,
            proxy_connections: DEFAULT_PROXY_CONNECTIONS,
        }
    }

    /// Every problem with the config; empty when usable.
    pub fn problems(&self) -> Vec<String> {
        // With `[chain]` an empty allow-list is filled from the root's `proxy_hashes` at start.
        let mut problems = if self.chain.is_some() {
            self.proxy_policy
                .problems_with_allow_list_from_elsewhere("proxy_policy")
        } else {
            self.proxy_policy.problems("proxy_policy")
        };
        if let Some(policy) = &self.worker_policy {
            problems.extend(if self.chain.is_some() {
                policy.problems_with_allow_list_from_elsewhere("worker_policy")
            } else {
                policy.problems("worker_policy")
            });
        }
        if self.proxies.is_empty() && self.chain.is_none() {
            problems.push(
                "proxies: at least one proxy address is needed (or a [chain] table: then the root's registered proxies)".into(),
            );
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
                (
                    "header_read_timeout_secs",
                    self.header_read_timeout_secs,
                    false,
                ),
                ("body_read_timeout_secs", self.body_read_timeout_secs, false),
            ],
        );
        if let Some(chain) = &self.chain {
            chain.problems(&mut problems);
        }
        if self.proxy_connections == 0 {
            problems.push("proxy_connections must be at least 1".into());
        }
        if self.default_max_coefficient < 0 {
            problems.push("default_max_coefficient must not be negative".into());
        }
        for origin in &self.cors_origins {
            if origin != "*" && origin.parse::<http::HeaderValue>().is_err() {
                problems.push(format!("cors_origins: '{origin}' is not a valid origin"));
            }
        }
        if self.cors_origins.iter().any(|o| o == "*") && self.api_token.is_none() {
            problems.push(
                "cors_origins = [\"*\"] lets every web page call the API and spend your stake: set api_token too (then only requests carrying it are served), or list the origins you trust".into(),
            );
        }
        for host in &self.allowed_hosts {
            if !crate::guard::is_valid_allowed_host(host) {
                problems.push(format!(
                    "allowed_hosts: '{host}' is not a host name or IP address (no scheme, port or path)"
                ));
            }
        }
        if let Some(token) = &self.api_token {
            if token.len() < MIN_API_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                problems.push(format!(
                    "api_token must be at least {MIN_API_TOKEN_LEN} printable ASCII characters without spaces (e.g. `openssl rand -hex 32`)"
                ));
            }
        }
        problems
    }
}
