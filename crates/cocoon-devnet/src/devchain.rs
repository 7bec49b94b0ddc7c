//! The devnet's chain: the deployed COCOON interface (`contracts/`, facts in
//! `shared/reference/cocoon-contracts-facts.md`) executing on the embedded TVM ([`TvmNetwork`],
//! durable in `<data-dir>/ton/`), with the devnet's parties set up as the C++ runners would,
//! with the values they attach (facts §11).
//!
//! Layout of `<data-dir>/`:
//! - `ton/`: the embedded network (journal, snapshots, lock; see `cocoon_tvm::LocalNetwork`),
//!   `ton/root` (the root's address, fixed at the first start) and `ton/funded`;
//! - `keys/<party>.key`: hex Ed25519 seeds of the devnet's wallets (`owner`, `proxy`, `client`,
//!   `worker-N`), of the proxy's payment signing key (`proxy-signer`) and the client's
//!   short-auth secret (`client-secret`), mode 0600;
//! - `prices.toml`: the root's params, read at every start;
//! - `proxy.ledger`: the proxy's durable ledger (a paid devnet; never restore it from a copy);
//! - `payouts/`: the latest signed payout each worker got (`cocoon wallet payout` submits it).
//!
//! Setup, idempotent across restarts (each step is skipped when the chain already shows it):
//! 1. wallets funded by the faucet once (`ton/funded` records it); the root's address is fixed
//!    at the first start (`ton/root`);
//! 2. the root deployed by its owner with `prices.toml`'s params and the three codes, the
//!    devnet proxy's image (the fake TEE's) and the devnet's models allowed;
//! 3. the proxy contract deployed (1 TON) at the address derived from the root, then staked
//!    `min_proxy_stake` (`ext_proxy_increase_stake`);
//! 4. the client contract deployed (0.8 TON), then its secret hash set and `CLIENT_DEPOSIT`
//!    topped up in one message (`owner_client_change_secret_hash_and_top_up`);
//! 5. each worker contract deployed (0.3 TON).
//!
//! The devnet proxy's image is the fake TEE's default (zero measurements); its hash is on the
//! root so that clients with `[chain]` trust it.
//!
//! A root whose params differ from `prices.toml` is refused: on the deployed interface a params
//! change moves every contract's address (facts §9), so the devnet's chain would have to be
//! started anew (delete `ton/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cocoon_ton::cocoon::address::Deployment;
use cocoon_ton::cocoon::root::HashList;
use cocoon_ton::cocoon::{codes, ClientMessage, Params, ProxyMessage, RootData, RootMessage};
use cocoon_ton::keyfile;
use cocoon_ton::ton::{Cell, Cocoon, TonNetwork, TvmNetwork, WalletMessage};
use cocoon_ton::ProxyKey;
use cocoon_ton::{Address, Coins, Wallet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the devnet's workers keep their signed payouts, under the data directory.
pub const PAYOUTS_DIR: &str = "payouts";

/// What each devnet wallet starts with.
pub const OWNER_FUNDS: Coins = Coins::ton(1_000);
/// The proxy operator's wallet.
pub const PROXY_FUNDS: Coins = Coins::ton(100);
/// The client's wallet.
pub const CLIENT_FUNDS: Coins = Coins::ton(100);
/// What the client puts in its contract at first.
pub const CLIENT_DEPOSIT: Coins = Coins::ton(10);
/// Each worker's wallet (its contract's deploy and a few payouts it submits itself).
pub const WORKER_FUNDS: Coins = Coins::ton(5);

/// Why the devnet chain could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DevChainError {
    /// A file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key file.
    #[error(transparent)]
    Key(#[from] keyfile::KeyFileError),
    /// `prices.toml`.
    #[error("{path}: {why}")]
    Prices {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The network refused a setup step.
    #[error("setting up the devnet's chain ({step}): {source}")]
    Network {
        /// What was being done.
        step: &'static str,
        /// The error.
        source: cocoon_ton::ton::TonError,
    },
    /// A cell could not be built.
    #[error("setting up the devnet's chain ({step}): {source}")]
    Codec {
        /// What was being done.
        step: &'static str,
        /// The error.
        source: cocoon_ton::cocoon::CodecError,
    },
}

/// `prices.toml`: the root's params as a person edits them (nano-TON; multipliers ×10000;
/// seconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// What a client pays per token, nano-TON.
    pub price_per_token: u64,
    /// What a worker earns per token, nano-TON.
    pub worker_fee_per_token: u64,
    /// Prompt token multiplier, ×10000.
    pub prompt_multiplier: u32,
    /// Cached prompt token multiplier, ×10000.
    pub cached_multiplier: u32,
    /// Completion token multiplier, ×10000.
    pub completion_multiplier: u32,
    /// Reasoning token multiplier, ×10000.
    pub reasoning_multiplier: u32,
    /// Seconds a closing proxy waits before it may complete.
    pub proxy_close_delay: u32,
    /// Seconds a closing client waits for its stake.
    pub client_close_delay: u32,
    /// Minimum proxy stake, nano-TON.
    pub min_proxy_stake: u64,
    /// Minimum client stake, nano-TON.
    pub min_client_stake: u64,
}

impl Default for Prices {
    /// The mainnet figures seen on the reference (20 vs 19 nano-TON per token), one-day delays.
    fn default() -> Prices {
        Prices {
            price_per_token: 20,
            worker_fee_per_token: 19,
            prompt_multiplier: 10_000,
            cached_multiplier: 10_000,
            completion_multiplier: 10_000,
            reasoning_multiplier: 10_000,
            proxy_close_delay: 86_400,
            client_close_delay: 86_400,
            min_proxy_stake: 1_000_000_000,
            min_client_stake: 100_000_000,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevChainError + '_ {
    move |source| DevChainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the key `name` from `dir/keys/`, creating a random one if absent.
pub fn load_or_create_key(dir: &Path, name: &str) -> Result<[u8; 32], DevChainError> {
    Ok(keyfile::read_or_create(&key_path(dir, name))?)
}

/// Reads the key `name` from `dir/keys/`; it must exist.
pub fn load_key(dir: &Path, name: &str) -> Result<[u8; 32], DevChainError> {
    Ok(keyfile::read(&key_path(dir, name))?)
}

/// Where the devnet keeps the key `name`.
pub fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("keys").join(format!("{name}.key"))
}

/// The default `prices.toml`, with comments.
pub fn default_prices_toml() -> String {
    let p = Prices::default();
    format!(
        "# Root params of the devnet's chain (nano-TON; multipliers x10000; seconds).\n\
         # Fixed when the chain is first created: a params change moves every contract's\n\
         # address, so to change them delete the data directory's ton/ and start again.\n\
         price_per_token = {}\nworker_fee_per_token = {}\nprompt_multiplier = {}\n\
         cached_multiplier = {}\ncompletion_multiplier = {}\nreasoning_multiplier = {}\n\
         proxy_close_delay = {}\nclient_close_delay = {}\nmin_proxy_stake = {}\nmin_client_stake = {}\n",
        p.price_per_token,
        p.worker_fee_per_token,
        p.prompt_multiplier,
        p.cached_multiplier,
        p.completion_multiplier,
        p.reasoning_multiplier,
        p.proxy_close_delay,
        p.client_close_delay,
        p.min_proxy_stake,
        p.min_client_stake
    )
}

/// Reads `path`, writing the default first if it does not exist.
pub fn load_prices(path: &Path) -> Result<Prices, DevChainError> {
    if !path.exists() {
        std::fs::write(path, default_prices_toml()).map_err(io(path))?;
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let prices: Prices = toml::from_str(&text).map_err(|e| DevChainError::Prices {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    if prices.worker_fee_per_token > prices.price_per_token {
        return Err(DevChainError::Prices {
            path: path.to_path_buf(),
            why: format!(
                "worker_fee_per_token ({}) exceeds price_per_token ({}): the proxy would pay more than it earns",
                prices.worker_fee_per_token, prices.price_per_token
            ),
        });
    }
    Ok(prices)
}

/// The network's directory under the data directory.
pub const TON_DIR: &str = "ton";
/// The root's address, under the network's directory.
pub const ROOT_FILE: &str = "root";

/// What the root is deployed with (the sandbox tests' value; it keeps its own gas reserve).
const ROOT_DEPLOY: u128 = 5 * TON;
/// A proxy contract's deploy (its stake comes after, with `ext_proxy_increase_stake`).
const PROXY_DEPLOY: u128 = TON;
/// A client contract's deploy, as the C++ client sends it (facts §11).
const CLIENT_DEPLOY: u128 = 8 * TON / 10;
/// What the C++ runners attach to owner operations on the client (facts §11).
const CLIENT_OP: u128 = 7 * TON / 10;
/// A worker contract's deploy, as the C++ worker sends it (facts §11).
const WORKER_DEPLOY: u128 = 3 * TON / 10;
/// Gas on top of a stake increase (the contract needs value ≥ grams + 0.1 TON).
const STAKE_GAS: u128 = 2 * TON / 10;
/// Gas on top of a root operation.
const ROOT_OP: u128 = TON / 10;
const TON: u128 = 1_000_000_000;

/// The devnet's parties and contracts on the deployed interface.
pub struct DevChain {
    /// The data directory.
    pub dir: PathBuf,
    /// The network.
    pub network: Arc<TvmNetwork>,
    /// The typed view.
    pub cocoon: Cocoon,
    /// The root's params (with the codes).
    pub params: Params,
    /// Root owner.
    pub owner: Wallet,
    /// Proxy operator.
    pub proxy: Wallet,
    /// Seed of the proxy's payment signing key (its public key is the proxy contract's).
    pub proxy_signer_seed: [u8; 32],
    /// Every proxy's operator wallet and signing seed, the first being `proxy` above; the
    /// others' keys are `proxy-N` and `proxy-N-signer`.
    pub proxies: Vec<(Wallet, [u8; 32])>,
    /// The client.
    pub client: Wallet,
    /// The workers.
    pub workers: Vec<Wallet>,
    /// The client's short-auth secret (its SHA-256 is on the client contract).
    pub client_secret: String,
}

fn step(step: &'static str) -> impl FnOnce(cocoon_ton::ton::TonError) -> DevChainError {
    move |source| DevChainError::Network { step, source }
}

fn codec(step: &'static str) -> impl FnOnce(cocoon_ton::cocoon::CodecError) -> DevChainError {
    move |source| DevChainError::Codec { step, source }
}

/// `prices.toml` (the devnet's params, nano-TON and ×10000 multipliers) as the deployed params
/// cell's fields, with the three codes of `contracts/`.
pub fn params_from_prices(prices: &Prices) -> Params {
    let codes = codes();
    Params {
        params_version: 1,
        unique_id: 0,
        is_test: true,
        price_per_token: Coins(u128::from(prices.price_per_token)),
        worker_fee_per_token: Coins(u128::from(prices.worker_fee_per_token)),
        prompt_tokens_price_multiplier: prices.prompt_multiplier,
        cached_tokens_price_multiplier: prices.cached_multiplier,
        completion_tokens_price_multiplier: prices.completion_multiplier,
        reasoning_tokens_price_multiplier: prices.reasoning_multiplier,
        proxy_delay_before_close: prices.proxy_close_delay,
        client_delay_before_close: prices.client_close_delay,
        min_proxy_stake: Coins(u128::from(prices.min_proxy_stake)),
        min_client_stake: Coins(u128::from(prices.min_client_stake)),
        proxy_code: Some(codes.proxy.clone()),
        worker_code: Some(codes.worker.clone()),
        client_code: Some(codes.client.clone()),
    }
}

/// The key name of proxy `index`'s operator wallet: `proxy` for the first (as before there
/// were several), `proxy-N` for the others; its signing key is that name with `-signer`.
pub fn proxy_key_name(index: usize) -> String {
    if index == 0 {
        "proxy".to_string()
    } else {
        format!("proxy-{index}")
    }
}

fn message(to: Address, value: u128, body: Cell, state_init: Option<Cell>) -> WalletMessage {
    WalletMessage {
        to,
        value,
        bounce: state_init.is_none(),
        body: Arc::new(body),
        state_init: state_init.map(Arc::new),
    }
}

impl DevChain {
    /// Opens (creating what is missing) the devnet's network in `dir` with `workers` workers
    /// and the models `models` allowed on the root.
    pub async fn open(
        dir: &Path,
        prices: &Path,
        workers: usize,
        models: &[String],
    ) -> Result<DevChain, DevChainError> {
        DevChain::open_with_proxies(dir, prices, 1, workers, models).await
    }

    /// [`DevChain::open`] with `proxies` proxies (at least one), each with its contract staked
    /// and the client's and workers' contracts at it.
    pub async fn open_with_proxies(
        dir: &Path,
        prices: &Path,
        proxies: usize,
        workers: usize,
        models: &[String],
    ) -> Result<DevChain, DevChainError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let params = params_from_prices(&load_prices(prices)?);
        let wallet = |name: &str| load_or_create_key(dir, name).map(|s| Wallet::from_seed(&s));
        let owner = wallet("owner")?;
        let proxy = wallet("proxy")?;
        let client = wallet("client")?;
        let workers = (0..workers)
            .map(|i| wallet(&format!("worker-{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let proxy_signer_seed = load_or_create_key(dir, "proxy-signer")?;
        let mut all_proxies = vec![(proxy.clone(), proxy_signer_seed)];
        for index in 1..proxies.max(1) {
            let name = proxy_key_name(index);
            all_proxies.push((
                wallet(&name)?,
                load_or_create_key(dir, &format!("{name}-signer"))?,
            ));
        }
        let client_secret = hex::encode(load_or_create_key(dir, "client-secret")?);
        let ton_dir = dir.join(TON_DIR);
        let now = u32::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
        .unwrap_or(u32::MAX);
        let network = Arc::new(
            TvmNetwork::open_or_create(&ton_dir, now).map_err(step("opening the network"))?,
        );
        let root_data = RootData::new(owner.address().clone(), params.clone());
        // The root's address depends on the params it was deployed with: it is fixed by the
        // first start and kept in `ton/root`, so a later prices.toml is compared with it.
        let root_file = ton_dir.join(ROOT_FILE);
        let root = match std::fs::read_to_string(&root_file) {
            Ok(text) => text
                .trim()
                .parse::<Address>()
                .map_err(|e| DevChainError::Prices {
                    path: root_file.clone(),
                    why: format!("not a TON address: {e}"),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let root = cocoon_ton::cocoon::StateInit::new(
                    codes().root.clone(),
                    root_data.to_cell().map_err(codec("building the root"))?,
                )
                .address()
                .map_err(codec("the root's address"))?;
                std::fs::write(&root_file, root.to_string()).map_err(io(&root_file))?;
                root
            }
            Err(e) => return Err(io(&root_file)(e)),
        };
        let dev = DevChain {
            dir: dir.to_path_buf(),
            cocoon: Cocoon::new(network.clone(), root),
            network,
            params,
            owner,
            proxy,
            proxy_signer_seed,
            proxies: all_proxies,
            client,
            workers,
            client_secret,
        };
        dev.setup(root_data, models).await?;
        Ok(dev)
    }

    /// The proxy's payment signing key.
    pub fn proxy_signer(&self) -> ProxyKey {
        ProxyKey::from_seed(&self.proxy_signer_seed)
    }

    /// The proxy's payment signing key, public half.
    pub fn proxy_public_key(&self) -> [u8; 32] {
        self.proxy_signer().public_key()
    }

    /// The save-state commits (seqno, ledger hash) the proxy's wallet sent to its contract, in
    /// order: what the proxy's anti-rollback check reads back.
    pub async fn proxy_commits(&self) -> Result<Vec<(i32, [u8; 32])>, DevChainError> {
        let proxy = self.proxy_contract()?;
        let mut commits = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .network
                .transactions(&proxy, after, 100)
                .await
                .map_err(step("reading the proxy's transactions"))?;
            for tx in &page {
                after = tx.lt;
                if tx.source.as_ref() != Some(self.proxy.address()) {
                    continue;
                }
                if let Ok(save) = cocoon_ton::cocoon::SaveState::from_cell(&tx.body) {
                    commits.push((save.seqno, save.session_unique_hash));
                }
            }
            if page.len() < 100 {
                return Ok(commits);
            }
        }
    }

    /// The embedded network's directory (`<data-dir>/ton`).
    pub fn ton_dir(&self) -> PathBuf {
        self.dir.join(TON_DIR)
    }

    /// An account's balance, nano-TON (0 for one never seen).
    pub async fn balance(&self, address: &Address) -> Result<u128, DevChainError> {
        self.network
            .account(address)
            .await
            .map(|a| a.balance)
            .map_err(step("reading a balance"))
    }

    fn deployment(&self) -> Deployment {
        Deployment {
            root: self.cocoon.root_address().clone(),
            params: self.params.clone(),
        }
    }

    /// Proxy `index`'s operator wallet and the public half of its signing key.
    fn operator(&self, index: usize) -> (&Wallet, [u8; 32]) {
        let (wallet, seed) = &self.proxies[index];
        (wallet, ProxyKey::from_seed(seed).public_key())
    }

    /// The contract of proxy `index`.
    pub fn proxy_contract_at(&self, index: usize) -> Result<Address, DevChainError> {
        let (wallet, key) = self.operator(index);
        self.deployment()
            .proxy(wallet.address(), &key)
            .and_then(|init| init.address())
            .map_err(codec("the proxy contract's address"))
    }

    /// The client contract of `owner` at proxy `index`.
    pub fn client_contract_at(
        &self,
        index: usize,
        owner: &Address,
    ) -> Result<Address, DevChainError> {
        let (wallet, key) = self.operator(index);
        self.deployment()
            .client(wallet.address(), &key, owner)
            .and_then(|init| init.address())
            .map_err(codec("a client contract's address"))
    }

    /// The worker contract of `owner` at proxy `index`.
    pub fn worker_contract_at(
        &self,
        index: usize,
        owner: &Address,
    ) -> Result<Address, DevChainError> {
        let (wallet, key) = self.operator(index);
        self.deployment()
            .worker(wallet.address(), &key, owner)
            .and_then(|init| init.address())
            .map_err(codec("a worker contract's address"))
    }

    /// Registers the proxies' endpoints in the root (`workers_addr clients_addr` each), in
    /// order: a proxy registered by an earlier start (its seqno is kept in
    /// `<data-dir>/ton/proxy-N.seqno`) is updated when its ports changed, the others are
    /// registered anew.
    pub async fn register_proxies(&self, entries: &[String]) -> Result<(), DevChainError> {
        let root = self.cocoon.root_address().clone();
        for (index, text) in entries.iter().enumerate() {
            let entry = cocoon_ton::cocoon::ProxyEntry::new(text)
                .map_err(codec("a proxy registry entry"))?;
            let current = self.cocoon.root().await.map_err(step("reading the root"))?;
            let seqno_file = self.ton_dir().join(format!("proxy-{index}.seqno"));
            let known = std::fs::read_to_string(&seqno_file)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
                .filter(|seqno| current.registered_proxies.contains_key(seqno));
            let (body, seqno) = match known {
                Some(seqno) if current.registered_proxies[&seqno] == entry => continue,
                Some(seqno) => (
                    RootMessage::UpdateProxy {
                        query_id: 0,
                        seqno,
                        entry,
                    },
                    seqno,
                ),
                None => (
                    RootMessage::RegisterProxy { query_id: 0, entry },
                    current.last_proxy_seqno + 1,
                ),
            };
            let body = body.to_cell().map_err(codec("registering a proxy"))?;
            self.send(
                &self.owner,
                message(root.clone(), ROOT_OP, body, None),
                "registering a proxy",
            )
            .await?;
            std::fs::write(&seqno_file, seqno.to_string()).map_err(io(&seqno_file))?;
        }
        Ok(())
    }

    /// The proxy contract.
    pub fn proxy_contract(&self) -> Result<Address, DevChainError> {
        self.proxy_contract_at(0)
    }

    /// The client contract of `owner` at the devnet proxy.
    pub fn client_contract(&self, owner: &Address) -> Result<Address, DevChainError> {
        self.client_contract_at(0, owner)
    }

    /// The worker contract of `owner` at the devnet proxy.
    pub fn worker_contract(&self, owner: &Address) -> Result<Address, DevChainError> {
        self.worker_contract_at(0, owner)
    }

    async fn send(
        &self,
        wallet: &Wallet,
        message: WalletMessage,
        what: &'static str,
    ) -> Result<(), DevChainError> {
        self.network
            .send(wallet, &[message])
            .await
            .map(|_| ())
            .map_err(step(what))
    }

    async fn setup(&self, root_data: RootData, models: &[String]) -> Result<(), DevChainError> {
        // 1. Funds, once.
        let funded = self.dir.join(TON_DIR).join("funded");
        if !funded.exists() {
            for (wallet, funds) in [
                (&self.owner, OWNER_FUNDS),
                (&self.proxy, PROXY_FUNDS),
                (&self.client, CLIENT_FUNDS),
            ]
            .into_iter()
            .chain(self.workers.iter().map(|w| (w, WORKER_FUNDS)))
            {
                self.network
                    .mint(wallet.address(), funds.0)
                    .map_err(step("funding wallets"))?;
            }
            std::fs::write(&funded, b"").map_err(|source| DevChainError::Io {
                path: funded.clone(),
                source,
            })?;
        }
        // Proxies beyond the first are funded once each (a devnet may grow its proxies).
        for (index, (wallet, _)) in self.proxies.iter().enumerate().skip(1) {
            let flag = self
                .dir
                .join(TON_DIR)
                .join(format!("funded-{}", proxy_key_name(index)));
            if !flag.exists() {
                self.network
                    .mint(wallet.address(), PROXY_FUNDS.0)
                    .map_err(step("funding wallets"))?;
                std::fs::write(&flag, b"").map_err(io(&flag))?;
            }
        }

        // 2. The root and its model list.
        let root = self.cocoon.root_address().clone();
        let deployed = match self.cocoon.root().await {
            Ok(data) => Some(data),
            Err(cocoon_ton::ton::TonError::Layout { .. })
                if self
                    .network
                    .account(&root)
                    .await
                    .map_err(step("reading the root"))?
                    .status
                    != cocoon_ton::ton::Status::Active =>
            {
                None
            }
            Err(error) => return Err(step("reading the root")(error)),
        };
        let current = match deployed {
            Some(data) => data,
            None => {
                let init = cocoon_ton::cocoon::StateInit::new(
                    codes().root.clone(),
                    root_data.to_cell().map_err(codec("building the root"))?,
                );
                let init = init.to_cell().map_err(codec("building the root"))?;
                self.send(
                    &self.owner,
                    message(root.clone(), ROOT_DEPLOY, Cell::default(), Some(init)),
                    "deploying the root",
                )
                .await?;
                self.cocoon.root().await.map_err(step("reading the root"))?
            }
        };
        if current.params != self.params {
            return Err(DevChainError::Prices {
                path: self.dir.join("prices.toml"),
                why: format!(
                    "the root at {root} holds other params; on the deployed interface a params change moves every contract's address, so start the devnet's chain anew: delete {}",
                    self.dir.join(TON_DIR).display()
                ),
            });
        }
        // The devnet's proxy and worker images (the fake TEE's default measurements): clients
        // and workers with [chain] trust the proxy images the root lists, paid proxies the
        // worker images.
        let fake_image = cocoon_attest::tdx::TdxMeasurements::zero().image_hash();
        for (list, listed, what) in [
            (
                HashList::Proxy,
                &current.proxy_hashes,
                "allowing the proxy image",
            ),
            (
                HashList::Worker,
                &current.worker_hashes,
                "allowing the worker image",
            ),
        ] {
            if listed.contains(&fake_image) {
                continue;
            }
            let body = RootMessage::AddHash {
                query_id: 0,
                list,
                hash: fake_image,
            }
            .to_cell()
            .map_err(codec(what))?;
            self.send(
                &self.owner,
                message(root.clone(), ROOT_OP, body, None),
                what,
            )
            .await?;
        }
        for model in models {
            let hash: [u8; 32] = Sha256::digest(model.as_bytes()).into();
            if !current.model_hashes.contains(&hash) {
                let body = RootMessage::AddHash {
                    query_id: 0,
                    list: HashList::Model,
                    hash,
                }
                .to_cell()
                .map_err(codec("allowing a model"))?;
                self.send(
                    &self.owner,
                    message(root.clone(), ROOT_OP, body, None),
                    "allowing a model",
                )
                .await?;
            }
        }

        for index in 0..self.proxies.len() {
            let (operator, key) = self.operator(index);
            self.setup_proxy(operator, key).await?;
        }
        Ok(())
    }

    /// Steps 3–5 for one proxy: its contract staked, the client's contract with its secret and
    /// deposit, the workers' contracts.
    async fn setup_proxy(&self, operator: &Wallet, key: [u8; 32]) -> Result<(), DevChainError> {
        let deployment = self.deployment();
        // 3. The proxy contract, staked.
        let proxy_init = deployment
            .proxy(operator.address(), &key)
            .map_err(codec("the proxy contract"))?;
        let proxy = proxy_init.address().map_err(codec("the proxy contract"))?;
        if self
            .cocoon
            .proxy(&proxy)
            .await
            .map_err(step("reading the proxy"))?
            .is_none()
        {
            let init = proxy_init.to_cell().map_err(codec("the proxy contract"))?;
            self.send(
                operator,
                message(proxy.clone(), PROXY_DEPLOY, Cell::default(), Some(init)),
                "deploying the proxy contract",
            )
            .await?;
        }
        let stake = self.params.min_proxy_stake.0;
        let staked = self
            .cocoon
            .proxy(&proxy)
            .await
            .map_err(step("reading the proxy"))?
            .map_or(0, |p| p.stake.0);
        if staked < stake {
            let grams = stake - staked;
            let body = ProxyMessage::IncreaseStake {
                query_id: 0,
                grams: Coins(grams),
                send_excesses_to: operator.address().clone(),
            }
            .to_cell()
            .map_err(codec("staking the proxy"))?;
            self.send(
                operator,
                message(proxy.clone(), grams + STAKE_GAS, body, None),
                "staking the proxy",
            )
            .await?;
        }

        // 4. The client contract, with its secret and its deposit.
        let client_init = deployment
            .client(operator.address(), &key, self.client.address())
            .map_err(codec("the client contract"))?;
        let client = client_init
            .address()
            .map_err(codec("the client contract"))?;
        if self
            .cocoon
            .client(&client)
            .await
            .map_err(step("reading the client"))?
            .is_none()
        {
            let init = client_init
                .to_cell()
                .map_err(codec("the client contract"))?;
            self.send(
                &self.client,
                message(client.clone(), CLIENT_DEPLOY, Cell::default(), Some(init)),
                "deploying the client contract",
            )
            .await?;
            let secret_hash: [u8; 32] = Sha256::digest(self.client_secret.as_bytes()).into();
            let body = ClientMessage::ChangeSecretHashAndTopUp {
                query_id: 0,
                amount: CLIENT_DEPOSIT,
                new_secret_hash: secret_hash,
                send_excesses_to: self.client.address().clone(),
            }
            .to_cell()
            .map_err(codec("the client's deposit"))?;
            self.send(
                &self.client,
                message(client, CLIENT_DEPOSIT.0 + CLIENT_OP, body, None),
                "the client's deposit",
            )
            .await?;
        }

        // 5. The worker contracts.
        for wallet in &self.workers {
            let init = deployment
                .worker(operator.address(), &key, wallet.address())
                .map_err(codec("a worker contract"))?;
            let address = init.address().map_err(codec("a worker contract"))?;
            if self
                .cocoon
                .worker(&address)
                .await
                .map_err(step("reading a worker"))?
                .is_none()
            {
                let init = init.to_cell().map_err(codec("a worker contract"))?;
                self.send(
                    wallet,
                    message(address, WORKER_DEPLOY, Cell::default(), Some(init)),
                    "deploying a worker contract",
                )
                .await?;
            }
        }
        Ok(())
    }
}
