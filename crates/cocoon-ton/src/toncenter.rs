//! The [`Chain`] on a real TON network (testnet or mainnet) through a toncenter v2 HTTP API.
//!
//! Two calls do everything:
//! - `GET getAddressInformation?address=…` gives an account's balance, state and data cell;
//!   contract state is read from the data cell with the storage layouts of
//!   `contracts/README.md` ([`crate::tvm`]), so no get-method stack format is involved;
//! - `POST sendBocReturnHash` submits a wallet v4r2 external message (seqno from the wallet's
//!   data; its StateInit attached while the wallet is not deployed yet) carrying one internal
//!   message with the body, the logical amount plus gas, and the contract's StateInit for a
//!   deploy.
//!
//! Addresses are the real ones, `hash(StateInit{code, data})` with the code from
//! `contracts/build/` and the initial data the contracts define; client and worker addresses
//! depend on their proxy contract's key and params, read from the proxy contract once (they
//! never change after its deploy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use cocoon_net::http_client::HttpClient;
use num_bigint::BigUint;
use serde::Deserialize;
use tonlib_core::cell::{ArcCell, BagOfCells, Cell};
use tonlib_core::tlb_types::block::coins::{CurrencyCollection, Grams};
use tonlib_core::tlb_types::block::message::{CommonMsgInfo, IntMsgInfo, Message};
use tonlib_core::tlb_types::block::msg_address::{MsgAddrNone, MsgAddress, MsgAddressExt};
use tonlib_core::tlb_types::block::state_init::StateInit;
use tonlib_core::tlb_types::tlb::TLB;
use tonlib_core::TonAddress;

use crate::chain::{Chain, ChainError, Outgoing, Sent};
use crate::ops::Params;
use crate::rules::{ClientState, Init, ProxyState, RootState, WorkerState};
use crate::{tvm, Coins, Wallet};

/// Gas attached to every message on top of its logical amount (the contracts return what
/// they do not use as `excesses`).
pub const DEFAULT_GAS: Coins = Coins(50_000_000);
/// How long an external message stays valid.
const EXTERNAL_TTL_SECS: u32 = 120;
const TIMEOUT: Duration = Duration::from_secs(20);
const MAX_RESPONSE: usize = 1 << 20;

/// A TON network through toncenter.
pub struct Toncenter {
    http: HttpClient,
    url: String,
    api_key: Option<String>,
    root: TonAddress,
    gas: Coins,
    /// Proxy contracts' key and params, which never change once deployed; client and worker
    /// addresses derive from them, so they are read once per proxy, not per address.
    proxy_consts: Mutex<HashMap<TonAddress, ([u8; 32], Params)>>,
}

impl std::fmt::Debug for Toncenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key is a secret: never printed.
        f.debug_struct("Toncenter")
            .field("url", &self.url)
            .field("root", &self.root.to_string())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct AccountInfo {
    balance: serde_json::Value,
    #[serde(default)]
    data: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    sync_utime: u32,
}

#[derive(Deserialize)]
struct ExtMessageInfo {
    #[serde(default)]
    hash: String,
}

/// An account as toncenter shows it.
struct Account {
    balance: u128,
    active: bool,
    data: Option<Cell>,
    sync_utime: u32,
}

fn api(message: impl Into<String>) -> ChainError {
    ChainError::Api(message.into())
}

fn parse_boc(b64: &str, what: &str) -> Result<Cell, ChainError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| api(format!("{what}: not base64: {e}")))?;
    let root = BagOfCells::parse(&bytes)
        .and_then(|b| b.single_root())
        .map_err(|e| api(format!("{what}: not a bag of cells: {e}")))?;
    Ok((*root).clone())
}

impl Toncenter {
    /// A client for the toncenter v2 API at `url` (e.g. `https://testnet.toncenter.com/api/v2`),
    /// with the root registry at `root`.
    pub fn new(
        url: &str,
        api_key: Option<String>,
        root: TonAddress,
    ) -> Result<Toncenter, ChainError> {
        let http = HttpClient::new(url, &[], TIMEOUT, MAX_RESPONSE)
            .map_err(|e| api(format!("toncenter URL: {e}")))?;
        Ok(Toncenter {
            http,
            url: url.to_string(),
            api_key,
            root,
            gas: DEFAULT_GAS,
            proxy_consts: Mutex::new(HashMap::new()),
        })
    }

    /// Gas attached to every message on top of its logical amount.
    pub fn with_gas(mut self, gas: Coins) -> Toncenter {
        self.gas = gas;
        self
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        match &self.api_key {
            Some(key) => vec![("x-api-key", key.as_str())],
            None => Vec::new(),
        }
    }

    fn unwrap<T>(body: &[u8], what: &str) -> Result<T, ChainError>
    where
        T: for<'de> Deserialize<'de>,
    {
        let envelope: Envelope<T> = serde_json::from_slice(body)
            .map_err(|e| api(format!("{what}: unexpected answer: {e}")))?;
        match (envelope.ok, envelope.result) {
            (true, Some(result)) => Ok(result),
            _ => Err(api(format!(
                "{what}: {}",
                envelope.error.unwrap_or_else(|| "failed".into())
            ))),
        }
    }

    async fn account(&self, address: &TonAddress) -> Result<Account, ChainError> {
        let what = format!("getAddressInformation {address}");
        let response = self
            .http
            .get(
                &format!("/getAddressInformation?address={}", address.to_base64_url()),
                &self.headers(),
            )
            .await
            .map_err(|e| api(e.to_string()))?;
        let info: AccountInfo = Self::unwrap(&response.body, &what)?;
        let balance = match &info.balance {
            serde_json::Value::String(s) => s.parse::<u128>().ok(),
            serde_json::Value::Number(n) => n.as_u64().map(u128::from),
            _ => None,
        }
        .ok_or_else(|| api(format!("{what}: balance {} is not a number", info.balance)))?;
        let active = info.state == "active";
        let data = if active && !info.data.is_empty() {
            Some(parse_boc(&info.data, &what)?)
        } else {
            None
        };
        Ok(Account {
            balance,
            active,
            data,
            sync_utime: info.sync_utime,
        })
    }

    async fn contract<T>(
        &self,
        address: &TonAddress,
        parse: fn(&Cell) -> Result<Option<T>, crate::messages::MessageError>,
    ) -> Result<Option<T>, ChainError> {
        let account = self.account(address).await?;
        match account.data {
            Some(data) => parse(&data).map_err(|e| api(format!("storage of {address}: {e}"))),
            None => Ok(None),
        }
    }

    /// Code and initial data of the contract `init` deploys.
    async fn state_init(&self, init: &Init) -> Result<(ArcCell, Cell), ChainError> {
        let codes = tvm::codes();
        match init {
            Init::Proxy { owner, public_key } => {
                let root = self.root().await?;
                let data = tvm::proxy_data(owner, &self.root, public_key, &root.params)?;
                Ok((codes.proxy.clone(), data))
            }
            Init::Client { proxy, owner } | Init::Worker { proxy, owner } => {
                let (key, params) = self.proxy_consts(proxy).await?;
                let (code, data) = match init {
                    Init::Client { .. } => (
                        &codes.client,
                        tvm::client_data(owner, proxy, &key, &params)?,
                    ),
                    _ => (
                        &codes.worker,
                        tvm::worker_data(owner, proxy, &key, &params)?,
                    ),
                };
                Ok((code.clone(), data))
            }
        }
    }

    /// A proxy contract's signing key and params (read once).
    async fn proxy_consts(&self, proxy: &TonAddress) -> Result<([u8; 32], Params), ChainError> {
        if let Some(consts) = self.cache().get(proxy) {
            return Ok(consts.clone());
        }
        let state = self
            .proxy(proxy)
            .await?
            .ok_or_else(|| ChainError::NoContract(format!("{proxy} (the proxy contract)")))?;
        let consts = (state.public_key, state.params);
        self.cache().insert(proxy.clone(), consts.clone());
        Ok(consts)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<TonAddress, ([u8; 32], Params)>> {
        // Inserts are single and complete: a poisoned lock still holds valid entries.
        self.proxy_consts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wallet's seqno, whether it is deployed (v4r2 data starts with `seqno:uint32`), and
    /// the network's time, all from one read.
    async fn wallet_seqno(&self, wallet: &Wallet) -> Result<(u32, bool, u32), ChainError> {
        let account = self.account(wallet.address()).await?;
        let now = account.sync_utime;
        match account.data {
            Some(data) => {
                let seqno = data
                    .parser()
                    .load_u32(32)
                    .map_err(|e| api(format!("wallet {} data: {e}", wallet.address())))?;
                Ok((seqno, true, now))
            }
            None if account.active => Err(api(format!(
                "wallet {} is active but has no data",
                wallet.address()
            ))),
            None => Ok((0, false, now)),
        }
    }

    /// The external message that makes `wallet` send `msg` (for tests and dry runs).
    pub async fn external_message(
        &self,
        wallet: &Wallet,
        msg: &Outgoing,
    ) -> Result<Cell, ChainError> {
        let (seqno, deployed, now) = self.wallet_seqno(wallet).await?;
        let value = msg
            .value
            .0
            .checked_add(self.gas.0)
            .ok_or_else(|| api("amount overflows"))?;
        let info = CommonMsgInfo::Int(IntMsgInfo {
            ihr_disabled: true,
            bounce: true,
            bounced: false,
            src: MsgAddress::Ext(MsgAddressExt::None(MsgAddrNone {})),
            dest: msg.to.to_msg_address(),
            value: CurrencyCollection::new(BigUint::from(value)),
            ihr_fee: Grams::new(BigUint::from(0u32)),
            fwd_fee: Grams::new(BigUint::from(0u32)),
            created_lt: 0,
            created_at: 0,
        });
        let mut message = Message::new(info, Arc::new(msg.body.to_cell()?));
        if let Some(init) = &msg.init {
            let (code, data) = self.state_init(init).await?;
            message.with_state_init(StateInit::new(code, Arc::new(data)));
        }
        let internal = message
            .to_cell()
            .map_err(|e| api(format!("internal message: {e}")))?;
        wallet
            .ton_wallet()
            .create_external_msg(
                now.saturating_add(EXTERNAL_TTL_SECS),
                seqno,
                !deployed,
                [Arc::new(internal)],
            )
            .map_err(|e| api(format!("external message: {e}")))
    }
}

#[async_trait]
impl Chain for Toncenter {
    fn describe(&self) -> String {
        format!("TON through toncenter at {}", self.url)
    }

    fn root_address(&self) -> TonAddress {
        self.root.clone()
    }

    async fn address_of(&self, init: &Init) -> Result<TonAddress, ChainError> {
        let (code, data) = self.state_init(init).await?;
        Ok(tvm::address(&code, data)?)
    }

    async fn now(&self) -> Result<u32, ChainError> {
        Ok(self.account(&self.root).await?.sync_utime)
    }

    async fn root(&self) -> Result<RootState, ChainError> {
        let account = self.account(&self.root).await?;
        let data = account
            .data
            .ok_or_else(|| ChainError::NoContract(format!("{} (the root)", self.root)))?;
        tvm::parse_root(&data).map_err(|e| api(format!("root storage: {e}")))
    }

    async fn proxy(&self, address: &TonAddress) -> Result<Option<ProxyState>, ChainError> {
        self.contract(address, tvm::parse_proxy).await
    }

    async fn client(&self, address: &TonAddress) -> Result<Option<ClientState>, ChainError> {
        self.contract(address, tvm::parse_client).await
    }

    async fn worker(&self, address: &TonAddress) -> Result<Option<WorkerState>, ChainError> {
        self.contract(address, tvm::parse_worker).await
    }

    async fn balance(&self, address: &TonAddress) -> Result<Coins, ChainError> {
        Ok(Coins(self.account(address).await?.balance))
    }

    async fn send(&self, wallet: &Wallet, msg: Outgoing) -> Result<Sent, ChainError> {
        let external = self.external_message(wallet, &msg).await?;
        let boc = BagOfCells::from_root(external)
            .serialize(true)
            .map_err(|e| api(format!("external message: {e}")))?;
        let body = serde_json::json!({
            "boc": base64::engine::general_purpose::STANDARD.encode(boc)
        });
        let response = self
            .http
            .post_json(
                "/sendBocReturnHash",
                &self.headers(),
                body.to_string().into_bytes(),
            )
            .await
            .map_err(|e| api(e.to_string()))?;
        let info: ExtMessageInfo = Self::unwrap(&response.body, "sendBocReturnHash")?;
        tracing::info!(wallet = %wallet.address(), to = %msg.to, op = format_args!("{:#010x}", msg.body.op()), hash = %info.hash, "message submitted");
        Ok(Sent::Submitted { hash: info.hash })
    }
}
