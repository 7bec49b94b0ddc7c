//! A fake toncenter: toncenter's v2 HTTP API, in its JSON shapes, answered from an embedded
//! TON network ([`cocoon_tvm::LocalNetwork`]) on loopback, so a client of the real service
//! (`cocoon_ton::toncenter_v2::ToncenterNetwork`) can be tested end to end: what it sends
//! really executes on tycho's TVM, wallets included.
//!
//! Endpoints (under `/api/v2`):
//! - `getAddressInformation?address=` — balance, `state` (`active`, `uninitialized`, `frozen`),
//!   code and data BOCs, `last_transaction_id`, `sync_utime` (the network's current time).
//! - `getTransactions?address=&limit=&lt=&hash=&to_lt=` — newest first from the transaction
//!   `(lt, hash)` (inclusive; the newest when absent), none at or below `to_lt`, at most
//!   `limit` (default 10, at most 100), as toncenter pages. A start the node no longer holds
//!   (below what the history keeps) answers an empty list, as a non-archival node has nothing
//!   there; a start that does not exist is an error.
//! - `sendBocReturnHash` (POST `{"boc": …}`) — parses the external message and executes it
//!   with [`cocoon_tvm::LocalNetwork::send_external`] before answering, so a wallet is a real
//!   wallet contract (wallet v4r2 from tonlib-core, deployed by its first external) that pays
//!   its own gas and forwarding fees. A refused external is an error answer, as toncenter's.
//!
//! The faucet is [`FakeToncenter::fund`], a method for tests, not an endpoint.
//!
//! **Transaction hashes and `data`.** The history keeps no raw transactions, and tycho's
//! transaction cells would hash differently from TON's anyway (see `cocoon-tvm`). So each
//! transaction's `data` is a cell this fake writes: the true `transaction$0111` header
//! (account, lt, the previous transaction's hash and lt, time, out-message count, statuses)
//! followed by its total fees, and no references: enough for a client that reads the header,
//! as `ToncenterNetwork` does, and not a full TL-B transaction. Its cell hash is the
//! transaction's hash, so hashes are stable, chain through `prev_trans_hash` as on TON, and a
//! client can check a transaction id against its data. Fields the history does not keep are
//! absent or zero: out-messages' bodies, inbound forwarding fees, `storage_fee`/`other_fee`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use base64::Engine;
use cocoon_tvm::{AccountStatus, AccountTransaction, Address, LocalNetwork};
use serde_json::{json, Value};
use tonlib_core::cell::{BagOfCells, Cell, CellBuilder, TonCellError};
use tonlib_core::tlb_types::block::message::{CommonMsgInfo, Message};
use tonlib_core::tlb_types::tlb::TLB;
use tonlib_core::TonAddress;

/// Most transactions one `getTransactions` answers.
pub const MAX_PAGE: usize = 100;

/// A fake toncenter v2 on loopback over an embedded network. Stops when dropped.
pub struct FakeToncenter {
    address: SocketAddr,
    network: Arc<LocalNetwork>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeToncenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeToncenter")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Drop for FakeToncenter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Answer = (StatusCode, Json<Value>);

fn error(code: StatusCode, message: impl std::fmt::Display) -> Answer {
    (
        code,
        Json(json!({"ok": false, "error": message.to_string(), "code": code.as_u16()})),
    )
}

fn ok(result: Value) -> Answer {
    (StatusCode::OK, Json(json!({"ok": true, "result": result})))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn ton_address(address: &Address) -> TonAddress {
    TonAddress::new(i32::from(address.workchain), address.hash.into())
}

fn user_friendly(address: &Address) -> String {
    ton_address(address).to_base64_url()
}

fn parse_address(text: Option<&String>) -> Result<Address, Answer> {
    let incorrect = || {
        error(
            StatusCode::from_u16(416).unwrap_or(StatusCode::BAD_REQUEST),
            "Incorrect address",
        )
    };
    let address: TonAddress = text
        .ok_or_else(incorrect)?
        .parse()
        .map_err(|_| incorrect())?;
    let workchain = i8::try_from(address.workchain).map_err(|_| incorrect())?;
    let mut hash = [0; 32];
    hash.copy_from_slice(address.hash_part.as_slice());
    Ok(Address { workchain, hash })
}

fn internal(e: impl std::fmt::Display) -> Answer {
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

/// A transaction with the hash chain this fake gives the account's history.
struct Chained {
    tx: AccountTransaction,
    data: Cell,
    hash: [u8; 32],
}

fn status_bits(status: AccountStatus) -> u8 {
    // acc_state_uninit$00 frozen$01 active$10 nonexist$11
    match status {
        AccountStatus::Uninit => 0b00,
        AccountStatus::Frozen => 0b01,
        AccountStatus::Active => 0b10,
        AccountStatus::NonExisting => 0b11,
    }
}

fn header_cell(
    account: &Address,
    tx: &AccountTransaction,
    prev: (u64, [u8; 32]),
) -> Result<Cell, TonCellError> {
    // The history keeps no statuses: a transaction that ran code is shown active → active, any
    // other uninit → uninit (only the header's layout matters to readers).
    let status = if tx.exit_code.is_some() {
        AccountStatus::Active
    } else {
        AccountStatus::Uninit
    };
    let out_count = u16::try_from(tx.out_messages.len()).unwrap_or(u16::MAX) & 0x7fff;
    let mut builder = CellBuilder::new();
    builder
        .store_u8(4, 0b0111)?
        .store_slice(&account.hash)?
        .store_u64(64, tx.lt)?
        .store_slice(&prev.1)?
        .store_u64(64, prev.0)?
        .store_u32(32, tx.now)?
        .store_u16(15, out_count)?
        .store_u8(2, status_bits(status))?
        .store_u8(2, status_bits(status))?
        .store_coins(&tx.total_fees.into())?
        .store_bit(false)?;
    builder.build()
}

/// Every kept transaction of `account`, oldest first, with its hash chain.
fn chain(network: &LocalNetwork, account: &Address) -> Result<(Vec<Chained>, u64), String> {
    let (txs, dropped) = network
        .read(|_, history| {
            (
                history.transactions(account, 0, usize::MAX),
                history.dropped_through_lt(account),
            )
        })
        .map_err(|e| e.to_string())?;
    let mut prev = (dropped, [0u8; 32]);
    let mut chained = Vec::with_capacity(txs.len());
    for tx in txs {
        let data = header_cell(account, &tx, prev).map_err(|e| e.to_string())?;
        let hash: [u8; 32] = data.cell_hash().into();
        prev = (tx.lt, hash);
        chained.push(Chained { tx, data, hash });
    }
    Ok((chained, dropped))
}

fn boc(cell: Cell) -> Result<String, Answer> {
    BagOfCells::from_root(cell)
        .serialize(true)
        .map(|bytes| b64(&bytes))
        .map_err(internal)
}

fn body_boc(body: &[u8]) -> Result<String, Answer> {
    if body.is_empty() {
        boc(Cell::default())
    } else {
        Ok(b64(body))
    }
}

fn transaction_json(account: &Address, chained: &Chained) -> Result<Value, Answer> {
    let tx = &chained.tx;
    let in_message = &tx.in_message;
    let body = body_boc(&in_message.body)?;
    let body_hash = BagOfCells::parse(
        &base64::engine::general_purpose::STANDARD
            .decode(&body)
            .map_err(internal)?,
    )
    .and_then(|b| b.single_root())
    .map(|c| b64(Cell::cell_hash(&c).as_slice()))
    .map_err(internal)?;
    let out_msgs: Vec<Value> = tx
        .out_messages
        .iter()
        .map(|out| {
            json!({
                "@type": "raw.message",
                "source": user_friendly(account),
                "destination": out.dest.as_ref().map(user_friendly).unwrap_or_default(),
                "value": out.value.to_string(),
                "fwd_fee": out.fwd_fee.to_string(),
                "ihr_fee": "0",
                "created_lt": "0",
                "body_hash": "",
                "msg_data": {"@type": "msg.dataRaw", "body": "", "init_state": ""},
                "message": "",
                "bounced": out.bounced,
            })
        })
        .collect();
    Ok(json!({
        "@type": "raw.transaction",
        "address": {"@type": "accountAddress", "account_address": user_friendly(account)},
        "utime": tx.now,
        "data": boc(chained.data.clone())?,
        "transaction_id": {
            "@type": "internal.transactionId",
            "lt": tx.lt.to_string(),
            "hash": b64(&chained.hash),
        },
        "fee": tx.total_fees.to_string(),
        "in_msg": {
            "@type": "raw.message",
            "source": in_message.source.as_ref().map(user_friendly).unwrap_or_default(),
            "destination": user_friendly(account),
            "value": in_message.value.to_string(),
            "fwd_fee": "0",
            "ihr_fee": "0",
            "created_lt": "0",
            "body_hash": body_hash,
            "msg_data": {"@type": "msg.dataRaw", "body": body, "init_state": ""},
            "message": "",
            "bounce": in_message.bounce,
            "bounced": in_message.bounced,
        },
        "out_msgs": out_msgs,
    }))
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    let bytes = if text.len() == 64 {
        hex::decode(text).ok()?
    } else {
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
        ];
        engines.iter().find_map(|e| e.decode(text).ok())?
    };
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}

fn account_information(network: &LocalNetwork, address: &Address) -> Result<Value, Answer> {
    let info = network.account(address).map_err(internal)?;
    let state = match info.status {
        AccountStatus::Active => "active",
        AccountStatus::Frozen => "frozen",
        AccountStatus::Uninit | AccountStatus::NonExisting => "uninitialized",
    };
    // The account's own `last_transaction_lt` is its last transaction's end lt (after the lts
    // its out-messages took); toncenter's id names the transaction itself: the newest kept.
    let (chained, _) = chain(network, address).map_err(internal)?;
    let (last_lt, last_hash) = chained.last().map_or((0, [0; 32]), |c| (c.tx.lt, c.hash));
    Ok(json!({
        "@type": "raw.fullAccountState",
        "balance": info.balance.to_string(),
        "extra_currencies": [],
        "code": info.code.as_deref().map(b64).unwrap_or_default(),
        "data": info.data.as_deref().map(b64).unwrap_or_default(),
        "last_transaction_id": {
            "@type": "internal.transactionId",
            "lt": last_lt.to_string(),
            "hash": b64(&last_hash),
        },
        "frozen_hash": "",
        "sync_utime": network.current_time().map_err(internal)?,
        "state": state,
    }))
}

fn transactions(network: &LocalNetwork, q: &HashMap<String, String>) -> Result<Value, Answer> {
    let address = parse_address(q.get("address"))?;
    let bad = |what: &str| error(StatusCode::BAD_REQUEST, format!("Incorrect {what}"));
    let number = |key: &str, default: u64| -> Result<u64, Answer> {
        q.get(key)
            .map_or(Ok(default), |v| v.parse().map_err(|_| bad(key)))
    };
    let limit = usize::try_from(number("limit", 10)?)
        .map_err(|_| bad("limit"))?
        .clamp(1, MAX_PAGE);
    let to_lt = number("to_lt", 0)?;
    let (chained, dropped) = chain(network, &address).map_err(internal)?;
    let start = match (q.get("lt"), q.get("hash")) {
        (None, None) => chained.len(),
        (Some(lt), Some(hash)) => {
            let lt: u64 = lt.parse().map_err(|_| bad("lt"))?;
            let hash = decode_hash(hash).ok_or_else(|| bad("hash"))?;
            if lt <= dropped {
                return Ok(json!([]));
            }
            let index = chained
                .iter()
                .position(|c| c.tx.lt == lt && c.hash == hash)
                .ok_or_else(|| internal(format!("cannot locate transaction {lt}")))?;
            index + 1
        }
        _ => return Err(bad("transaction id: lt and hash go together")),
    };
    chained[..start]
        .iter()
        .rev()
        .take_while(|c| c.tx.lt > to_lt)
        .take(limit)
        .map(|c| transaction_json(&address, c))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn send_boc(network: &LocalNetwork, body: &Value) -> Result<Value, Answer> {
    let bad =
        |e: &dyn std::fmt::Display| error(StatusCode::BAD_REQUEST, format!("Invalid boc: {e}"));
    let bytes = body
        .get("boc")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(&"no boc"))
        .and_then(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| bad(&e))
        })?;
    let root = BagOfCells::parse(&bytes)
        .and_then(|b| b.single_root())
        .map_err(|e| bad(&e))?;
    let message = Message::from_cell(&root).map_err(|e| bad(&e))?;
    let CommonMsgInfo::ExtIn(info) = &message.info else {
        return Err(bad(&"not an inbound external message"));
    };
    let to = TonAddress::try_from(info.dest.clone()).map_err(|e| bad(&e))?;
    let mut hash = [0; 32];
    hash.copy_from_slice(to.hash_part.as_slice());
    let to = Address {
        workchain: i8::try_from(to.workchain).map_err(|e| bad(&e))?,
        hash,
    };
    let state_init = message
        .init
        .as_ref()
        .map(|init| init.value.to_boc(false))
        .transpose()
        .map_err(|e| bad(&e))?;
    let message_body = BagOfCells::from_root(message.body.value.as_ref().clone())
        .serialize(false)
        .map_err(|e| bad(&e))?;
    network
        .send_external(&to, &message_body, state_init.as_deref())
        .map_err(|e| {
            internal(format!(
                "cannot apply external message to current state: {e}"
            ))
        })?;
    let hash = b64(Cell::cell_hash(&root).as_slice());
    Ok(json!({"@type": "raw.extMessageInfo", "hash": hash, "hash_norm": hash}))
}

/// Runs a blocking network call (file lock, fsync) off the runtime's workers.
async fn blocking(
    network: Arc<LocalNetwork>,
    f: impl FnOnce(&LocalNetwork) -> Result<Value, Answer> + Send + 'static,
) -> Answer {
    match tokio::task::spawn_blocking(move || f(&network)).await {
        Ok(Ok(result)) => ok(result),
        Ok(Err(answer)) => answer,
        Err(e) => internal(e),
    }
}

async fn get_address_information(
    State(network): State<Arc<LocalNetwork>>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let address = match parse_address(q.get("address")) {
        Ok(address) => address,
        Err(answer) => return answer,
    };
    blocking(network, move |n| account_information(n, &address)).await
}

async fn get_transactions(
    State(network): State<Arc<LocalNetwork>>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    blocking(network, move |n| transactions(n, &q)).await
}

async fn send_boc_return_hash(
    State(network): State<Arc<LocalNetwork>>,
    Json(body): Json<Value>,
) -> Answer {
    blocking(network, move |n| send_boc(n, &body)).await
}

impl FakeToncenter {
    /// Serves `network` on an ephemeral loopback port.
    pub async fn start(network: LocalNetwork) -> std::io::Result<FakeToncenter> {
        let network = Arc::new(network);
        let app = axum::Router::new()
            .route(
                "/api/v2/getAddressInformation",
                get(get_address_information),
            )
            .route("/api/v2/getTransactions", get(get_transactions))
            .route("/api/v2/sendBocReturnHash", post(send_boc_return_hash))
            .with_state(network.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        // Ends when the fake is dropped (aborted) or the listener fails.
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake toncenter stopped");
            }
        });
        Ok(FakeToncenter {
            address,
            network,
            server,
        })
    }

    /// The API's base URL, `http://127.0.0.1:port/api/v2`.
    pub fn url(&self) -> String {
        format!("http://{}/api/v2", self.address)
    }

    /// The network underneath (for reading what happened, and setting the time).
    pub fn network(&self) -> &LocalNetwork {
        &self.network
    }

    /// The faucet: adds `amount` nano-TON to `address` (no transaction, as a genesis balance)
    /// and returns its new balance.
    pub fn fund(&self, address: &TonAddress, amount: u128) -> Result<u128, cocoon_tvm::Error> {
        let mut hash = [0; 32];
        hash.copy_from_slice(address.hash_part.as_slice());
        let workchain = i8::try_from(address.workchain)
            .map_err(|_| cocoon_tvm::Error::UnsupportedWorkchain(address.to_string()))?;
        self.network.mint(&Address { workchain, hash }, amount)
    }
}
