//! A proxy that is paid: its durable ledger, its contracts on the chain (the deployed COCOON
//! interface, `shared/reference/cocoon-contracts-facts.md`), and the loops that turn the ledger
//! into money — signed charges to client contracts, signed payouts to worker contracts, and the
//! periodic save-state commit of the ledger head that makes an old ledger file useless.
//!
//! What the proxy knows of the chain it learns as the C++ proxy does: the root's params and its
//! own proxy contract's storage at start, a client's or worker's contract when it connects, and
//! after that **its own proxy contract's transactions**, oldest first: client contracts report
//! every operation there (`client_proxy_request` with their counters: top-ups, charges,
//! withdrawals), worker contracts report payouts (`worker_proxy_request`), and the proxy's
//! save-state commits (`do_not_process` from its own wallet) are read back from there. A report
//! whose source is not the address derived from the owner it names is dropped: those without a
//! payload are accepted from anyone by the contract.
//!
//! Order of every money-moving step: **record in the ledger, wait until durable, then sign and
//! send.** A crash between the two leaves a recorded signature that was never sent, which the
//! next round simply signs again (the contracts only take increasing counts, so a repeat is
//! harmless); the reverse order could leave a signature on chain the ledger forgot. Each round
//! compares what the contracts hold with the newest signed counts and sends again what did not
//! land (at most once per [`RESEND_AFTER`] while a message may still be on its way).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cocoon_ledger::{Ledger, LedgerConfig};
use cocoon_net::Shutdown;
use cocoon_proto::{codes, SignedPayment};
use cocoon_ton::cocoon::{
    address, exit, ClientPayload, CodecError, Params, ProxyMessage, SaveState, SignedAction,
    SignedPayload, State,
};
use cocoon_ton::ton::{Cell, Cocoon, InboundTx, NetworkSpec, SendOutcome, TonError, WalletMessage};
use cocoon_ton::ProxyKey;
use cocoon_ton::{keyfile, Address, Coins, Wallet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

/// Default amount a client may owe before the proxy signs a charge to its contract (the
/// reference: 1 TON). A client also owing half its stake is charged sooner: only the stake backs
/// what it owes (see `cocoon_ledger::available_nano`).
pub const DEFAULT_CHARGE_THRESHOLD: Coins = Coins(1_000_000_000);
/// Default amount a worker may be owed before the proxy signs and sends it a payout.
pub const DEFAULT_PAYOUT_THRESHOLD: Coins = Coins(1_000_000_000);
/// Thresholds below this cost more in fees than they move (each send pays about 0.01–0.05 TON
/// of gas and forwarding): allowed, with a warning at start.
pub const SENSIBLE_THRESHOLD: Coins = Coins(100_000_000);
/// How often thresholds are checked and client balances re-read.
pub const DEFAULT_SETTLE_INTERVAL_SECS: f64 = 10.0;
/// How often the ledger head is committed to the proxy contract (the reference: 30–60 s).
pub const DEFAULT_COMMIT_INTERVAL_SECS: f64 = 45.0;

/// Which TON network the proxy uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainKind {
    /// The embedded TVM network in `local_chain_dir` (what `cocoon devnet` runs).
    Local,
    /// A real TON network (testnet, mainnet) through the toncenter v2 API at `toncenter_url`.
    Toncenter,
}

/// `[payments]`: how the proxy is paid. Without this table the proxy serves for free.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// The network.
    pub chain: ChainKind,
    /// The embedded network's directory (`chain = "local"`; the devnet's `<data-dir>/ton`).
    #[serde(default)]
    pub local_chain_dir: Option<PathBuf>,
    /// The toncenter v2 API (`chain = "toncenter"`), e.g.
    /// `https://testnet.toncenter.com/api/v2`.
    #[serde(default)]
    pub toncenter_url: Option<String>,
    /// The toncenter API key (sent as `X-API-Key`; without one toncenter allows about one
    /// request per second).
    #[serde(default)]
    pub toncenter_api_key: Option<String>,
    /// The root registry's address. Required with `chain = "toncenter"`; with `"local"` the
    /// default is the one the devnet wrote to `<local_chain_dir>/root`.
    #[serde(default)]
    pub root_address: Option<String>,
    /// The ledger file (an append-only log, see `docs/ledger.md`), created if absent; a file of
    /// the old redb format is migrated at start. Never restore it from a backup: the proxy
    /// refuses to run on a copy older than what it committed to the chain.
    pub ledger: PathBuf,
    /// The proxy contract's address. Default: derived from the root's params, the operator
    /// wallet and the signing key (facts §9).
    #[serde(default)]
    pub proxy_contract: Option<String>,
    /// Key file of the payment signing key: the public key the proxy contract stores.
    pub signer_key: PathBuf,
    /// Key file of the operator's wallet: the proxy contract's owner, which sends the signed
    /// charges, payouts and state commits.
    pub wallet_key: PathBuf,
    /// What a client may owe before a charge is signed and sent to its contract (TON, or
    /// nano-TON as `"…n"`); a client owing half its stake is charged sooner.
    #[serde(default = "default_charge_threshold", with = "cocoon_ton::coins::text")]
    pub charge_threshold: Coins,
    /// What a worker may be owed before a payout is signed and sent to its contract.
    #[serde(default = "default_payout_threshold", with = "cocoon_ton::coins::text")]
    pub payout_threshold: Coins,
    /// Seconds between threshold checks (and re-reads of client balances).
    #[serde(default = "default_settle_interval")]
    pub settle_interval_secs: f64,
    /// Seconds between commits of the ledger head to the proxy contract.
    #[serde(default = "default_commit_interval")]
    pub commit_interval_secs: f64,
}

fn default_charge_threshold() -> Coins {
    DEFAULT_CHARGE_THRESHOLD
}
fn default_payout_threshold() -> Coins {
    DEFAULT_PAYOUT_THRESHOLD
}
fn default_settle_interval() -> f64 {
    DEFAULT_SETTLE_INTERVAL_SECS
}
fn default_commit_interval() -> f64 {
    DEFAULT_COMMIT_INTERVAL_SECS
}

impl PaymentsConfig {
    /// Payments on the embedded network in `chain_dir`, with default thresholds and intervals.
    pub fn local(
        chain_dir: PathBuf,
        ledger: PathBuf,
        signer_key: PathBuf,
        wallet_key: PathBuf,
    ) -> PaymentsConfig {
        PaymentsConfig {
            chain: ChainKind::Local,
            local_chain_dir: Some(chain_dir),
            toncenter_url: None,
            toncenter_api_key: None,
            root_address: None,
            ledger,
            proxy_contract: None,
            signer_key,
            wallet_key,
            charge_threshold: DEFAULT_CHARGE_THRESHOLD,
            payout_threshold: DEFAULT_PAYOUT_THRESHOLD,
            settle_interval_secs: DEFAULT_SETTLE_INTERVAL_SECS,
            commit_interval_secs: DEFAULT_COMMIT_INTERVAL_SECS,
        }
    }

    /// Every problem, one per line.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.chain == ChainKind::Local && self.local_chain_dir.is_none() {
            problems.push("payments: chain = \"local\" needs local_chain_dir".into());
        }
        if self.chain == ChainKind::Toncenter {
            match &self.toncenter_url {
                None => problems.push("payments: chain = \"toncenter\" needs toncenter_url".into()),
                Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                    problems.push(format!(
                        "payments.toncenter_url {url:?} must be an http(s) URL"
                    ))
                }
                Some(_) => {}
            }
            if self.root_address.is_none() {
                problems.push("payments: chain = \"toncenter\" needs root_address".into());
            }
        }
        if let Some(a) = &self.root_address {
            if parse_address(a).is_none() {
                problems.push(format!("payments.root_address {a:?} is not a TON address"));
            }
        }
        if let Some(a) = &self.proxy_contract {
            if parse_address(a).is_none() {
                problems.push(format!(
                    "payments.proxy_contract {a:?} is not a TON address"
                ));
            }
        }
        for (name, value) in [
            ("settle_interval_secs", self.settle_interval_secs),
            ("commit_interval_secs", self.commit_interval_secs),
        ] {
            cocoon_net::config::check_seconds(
                &mut problems,
                &format!("payments.{name}"),
                value,
                false,
                cocoon_net::config::MAX_SECONDS,
            );
        }
        problems
    }
}

/// Why a paid proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// A key file.
    #[error(transparent)]
    Key(#[from] keyfile::KeyFileError),
    /// The network.
    #[error("chain: {0}")]
    Network(#[from] TonError),
    /// A cell could not be built or read.
    #[error("chain data: {0}")]
    Codec(#[from] CodecError),
    /// The proxy contract is missing or not usable.
    #[error("{0}")]
    Contract(String),
    /// The ledger file.
    #[error("ledger: {0}")]
    Ledger(#[from] cocoon_ledger::OpenError),
    /// The ledger is older than, or diverged from, what the chain holds.
    #[error("refusing to run: {0}")]
    Rollback(#[from] cocoon_ledger::RollbackError),
}

/// A client's contract at this proxy, as its `connectToProxy` found it.
#[derive(Clone, Debug)]
pub(crate) struct ClientContract {
    /// Its address: the client's key in the ledger.
    pub key: String,
    /// The owner the client claimed.
    pub owner: String,
    /// What its short auth secret must hash to; `None` while the contract is not deployed, or
    /// holds no secret hash (zero): the client must authorise the long way.
    pub secret_hash: Option<[u8; 32]>,
}

/// How long `authorizeWithProxyLong` waits for the client's register transaction (the C++
/// client's timeout).
pub const LONG_AUTH_TIMEOUT: Duration = Duration::from_secs(300);
/// Register payloads remembered for long authorisation (the newest).
const REGISTRATIONS_KEPT: usize = 4096;
/// How often the settle loop re-reads the root for a params change (the C++ runners: 30–60 s;
/// at most every six settle rounds).
const ROOT_CHECK_EVERY: Duration = Duration::from_secs(60);

/// What the proxy attaches to a signed charge it submits (the C++ proxy's value; the client
/// contract needs ≥ 0.1 TON and returns what it does not use to the proxy's wallet).
pub const CHARGE_VALUE: u128 = 700_000_000;
/// What the proxy attaches to a signed payout it submits (the C++ worker's value; the worker
/// contract needs > 0.1 TON and returns the rest).
pub const PAYOUT_VALUE: u128 = 500_000_000;
/// What a save-state commit carries (facts §11: 1 nanoTON; the contract ignores it).
pub const SAVE_STATE_VALUE: u128 = 1;
/// Transactions read per page of the proxy contract's history.
const HISTORY_PAGE: usize = 100;
/// Pages read per settle round at most (the rest is read in the next round).
const HISTORY_PAGES_PER_ROUND: usize = 50;

/// Which signed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `ext_client_charge_signed` to a client contract.
    Charge,
    /// `ext_client_grant_refund_signed` to a closing client contract: the final charge, then
    /// the rest of its balance back to its owner.
    GrantRefund,
    /// `ext_worker_payout_request_signed` to a worker contract.
    Payout,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Charge => "charge",
            Kind::GrantRefund => "refund grant",
            Kind::Payout => "payout",
        }
    }

    fn action(self, tokens: u64) -> SignedAction {
        match self {
            Kind::Charge => SignedAction::ClientCharge {
                new_tokens_used: tokens,
            },
            Kind::GrantRefund => SignedAction::ClientGrantRefund {
                new_tokens_used: tokens,
            },
            Kind::Payout => SignedAction::WorkerPayout { new_tokens: tokens },
        }
    }

    fn value(self) -> u128 {
        match self {
            Kind::Charge | Kind::GrantRefund => CHARGE_VALUE,
            Kind::Payout => PAYOUT_VALUE,
        }
    }
}

/// How far the proxy has read its contract's transactions, and what it found.
#[derive(Default)]
struct HistoryScan {
    /// The logical time of the last transaction read.
    after_lt: u64,
    /// The newest save-state commit from the proxy's wallet: (seqno, hash).
    newest_commit: Option<(u64, [u8; 32])>,
}

/// A paid proxy's money side.
pub struct Payments {
    /// The books.
    pub ledger: Arc<Ledger>,
    cocoon: Cocoon,
    signer: ProxyKey,
    wallet: Wallet,
    /// The proxy contract.
    pub proxy_contract: Address,
    /// The proxy contract's params (variant 6: with the client and worker code), from which
    /// client and worker addresses are derived.
    params: Params,
    config: PaymentsConfig,
    /// The newest seqno this proxy committed (or found committed) to its contract.
    committed: AtomicU64,
    /// The newest signed message per contract and opcode, with its token count: signing costs
    /// tens of µs, and every finished request tells its client and worker their signed payment.
    signatures: Mutex<HashMap<String, Vec<SignatureSlot>>>,
    /// When each worker was last sent a `proxy.workerRequestPayment`.
    worker_notices: Mutex<HashMap<String, Instant>>,
    /// The newest signed charge or payout this process sent per (kind, contract), and when.
    sent: Mutex<HashMap<(u32, String), (u64, Instant)>>,
    /// The paid tokens each worker contract last reported to the proxy contract.
    worker_paid_on_chain: Mutex<HashMap<String, u64>>,
    /// The proxy contract's history as read so far.
    history: tokio::sync::Mutex<HistoryScan>,
    /// Register payloads seen from derived client contracts: (nonce, client key), newest last.
    registrations: Mutex<std::collections::VecDeque<(u64, String)>>,
    /// Client contracts seen closing or closed (by key): no request is admitted for them, and
    /// a closing one gets its final charge as `ext_client_grant_refund_signed` once none of its
    /// requests runs.
    closing: Mutex<HashMap<String, State>>,
    /// Whether `closing` has any entry: the request path looks only when it does.
    any_closing: std::sync::atomic::AtomicBool,
    /// When the root was last read, and the params version it had.
    root_checked: Mutex<(Instant, u32)>,
    /// The root's allow-lists of models and worker images, followed at every re-read.
    pub rules: RootRules,
    /// What the settle and commit loops did, for `/stats`.
    activity: Activity,
}

/// What the settle and commit loops did, for the dashboard (`/stats`).
#[derive(Debug, Default)]
struct Activity {
    settle_rounds: AtomicU64,
    /// Signed charges (refund grants included) and payouts this process sent.
    charges_sent: AtomicU64,
    payouts_sent: AtomicU64,
    /// When the last settle round ended, and when the ledger head was last committed.
    last_settle: Mutex<Option<Instant>>,
    last_commit: Mutex<Option<Instant>>,
}

impl Activity {
    fn mark(slot: &Mutex<Option<Instant>>) {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn seconds_since(slot: &Mutex<Option<Instant>>) -> Option<f64> {
        slot.lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|at| at.elapsed().as_secs_f64())
    }
}

/// What the root allows of workers, as last read: the models (SHA-256 of the exact string a
/// worker announces, facts §4) and the worker images (its `worker_hashes`). `version` grows
/// whenever either changed, so the router re-checks its workers only then.
pub struct RootRules {
    models: Mutex<std::collections::HashSet<[u8; 32]>>,
    /// The worker images, shared with the worker port's policy when it takes them from the root.
    pub worker_images: cocoon_attest::LiveImageHashes,
    /// Whether the worker port's policy takes its images from the root (its config names none).
    images_followed: std::sync::atomic::AtomicBool,
    version: AtomicU64,
}

impl RootRules {
    fn new(root: &cocoon_ton::cocoon::RootData) -> RootRules {
        RootRules {
            models: Mutex::new(root.model_hashes.iter().copied().collect()),
            worker_images: cocoon_attest::LiveImageHashes::new(
                root.worker_hashes.iter().copied().collect(),
            ),
            images_followed: std::sync::atomic::AtomicBool::new(false),
            version: AtomicU64::new(0),
        }
    }

    /// The worker port's policy takes its images from the root from now on.
    pub fn follow_images(&self) {
        self.images_followed.store(true, Ordering::Relaxed);
    }

    /// Whether the worker images are the root's.
    pub fn follows_images(&self) -> bool {
        self.images_followed.load(Ordering::Relaxed)
    }

    fn update(&self, root: &cocoon_ton::cocoon::RootData) {
        let models: std::collections::HashSet<[u8; 32]> =
            root.model_hashes.iter().copied().collect();
        let images: Vec<[u8; 32]> = root.worker_hashes.iter().copied().collect();
        let mut current = self.models.lock().unwrap_or_else(|p| p.into_inner());
        let images_changed = {
            let mut old: Vec<[u8; 32]> = self.worker_images.get();
            let mut new = images.clone();
            old.sort_unstable();
            new.sort_unstable();
            old != new
        };
        if *current != models || images_changed {
            info!(
                models = models.len(),
                worker_images = images.len(),
                "the root's allowed models or worker images changed"
            );
            *current = models;
            self.worker_images.set(images);
            self.version.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the root allows workers to serve `model` (the exact string they announce).
    pub fn allows_model(&self, model: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(model.as_bytes()).into();
        self.models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&hash)
    }

    /// Grows whenever the allow-lists changed.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

/// One cached signed message: (opcode, tokens, message).
type SignatureSlot = (u32, u64, SignedPayment);

/// The least time between two `proxy.workerRequestPayment`s to one worker (see
/// [`Payments::worker_notice_due`]).
const WORKER_NOTICE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a signed charge or payout sent by this process may take to show on chain before the
/// settle loop sends it again (the embedded network applies it at once; a real one within
/// seconds).
pub const RESEND_AFTER: Duration = Duration::from_secs(60);

/// A peer's payment status, in the meaning the C++ runners give the three numbers of
/// `paymentStatus`, `authorizationWithProxySuccess`, `compareBalanceWithProxyResult` and the
/// `*RequestPayment` messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PaymentStatus {
    /// The newest signed charge (client) or payout (worker): what can be committed to the
    /// chain.
    pub signed_payment: SignedPayment,
    /// Tokens the ledger holds durably.
    pub db_tokens: i64,
    /// All tokens the proxy knows of. A paid request's charge is durable before its last part
    /// is sent, so this equals `db_tokens` whenever a peer can see it.
    pub max_tokens: i64,
}

impl PaymentStatus {
    /// A free proxy's answer: nothing signed, nothing counted.
    pub(crate) fn free() -> PaymentStatus {
        PaymentStatus {
            signed_payment: SignedPayment::Empty,
            db_tokens: 0,
            max_tokens: 0,
        }
    }
}

fn parse_address(text: &str) -> Option<Address> {
    text.parse().ok()
}

/// Opens the network a `[payments]` table names.
fn open_network(config: &PaymentsConfig) -> Result<Cocoon, PaymentsError> {
    let spec = match config.chain {
        ChainKind::Local => NetworkSpec {
            local_dir: Some(config.local_chain_dir.clone().unwrap_or_default()),
            root_address: config.root_address.clone(),
            ..NetworkSpec::default()
        },
        ChainKind::Toncenter => NetworkSpec {
            local_dir: None,
            toncenter_url: config.toncenter_url.clone(),
            toncenter_api_key: config.toncenter_api_key.clone(),
            root_address: config.root_address.clone(),
        },
    };
    spec.open()
        .map_err(|e| PaymentsError::Contract(format!("payments: {e}")))
}

impl Payments {
    /// Opens the network, reads the root and the proxy contract, opens the ledger and runs the
    /// anti-rollback check against the newest save-state commit in the contract's history: a
    /// ledger older than it, or another ledger's, is refused.
    pub async fn open(config: &PaymentsConfig) -> Result<Payments, PaymentsError> {
        let cocoon = open_network(config)?;
        let network = cocoon.network().clone();
        let root_address = cocoon.root_address().clone();
        let root = cocoon.root().await?;
        let signer_seed = keyfile::read(&config.signer_key)?;
        let signer = ProxyKey::from_seed(&signer_seed);
        let wallet = Wallet::from_seed(&keyfile::read(&config.wallet_key)?);
        let derived = address::proxy_contract(
            &root_address,
            &root.params,
            wallet.address(),
            &signer.public_key(),
        )?
        .address()?;
        let proxy_contract = match &config.proxy_contract {
            Some(address) => parse_address(address).ok_or_else(|| {
                PaymentsError::Contract(format!("proxy_contract {address:?} is not a TON address"))
            })?,
            None => derived.clone(),
        };
        let Some(state) = cocoon.proxy(&proxy_contract).await? else {
            let params_note = if root.params.params_version > 1 && config.proxy_contract.is_none() {
                format!(" The root's params are at version {}: if they changed since your proxy contract was deployed, its address moved; set payments.proxy_contract to it to see what to do (docs/payments.md).", root.params.params_version)
            } else {
                String::new()
            };
            return Err(PaymentsError::Contract(format!(
                "no proxy contract at {proxy_contract} on {}: deploy it from wallet {} with the signing key {} (cocoon devnet does this for you).{params_note}",
                network.describe(),
                wallet.address(),
                hex::encode(signer.public_key())
            )));
        };
        if state.proxy_public_key != signer.public_key() {
            return Err(PaymentsError::Contract(format!(
                "proxy contract {proxy_contract} holds the signing key {}, not this proxy's {}: its contracts would refuse every charge and payout",
                hex::encode(state.proxy_public_key),
                hex::encode(signer.public_key())
            )));
        }
        if state.state != State::Normal {
            return Err(PaymentsError::Contract(format!(
                "proxy contract {proxy_contract} is {:?}: it cannot take payments",
                state.state
            )));
        }
        if state.params.params_version != root.params.params_version {
            return Err(PaymentsError::Contract(format!(
                "the root's params changed (version {} → {}) since proxy contract {proxy_contract} was deployed: every contract address moved, so clients and workers cannot find this one. Deploy a new proxy contract (at {derived}) with a new ledger, and wind the old one down (docs/payments.md, \"When the root's params change\")",
                state.params.params_version, root.params.params_version
            )));
        }
        let price = state.params.price_per_token.0;
        let fee = state.params.worker_fee_per_token.0;
        let ledger = Ledger::open(&config.ledger, LedgerConfig::new(signer_seed, price, fee))?;
        let payments = Payments {
            ledger: Arc::new(ledger),
            cocoon,
            signer,
            wallet,
            proxy_contract,
            params: state.params.clone(),
            config: config.clone(),
            committed: AtomicU64::new(0),
            signatures: Mutex::new(HashMap::new()),
            worker_notices: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashMap::new()),
            worker_paid_on_chain: Mutex::new(HashMap::new()),
            history: tokio::sync::Mutex::new(HistoryScan::default()),
            registrations: Mutex::new(std::collections::VecDeque::new()),
            closing: Mutex::new(HashMap::new()),
            any_closing: std::sync::atomic::AtomicBool::new(false),
            root_checked: Mutex::new((Instant::now(), root.params.params_version)),
            rules: RootRules::new(&root),
            activity: Activity::default(),
        };
        // Everything up to now, so the newest commit is known before anything is served.
        let newest = loop {
            let (newest, more) = payments.read_history().await?;
            if !more {
                break newest;
            }
        };
        let (chain_seqno, chain_hash) = newest.unwrap_or((0, [0; 32]));
        payments
            .ledger
            .check_chain_commit(chain_seqno, chain_hash)?;
        payments.committed.store(chain_seqno, Ordering::Relaxed);
        // Answers a crash cut short: each is charged its last progress checkpoint.
        for progress in payments.ledger.unfinished() {
            let request = hex::encode(&progress.request_id[..6]);
            match payments.ledger.charge_unfinished(&progress).await {
                Ok(_) => {
                    info!(%request, tokens = progress.tokens, client = %progress.client, "charged a request the last stop cut short (its last checkpoint)")
                }
                Err(error) => {
                    warn!(%request, %error, "cannot charge a request the last stop cut short")
                }
            }
        }
        let head = payments.ledger.head();
        info!(contract = %payments.proxy_contract, chain = %network.describe(), ledger_seqno = head.seqno, chain_seqno, price, fee, charge_threshold = %config.charge_threshold, payout_threshold = %config.payout_threshold, "payments ready");
        for (name, amount) in [
            ("charge_threshold", config.charge_threshold),
            ("payout_threshold", config.payout_threshold),
        ] {
            if amount < SENSIBLE_THRESHOLD {
                warn!(%amount, "payments.{name} is below {SENSIBLE_THRESHOLD}: each charge or payout costs about 0.01–0.05 TON in fees, more than so small an amount moves");
            }
        }
        Ok(payments)
    }

    /// The root's price multipliers (from the params cell; `get_cur_params` omits two).
    pub fn multipliers(&self) -> cocoon_proto::Multipliers {
        self.params.multipliers()
    }

    pub fn owner_address(&self) -> &Address {
        self.wallet.address()
    }

    /// The payment signing key's public half: the key the proxy contract holds.
    pub fn signer_public_key(&self) -> [u8; 32] {
        self.signer.public_key()
    }

    /// What a worker earns per (adjusted) token, nano-TON: the root's params.
    pub fn worker_fee_per_token(&self) -> u128 {
        self.params.worker_fee_per_token.0
    }

    fn client_address(&self, owner: &Address) -> Result<Address, CodecError> {
        address::client_contract(
            &self.proxy_contract,
            &self.params,
            &self.signer.public_key(),
            owner,
        )?
        .address()
    }

    fn worker_address(&self, owner: &Address) -> Result<Address, CodecError> {
        address::worker_contract(
            &self.proxy_contract,
            &self.params,
            &self.signer.public_key(),
            owner,
        )?
        .address()
    }

    /// Finds `owner`'s client contract at this proxy and records its balance in the ledger. A
    /// contract that is not deployed yet is not an error: its client deploys it and authorises
    /// the long way.
    pub(crate) async fn client_contract(
        &self,
        owner: &str,
    ) -> Result<ClientContract, (i32, String)> {
        let owner_address = parse_address(owner).ok_or_else(|| {
            (
                codes::BAD_REQUEST,
                format!("client_owner_address {owner:?} is not a TON address"),
            )
        })?;
        let address = self
            .client_address(&owner_address)
            .map_err(|e| (codes::INTERNAL, format!("client contract address: {e}")))?;
        let key = address.to_hex();
        let Some(state) = self
            .cocoon
            .client(&address)
            .await
            .map_err(|e| (codes::INTERNAL, format!("reading the client contract: {e}")))?
        else {
            return Ok(ClientContract {
                key,
                owner: owner.to_owned(),
                secret_hash: None,
            });
        };
        if state.state != State::Normal {
            return Err((
                codes::PAYMENT_REQUIRED,
                format!(
                    "client contract {address} is {:?}: open a new one",
                    state.state
                ),
            ));
        }
        self.sync_client(&key, state.balance.0, state.stake.0, state.tokens_used)
            .await
            .map_err(|e| (codes::INTERNAL, format!("ledger: {e}")))?;
        Ok(ClientContract {
            key,
            owner: owner.to_owned(),
            secret_hash: Some(state.secret_hash).filter(|hash| *hash != [0; 32]),
        })
    }

    /// Waits until the proxy contract's history shows `client`'s register payload carrying
    /// `nonce` (from the derived client contract), reading new transactions every half second,
    /// for at most `timeout`. Whether it came.
    pub(crate) async fn await_registration(
        &self,
        client: &str,
        nonce: u64,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self
                .registrations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|(n, key)| *n == nonce && key == client);
            if seen {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            if let Err(error) = self.read_history().await {
                warn!(%error, "cannot read the proxy contract's transactions");
            }
            tokio::time::sleep(Duration::from_millis(500).min(timeout)).await;
        }
    }

    /// Records a client contract's counters in the ledger if they changed.
    async fn sync_client(
        &self,
        key: &str,
        balance: u128,
        stake: u128,
        tokens_used: u64,
    ) -> Result<(), cocoon_ledger::LedgerError> {
        let unchanged = self.ledger.client(key).is_some_and(|a| {
            a.balance_nano == balance
                && a.stake_nano == stake
                && a.tokens_used_on_chain == tokens_used
        });
        if unchanged {
            return Ok(());
        }
        self.ledger
            .sync_client(key, balance, stake, tokens_used)
            .await
            .map(|_| ())
    }

    /// Whether `secret` is the client's short-auth secret.
    pub(crate) fn secret_matches(contract: &ClientContract, secret: &[u8]) -> bool {
        let hash: [u8; 32] = Sha256::digest(secret).into();
        contract.secret_hash == Some(hash)
    }

    /// A client's payment status: the newest signed charge (`signedPaymentEmpty` before the
    /// first), and the tokens charged to it.
    pub(crate) fn client_status(&self, key: &str) -> PaymentStatus {
        let Some(account) = self.ledger.client(key) else {
            return PaymentStatus {
                signed_payment: SignedPayment::Empty,
                db_tokens: 0,
                max_tokens: 0,
            };
        };
        let charged = i64::try_from(account.charged_tokens).unwrap_or(i64::MAX);
        PaymentStatus {
            signed_payment: self.signed(Kind::Charge, key, account.signed_tokens),
            db_tokens: charged,
            max_tokens: charged,
        }
    }

    /// A worker's payment status: the newest signed payout, signed even for 0 tokens (a C++
    /// worker drops a proxy that sends `signedPaymentEmpty` here), and the tokens it earned.
    pub(crate) fn worker_status(&self, key: &str) -> PaymentStatus {
        let (paid, earned) = self
            .ledger
            .worker(key)
            .map_or((0, 0), |a| (a.paid_tokens, a.earned_tokens));
        let earned = i64::try_from(earned).unwrap_or(i64::MAX);
        PaymentStatus {
            signed_payment: self.signed_or_zero(Kind::Payout, key, paid),
            db_tokens: earned,
            max_tokens: earned,
        }
    }

    /// Finds `owner`'s worker contract at this proxy: the worker's key in the ledger.
    pub(crate) async fn worker_contract(&self, owner: &str) -> Result<String, (i32, String)> {
        let owner_address = parse_address(owner).ok_or_else(|| {
            (
                codes::BAD_REQUEST,
                format!("worker_owner_address {owner:?} is not a TON address: a paid proxy pays workers to their wallet"),
            )
        })?;
        let address = self
            .worker_address(&owner_address)
            .map_err(|e| (codes::INTERNAL, format!("worker contract address: {e}")))?;
        match self.cocoon.worker(&address).await {
            Ok(Some(state)) if state.state == State::Normal => {
                self.saw_worker_tokens(&address.to_hex(), state.tokens);
                Ok(address.to_hex())
            }
            Ok(Some(state)) => Err((
                codes::BAD_REQUEST,
                format!("worker contract {address} is {:?}", state.state),
            )),
            // The worker deploys it after connectedToProxy (the C++ worker does); payouts wait
            // until it is there.
            Ok(None) => {
                info!(worker = %address, %owner, "worker contract not deployed yet: payouts wait for it");
                Ok(address.to_hex())
            }
            Err(e) => Err((codes::INTERNAL, format!("reading the worker contract: {e}"))),
        }
    }

    fn saw_worker_tokens(&self, key: &str, tokens: u64) {
        let mut seen = self
            .worker_paid_on_chain
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = seen.entry(key.to_owned()).or_default();
        *entry = (*entry).max(tokens);
    }

    /// Whether `worker` is due a `proxy.workerRequestPayment` (none in the last
    /// [`WORKER_NOTICE_INTERVAL`]); if so, records that it gets one now.
    pub(crate) fn worker_notice_due(&self, worker: &str) -> bool {
        let now = Instant::now();
        let mut notices = self
            .worker_notices
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match notices.get_mut(worker) {
            Some(last) if now.duration_since(*last) < WORKER_NOTICE_INTERVAL => false,
            Some(last) => {
                *last = now;
                true
            }
            None => {
                notices.insert(worker.to_owned(), now);
                true
            }
        }
    }

    /// What a worker is told when it compares balances or asks for its payment status: a signed
    /// payout for everything it earned (recorded first, so the ledger never forgets a
    /// signature), which it may submit to its contract itself, and the tokens it earned.
    pub(crate) async fn worker_reconciliation(&self, key: &str) -> PaymentStatus {
        if let Some(account) = self.ledger.worker(key) {
            if account.earned_tokens > account.paid_tokens {
                if let Err(error) = self
                    .ledger
                    .record_signed_payout(key, account.earned_tokens)
                    .await
                {
                    warn!(worker = %key, %error, "cannot record a signed payout");
                }
            }
        }
        self.worker_status(key)
    }

    /// The signed message for `tokens` (signing is deterministic, so this is the message the
    /// proxy sent or will send); empty for 0.
    fn signed(&self, kind: Kind, key: &str, tokens: u64) -> SignedPayment {
        if tokens == 0 {
            return SignedPayment::Empty;
        }
        self.signed_or_zero(kind, key, tokens)
    }

    /// [`Self::signed`], signing 0 tokens too; from the cache when nothing changed.
    fn signed_or_zero(&self, kind: Kind, key: &str, tokens: u64) -> SignedPayment {
        let opcode = kind.action(0).op();
        let lock = || self.signatures.lock().unwrap_or_else(|p| p.into_inner());
        let cached = |cache: &HashMap<String, Vec<SignatureSlot>>| {
            cache
                .get(key)
                .and_then(|slots| slots.iter().find(|slot| slot.0 == opcode).cloned())
        };
        if let Some((_, cached_tokens, payment)) = cached(&lock()) {
            if cached_tokens == tokens {
                return payment;
            }
        }
        let payment = match self
            .sign(kind, key, tokens)
            .and_then(|body| cocoon_ton::cocoon::to_boc(&body).map_err(PaymentsError::from))
        {
            Ok(data) => SignedPayment::Signed { data },
            Err(error) => {
                warn!(%error, "cannot build a signed payment");
                return SignedPayment::Empty;
            }
        };
        let mut cache = lock();
        let slots = cache.entry(key.to_owned()).or_default();
        match slots.iter_mut().find(|slot| slot.0 == opcode) {
            // A newer signature landed meanwhile: keep it.
            Some(slot) if slot.1 > tokens => {}
            Some(slot) => *slot = (opcode, tokens, payment.clone()),
            None => slots.push((opcode, tokens, payment.clone())),
        }
        payment
    }

    /// The signed body for `tokens` to the contract `key`, with the proxy's wallet as the
    /// excess address (what `proxy.signedPayment.data` carries; a submitter may repack it).
    fn sign(&self, kind: Kind, key: &str, tokens: u64) -> Result<Cell, PaymentsError> {
        let target = parse_address(key).ok_or_else(|| {
            PaymentsError::Contract(format!("ledger key {key} is not an address"))
        })?;
        let payload = SignedPayload {
            action: kind.action(tokens),
            query_id: 0,
            expected_address: target,
        };
        Ok(payload
            .sign(&self.signer, self.wallet.address().clone())?
            .to_cell()?)
    }

    /// Sends `body` with `value` from the proxy's wallet; the destination's transaction when
    /// the network executes it at once.
    async fn send(
        &self,
        to: Address,
        value: u128,
        bounce: bool,
        body: Cell,
    ) -> Result<Option<InboundTx>, TonError> {
        let message = WalletMessage {
            to,
            value,
            bounce,
            body: Arc::new(body),
            state_init: None,
        };
        Ok(
            match self.cocoon.network().send(&self.wallet, &[message]).await? {
                SendOutcome::Executed(mut transactions) => transactions.pop(),
                SendOutcome::Submitted { .. } => None,
            },
        )
    }

    /// One round: signed charges and payouts over their thresholds, what the proxy contract's
    /// history says, and what did not land sent again.
    pub async fn settle(&self, charge_threshold: u64, payout_threshold: u64) {
        for (client, tokens) in self.ledger.clients_over_threshold(charge_threshold) {
            self.settle_one(Kind::Charge, &client, tokens).await;
        }
        for (worker, tokens) in self.ledger.workers_over_threshold(payout_threshold) {
            self.settle_one(Kind::Payout, &worker, tokens).await;
        }
        // Top-ups, withdrawals, the charges and payouts just sent: the contracts report them.
        if let Err(error) = self.read_history().await {
            warn!(%error, "cannot read the proxy contract's transactions");
        }
        self.grant_refunds().await;
        self.resend_unlanded(payout_threshold).await;
        self.check_root().await;
        self.activity.settle_rounds.fetch_add(1, Ordering::Relaxed);
        Activity::mark(&self.activity.last_settle);
    }

    /// A client contract reported closing (its owner asked for a refund) or closed.
    fn saw_closing(&self, key: &str, state: State) {
        let mut closing = self.closing.lock().unwrap_or_else(|p| p.into_inner());
        if closing.insert(key.to_owned(), state) != Some(state) {
            info!(client = %key, ?state, "client contract closing: no new requests; its final charge goes with the refund grant");
        }
        self.any_closing.store(true, Ordering::Relaxed);
    }

    /// Whether a client's contract is closing or closed (no request is admitted for it).
    pub(crate) fn is_closing(&self, key: &str) -> bool {
        self.any_closing.load(Ordering::Relaxed)
            && self
                .closing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(key)
    }

    /// Sends each closing client whose requests have all ended its final charge with the
    /// refund grant (`ext_client_grant_refund_signed`, non-strict, so a repeat is harmless):
    /// before its delay runs out and the owner forces the refund, which would leave what it
    /// owes unpaid. Resent at most once per [`RESEND_AFTER`] until the contract reports closed.
    async fn grant_refunds(&self) {
        let closing: Vec<String> = self
            .closing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, state)| **state == State::Closing)
            .map(|(key, _)| key.clone())
            .collect();
        for key in closing {
            let Some(account) = self.ledger.client(&key) else {
                continue;
            };
            if account.reserved_tokens > 0 {
                continue;
            }
            let tokens = account.charged_tokens;
            let recent = self
                .sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(Kind::GrantRefund.action(0).op(), key.clone()))
                .is_some_and(|&(sent, at)| sent >= tokens && at.elapsed() < RESEND_AFTER);
            if recent {
                continue;
            }
            if tokens > account.signed_tokens {
                if let Err(error) = self.ledger.record_signed_charge(&key, tokens).await {
                    warn!(client = %key, tokens, %error, "cannot record a signed refund grant");
                    continue;
                }
            }
            self.send_signed(Kind::GrantRefund, &key, tokens).await;
        }
    }

    /// Every [`ROOT_CHECK_EVERY`]: re-reads the root. A params change moved every contract's
    /// address (facts §9): new clients and workers derive other contracts, while this proxy
    /// keeps serving and settling its own. It is logged as an error each time it is seen, and
    /// shown in `/stats`; what to do is in `docs/payments.md`.
    async fn check_root(&self) {
        let due = self
            .root_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .elapsed()
            >= ROOT_CHECK_EVERY.min(Duration::from_secs_f64(
                self.config.settle_interval_secs * 6.0,
            ));
        if !due {
            return;
        }
        match self.cocoon.root().await {
            Ok(root) => {
                *self.root_checked.lock().unwrap_or_else(|p| p.into_inner()) =
                    (Instant::now(), root.params.params_version);
                self.rules.update(&root);
                if root.params.params_version != self.params.params_version {
                    tracing::error!(
                        contract = %self.proxy_contract,
                        ours = self.params.params_version,
                        root = root.params.params_version,
                        "the root's params changed: new clients and workers derive other contracts and cannot use this proxy's; deploy a new proxy contract and wind this one down (docs/payments.md)"
                    );
                }
            }
            Err(error) => warn!(%error, "cannot re-read the root"),
        }
    }

    /// The chain side for `/stats`.
    pub fn chain_json(&self) -> serde_json::Value {
        let root_version = self
            .root_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1;
        serde_json::json!({
            "network": self.cocoon.network().describe(),
            "root": self.cocoon.root_address().to_hex(),
            "proxy_contract": self.proxy_contract.to_hex(),
            "params_version": self.params.params_version,
            "root_params_version": root_version,
            "root_params_changed": root_version != self.params.params_version,
            "committed_seqno": self.committed.load(Ordering::Relaxed),
            "uncommitted_records": self.ledger.head().seqno.saturating_sub(self.committed.load(Ordering::Relaxed)),
            "price_per_token_nano": self.params.price_per_token.0,
            "worker_fee_per_token_nano": self.params.worker_fee_per_token.0,
            "settle_interval_secs": self.config.settle_interval_secs,
            "commit_interval_secs": self.config.commit_interval_secs,
            "settle_rounds": self.activity.settle_rounds.load(Ordering::Relaxed),
            "last_settle_secs_ago": Activity::seconds_since(&self.activity.last_settle),
            "last_commit_secs_ago": Activity::seconds_since(&self.activity.last_commit),
            "charges_sent": self.activity.charges_sent.load(Ordering::Relaxed),
            "payouts_sent": self.activity.payouts_sent.load(Ordering::Relaxed),
        })
    }

    async fn settle_one(&self, kind: Kind, key: &str, tokens: u64) {
        let recorded = match kind {
            Kind::Charge | Kind::GrantRefund => self.ledger.record_signed_charge(key, tokens).await,
            Kind::Payout => self.ledger.record_signed_payout(key, tokens).await,
        };
        if let Err(error) = recorded {
            warn!(contract = %key, tokens, %error, "cannot record a signed {}", kind.what());
            return;
        }
        self.send_signed(kind, key, tokens).await;
    }

    /// Signs and sends a charge or payout and remembers when, for [`Self::resend_unlanded`].
    async fn send_signed(&self, kind: Kind, key: &str, tokens: u64) {
        let what = kind.what();
        let (body, to) = match (self.sign(kind, key, tokens), parse_address(key)) {
            (Ok(body), Some(to)) => (body, to),
            (Err(error), _) => {
                warn!(contract = %key, %error, "cannot sign a {what}");
                return;
            }
            (_, None) => return,
        };
        if kind == Kind::Payout && !matches!(self.cocoon.worker(&to).await, Ok(Some(_))) {
            debug!(contract = %key, tokens, "worker contract not deployed (or unreadable): the payout waits");
            return;
        }
        match self.send(to, kind.value(), true, body).await {
            Ok(executed) => {
                self.sent.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    (kind.action(0).op(), key.to_owned()),
                    (tokens, Instant::now()),
                );
                let counter = match kind {
                    Kind::Payout => &self.activity.payouts_sent,
                    Kind::Charge | Kind::GrantRefund => &self.activity.charges_sent,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                match executed.and_then(|tx| tx.exit_code).unwrap_or(0) {
                    0 => info!(contract = %key, tokens, "signed {what} sent"),
                    // The contract is already at or past this count: an earlier round, or the
                    // other party with the message it was given, sent it.
                    exit::OLD_MESSAGE => {}
                    code => {
                        warn!(contract = %key, tokens, exit_code = code, "signed {what} refused by the contract")
                    }
                }
            }
            Err(error) => warn!(contract = %key, tokens, %error, "signed {what} not sent"),
        }
    }

    /// Sends again every signed charge the ledger recorded but the client contract does not
    /// hold, and every signed payout that is at least `payout_threshold` tokens ahead of its
    /// worker contract: one a crash cut off between recording and sending, one the network
    /// lost, or a payout signed for a worker (on `compareBalance` or `updatePaymentStatus`)
    /// that the worker did not submit itself. (A payout below the threshold is left to the
    /// worker, as the threshold says.) The contracts take only increasing counts, so a repeat
    /// is harmless; one this process sent less than [`RESEND_AFTER`] ago is left to land.
    async fn resend_unlanded(&self, payout_threshold: u64) {
        let payout_threshold = payout_threshold.max(1);
        for client in self.ledger.client_keys() {
            let Some(account) = self.ledger.client(&client) else {
                continue;
            };
            if account.signed_tokens > account.tokens_used_on_chain && !self.is_closing(&client) {
                self.resend(Kind::Charge, &client, account.signed_tokens)
                    .await;
            }
        }
        for worker in self.ledger.worker_keys() {
            let Some(account) = self.ledger.worker(&worker) else {
                continue;
            };
            let on_chain = self
                .worker_paid_on_chain
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&worker)
                .copied()
                .unwrap_or(0);
            if account.paid_tokens.saturating_sub(on_chain) >= payout_threshold {
                self.resend(Kind::Payout, &worker, account.paid_tokens)
                    .await;
            }
        }
    }

    /// Sends `tokens` for `key` again unless this process sent that count (or more) less than
    /// [`RESEND_AFTER`] ago.
    async fn resend(&self, kind: Kind, key: &str, tokens: u64) {
        let recent = self
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(kind.action(0).op(), key.to_owned()))
            .is_some_and(|&(sent, at)| sent >= tokens && at.elapsed() < RESEND_AFTER);
        if recent {
            return;
        }
        info!(contract = %key, tokens, "a signed {} is not on chain: sending it again", kind.what());
        self.send_signed(kind, key, tokens).await;
    }

    /// Reads the proxy contract's transactions after the last one read (at most
    /// [`HISTORY_PAGES_PER_ROUND`] pages): client reports update the ledger's view of client
    /// contracts, worker reports the paid tokens, and save-state commits from the proxy's own
    /// wallet the newest commit. Returns the newest commit and whether more is left to read.
    async fn read_history(&self) -> Result<(Option<(u64, [u8; 32])>, bool), TonError> {
        let mut scan = self.history.lock().await;
        for _ in 0..HISTORY_PAGES_PER_ROUND {
            let page = self
                .cocoon
                .network()
                .transactions(&self.proxy_contract, scan.after_lt, HISTORY_PAGE)
                .await?;
            for tx in &page {
                scan.after_lt = scan.after_lt.max(tx.lt);
                self.observe(tx, &mut scan).await;
            }
            if page.len() < HISTORY_PAGE {
                return Ok((scan.newest_commit, false));
            }
        }
        Ok((scan.newest_commit, true))
    }

    /// What one transaction of the proxy contract tells the proxy.
    async fn observe(&self, tx: &InboundTx, scan: &mut HistoryScan) {
        if tx.bounced {
            return;
        }
        let Some(source) = &tx.source else {
            return;
        };
        let Ok(message) = ProxyMessage::from_cell(&tx.body) else {
            return;
        };
        match message {
            ProxyMessage::SaveState(save) if source == self.wallet.address() => {
                if let Ok(seqno) = u64::try_from(save.seqno) {
                    scan.newest_commit = Some((seqno, save.session_unique_hash));
                }
            }
            ProxyMessage::ClientRequest {
                client_owner,
                report,
                payload,
                ..
            } => {
                let Ok(derived) = self.client_address(&client_owner) else {
                    return;
                };
                if &derived != source {
                    debug!(claimed = %client_owner, %source, "dropping a client report from an address that is not the derived one");
                    return;
                }
                let key = derived.to_hex();
                if let Some(ClientPayload::Register { nonce }) = payload {
                    let mut registrations =
                        self.registrations.lock().unwrap_or_else(|p| p.into_inner());
                    if registrations.len() >= REGISTRATIONS_KEPT {
                        registrations.pop_front();
                    }
                    registrations.push_back((nonce, key.clone()));
                }
                // Only clients this proxy serves are in the books; others are read when they
                // connect.
                if self.ledger.client(&key).is_some() {
                    if let Err(error) = self
                        .sync_client(&key, report.balance.0, report.stake.0, report.tokens_used)
                        .await
                    {
                        warn!(client = %key, %error, "cannot record a client contract's report");
                    }
                    if report.state != State::Normal {
                        self.saw_closing(&key, report.state);
                    }
                }
            }
            ProxyMessage::WorkerRequest {
                worker_owner,
                tokens,
                ..
            } => {
                let Ok(derived) = self.worker_address(&worker_owner) else {
                    return;
                };
                if &derived != source {
                    debug!(claimed = %worker_owner, %source, "dropping a worker report from an address that is not the derived one");
                    return;
                }
                self.saw_worker_tokens(&derived.to_hex(), tokens);
            }
            _ => {}
        }
    }

    /// Commits the ledger head to the proxy contract (a save-state message) if it moved since
    /// the last commit. If the contract's history holds a commit from this proxy's wallet that
    /// this ledger does not contain, another copy of the ledger is running: the ledger is
    /// halted, and with it all serving.
    pub async fn commit(&self) {
        let head = self.ledger.head();
        let committed = self.committed.load(Ordering::Relaxed);
        if head.seqno <= committed {
            return;
        }
        match self.read_history().await {
            Ok((Some((seqno, hash)), _)) if seqno != committed => {
                if let Err(error) = self.ledger.check_chain_commit(seqno, hash) {
                    tracing::error!(%error, "another copy of this proxy's ledger is committing to its contract; refusing to go on");
                    self.ledger.halt(&format!("halted: {error}"));
                    return;
                }
                self.committed.fetch_max(seqno, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(error) => {
                warn!(%error, "cannot read the proxy contract's transactions");
                return;
            }
        }
        let Ok(seqno) = i32::try_from(head.seqno) else {
            tracing::error!(
                seqno = head.seqno,
                "the ledger's seqno no longer fits a save-state commit (int32)"
            );
            return;
        };
        let body = match (SaveState {
            random: rand::random(),
            seqno,
            session_unique_hash: head.hash,
        })
        .to_cell()
        {
            Ok(body) => body,
            Err(error) => {
                warn!(%error, "cannot build a save-state commit");
                return;
            }
        };
        match self
            .send(self.proxy_contract.clone(), SAVE_STATE_VALUE, false, body)
            .await
        {
            Ok(_) => {
                self.committed.fetch_max(head.seqno, Ordering::Relaxed);
                Activity::mark(&self.activity.last_commit);
                info!(
                    seqno = head.seqno,
                    "ledger head committed to the proxy contract"
                );
            }
            Err(error) => warn!(seqno = head.seqno, %error, "cannot commit the ledger head"),
        }
    }

    /// The configured thresholds in tokens: (charge at the client price, payout at the
    /// worker fee), rounded up.
    pub fn threshold_tokens(&self) -> (u64, u64) {
        let tokens = |amount: Coins, per_token: u128| {
            u64::try_from(amount.0.div_ceil(per_token.max(1))).unwrap_or(u64::MAX)
        };
        (
            tokens(self.config.charge_threshold, self.params.price_per_token.0),
            tokens(
                self.config.payout_threshold,
                self.params.worker_fee_per_token.0,
            ),
        )
    }

    /// One settle round and one commit, with the configured thresholds.
    pub async fn round(&self) {
        let (charge, payout) = self.threshold_tokens();
        self.settle(charge, payout).await;
        self.commit().await;
    }

    /// Runs the settle and commit loops until the proxy starts draining. (The proxy runs a
    /// last [`Payments::round`] once its requests have drained.)
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let every = |secs: f64| {
            let mut interval = tokio::time::interval(Duration::from_secs_f64(secs));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        };
        let mut settle = every(self.config.settle_interval_secs);
        let mut commit = every(self.config.commit_interval_secs);
        loop {
            tokio::select! {
                _ = settle.tick() => {
                    let (charge, payout) = self.threshold_tokens();
                    self.settle(charge, payout).await;
                }
                _ = commit.tick() => self.commit().await,
                _ = shutdown.draining() => return,
            }
        }
    }
}
