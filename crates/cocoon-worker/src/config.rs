//! Worker configuration (TOML), fully checked before anything starts.

use std::net::SocketAddr;
use std::time::Duration;

use cocoon_attest::{PeerPolicyConfig, TeeConfig};
use cocoon_net::config::check_all_seconds;
use serde::{Deserialize, Serialize};

/// Default port for `/metrics` and `/stats`.
pub const DEFAULT_HTTP_PORT: u16 = 10004;
/// 1000 = 1.0×, the reference's unit.
pub const DEFAULT_COEFFICIENT: i32 = 1000;
/// A GPU server handles tens of concurrent sequences; the proxy never sends more than this.
pub const DEFAULT_MAX_ACTIVE_REQUESTS: u32 = 64;
/// The reference client's limit: refuse proxies that demand more work than this.
pub const DEFAULT_MAX_POW_DIFFICULTY: i32 = 28;
/// How often the backend's `/v1/models` is polled.
pub const DEFAULT_BACKEND_CHECK_SECS: f64 = 5.0;
/// Time given to in-flight requests after SIGTERM.
pub const DEFAULT_GRACE_PERIOD_SECS: f64 = 30.0;
/// Longest wait between reconnection attempts to a proxy.
pub const DEFAULT_MAX_RECONNECT_SECS: f64 = 10.0;

/// Default seconds between balance comparisons with a proxy.
pub const DEFAULT_PAYOUT_CHECK_SECS: f64 = 60.0;

/// Everything a worker needs to run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Proxies to serve, as "host:port" of their worker ports.
    pub proxies: Vec<String>,
    /// Base URL of the OpenAI-compatible backend, e.g. "http://127.0.0.1:8000".
    pub backend_url: String,
    /// Optional bearer token for the backend.
    #[serde(default)]
    pub backend_api_key: Option<String>,
    /// The model name this worker serves (as the backend calls it). Its SHA-256 (the model
    /// hash the root lists in `model_hashes`) is bound into the worker's attested claims.
    pub model: String,
    /// The weights file the backend serves (e.g. the GGUF the built-in engine loaded): hashed
    /// (SHA-256) at start, and the digest bound into the attested claims, so policies can
    /// require those exact weights. `cocoon worker --model` sets it to the file it loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_file: Option<std::path::PathBuf>,
    /// The weights digest to bind into the claims as is (64 hex digits), for weights this
    /// worker cannot read: the dm-verity root hash of the volume holding them, or the file's
    /// SHA-256 behind a remote backend such as vLLM. Exclusive with `weights_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_digest: Option<String>,
    /// This worker's own evidence, `[tee]`.
    pub tee: TeeConfig,
    /// What proxies must prove, `[proxy_policy]`.
    pub proxy_policy: PeerPolicyConfig,
    /// Price coefficient, 1000 = 1.0×.
    #[serde(default = "default_coefficient")]
    pub coefficient: i32,
    /// Requests this worker runs at once, over all proxies.
    #[serde(default = "default_max_active")]
    pub max_active_requests: u32,
    /// The owner's wallet address. A paid proxy pays this worker through the worker contract
    /// of this owner (and refuses the worker without one).
    #[serde(default)]
    pub owner_address: String,
    /// Where to keep the latest signed payout each proxy gives this worker
    /// (`payout-<worker contract>.boc`); `cocoon wallet payout` submits it. Unset: not kept.
    #[serde(default)]
    pub payouts_dir: Option<std::path::PathBuf>,
    /// The root's prices when the worker runs without `[chain]` but its embedder knows them
    /// (the devnet starts its workers in-process next to its chain): the cost fields in `usage`
    /// come from them. Not a config key: with `[chain]` the worker reads the root itself.
    #[serde(skip)]
    pub root_prices: Option<(u64, cocoon_proto::Multipliers)>,
    /// Take requests sealed to this worker (issue 14): an HPKE key pair is made at start inside
    /// the TEE and its public key is bound into the worker's attested claims; clients that
    /// verify the attestation seal requests to it, so the proxy sees only sizes. Default on.
    #[serde(default = "default_true")]
    pub sealed_requests: bool,
    /// How a sealed answer's records are padded, so their sizes do not tell each token's
    /// length: `"pow2"` (powers of two from 256 bytes up to a full 16 KiB record; the
    /// default), `"pow2:BYTES"` (another smallest bucket) or `"none"`.
    #[serde(default)]
    pub answer_padding: cocoon_attest::sealed::Padding,
    /// A bearer token that allows operator actions on the HTTP port (`POST /admin/enable`,
    /// `/admin/disable`, `/admin/coefficient`), at least 16 characters. Unset: they are off.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Seconds between payment status updates (`worker.updatePaymentStatus`) from each paid
    /// proxy; each brings a payout signed for everything earned.
    #[serde(default = "default_payout_check")]
    pub payout_check_secs: f64,
    /// `[chain]`: the TON network this worker's node wallet acts on, as the C++ worker does:
    /// it checks each proxy's contract against the root, deploys its worker contract when
    /// allowed, and submits its kept payout itself when it is far enough ahead of the contract.
    /// Without it the worker only keeps payouts (`payouts_dir`).
    #[serde(default)]
    pub chain: Option<WorkerChainConfig>,
    /// Plain HTTP for `/metrics` and `/stats`.
    #[serde(default = "default_http_listen")]
    pub http_listen: SocketAddr,
    /// Refuse proxies demanding more proof-of-work bits than this.
    #[serde(default = "default_max_pow")]
    pub max_pow_difficulty: i32,
    /// Seconds between backend health checks.
    #[serde(default = "default_check")]
    pub backend_check_secs: f64,
    /// Grace period for draining on shutdown, in seconds.
    #[serde(default = "default_grace")]
    pub grace_period_secs: f64,
    /// Longest wait between reconnection attempts, in seconds.
    #[serde(default = "default_reconnect")]
    pub max_reconnect_secs: f64,
}

fn default_payout_check() -> f64 {
    DEFAULT_PAYOUT_CHECK_SECS
}
/// The highest coefficient a proxy accepts (1,000,000× the base price).
pub const MAX_COEFFICIENT: i32 = 1_000_000_000;

fn default_coefficient() -> i32 {
    DEFAULT_COEFFICIENT
}
fn default_max_active() -> u32 {
    DEFAULT_MAX_ACTIVE_REQUESTS
}
/// `[chain]` of the worker config.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerChainConfig {
    /// `local`, `toncenter` or `mainnet`.
    pub network: cocoon_ton::ton::NetworkKind,
    /// The embedded network's directory (`network = "local"`).
    #[serde(default)]
    pub local_dir: Option<std::path::PathBuf>,
    /// The toncenter v2 API (mainnet's by default with `"mainnet"`).
    #[serde(default)]
    pub toncenter_url: Option<String>,
    /// Sent as `X-API-Key`.
    #[serde(default)]
    pub toncenter_api_key: Option<String>,
    /// The COCOON root (default: the published one on mainnet, `<local_dir>/root` locally).
    #[serde(default)]
    pub root_address: Option<String>,
    /// Key file of the node wallet that deploys the worker contract and submits payouts; the
    /// contract pays `owner_address`.
    pub wallet_key: std::path::PathBuf,
    /// Deploy the worker contract at a proxy where it is missing (0.3 TON). Off by default.
    #[serde(default)]
    pub allow_deploy: bool,
    /// Submit the kept payout when it pays at least this many tokens more than the contract
    /// holds (0.5 TON attached, the rest comes back). 0, the default: never (the proxy pays
    /// on its own once enough is owed).
    #[serde(default)]
    pub submit_payout_tokens: u64,
    /// With no `proxies`: seconds between reads of the root's registry (the reference's runners:
    /// 30–60); newly registered proxies are dialled and removed ones drained, live.
    #[serde(default = "default_root_refresh")]
    pub root_refresh_secs: f64,
}

/// Default of `[chain] root_refresh_secs`.
pub const DEFAULT_ROOT_REFRESH_SECS: f64 = 45.0;

fn default_root_refresh() -> f64 {
    DEFAULT_ROOT_REFRESH_SECS
}

fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT))
}
fn default_max_pow() -> i32 {
    DEFAULT_MAX_POW_DIFFICULTY
}
fn default_check() -> f64 {
    DEFAULT_BACKEND_CHECK_SECS
}
fn default_grace() -> f64 {
    DEFAULT_GRACE_PERIOD_SECS
}
fn default_reconnect() -> f64 {
    DEFAULT_MAX_RECONNECT_SECS
}

impl WorkerConfig {
    /// A config with defaults for everything but the essentials.
    pub fn new(
        proxies: Vec<String>,
        backend_url: &str,
        model: &str,
        tee: TeeConfig,
        proxy_policy: PeerPolicyConfig,
    ) -> WorkerConfig {
        WorkerConfig {
            proxies,
            backend_url: backend_url.to_string(),
            backend_api_key: None,
            model: model.to_string(),
            weights_file: None,
            weights_digest: None,
            tee,
            proxy_policy,
            coefficient: DEFAULT_COEFFICIENT,
            max_active_requests: DEFAULT_MAX_ACTIVE_REQUESTS,
            owner_address: String::new(),
            payouts_dir: None,
            root_prices: None,
            admin_token: None,
            sealed_requests: true,
            answer_padding: Default::default(),
            payout_check_secs: DEFAULT_PAYOUT_CHECK_SECS,
            chain: None,
            http_listen: default_http_listen(),
            max_pow_difficulty: DEFAULT_MAX_POW_DIFFICULTY,
            backend_check_secs: DEFAULT_BACKEND_CHECK_SECS,
            grace_period_secs: DEFAULT_GRACE_PERIOD_SECS,
            max_reconnect_secs: DEFAULT_MAX_RECONNECT_SECS,
        }
    }

    /// Every problem with the config; empty when usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.tee.problems();
        if self.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            problems.push("admin_token must be at least 16 characters".into());
        }

        if let Some(chain) = &self.chain {
            use cocoon_ton::ton::NetworkKind;
            if self.owner_address.parse::<cocoon_ton::Address>().is_err() {
                problems.push(
                    "chain: owner_address must be the TON address the worker contract pays".into(),
                );
            }
            if chain.network == NetworkKind::Local && chain.local_dir.is_none() {
                problems.push("chain: network = \"local\" needs local_dir".into());
            }
            if chain.network == NetworkKind::Toncenter
                && (chain.toncenter_url.is_none() || chain.root_address.is_none())
            {
                problems.push(
                    "chain: network = \"toncenter\" needs toncenter_url and root_address".into(),
                );
            }
            if chain.submit_payout_tokens > 0 && self.payouts_dir.is_none() {
                problems.push(
                    "chain.submit_payout_tokens needs payouts_dir (where the payouts are kept)"
                        .into(),
                );
            }
        }
        problems.extend(self.proxy_policy.problems("proxy_policy"));
        if self.proxies.is_empty() && self.chain.is_none() {
            problems.push(
                "proxies: at least one proxy address is needed (or a [chain] table: then the root's registered proxies)".into(),
            );
        }
        if let Some(chain) = &self.chain {
            if !(chain.root_refresh_secs.is_finite() && chain.root_refresh_secs > 0.0) {
                problems
                    .push("chain.root_refresh_secs must be a positive number of seconds".into());
            }
        }
        for proxy in &self.proxies {
            if !proxy.contains(':') {
                problems.push(format!("proxies: '{proxy}' is not host:port"));
            }
        }
        match self.backend_url.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => {}
            Ok(_) => problems.push(format!(
                "backend_url '{}' must be an http:// URL with a host (TLS backends are not supported yet; put them on loopback)",
                self.backend_url
            )),
            Err(error) => problems.push(format!("backend_url '{}': {error}", self.backend_url)),
        }
        if self.model.trim().is_empty() {
            problems.push("model must not be empty".into());
        }
        if self.weights_file.is_some() && self.weights_digest.is_some() {
            problems.push(
                "weights_file and weights_digest both name the weights: set one (weights_digest for a dm-verity root or a remote backend's file)".into(),
            );
        }
        if let Some(path) = &self.weights_file {
            if !path.is_file() {
                problems.push(format!("weights_file {} is not a file", path.display()));
            }
        }
        if let Some(text) = &self.weights_digest {
            if let Err(problem) = parse_digest(text) {
                problems.push(problem);
            }
        }
        if !(0..=MAX_COEFFICIENT).contains(&self.coefficient) {
            problems.push(format!(
                "coefficient {} outside 0..=1000000000",
                self.coefficient
            ));
        }
        if self.max_active_requests == 0 {
            problems.push("max_active_requests must be at least 1".into());
        }
        check_all_seconds(
            &mut problems,
            &[
                ("backend_check_secs", self.backend_check_secs, false),
                ("max_reconnect_secs", self.max_reconnect_secs, false),
                ("grace_period_secs", self.grace_period_secs, true),
                ("payout_check_secs", self.payout_check_secs, false),
            ],
        );
        problems
    }

    pub(crate) fn backend_check(&self) -> Duration {
        Duration::from_secs_f64(self.backend_check_secs)
    }
}

/// A `weights_digest`: 32 bytes in hex.
pub(crate) fn parse_digest(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("weights_digest '{text}': {e}"))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "weights_digest '{text}' is {} bytes, expected 32 (64 hex digits)",
            b.len()
        )
    })
}

fn default_true() -> bool {
    true
}
