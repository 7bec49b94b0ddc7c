//! A proxy that is paid: its durable ledger, its contracts on the chain, and the loops that
//! turn the ledger into money — signed charges to client contracts, signed payouts to worker
//! contracts, and the periodic `(seqno, hash)` commit that makes an old ledger file useless.
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
use cocoon_ton::messages::{Body, ProxyKey, SignedPayload};
use cocoon_ton::ops::{op, ContractStatus, ExitCode};
use cocoon_ton::rules::Init;
use cocoon_ton::toncenter::Toncenter;
use cocoon_ton::{keyfile, Address, Chain, ChainError, Coins, LocalChain, Outgoing, Wallet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// Default tokens a client may owe before the proxy signs a charge to its contract.
pub const DEFAULT_CHARGE_THRESHOLD_TOKENS: u64 = 10_000;
/// Default tokens a worker may be owed before the proxy signs a payout.
pub const DEFAULT_PAYOUT_THRESHOLD_TOKENS: u64 = 10_000;
/// How often thresholds are checked and client balances re-read.
pub const DEFAULT_SETTLE_INTERVAL_SECS: f64 = 10.0;
/// How often the ledger head is committed to the proxy contract (the reference: 30–60 s).
pub const DEFAULT_COMMIT_INTERVAL_SECS: f64 = 45.0;

/// Which TON network the proxy uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainKind {
    /// The embedded local chain in `local_chain_dir` (what `cocoon devnet` runs).
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
    /// The local chain's directory (`chain = "local"`).
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
    /// The root registry's address (`chain = "toncenter"`).
    #[serde(default)]
    pub root_address: Option<String>,
    /// The ledger file (an append-only log, see `docs/ledger.md`), created if absent; a file of
    /// the old redb format is migrated at start. Never restore it from a backup: the proxy
    /// refuses to run on a copy older than what it committed to the chain.
    pub ledger: PathBuf,
    /// The proxy contract's address. Default: derived from the operator wallet and the signing
    /// key (on a real network also from the root's params, which may have changed since the
    /// deploy: then set it here).
    #[serde(default)]
    pub proxy_contract: Option<String>,
    /// Key file of the payment signing key: the public key the proxy contract stores.
    pub signer_key: PathBuf,
    /// Key file of the operator's wallet: the proxy contract's owner, which sends the signed
    /// charges, payouts and state commits.
    pub wallet_key: PathBuf,
    /// Tokens a client may owe before a charge is signed and sent to its contract.
    #[serde(default = "default_charge_threshold")]
    pub charge_threshold_tokens: u64,
    /// Tokens a worker may be owed before a payout is signed and sent to its contract.
    #[serde(default = "default_payout_threshold")]
    pub payout_threshold_tokens: u64,
    /// Seconds between threshold checks (and re-reads of client balances).
    #[serde(default = "default_settle_interval")]
    pub settle_interval_secs: f64,
    /// Seconds between commits of the ledger head to the proxy contract.
    #[serde(default = "default_commit_interval")]
    pub commit_interval_secs: f64,
}

fn default_charge_threshold() -> u64 {
    DEFAULT_CHARGE_THRESHOLD_TOKENS
}
fn default_payout_threshold() -> u64 {
    DEFAULT_PAYOUT_THRESHOLD_TOKENS
}
fn default_settle_interval() -> f64 {
    DEFAULT_SETTLE_INTERVAL_SECS
}
fn default_commit_interval() -> f64 {
    DEFAULT_COMMIT_INTERVAL_SECS
}

impl PaymentsConfig {
    /// Payments on the local chain in `chain_dir`, with default thresholds and intervals.
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
            charge_threshold_tokens: DEFAULT_CHARGE_THRESHOLD_TOKENS,
            payout_threshold_tokens: DEFAULT_PAYOUT_THRESHOLD_TOKENS,
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
            match &self.root_address {
                None => problems.push("payments: chain = \"toncenter\" needs root_address".into()),
                Some(a) if parse_address(a).is_none() => {
                    problems.push(format!("payments.root_address {a:?} is not a TON address"))
                }
                Some(_) => {}
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
    /// The chain.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
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

/// A client that passed the contract lookup.
pub(crate) struct ClientContract {
    /// Its address: the client's key in the ledger.
    pub key: String,
    /// What its short auth secret must hash to.
    pub secret_hash: [u8; 32],
}

/// A paid proxy's money side.
pub struct Payments {
    /// The books.
    pub ledger: Arc<Ledger>,
    chain: Arc<dyn Chain>,
    signer: ProxyKey,
    wallet: Wallet,
    /// The proxy contract.
    pub proxy_contract: Address,
    price_per_token: u128,
    config: PaymentsConfig,
    /// The seqno the proxy contract holds.
    committed: AtomicU64,
    /// The newest signed message per (opcode, contract) and its token count: signing costs tens
    /// of µs, and every finished request tells its client and worker their signed payment.
    /// Per contract: (opcode, tokens, message).
    signatures: Mutex<HashMap<String, Vec<SignatureSlot>>>,
    /// When each worker was last sent a `proxy.workerRequestPayment`.
    worker_notices: Mutex<HashMap<String, Instant>>,
    /// The newest signed charge or payout this process sent per (opcode, contract), and when.
    sent: Mutex<HashMap<(u32, String), (u64, Instant)>>,
    /// The paid tokens each worker contract was last seen holding.
    worker_paid_on_chain: Mutex<HashMap<String, u64>>,
}

/// One cached signed message: (opcode, tokens, message).
type SignatureSlot = (u32, u64, SignedPayment);

/// The least time between two `proxy.workerRequestPayment`s to one worker (see
/// [`Payments::worker_notice_due`]).
const WORKER_NOTICE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a signed charge or payout sent by this process may take to show on chain before the
/// settle loop sends it again (a local chain applies it at once; a real one within seconds).
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

impl Payments {
    /// Opens the chain, checks the proxy contract, opens the ledger and runs the anti-rollback
    /// check: a ledger older than the chain's commit, or another ledger's, is refused.
    pub async fn open(config: &PaymentsConfig) -> Result<Payments, PaymentsError> {
        let chain: Arc<dyn Chain> = match config.chain {
            ChainKind::Local => {
                let dir = config.local_chain_dir.clone().unwrap_or_default();
                Arc::new(LocalChain::open(&dir)?)
            }
            ChainKind::Toncenter => {
                let root = config
                    .root_address
                    .as_deref()
                    .and_then(parse_address)
                    .ok_or_else(|| PaymentsError::Contract("root_address is missing".into()))?;
                Arc::new(Toncenter::new(
                    config.toncenter_url.as_deref().unwrap_or_default(),
                    config.toncenter_api_key.clone(),
                    root,
                )?)
            }
        };
        let signer_seed = keyfile::read(&config.signer_key)?;
        let signer = ProxyKey::from_seed(&signer_seed);
        let wallet = Wallet::from_seed(&keyfile::read(&config.wallet_key)?);
        let proxy_contract = match &config.proxy_contract {
            Some(address) => parse_address(address).ok_or_else(|| {
                PaymentsError::Contract(format!("proxy_contract {address:?} is not a TON address"))
            })?,
            None => {
                chain
                    .address_of(&Init::Proxy {
                        owner: wallet.address().clone(),
                        public_key: signer.public_key(),
                    })
                    .await?
            }
        };
        let Some(state) = chain.proxy(&proxy_contract).await? else {
            return Err(PaymentsError::Contract(format!(
                "no proxy contract at {proxy_contract} on the {}: deploy it from wallet {} with the signing key {} (cocoon devnet does this for you)",
                chain.describe(),
                wallet.address(),
                hex::encode(signer.public_key())
            )));
        };
        if state.status != ContractStatus::Running {
            return Err(PaymentsError::Contract(format!(
                "proxy contract {proxy_contract} is {:?}: it cannot take payments",
                state.status
            )));
        }
        let ledger_config = LedgerConfig::new(
            signer_seed,
            u128::from(state.params.price_per_token),
            u128::from(state.params.worker_fee_per_token),
        );
        let ledger = Ledger::open(&config.ledger, ledger_config)?;
        ledger.check_chain_commit(state.seqno, state.state_hash)?;
        let head = ledger.head();
        info!(contract = %proxy_contract, chain = %chain.describe(), ledger_seqno = head.seqno, chain_seqno = state.seqno, price = state.params.price_per_token, fee = state.params.worker_fee_per_token, "payments ready");
        Ok(Payments {
            ledger: Arc::new(ledger),
            chain,
            signer,
            wallet,
            proxy_contract,
            price_per_token: u128::from(state.params.price_per_token),
            config: config.clone(),
            committed: AtomicU64::new(state.seqno),
            signatures: Mutex::new(HashMap::new()),
            worker_notices: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashMap::new()),
            worker_paid_on_chain: Mutex::new(HashMap::new()),
        })
    }

    /// The operator's wallet.
    pub fn owner_address(&self) -> &Address {
        self.wallet.address()
    }

    /// Finds `owner`'s client contract at this proxy and records its balance in the ledger.
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
            .chain
            .address_of(&Init::Client {
                proxy: self.proxy_contract.clone(),
                owner: owner_address,
            })
            .await
            .map_err(|e| (codes::INTERNAL, format!("client contract address: {e}")))?;
        let key = address.to_hex();
        let state = self
            .sync_client(&address)
            .await?
            .ok_or_else(|| {
                (
                    codes::PAYMENT_REQUIRED,
                    format!("no client contract {address} for owner {owner} at this proxy ({}): deploy one first", self.proxy_contract),
                )
            })?;
        if state.status != ContractStatus::Running {
            return Err((
                codes::PAYMENT_REQUIRED,
                format!(
                    "client contract {address} is {:?}: open a new one",
                    state.status
                ),
            ));
        }
        if state.price_per_token != self.price_per_token {
            return Err((
                codes::PAYMENT_REQUIRED,
                format!(
                    "client contract {address} was deployed at {} nano-TON per token; this proxy charges {}",
                    state.price_per_token, self.price_per_token
                ),
            ));
        }
        Ok(ClientContract {
            key,
            secret_hash: state.secret_hash,
        })
    }

    /// Re-reads a client contract and records what it holds.
    async fn sync_client(
        &self,
        address: &Address,
    ) -> Result<Option<cocoon_ton::rules::ClientState>, (i32, String)> {
        let state = self
            .chain
            .client(address)
            .await
            .map_err(|e| (codes::INTERNAL, format!("reading the client contract: {e}")))?;
        let key = address.to_hex();
        let known = self.ledger.client(&key);
        let unchanged = |state: &cocoon_ton::rules::ClientState| {
            known.as_ref().is_some_and(|a| {
                a.balance_nano == state.balance
                    && a.stake_nano == state.stake
                    && a.tokens_used_on_chain == state.tokens_used
            })
        };
        if let Some(state) = state.as_ref().filter(|s| !unchanged(s)) {
            self.ledger
                .sync_client(&key, state.balance, state.stake, state.tokens_used)
                .await
                .map_err(|e| (codes::INTERNAL, format!("ledger: {e}")))?;
        }
        Ok(state)
    }

    /// Whether `secret` is the client's short-auth secret.
    pub(crate) fn secret_matches(contract: &ClientContract, secret: &[u8]) -> bool {
        let hash: [u8; 32] = Sha256::digest(secret).into();
        hash == contract.secret_hash
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
            signed_payment: self.signed(op::CHARGE_SIGNED, key, account.signed_tokens),
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
            signed_payment: self.signed_or_zero(op::WORKER_PAYOUT_SIGNED, key, paid),
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
            .chain
            .address_of(&Init::Worker {
                proxy: self.proxy_contract.clone(),
                owner: owner_address,
            })
            .await
            .map_err(|e| (codes::INTERNAL, format!("worker contract address: {e}")))?;
        match self.chain.worker(&address).await {
            Ok(Some(state)) if state.status == ContractStatus::Running => Ok(address.to_hex()),
            Ok(Some(state)) => Err((
                codes::BAD_REQUEST,
                format!("worker contract {address} is {:?}", state.status),
            )),
            Ok(None) => Err((
                codes::BAD_REQUEST,
                format!("no worker contract {address} for owner {owner} at this proxy ({}): deploy one first", self.proxy_contract),
            )),
            Err(e) => Err((codes::INTERNAL, format!("reading the worker contract: {e}"))),
        }
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
    fn signed(&self, opcode: u32, key: &str, tokens: u64) -> SignedPayment {
        if tokens == 0 {
            return SignedPayment::Empty;
        }
        self.signed_or_zero(opcode, key, tokens)
    }

    /// [`Self::signed`], signing 0 tokens too; from the cache when nothing changed.
    fn signed_or_zero(&self, opcode: u32, key: &str, tokens: u64) -> SignedPayment {
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
            .sign(opcode, key, tokens)
            .and_then(|b| b.to_boc().map_err(|e| ChainError::from(e).into()))
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

    fn sign(&self, opcode: u32, key: &str, tokens: u64) -> Result<Body, PaymentsError> {
        let target = parse_address(key).ok_or_else(|| {
            PaymentsError::Contract(format!("ledger key {key} is not an address"))
        })?;
        let payload = SignedPayload {
            op: opcode,
            query_id: 0,
            tokens,
            target,
        };
        let message = payload
            .sign(&self.signer, self.wallet.address().clone())
            .map_err(ChainError::from)?;
        Ok(Body::Signed(message))
    }

    async fn send(&self, to: Address, body: Body) -> Result<(), ChainError> {
        let msg = Outgoing {
            to,
            value: Coins::ZERO,
            body,
            init: None,
        };
        self.chain.send(&self.wallet, msg).await.map(|_| ())
    }

    /// One round: signed charges and payouts over their thresholds, fresh client balances.
    pub async fn settle(&self, charge_threshold: u64, payout_threshold: u64) {
        for (client, tokens) in self.ledger.clients_over_threshold(charge_threshold) {
            self.settle_one(op::CHARGE_SIGNED, &client, tokens).await;
        }
        for (worker, tokens) in self.ledger.workers_over_threshold(payout_threshold) {
            self.settle_one(op::WORKER_PAYOUT_SIGNED, &worker, tokens)
                .await;
        }
        // Top-ups, withdrawals and the charges just sent change what clients can spend.
        for client in self.ledger.client_keys() {
            if let Some(address) = parse_address(&client) {
                if let Err((_, error)) = self.sync_client(&address).await {
                    warn!(client = %client, %error, "cannot re-read a client contract");
                }
            }
        }
        self.resend_unlanded(payout_threshold).await;
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
            if account.signed_tokens > account.tokens_used_on_chain {
                self.resend(op::CHARGE_SIGNED, &client, account.signed_tokens)
                    .await;
            }
        }
        for worker in self.ledger.worker_keys() {
            let Some(account) = self.ledger.worker(&worker) else {
                continue;
            };
            let last_seen = self
                .worker_paid_on_chain
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&worker)
                .copied()
                .unwrap_or(0);
            if account.paid_tokens.saturating_sub(last_seen) < payout_threshold {
                continue;
            }
            let Some(address) = parse_address(&worker) else {
                continue;
            };
            let on_chain = match self.chain.worker(&address).await {
                Ok(Some(state)) => state.paid_tokens,
                Ok(None) => 0,
                Err(error) => {
                    warn!(worker = %worker, %error, "cannot read a worker contract");
                    continue;
                }
            };
            self.worker_paid_on_chain
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(worker.clone(), on_chain);
            if account.paid_tokens.saturating_sub(on_chain) >= payout_threshold {
                self.resend(op::WORKER_PAYOUT_SIGNED, &worker, account.paid_tokens)
                    .await;
            }
        }
    }

    /// Signs and sends `tokens` for `key` again unless this process sent that count (or more)
    /// less than [`RESEND_AFTER`] ago.
    async fn resend(&self, opcode: u32, key: &str, tokens: u64) {
        let recent = self
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(opcode, key.to_owned()))
            .is_some_and(|&(sent, at)| sent >= tokens && at.elapsed() < RESEND_AFTER);
        if recent {
            return;
        }
        let what = if opcode == op::CHARGE_SIGNED {
            "charge"
        } else {
            "payout"
        };
        let (Ok(body), Some(to)) = (self.sign(opcode, key, tokens), parse_address(key)) else {
            warn!(contract = %key, "cannot sign a {what} again");
            return;
        };
        info!(contract = %key, tokens, "a signed {what} is not on chain: sending it again");
        self.send_signed(what, opcode, key, to, tokens, body).await;
    }

    async fn settle_one(&self, opcode: u32, key: &str, tokens: u64) {
        let (what, recorded) = if opcode == op::CHARGE_SIGNED {
            (
                "charge",
                self.ledger.record_signed_charge(key, tokens).await,
            )
        } else {
            (
                "payout",
                self.ledger.record_signed_payout(key, tokens).await,
            )
        };
        if let Err(error) = recorded {
            warn!(contract = %key, tokens, %error, "cannot record a signed {what}");
            return;
        }
        let body = match self.sign(opcode, key, tokens) {
            Ok(body) => body,
            Err(error) => {
                warn!(contract = %key, %error, "cannot sign a {what}");
                return;
            }
        };
        let Some(to) = parse_address(key) else {
            return;
        };
        self.send_signed(what, opcode, key, to, tokens, body).await;
    }

    /// Sends a signed charge or payout and remembers when, for [`Self::resend_unlanded`].
    async fn send_signed(
        &self,
        what: &str,
        opcode: u32,
        key: &str,
        to: Address,
        tokens: u64,
        body: Body,
    ) {
        match self.send(to, body).await {
            Ok(()) => {
                self.sent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((opcode, key.to_owned()), (tokens, Instant::now()));
                info!(contract = %key, tokens, "signed {what} sent");
            }
            // The chain is already at or past this count: an earlier round, or the other
            // party with the message it was given, sent it.
            Err(ChainError::Rejected(ExitCode::NotIncreasing)) => {}
            Err(error) => warn!(contract = %key, tokens, %error, "signed {what} not accepted"),
        }
    }

    /// Commits the ledger head to the proxy contract if it moved since the last commit. If
    /// the contract holds a commit this proxy did not make and this ledger does not contain,
    /// another copy of the ledger is running: the ledger is halted, and with it all serving.
    pub async fn commit(&self) {
        let head = self.ledger.head();
        let committed = self.committed.load(Ordering::Relaxed);
        if head.seqno <= committed {
            return;
        }
        match self.chain.proxy(&self.proxy_contract).await {
            Ok(Some(state)) if state.seqno != committed => {
                if let Err(error) = self
                    .ledger
                    .check_chain_commit(state.seqno, state.state_hash)
                {
                    tracing::error!(%error, "another copy of this proxy's ledger is committing to its contract; refusing to go on");
                    self.ledger.halt(&format!("halted: {error}"));
                    return;
                }
                self.committed.fetch_max(state.seqno, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(error) => {
                warn!(%error, "cannot read the proxy contract");
                return;
            }
        }
        let body = Body::SaveState {
            query_id: 0,
            seqno: head.seqno,
            hash: head.hash,
        };
        match self.send(self.proxy_contract.clone(), body).await {
            Ok(()) => {
                self.committed.fetch_max(head.seqno, Ordering::Relaxed);
                info!(
                    seqno = head.seqno,
                    "ledger head committed to the proxy contract"
                );
            }
            Err(error) => warn!(seqno = head.seqno, %error, "cannot commit the ledger head"),
        }
    }

    /// One settle round and one commit, with the configured thresholds.
    pub async fn round(&self) {
        self.settle(
            self.config.charge_threshold_tokens,
            self.config.payout_threshold_tokens,
        )
        .await;
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
                    self.settle(self.config.charge_threshold_tokens, self.config.payout_threshold_tokens).await;
                }
                _ = commit.tick() => self.commit().await,
                _ = shutdown.draining() => return,
            }
        }
    }
}
