//! The worker on chain (`[chain]`), as the C++ worker runner (facts §11): at each proxy
//! handshake the proxy contract the proxy names must be the one derived from the root's params,
//! its owner and its key, and the worker contract it names must be this worker's; a missing
//! worker contract is deployed from the node wallet (0.3 TON) when allowed. While connected,
//! the newest signed payout the proxy gave is submitted, repacked with the node wallet as the
//! excess address (0.5 TON attached), once it is `submit_payout_tokens` ahead of the contract.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use cocoon_proto::ProxyParams;
use cocoon_ton::cocoon::{address, exit, Params, State, WorkerMessage};
use cocoon_ton::payout::{parse_payout, payout_path, payout_tokens};
use cocoon_ton::ton::{Cell, Cocoon, NetworkSpec, SendOutcome, WalletMessage};
use cocoon_ton::{keyfile, Address, Coins, Wallet};
use tracing::{info, warn};

use crate::config::WorkerChainConfig;

/// What the C++ worker attaches to its contract's deploy.
pub const DEPLOY_VALUE: Coins = Coins(300_000_000);
/// What it attaches to a signed payout (the contract needs more than 0.1 TON).
pub const PAYOUT_VALUE: Coins = Coins(500_000_000);

/// The worker's side of the chain.
pub(crate) struct WorkerChain {
    cocoon: Cocoon,
    wallet: Wallet,
    config: WorkerChainConfig,
    params: Params,
    /// One chain operation at a time (the node wallet's seqno).
    busy: tokio::sync::Mutex<()>,
    /// The root's registry at start.
    pub registry: Registry,
    /// What each worker contract (by address) was paid, in tokens, as last read, and when.
    paid: std::sync::Mutex<HashMap<String, (u64, Instant)>>,
}

/// What the worker follows of the root.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    /// The root's `version`: it grows with every change.
    pub version: u32,
    /// The workers' endpoints of its registered proxies.
    pub proxies: Vec<String>,
    /// The proxy images it allows (`proxy_hashes`).
    pub proxy_hashes: Vec<[u8; 32]>,
}

impl Registry {
    fn of(root: &cocoon_ton::cocoon::RootData) -> Registry {
        Registry {
            version: root.version,
            proxies: worker_endpoints(root),
            proxy_hashes: root.proxy_hashes.iter().copied().collect(),
        }
    }
}

/// The workers' endpoints of the root's registered proxies, by seqno (facts §4: the first half
/// of `workers clients`, or the one address; brackets stripped).
fn worker_endpoints(root: &cocoon_ton::cocoon::RootData) -> Vec<String> {
    root.registered_proxies
        .values()
        .map(|entry| {
            entry
                .endpoints()
                .0
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        })
        .filter(|endpoint| endpoint.contains(':'))
        .collect()
}

impl WorkerChain {
    /// Opens the network and reads the root; a worker with `[chain]` does not start without.
    pub async fn open(config: &WorkerChainConfig) -> Result<WorkerChain, String> {
        let cocoon = NetworkSpec::of(
            config.network,
            config.local_dir.clone(),
            config.toncenter_url.clone(),
            config.toncenter_api_key.clone(),
            config.root_address.clone(),
        )
        .open()
        .map_err(|e| format!("[chain]: {e}"))?;
        let root = cocoon.root().await.map_err(|e| {
            format!(
                "cannot read the COCOON root {} on {}: {e}",
                cocoon.root_address(),
                cocoon.network().describe()
            )
        })?;
        let wallet =
            Wallet::from_seed(&keyfile::read(&config.wallet_key).map_err(|e| e.to_string())?);
        info!(network = %cocoon.network().describe(), root = %cocoon.root_address(), wallet = %wallet.address(), allow_deploy = config.allow_deploy, "worker chain ready");
        Ok(WorkerChain {
            cocoon,
            wallet,
            config: config.clone(),
            registry: Registry::of(&root),
            params: root.params,
            busy: tokio::sync::Mutex::new(()),
            paid: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Reads the root again.
    pub async fn registry(&self) -> Result<Registry, String> {
        let root = self.cocoon.root().await.map_err(|e| e.to_string())?;
        Ok(Registry::of(&root))
    }

    /// The root's price multipliers, which the worker applies to the usage it reports.
    pub fn multipliers(&self) -> cocoon_proto::Multipliers {
        self.params.multipliers()
    }

    /// What the worker's tokens cost the client, for the cost fields it adds to `usage`.
    pub fn pricing(&self, coefficient: u32) -> crate::usage::Pricing {
        crate::usage::Pricing {
            coefficient,
            multipliers: self.params.multipliers(),
            price_per_token: u64::try_from(self.params.price_per_token.0).unwrap_or(u64::MAX),
        }
    }

    /// What a worker earns per (adjusted) token, nano-TON: the root's params.
    pub fn worker_fee_per_token(&self) -> u128 {
        self.params.worker_fee_per_token.0
    }

    /// Reads how many tokens `contract` has been paid on chain, for `/stats` (after each
    /// payment status poll, so once a `payout_check_secs`).
    pub async fn check_paid(&self, contract: &Address) {
        match self.cocoon.worker(contract).await {
            Ok(Some(data)) => {
                self.paid
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(contract.to_hex(), (data.tokens, Instant::now()));
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(%contract, %error, "cannot read the worker contract"),
        }
    }

    /// Tokens `contract` was paid on chain as last read, and how many seconds ago that was.
    pub fn paid(&self, contract: &str) -> Option<(u64, f64)> {
        self.paid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(contract)
            .map(|(tokens, at)| (*tokens, at.elapsed().as_secs_f64()))
    }

    /// Checks the contracts a proxy named and deploys the worker contract if allowed.
    pub async fn prepare(
        &self,
        proxy: &ProxyParams,
        worker_sc_address: &str,
        owner: &str,
    ) -> Result<Address, String> {
        let _busy = self.busy.lock().await;
        let proxy_contract = address::check_named_proxy(
            self.cocoon.root_address(),
            &self.params,
            &proxy.proxy_owner_address,
            &proxy.proxy_public_key,
            &proxy.proxy_sc_address,
        )?;
        let owner: Address = owner
            .parse()
            .map_err(|e| format!("owner_address {owner:?}: {e}"))?;
        let init = address::worker_contract(
            &proxy_contract,
            &self.params,
            &proxy.proxy_public_key,
            &owner,
        )
        .map_err(|e| e.to_string())?;
        let contract = init.address().map_err(|e| e.to_string())?;
        if worker_sc_address.parse::<Address>().ok().as_ref() != Some(&contract) {
            return Err(format!(
                "the proxy names worker contract {worker_sc_address:?}, but this worker's there is {contract}: refusing it"
            ));
        }
        match self.read_state(&contract).await? {
            Some(State::Normal) => return Ok(contract),
            Some(state) => {
                return Err(format!(
                    "worker contract {contract} is {state:?}: it takes no more payouts"
                ))
            }
            None => {}
        }
        if !self.config.allow_deploy {
            return Err(format!(
                "worker contract {contract} is not deployed: set allow_deploy = true in [chain] to deploy it from node wallet {} ({DEPLOY_VALUE})",
                self.wallet.address()
            ));
        }
        info!(%contract, spend = %DEPLOY_VALUE, wallet = %self.wallet.address(), "deploying the worker contract");
        let message = WalletMessage {
            to: contract.clone(),
            value: DEPLOY_VALUE.0,
            bounce: false,
            body: Arc::new(Cell::default()),
            state_init: Some(Arc::new(init.to_cell().map_err(|e| e.to_string())?)),
        };
        self.cocoon
            .network()
            .send(&self.wallet, &[message])
            .await
            .map_err(|e| format!("deploying worker contract {contract}: {e}"))?;
        Ok(contract)
    }

    async fn read_state(&self, contract: &Address) -> Result<Option<State>, String> {
        Ok(self
            .cocoon
            .worker(contract)
            .await
            .map_err(|e| format!("reading worker contract {contract}: {e}"))?
            .map(|w| w.state))
    }

    /// Submits the payout kept in `payouts_dir` for `contract` when it is at least
    /// `submit_payout_tokens` ahead of what the contract was paid.
    pub async fn maybe_submit(&self, payouts_dir: &std::path::Path, contract: &Address) {
        if self.config.submit_payout_tokens == 0 {
            return;
        }
        let _busy = self.busy.lock().await;
        let Ok(bytes) = std::fs::read(payout_path(payouts_dir, contract)) else {
            return;
        };
        let Ok(message) = parse_payout(&bytes, contract) else {
            return;
        };
        let tokens = payout_tokens(&message);
        let paid = match self.cocoon.worker(contract).await {
            Ok(Some(data)) if data.state == State::Normal => data.tokens,
            Ok(_) => return,
            Err(error) => {
                warn!(%error, "cannot read the worker contract");
                return;
            }
        };
        if tokens.saturating_sub(paid) < self.config.submit_payout_tokens {
            return;
        }
        info!(%contract, from = paid, to = tokens, spend = %PAYOUT_VALUE, wallet = %self.wallet.address(), "submitting the signed payout (the contract returns what it does not use)");
        let body =
            match WorkerMessage::Signed(message.repack(self.wallet.address().clone())).to_cell() {
                Ok(body) => body,
                Err(error) => {
                    warn!(%error, "cannot build the payout");
                    return;
                }
            };
        let sent = self
            .cocoon
            .network()
            .send(
                &self.wallet,
                &[WalletMessage {
                    to: contract.clone(),
                    value: PAYOUT_VALUE.0,
                    bounce: true,
                    body: Arc::new(body),
                    state_init: None,
                }],
            )
            .await;
        match sent {
            Ok(SendOutcome::Executed(txs)) => match txs.first().and_then(|tx| tx.exit_code) {
                Some(0) | None | Some(exit::OLD_MESSAGE) => {}
                Some(code) => {
                    warn!(%contract, exit_code = code, "the worker contract refused the payout")
                }
            },
            Ok(SendOutcome::Submitted { .. }) => {}
            Err(error) => warn!(%contract, %error, "cannot submit the payout"),
        }
    }
}
