//! The devnet's chain: a [`LocalChain`] in the devnet's data directory with the root, a proxy,
//! a client and workers deployed, wallets funded, and prices from `prices.toml`.
//!
//! Layout of `<data-dir>/`:
//! - `chain/chain.jsonl`: the local chain's journal (durable; see `cocoon_ton::local`);
//! - `keys/<party>.key`: hex Ed25519 seeds of the devnet's wallets (`owner`, `proxy`, `client`,
//!   `worker-N`) and of the proxy's payment signing key (`proxy-signer`), mode 0600;
//! - `prices.toml`: the root's params, read at every start (edit it and restart to reprice);
//! - `proxy.ledger`: the proxy's durable ledger (a paid devnet; never restore it from a copy);
//! - `payouts/`: the latest signed payout each worker got (`cocoon wallet payout` submits it).
//!
//! Opening is idempotent: it creates what is missing and reuses the rest, so a devnet keeps its
//! balances across restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cocoon_ton::keyfile;
use cocoon_ton::messages::{Body, ProxyKey};
use cocoon_ton::ops::{HashKind, Params};
use cocoon_ton::rules::Init;
use cocoon_ton::{Address, Chain, Coins, LocalChain, Outgoing, Wallet};
use sha2::{Digest, Sha256};

/// Where the devnet's workers keep their signed payouts, under the data directory.
pub const PAYOUTS_DIR: &str = "payouts";

/// The chain's directory under the data directory.
pub const CHAIN_DIR: &str = "chain";

/// What each devnet wallet starts with.
pub const OWNER_FUNDS: Coins = Coins::ton(1_000);
/// The proxy operator's wallet.
pub const PROXY_FUNDS: Coins = Coins::ton(100);
/// The client's wallet.
pub const CLIENT_FUNDS: Coins = Coins::ton(100);
/// What the client puts in its contract at first.
pub const CLIENT_DEPOSIT: Coins = Coins::ton(10);
/// Each worker's wallet.
pub const WORKER_FUNDS: Coins = Coins::ton(1);

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
    /// The network (deployed interface, see `devchain_next`) refused a setup step.
    #[error("setting up the devnet's network ({step}): {source}")]
    Network {
        /// What was being done.
        step: &'static str,
        /// The error.
        source: cocoon_ton::ton::TonError,
    },
    /// A cell could not be built.
    #[error("setting up the devnet's network ({step}): {source}")]
    Codec {
        /// What was being done.
        step: &'static str,
        /// The error.
        source: cocoon_ton::cocoon::CodecError,
    },
    /// The chain refused a setup step.
    #[error("setting up the devnet chain ({step}): {source}")]
    Chain {
        /// What was being done.
        step: &'static str,
        /// The error.
        source: cocoon_ton::ChainError,
    },
}

/// The devnet's parties and their contracts.
pub struct DevChain {
    /// The data directory.
    pub dir: PathBuf,
    /// The chain.
    pub chain: Arc<LocalChain>,
    /// The root's params at start.
    pub params: Params,
    /// Root owner.
    pub owner: Wallet,
    /// Proxy operator.
    pub proxy: Wallet,
    /// Seed of the proxy's payment signing key.
    pub proxy_signer_seed: [u8; 32],
    /// The client.
    pub client: Wallet,
    /// The workers.
    pub workers: Vec<Wallet>,
    /// The client's short-auth secret (its SHA-256 is on the client contract).
    pub client_secret: String,
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
    let p = Params::default();
    format!(
        "# Root params of the devnet's local chain (nano-TON; multipliers x10000; seconds).\n\
         # Read at every `cocoon devnet` start; a change is applied with root_set_params.\n\
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
pub fn load_prices(path: &Path) -> Result<Params, DevChainError> {
    if !path.exists() {
        std::fs::write(path, default_prices_toml()).map_err(io(path))?;
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let params: Params = toml::from_str(&text).map_err(|e| DevChainError::Prices {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    if params.worker_fee_per_token > params.price_per_token {
        return Err(DevChainError::Prices {
            path: path.to_path_buf(),
            why: format!(
                "worker_fee_per_token ({}) exceeds price_per_token ({}): the proxy would pay more than it earns",
                params.worker_fee_per_token, params.price_per_token
            ),
        });
    }
    Ok(params)
}

impl DevChain {
    /// Opens (creating what is missing) the devnet chain in `dir` with `workers` workers, the
    /// models `models` and the worker image hashes `worker_image_hashes` allowed on the root.
    pub async fn open(
        dir: &Path,
        prices: &Path,
        workers: usize,
        models: &[String],
    ) -> Result<DevChain, DevChainError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let params = load_prices(prices)?;
        let wallet = |name: &str| load_or_create_key(dir, name).map(|s| Wallet::from_seed(&s));
        let owner = wallet("owner")?;
        let proxy = wallet("proxy")?;
        let client = wallet("client")?;
        let workers = (0..workers)
            .map(|i| wallet(&format!("worker-{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let proxy_signer_seed = load_or_create_key(dir, "proxy-signer")?;
        let client_secret_seed = load_or_create_key(dir, "client-secret")?;
        let client_secret = hex::encode(client_secret_seed);
        let chain_dir = dir.join(CHAIN_DIR);
        let chain =
            LocalChain::open_or_create(&chain_dir, owner.address(), &params).map_err(|source| {
                DevChainError::Chain {
                    step: "opening the journal",
                    source,
                }
            })?;
        let dev = DevChain {
            dir: dir.to_path_buf(),
            chain: Arc::new(chain),
            params,
            owner,
            proxy,
            proxy_signer_seed,
            client,
            workers,
            client_secret,
        };
        dev.setup(models).await?;
        Ok(dev)
    }

    /// The local chain's directory.
    pub fn chain_dir(&self) -> PathBuf {
        self.dir.join(CHAIN_DIR)
    }

    /// The proxy's payment signing key.
    pub fn proxy_signer(&self) -> ProxyKey {
        ProxyKey::from_seed(&self.proxy_signer_seed)
    }

    /// The proxy contract's init data.
    pub fn proxy_init(&self) -> Init {
        Init::Proxy {
            owner: self.proxy.address().clone(),
            public_key: self.proxy_signer().public_key(),
        }
    }

    /// The proxy contract.
    pub fn proxy_contract(&self) -> Address {
        self.chain.address_for(&self.proxy_init())
    }

    /// The client contract of `owner` at the devnet proxy.
    pub fn client_contract(&self, owner: &Address) -> Address {
        self.chain.address_for(&Init::Client {
            proxy: self.proxy_contract(),
            owner: owner.clone(),
        })
    }

    /// The worker contract of `owner` at the devnet proxy.
    pub fn worker_contract(&self, owner: &Address) -> Address {
        self.chain.address_for(&Init::Worker {
            proxy: self.proxy_contract(),
            owner: owner.clone(),
        })
    }

    async fn setup(&self, models: &[String]) -> Result<(), DevChainError> {
        let chain = &self.chain;
        let step = |step| move |source| DevChainError::Chain { step, source };
        let world = chain.world().map_err(step("reading the state"))?;
        for (w, funds) in [
            (&self.owner, OWNER_FUNDS),
            (&self.proxy, PROXY_FUNDS),
            (&self.client, CLIENT_FUNDS),
        ]
        .into_iter()
        .chain(self.workers.iter().map(|w| (w, WORKER_FUNDS)))
        {
            if !world.wallets.contains_key(w.address()) {
                chain
                    .mint(w.address(), funds)
                    .map_err(step("funding wallets"))?;
            }
        }
        let root = chain.root().await.map_err(step("reading the root"))?;
        let send = |wallet: &Wallet, to: Address, value: Coins, body: Body, init: Option<Init>| {
            let msg = Outgoing {
                to,
                value,
                body,
                init,
            };
            let wallet = wallet.clone();
            async move { chain.send(&wallet, msg).await }
        };
        if root.params != self.params {
            send(
                &self.owner,
                chain.root_address(),
                Coins::ZERO,
                Body::SetParams {
                    query_id: 0,
                    params: self.params.clone(),
                },
                None,
            )
            .await
            .map_err(step("applying prices.toml"))?;
        }
        for model in models {
            let hash: [u8; 32] = Sha256::digest(model.as_bytes()).into();
            if !root.model_hashes.contains(&hash) {
                send(
                    &self.owner,
                    chain.root_address(),
                    Coins::ZERO,
                    Body::AddHash {
                        query_id: 0,
                        kind: HashKind::Model,
                        hash,
                    },
                    None,
                )
                .await
                .map_err(step("allowing the model"))?;
            }
        }
        let proxy_contract = self.proxy_contract();
        if chain
            .proxy(&proxy_contract)
            .await
            .map_err(step("reading the proxy"))?
            .is_none()
        {
            let stake = Coins(u128::from(self.params.min_proxy_stake));
            send(
                &self.proxy,
                proxy_contract.clone(),
                stake,
                Body::ProxyDeploy { query_id: 0, stake },
                Some(self.proxy_init()),
            )
            .await
            .map_err(step("deploying the proxy contract"))?;
        }
        let client_contract = self.client_contract(self.client.address());
        if chain
            .client(&client_contract)
            .await
            .map_err(step("reading the client"))?
            .is_none()
        {
            let stake = Coins(u128::from(self.params.min_client_stake));
            let secret_hash: [u8; 32] = Sha256::digest(self.client_secret.as_bytes()).into();
            let init = Init::Client {
                proxy: proxy_contract.clone(),
                owner: self.client.address().clone(),
            };
            let body = Body::ClientDeploy {
                query_id: 0,
                amount: CLIENT_DEPOSIT,
                stake,
                secret_hash,
            };
            send(
                &self.client,
                client_contract,
                CLIENT_DEPOSIT,
                body,
                Some(init),
            )
            .await
            .map_err(step("deploying the client contract"))?;
        }
        for w in &self.workers {
            let contract = self.worker_contract(w.address());
            if chain
                .worker(&contract)
                .await
                .map_err(step("reading a worker"))?
                .is_none()
            {
                let init = Init::Worker {
                    proxy: proxy_contract.clone(),
                    owner: w.address().clone(),
                };
                send(
                    w,
                    contract,
                    Coins::ZERO,
                    Body::WorkerDeploy { query_id: 0 },
                    Some(init),
                )
                .await
                .map_err(step("deploying a worker contract"))?;
            }
        }
        Ok(())
    }
}
