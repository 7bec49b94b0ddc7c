//! The client on chain (`[chain]`): what the C++ client runner does with its client contract
//! (facts §11), within the limits the config sets.
//!
//! At each proxy handshake: the proxy contract the proxy names must be the one derived from the
//! root's params, its owner and its key, and the client contract the proxy names must be ours
//! (else the proxy is refused). A contract that is not deployed is deployed — only with
//! `allow_deploy`, with a stake the config allows — together with the first deposit and the
//! secret hash. A secret hash on chain that is not SHA-256 of the configured secret is changed.
//! Then the client authorises short (the secret) when the proxy offers the hash it has, or long:
//! an `owner_client_register` carrying the proxy's nonce, which the proxy waits to see in its
//! contract's transactions. While it runs, the client tops its contract up when what is left
//! falls below half a stake or one `top_up_amount`, never depositing more than `max_top_up`
//! in all. Every spend is logged with its amount before it is sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cocoon_proto::ProxyParams;
use cocoon_ton::cocoon::{address, ClientData, ClientMessage, Params, State};
use cocoon_ton::ton::{Cell, Cocoon, NetworkSpec, SendOutcome, WalletMessage};
use cocoon_ton::{keyfile, Address, Coins, Wallet};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::config::ChainConfig;

/// What the C++ client attaches to a deploy (facts §11).
pub const DEPLOY_VALUE: Coins = Coins(800_000_000);
/// What it attaches to `owner_client_register`.
pub const REGISTER_VALUE: Coins = Coins(1_000_000_000);
/// What it attaches to its other owner operations (the contract returns what it does not use).
pub const OWNER_OP_VALUE: Coins = Coins(700_000_000);
/// How long a sent deploy may take to show on a real network.
const DEPLOY_WAIT: Duration = Duration::from_secs(90);

/// The client's side of the chain.
pub(crate) struct ClientChain {
    cocoon: Cocoon,
    wallet: Wallet,
    config: ChainConfig,
    secret_hash: Option<[u8; 32]>,
    params: Params,
    /// nano-TON deposited since start (first deposits and top-ups), against `max_top_up`.
    deposited: AtomicU64,
    /// One chain operation at a time: they share the wallet's seqno.
    busy: tokio::sync::Mutex<()>,
    /// The proxy images the root allows (`proxy_hashes`).
    pub proxy_hashes: Vec<[u8; 32]>,
    /// The worker images the root allows (`worker_hashes`) when it was read at start (the
    /// sealing policy follows them after: `ProxyPool::follow_root`).
    pub worker_hashes: Vec<[u8; 32]>,
    /// The client ports of the proxies the root lists (`registered_proxies`, by seqno).
    pub registered_proxies: Vec<String>,
    /// The root's `version` when it was read at start.
    pub root_version: u32,
    /// Each client contract (by address) as last read, and when: for `/stats`.
    seen: std::sync::Mutex<std::collections::HashMap<String, (ClientData, std::time::Instant)>>,
}

/// What the client follows of the root while it runs.
pub(crate) struct Registry {
    /// Bumped by every change of the root.
    pub version: u32,
    /// The client ports of the registered proxies, by seqno.
    pub proxies: Vec<String>,
    /// The proxy images the root allows.
    pub proxy_hashes: Vec<[u8; 32]>,
    /// The worker images the root allows.
    pub worker_hashes: Vec<[u8; 32]>,
}

/// The client address of a registry entry (facts §4): `ip:port` serves both, or
/// `workers_ip:port clients_ip:port`; surrounding brackets are stripped.
pub(crate) fn client_endpoint(entry: &str) -> Option<String> {
    let parts: Vec<&str> = entry.split_whitespace().collect();
    let endpoint = match parts.as_slice() {
        [both] => *both,
        [_, clients] => *clients,
        _ => return None,
    };
    let endpoint = endpoint.trim_start_matches('[').trim_end_matches(']');
    endpoint.contains(':').then(|| endpoint.to_string())
}

fn client_endpoints(root: &cocoon_ton::cocoon::RootData) -> Vec<String> {
    root.registered_proxies
        .values()
        .filter_map(|entry| client_endpoint(entry.text()))
        .collect()
}

/// What a handshake learned: our client contract at this proxy, and how to authorise.
pub(crate) struct Prepared {
    /// The client contract.
    pub contract: Address,
    /// Whether the secret proves us (short) or we must register (long).
    pub short: bool,
}

fn describe(error: impl std::fmt::Display) -> String {
    error.to_string()
}

impl ClientChain {
    /// Opens the network and reads the root: a client with `[chain]` does not start without
    /// it, and says what is missing.
    pub async fn open(config: &ChainConfig, secret: &str) -> Result<ClientChain, String> {
        let spec = NetworkSpec::of(
            config.network,
            config.local_dir.clone(),
            config.toncenter_url.clone(),
            config.toncenter_api_key.clone(),
            config.root_address.clone(),
        );
        let cocoon = spec.open().map_err(|e| format!("[chain]: {e}"))?;
        let network = cocoon.network().clone();
        let root = cocoon.root_address().clone();
        let root_data = cocoon.root().await.map_err(|e| {
            format!(
                "cannot read the COCOON root {root} on {}: {e}",
                network.describe()
            )
        })?;
        let wallet = Wallet::from_seed(&keyfile::read(&config.wallet_key).map_err(describe)?);
        let chain = ClientChain {
            cocoon,
            wallet,
            config: config.clone(),
            secret_hash: (!secret.is_empty()).then(|| Sha256::digest(secret.as_bytes()).into()),
            params: root_data.params.clone(),
            deposited: AtomicU64::new(0),
            busy: tokio::sync::Mutex::new(()),
            proxy_hashes: root_data.proxy_hashes.iter().copied().collect(),
            worker_hashes: root_data.worker_hashes.iter().copied().collect(),
            registered_proxies: client_endpoints(&root_data),
            root_version: root_data.version,
            seen: Default::default(),
        };
        info!(
            network = %network.describe(),
            root = %root,
            wallet = %chain.wallet.address(),
            price = %chain.params.price_per_token,
            min_stake = %chain.params.min_client_stake,
            allow_deploy = config.allow_deploy,
            max_top_up = %config.max_top_up,
            "client chain ready"
        );
        Ok(chain)
    }

    /// The root's price per token in nano-TON (at coefficient 1.0×), as read at start.
    pub fn price_per_token(&self) -> u128 {
        self.params.price_per_token.0
    }

    /// Reads the root again: its version, registered proxies and allowed proxy images.
    pub async fn registry(&self) -> Result<Registry, String> {
        let root = self.cocoon.root().await.map_err(describe)?;
        Ok(Registry {
            version: root.version,
            proxies: client_endpoints(&root),
            proxy_hashes: root.proxy_hashes.iter().copied().collect(),
            worker_hashes: root.worker_hashes.iter().copied().collect(),
        })
    }

    /// The wallet: the client contracts' owner.
    pub fn owner_address(&self) -> String {
        self.wallet.address().to_hex()
    }

    /// nano-TON deposited since start.
    pub fn deposited(&self) -> u64 {
        self.deposited.load(Ordering::Relaxed)
    }

    /// Checks the contracts a proxy named, deploys ours if allowed, keeps its secret hash, and
    /// says how to authorise.
    pub async fn prepare(
        &self,
        proxy: &ProxyParams,
        client_sc_address: &str,
        offered_hash: Option<[u8; 32]>,
    ) -> Result<Prepared, String> {
        let _busy = self.busy.lock().await;
        let proxy_contract = address::check_named_proxy(
            self.cocoon.root_address(),
            &self.params,
            &proxy.proxy_owner_address,
            &proxy.proxy_public_key,
            &proxy.proxy_sc_address,
        )?;
        let init = address::client_contract(
            &proxy_contract,
            &self.params,
            &proxy.proxy_public_key,
            self.wallet.address(),
        )
        .map_err(describe)?;
        let contract = init.address().map_err(describe)?;
        if client_sc_address.parse::<Address>().ok().as_ref() != Some(&contract) {
            return Err(format!(
                "the proxy names client contract {client_sc_address:?}, but ours there is {contract}: refusing it"
            ));
        }
        let data = match self.read(&contract).await? {
            Some(data) => data,
            None => {
                self.deploy(&contract, init.to_cell().map_err(describe)?)
                    .await?;
                self.read(&contract)
                    .await?
                    .ok_or("the deployed client contract is not there")?
            }
        };
        if data.state != State::Normal {
            return Err(format!(
                "client contract {contract} is {:?}: close it (`cocoon wallet close`) and use a new wallet",
                data.state
            ));
        }
        if let Some(hash) = self.secret_hash {
            if data.secret_hash != hash {
                self.spend(
                    &contract,
                    OWNER_OP_VALUE,
                    ClientMessage::ChangeSecretHash {
                        query_id: rand::random(),
                        new_secret_hash: hash,
                        send_excesses_to: self.wallet.address().clone(),
                    },
                    "setting the client contract's secret hash",
                )
                .await?;
            }
        }
        let short = self.secret_hash.is_some() && offered_hash == self.secret_hash;
        Ok(Prepared { contract, short })
    }

    /// Sends `owner_client_register(nonce)` for long authorisation.
    pub async fn register(&self, contract: &Address, nonce: u64) -> Result<(), String> {
        let _busy = self.busy.lock().await;
        self.spend(
            contract,
            REGISTER_VALUE,
            ClientMessage::Register {
                query_id: rand::random(),
                nonce,
                send_excesses_to: self.wallet.address().clone(),
            },
            "registering with the proxy (long authorisation)",
        )
        .await
    }

    /// Tops `contract` up when what it holds beyond the tokens the proxy charged and the chain
    /// has not taken yet (`charged_tokens` is what the proxy reported) is below half a stake or
    /// one top-up, within `max_top_up`.
    pub async fn check_balance(&self, contract: &Address, charged_tokens: u64) {
        let _busy = self.busy.lock().await;
        let data = match self.read(contract).await {
            Ok(Some(data)) if data.state == State::Normal => data,
            Ok(_) => return,
            Err(error) => {
                warn!(%error, "cannot read the client contract");
                return;
            }
        };
        let price = self.params.price_per_token.0;
        let owed =
            u128::from(charged_tokens.saturating_sub(data.tokens_used)).saturating_mul(price);
        let left = data.balance.0.saturating_sub(owed);
        let low_water = (data.stake.0 / 2).max(self.config.top_up_amount.0 / 2);
        if left >= low_water {
            return;
        }
        let amount = self.config.top_up_amount;
        if !self.may_deposit(amount) {
            warn!(%contract, left = %Coins(left), max_top_up = %self.config.max_top_up, deposited = %Coins(u128::from(self.deposited())), "the client contract runs low, and a top-up would pass chain.max_top_up: not topping up");
            return;
        }
        let result = self
            .spend(
                contract,
                Coins(amount.0 + OWNER_OP_VALUE.0),
                ClientMessage::TopUp {
                    query_id: rand::random(),
                    amount,
                    send_excesses_to: self.wallet.address().clone(),
                },
                "topping up the client contract",
            )
            .await;
        match result {
            Ok(()) => self.count_deposit(amount),
            Err(error) => warn!(%error, "top-up failed"),
        }
    }

    fn may_deposit(&self, amount: Coins) -> bool {
        u128::from(self.deposited()) + amount.0 <= self.config.max_top_up.0
    }

    fn count_deposit(&self, amount: Coins) {
        let amount = u64::try_from(amount.0).unwrap_or(u64::MAX);
        self.deposited.fetch_add(amount, Ordering::Relaxed);
    }

    async fn read(&self, contract: &Address) -> Result<Option<ClientData>, String> {
        let data = self
            .cocoon
            .client(contract)
            .await
            .map_err(|e| format!("reading client contract {contract}: {e}"))?;
        if let Some(data) = &data {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(contract.to_hex(), (data.clone(), std::time::Instant::now()));
        }
        Ok(data)
    }

    /// A client contract as last read (at each handshake and balance check), for `/stats`:
    /// its balance and stake, the tokens it was charged on chain, and what is left of it once
    /// `charged_tokens` (what the proxy reported) are taken.
    pub fn contract_json(&self, contract: &Address, charged_tokens: u64) -> serde_json::Value {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let Some((data, at)) = seen.get(&contract.to_hex()) else {
            return serde_json::json!({ "address": contract.to_hex() });
        };
        let owed = u128::from(charged_tokens.saturating_sub(data.tokens_used))
            .saturating_mul(self.params.price_per_token.0);
        serde_json::json!({
            "address": contract.to_hex(),
            "state": format!("{:?}", data.state).to_lowercase(),
            "balance_nano": data.balance.0,
            "stake_nano": data.stake.0,
            "tokens_used_on_chain": data.tokens_used,
            "owed_nano": owed,
            "left_nano": data.balance.0.saturating_sub(owed),
            "checked_secs_ago": at.elapsed().as_secs_f64(),
        })
    }

    /// Deploys the client contract with the first deposit and the secret hash, as the C++
    /// client does (0.8 TON with the StateInit, then the owner operation).
    async fn deploy(&self, contract: &Address, state_init: Cell) -> Result<(), String> {
        let stake = self.params.min_client_stake;
        if !self.config.allow_deploy {
            return Err(format!(
                "client contract {contract} is not deployed: set allow_deploy = true in [chain] to deploy it from wallet {} ({DEPLOY_VALUE} plus a first deposit of {}; the root's minimum stake is {stake})",
                self.wallet.address(),
                self.config.top_up_amount
            ));
        }
        if stake.0 > self.config.max_stake.0 {
            return Err(format!(
                "the root asks a client stake of {stake}, above chain.max_stake = {}: not deploying",
                self.config.max_stake
            ));
        }
        let deposit = self.config.top_up_amount;
        if !self.may_deposit(deposit) {
            return Err(format!(
                "deploying needs a first deposit of {deposit} (chain.top_up_amount), above what chain.max_top_up = {} still allows",
                self.config.max_top_up
            ));
        }
        let excess = self.wallet.address().clone();
        let second = match self.secret_hash {
            Some(hash) => ClientMessage::ChangeSecretHashAndTopUp {
                query_id: rand::random(),
                amount: deposit,
                new_secret_hash: hash,
                send_excesses_to: excess,
            },
            None => ClientMessage::TopUp {
                query_id: rand::random(),
                amount: deposit,
                send_excesses_to: excess,
            },
        };
        let total = Coins(DEPLOY_VALUE.0 + deposit.0 + OWNER_OP_VALUE.0);
        info!(%contract, spend = %total, deploy = %DEPLOY_VALUE, deposit = %deposit, stake = %stake, wallet = %self.wallet.address(), "deploying the client contract");
        let messages = [
            WalletMessage {
                to: contract.clone(),
                value: DEPLOY_VALUE.0,
                bounce: false,
                body: Arc::new(Cell::default()),
                state_init: Some(Arc::new(state_init)),
            },
            WalletMessage {
                to: contract.clone(),
                value: deposit.0 + OWNER_OP_VALUE.0,
                bounce: true,
                body: Arc::new(second.to_cell().map_err(describe)?),
                state_init: None,
            },
        ];
        let outcome = self
            .cocoon
            .network()
            .send(&self.wallet, &messages)
            .await
            .map_err(|e| format!("deploying client contract {contract}: {e}"))?;
        self.count_deposit(deposit);
        if let SendOutcome::Submitted { .. } = outcome {
            let deadline = tokio::time::Instant::now() + DEPLOY_WAIT;
            while self.read(contract).await?.is_none() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "client contract {contract} did not appear within {} s of its deploy",
                        DEPLOY_WAIT.as_secs()
                    ));
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        Ok(())
    }

    /// Sends one owner operation, logging what it spends first; a refusal by the contract is
    /// an error.
    async fn spend(
        &self,
        contract: &Address,
        value: Coins,
        body: ClientMessage,
        what: &str,
    ) -> Result<(), String> {
        info!(%contract, spend = %value, wallet = %self.wallet.address(), "{what} (the contract returns what it does not use)");
        let message = WalletMessage {
            to: contract.clone(),
            value: value.0,
            bounce: true,
            body: Arc::new(body.to_cell().map_err(describe)?),
            state_init: None,
        };
        match self
            .cocoon
            .network()
            .send(&self.wallet, &[message])
            .await
            .map_err(|e| format!("{what}: {e}"))?
        {
            SendOutcome::Executed(txs) => match txs.first().and_then(|tx| tx.exit_code) {
                Some(0) | None => Ok(()),
                Some(code) => Err(format!(
                    "{what}: the client contract refused it (exit code {code})"
                )),
            },
            SendOutcome::Submitted { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::client_endpoint;

    #[test]
    fn registry_entries_give_the_client_endpoint() {
        assert_eq!(client_endpoint("1.2.3.4:5").as_deref(), Some("1.2.3.4:5"));
        assert_eq!(
            client_endpoint("1.2.3.4:5 6.7.8.9:10").as_deref(),
            Some("6.7.8.9:10")
        );
        assert_eq!(client_endpoint("[1.2.3.4:5]").as_deref(), Some("1.2.3.4:5"));
        assert_eq!(client_endpoint("nonsense"), None);
        assert_eq!(client_endpoint("a:1 b:2 c:3"), None);
        assert_eq!(client_endpoint(""), None);
    }
}
