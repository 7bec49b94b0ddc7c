//! [`TonNetwork`] on a real TON network (testnet or mainnet) through toncenter's v2 HTTP API.
//!
//! Four calls do everything:
//! - `GET getAddressInformation` gives an account's balance, state (`active`, `uninitialized`,
//!   `frozen`), code and data BOCs, its last transaction id and `sync_utime`, the time of the
//!   block toncenter's node last synced. [`TonNetwork::now`] is that time, read for the zero
//!   address of the basechain (one call, and the clock the network itself runs on, not ours).
//! - `GET getTransactions` pages an account's history newest first from a transaction id
//!   `(lt, hash)`, stopping above `to_lt`. The client walks back from the account's last
//!   transaction, each page starting at the predecessor the previous page's oldest transaction
//!   names in its raw header (`prev_trans_lt`, `prev_trans_hash`, parsed from the `data` BOC), so
//!   pages never overlap and every step is checked: each transaction must be the one its
//!   successor names, and its id's hash must be its `data`'s cell hash. The walk ends when the
//!   predecessor is at or below `after_lt` (or there is none); a page that comes back empty
//!   before that means the node's history does not reach that far (a non-archival node, or
//!   pruned history) and is an error, as is a walk past [`DEFAULT_HISTORY_PAGES`] pages.
//! - `POST sendBocReturnHash` submits a wallet v4r2 external message: seqno from the wallet's
//!   data (0 and the wallet's StateInit while it is not deployed, so the first external deploys
//!   it), valid for [`EXTERNAL_TTL_SECS`] after `sync_utime`, up to [`MAX_WALLET_MESSAGES`]
//!   internal messages, each sent with **mode 3** (tonlib-core's v4r2 builder: 1 = the wallet
//!   pays the forwarding fees on top, so a contract receives exactly the value asked for; 2 =
//!   a message that cannot be sent is skipped instead of failing the action phase, which would
//!   leave the seqno unmoved and the signed external replayable until it expires, each replay
//!   paying gas). The C++ runners send mode 0 or 1 from their cocoon wallet (facts §10); the
//!   contracts see the same value either way with mode 1, and nothing on their side depends on
//!   the mode. The answer's hash is checked against the external's own cell hash. Sends go
//!   one at a time, each until its wallet's seqno moved (polled every [`SEQNO_POLL`]): an
//!   external built on a seqno already taken is accepted by toncenter and dropped by the
//!   network, so back-to-back sends would lose all but one. One that expires unexecuted is an
//!   error.
//!
//! What v2's JSON does not carry is left unset: [`InboundTx::exit_code`] is `None` and
//! [`InboundTx::aborted`] false (both are in the raw transaction's description, which is not
//! parsed; only its header is). Inbound bodies come from `msg_data`: `msg.dataRaw` as the BOC
//! given, `msg.dataText` rebuilt as a text comment (op 0, snake cells), and anything else
//! (encrypted comments) as the empty cell, since no COCOON op uses them and a stranger must
//! not be able to make an account's history unreadable by sending one.
//!
//! Every answer is hostile input: its size is capped ([`MAX_RESPONSE`]), numbers are parsed
//! with overflow checks, BOCs through tonlib-core's bounded parser, and every failure is a
//! [`TonError::Api`], never a panic.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use cocoon_net::http_client::HttpClient;
use num_bigint::BigUint;
use serde::Deserialize;
use tonlib_core::cell::{ArcCell, BagOfCells, Cell, CellBuilder};
use tonlib_core::tlb_types::block::coins::{CurrencyCollection, Grams};
use tonlib_core::tlb_types::block::message::{CommonMsgInfo, ExtInMsgInfo, IntMsgInfo, Message};
use tonlib_core::tlb_types::block::msg_address::{MsgAddrNone, MsgAddress, MsgAddressExt};
use tonlib_core::tlb_types::block::state_init::StateInit;
use tonlib_core::tlb_types::primitives::either::{EitherRef, EitherRefLayout};
use tonlib_core::tlb_types::tlb::TLB;
use tonlib_core::wallet::version_helper::VersionHelper;
use tonlib_core::TonAddress;

use crate::ton::{
    AccountState, InboundTx, SendOutcome, Status, TonError, TonNetwork, WalletMessage,
};
use crate::Wallet;

/// How long an external message stays valid after the network's time.
pub const EXTERNAL_TTL_SECS: u32 = 120;
/// Transactions asked for per `getTransactions` page (toncenter answers at most 100).
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Pages one [`TonNetwork::transactions`] call may walk back before giving up: 2,000
/// transactions at the default page size, far more than a proxy's contract receives between
/// two reads.
pub const DEFAULT_HISTORY_PAGES: usize = 20;
/// A wallet v4r2 external carries at most four messages (one cell reference each).
pub const MAX_WALLET_MESSAGES: usize = 4;
/// The largest answer read: a page of 100 transactions with their BOCs is a few hundred KB.
pub const MAX_RESPONSE: usize = 4 << 20;
const TIMEOUT: Duration = Duration::from_secs(20);
/// TON caps a transaction's out-messages at 255; an answer with more is not a transaction.
const MAX_OUT_MESSAGES: usize = 255;
/// A text comment longer than this is not rebuilt (bounded work on hostile input).
const MAX_COMMENT_BYTES: usize = 16 * 1024;

/// A TON network through toncenter's v2 API.
pub struct ToncenterNetwork {
    http: HttpClient,
    url: String,
    api_key: Option<String>,
    page_size: usize,
    history_pages: usize,
    /// One external at a time, each until its wallet's seqno moved: a wallet takes an external
    /// only with its current seqno, and toncenter accepts a second one built on the same seqno
    /// only for the network to drop it silently.
    send_turn: tokio::sync::Mutex<()>,
    /// How often a submitted external's wallet is read until its seqno moves.
    seqno_poll: Duration,
}

/// How often a submitted external's wallet is read until its seqno moves (a block is ~5 s).
pub const SEQNO_POLL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for ToncenterNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key is a secret: never printed.
        f.debug_struct("ToncenterNetwork")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn api(message: impl Into<String>) -> TonError {
    TonError::Api(message.into())
}

#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
    error: Option<String>,
}

/// A number toncenter writes as a decimal string (balances, lts, fees) or a JSON integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Text(String),
    Integer(u64),
}

impl Number {
    fn value(&self, what: &str) -> Result<u128, TonError> {
        match self {
            Number::Integer(n) => Ok(u128::from(*n)),
            Number::Text(s)
                if !s.is_empty() && s.len() <= 39 && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                s.parse()
                    .map_err(|_| api(format!("{what}: {s:?} is not a number")))
            }
            Number::Text(s) => Err(api(format!("{what}: {:?} is not a number", truncate(s)))),
        }
    }

    fn u64(&self, what: &str) -> Result<u64, TonError> {
        u64::try_from(self.value(what)?).map_err(|_| api(format!("{what}: over 64 bits")))
    }
}

/// An address as a string (`"EQ…"`, `""` for none) or `{"account_address": "EQ…"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum AddressField {
    Text(String),
    Object {
        #[serde(default)]
        account_address: String,
    },
}

#[derive(Deserialize)]
struct TransactionId {
    lt: Number,
    #[serde(default)]
    hash: String,
}

#[derive(Deserialize)]
struct AddressInformation {
    balance: Number,
    #[serde(default)]
    code: String,
    #[serde(default)]
    data: String,
    #[serde(default)]
    state: String,
    last_transaction_id: Option<TransactionId>,
    #[serde(default)]
    sync_utime: u32,
}

#[derive(Deserialize)]
struct RawTransaction {
    #[serde(default)]
    utime: Option<u32>,
    #[serde(default)]
    data: String,
    transaction_id: TransactionId,
    fee: Number,
    #[serde(default)]
    in_msg: Option<RawMessage>,
    #[serde(default)]
    out_msgs: Vec<RawMessage>,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    source: Option<AddressField>,
    #[serde(default)]
    value: Option<Number>,
    #[serde(default)]
    fwd_fee: Option<Number>,
    #[serde(default)]
    bounced: Option<bool>,
    #[serde(default)]
    msg_data: Option<MessageData>,
}

#[derive(Deserialize)]
struct MessageData {
    #[serde(rename = "@type", default)]
    kind: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct ExtMessageInfo {
    #[serde(default)]
    hash: String,
}

/// What `getAddressInformation` says of an account.
struct Information {
    state: AccountState,
    last_hash: [u8; 32],
    sync_utime: u32,
}

/// One transaction of a page, parsed and with its place in the chain of predecessors.
struct Linked {
    hash: [u8; 32],
    prev_lt: u64,
    prev_hash: [u8; 32],
    tx: InboundTx,
}

/// The fixed head of a raw transaction (`transaction$0111`).
struct Header {
    account: [u8; 32],
    lt: u64,
    prev_hash: [u8; 32],
    prev_lt: u64,
    now: u32,
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn decode_base64(s: &str, what: &str) -> Result<Vec<u8>, TonError> {
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ];
    engines
        .iter()
        .find_map(|engine| engine.decode(s).ok())
        .ok_or_else(|| api(format!("{what}: not base64")))
}

fn boc_root(b64: &str, what: &str) -> Result<ArcCell, TonError> {
    let bytes = decode_base64(b64, what)?;
    crate::boc::parse(&bytes)
        .and_then(|b| b.single_root().map_err(|e| e.to_string()))
        .map_err(|e| api(format!("{what}: not a one-root bag of cells: {e}")))
}

/// A 256-bit hash as toncenter writes it (base64), or hex.
fn decode_hash(s: &str, what: &str) -> Result<[u8; 32], TonError> {
    let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(s).map_err(|_| api(format!("{what}: not hex")))?
    } else {
        decode_base64(s, what)?
    };
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| api(format!("{what}: not 32 bytes")))
}

fn hash_bytes(cell: &Cell) -> [u8; 32] {
    cell.cell_hash().into()
}

fn header(cell: &Cell) -> Result<Header, TonError> {
    let mut parser = cell.parser();
    let bad = |e: tonlib_core::cell::TonCellError| api(format!("raw transaction: {e}"));
    if parser.load_u8(4).map_err(bad)? != 0b0111 {
        return Err(api("raw transaction: not a transaction$0111"));
    }
    let mut account = [0; 32];
    parser.load_slice(&mut account).map_err(bad)?;
    let lt = parser.load_u64(64).map_err(bad)?;
    let mut prev_hash = [0; 32];
    parser.load_slice(&mut prev_hash).map_err(bad)?;
    let prev_lt = parser.load_u64(64).map_err(bad)?;
    let now = parser.load_u32(32).map_err(bad)?;
    Ok(Header {
        account,
        lt,
        prev_hash,
        prev_lt,
        now,
    })
}

/// `op 0` and the text, in snake cells (each continuation the only reference of its cell).
fn text_comment(text: &[u8]) -> Result<ArcCell, TonError> {
    let bad = |e: tonlib_core::cell::TonCellError| api(format!("text comment: {e}"));
    // 1023 bits hold 127 whole bytes; the first cell also holds the 32-bit op.
    let first = text.len().min(123);
    let mut rest: Vec<&[u8]> = text[first..].chunks(127).collect();
    let mut tail: Option<ArcCell> = None;
    while let Some(chunk) = rest.pop() {
        let mut builder = CellBuilder::new();
        builder.store_slice(chunk).map_err(bad)?;
        if let Some(next) = &tail {
            builder.store_reference(next).map_err(bad)?;
        }
        tail = Some(Arc::new(builder.build().map_err(bad)?));
    }
    let mut builder = CellBuilder::new();
    builder
        .store_u32(32, 0)
        .and_then(|b| b.store_slice(&text[..first]))
        .map_err(bad)?;
    if let Some(next) = &tail {
        builder.store_reference(next).map_err(bad)?;
    }
    Ok(Arc::new(builder.build().map_err(bad)?))
}

fn message_body(data: Option<&MessageData>, what: &str) -> Result<ArcCell, TonError> {
    let empty = || Arc::new(Cell::default());
    match data {
        Some(d) if d.kind == "msg.dataRaw" => {
            if d.body.is_empty() {
                Ok(empty())
            } else {
                boc_root(&d.body, &format!("{what} body"))
            }
        }
        Some(d) if d.kind == "msg.dataText" => {
            let text = decode_base64(&d.text, &format!("{what} text"))?;
            if text.len() > MAX_COMMENT_BYTES {
                return Err(api(format!("{what}: a comment of {} bytes", text.len())));
            }
            text_comment(&text)
        }
        _ => Ok(empty()),
    }
}

fn source(field: Option<&AddressField>, what: &str) -> Result<Option<TonAddress>, TonError> {
    let text = match field {
        None => return Ok(None),
        Some(AddressField::Text(s)) | Some(AddressField::Object { account_address: s }) => s,
    };
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<TonAddress>().map(Some).map_err(|_| {
        api(format!(
            "{what}: source {:?} is not an address",
            truncate(text)
        ))
    })
}

/// A raw transaction of `account` as [`InboundTx`], with its link to its predecessor.
fn linked(raw: &RawTransaction, account: &TonAddress) -> Result<Linked, TonError> {
    let id_lt = raw.transaction_id.lt.u64("transaction lt")?;
    let what = format!("transaction {id_lt} of {account}");
    if raw.data.is_empty() {
        return Err(api(format!("{what}: no raw transaction (data)")));
    }
    let cell = boc_root(&raw.data, &what)?;
    let head = header(&cell)?;
    let hash = hash_bytes(&cell);
    if head.lt != id_lt || head.account.as_slice() != account.hash_part.as_slice() {
        return Err(api(format!(
            "{what}: its raw transaction is lt {} of another account or time",
            head.lt
        )));
    }
    if decode_hash(&raw.transaction_id.hash, &what)? != hash {
        return Err(api(format!("{what}: its id's hash is not its data's")));
    }
    if raw.utime.is_some_and(|utime| utime != head.now) {
        return Err(api(format!(
            "{what}: utime differs from its raw transaction"
        )));
    }
    if raw.out_msgs.len() > MAX_OUT_MESSAGES {
        return Err(api(format!("{what}: {} out-messages", raw.out_msgs.len())));
    }
    let mut forward_fees = 0u128;
    for out in &raw.out_msgs {
        let fee = match &out.fwd_fee {
            Some(fee) => fee.value(&format!("{what} out-message fwd_fee"))?,
            None => 0,
        };
        forward_fees = forward_fees
            .checked_add(fee)
            .ok_or_else(|| api(format!("{what}: forwarding fees overflow")))?;
    }
    let inbound = raw.in_msg.as_ref();
    let tx = InboundTx {
        lt: head.lt,
        now: head.now,
        source: source(inbound.and_then(|m| m.source.as_ref()), &what)?,
        value: match inbound.and_then(|m| m.value.as_ref()) {
            Some(value) => value.value(&format!("{what} value"))?,
            None => 0,
        },
        body: message_body(inbound.and_then(|m| m.msg_data.as_ref()), &what)?,
        bounced: inbound.and_then(|m| m.bounced).unwrap_or(false),
        exit_code: None,
        aborted: false,
        total_fees: raw.fee.value(&format!("{what} fee"))?,
        forward_fees,
    };
    Ok(Linked {
        hash,
        prev_lt: head.prev_lt,
        prev_hash: head.prev_hash,
        tx,
    })
}

impl ToncenterNetwork {
    /// A client of the toncenter v2 API at `url` (e.g. `https://toncenter.com/api/v2`).
    pub fn new(url: &str, api_key: Option<String>) -> Result<ToncenterNetwork, TonError> {
        let http = HttpClient::new(url, &[], TIMEOUT, MAX_RESPONSE)
            .map_err(|e| api(format!("toncenter URL: {e}")))?;
        Ok(ToncenterNetwork {
            http,
            url: url.to_string(),
            api_key,
            page_size: DEFAULT_PAGE_SIZE,
            history_pages: DEFAULT_HISTORY_PAGES,
            send_turn: tokio::sync::Mutex::new(()),
            seqno_poll: SEQNO_POLL,
        })
    }

    /// Transactions asked for per page (1 to 100).
    pub fn with_page_size(mut self, page_size: usize) -> ToncenterNetwork {
        self.page_size = page_size.clamp(1, DEFAULT_PAGE_SIZE);
        self
    }

    /// Pages one `transactions` call may walk (at least 1).
    pub fn with_history_pages(mut self, pages: usize) -> ToncenterNetwork {
        self.history_pages = pages.max(1);
        self
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        match &self.api_key {
            Some(key) => vec![("x-api-key", key.as_str())],
            None => Vec::new(),
        }
    }

    fn unwrap<T>(body: &[u8], what: &str) -> Result<T, TonError>
    where
        T: for<'de> Deserialize<'de>,
    {
        let envelope: Envelope<T> = serde_json::from_slice(body)
            .map_err(|e| api(format!("{what}: unexpected answer: {e}")))?;
        match (envelope.ok, envelope.result) {
            (true, Some(result)) => Ok(result),
            _ => Err(api(format!(
                "{what}: {}",
                truncate(envelope.error.as_deref().unwrap_or("failed"))
            ))),
        }
    }

    async fn get<T>(&self, path_and_query: &str, what: &str) -> Result<T, TonError>
    where
        T: for<'de> Deserialize<'de>,
    {
        let response = self
            .http
            .get(path_and_query, &self.headers())
            .await
            .map_err(|e| api(format!("{what}: {e}")))?;
        Self::unwrap(&response.body, what)
    }

    async fn information(&self, address: &TonAddress) -> Result<Information, TonError> {
        let what = format!("getAddressInformation {address}");
        let info: AddressInformation = self
            .get(
                &format!("/getAddressInformation?address={}", address.to_base64_url()),
                &what,
            )
            .await?;
        let status = match info.state.as_str() {
            "active" => Status::Active,
            "uninitialized" | "uninit" => Status::Uninit,
            "frozen" => Status::Frozen,
            other => return Err(api(format!("{what}: state {:?}", truncate(other)))),
        };
        let (code, data) = if status == Status::Active {
            let code = (!info.code.is_empty())
                .then(|| boc_root(&info.code, &format!("{what} code")))
                .transpose()?;
            let data = (!info.data.is_empty())
                .then(|| boc_root(&info.data, &format!("{what} data")))
                .transpose()?;
            (code, data)
        } else {
            (None, None)
        };
        let (last_lt, last_hash) = match &info.last_transaction_id {
            Some(id) => {
                let lt = id.lt.u64(&format!("{what} last lt"))?;
                let hash = if lt == 0 {
                    [0; 32]
                } else {
                    decode_hash(&id.hash, &format!("{what} last hash"))?
                };
                (lt, hash)
            }
            None => (0, [0; 32]),
        };
        Ok(Information {
            state: AccountState {
                status,
                balance: info.balance.value(&format!("{what} balance"))?,
                code,
                data,
                last_lt,
            },
            last_hash,
            sync_utime: info.sync_utime,
        })
    }

    /// One page of `address`'s transactions, newest first from `(lt, hash)`, none at or below
    /// `to_lt`.
    async fn page(
        &self,
        address: &TonAddress,
        lt: u64,
        hash: &[u8; 32],
        to_lt: u64,
    ) -> Result<Vec<Linked>, TonError> {
        let what = format!("getTransactions {address} from {lt}");
        let raw: Vec<RawTransaction> = self
            .get(
                &format!(
                    "/getTransactions?address={}&limit={}&lt={lt}&hash={}&to_lt={to_lt}&archival=true",
                    address.to_base64_url(),
                    self.page_size,
                    hex::encode(hash),
                ),
                &what,
            )
            .await?;
        if raw.len() > self.page_size {
            return Err(api(format!(
                "{what}: {} transactions for a page of {}",
                raw.len(),
                self.page_size
            )));
        }
        raw.iter().map(|tx| linked(tx, address)).collect()
    }

    /// The signed external message that makes `wallet` send `messages` (what `send` submits).
    pub async fn external_message(
        &self,
        wallet: &Wallet,
        messages: &[WalletMessage],
    ) -> Result<Cell, TonError> {
        Ok(self.external(wallet, messages).await?.0)
    }

    /// The wallet's seqno and time now (0 for a wallet not deployed yet).
    async fn wallet_seqno(&self, wallet: &Wallet) -> Result<(u32, u32), TonError> {
        let info = self.information(wallet.address()).await?;
        let seqno = match (&info.state.status, &info.state.data) {
            (Status::Active, Some(data)) => data
                .parser()
                .load_u32(32)
                .map_err(|e| api(format!("wallet {} data: {e}", wallet.address())))?,
            _ => 0,
        };
        Ok((seqno, info.sync_utime))
    }

    /// The signed external and the seqno and expiry it was built with.
    async fn external(
        &self,
        wallet: &Wallet,
        messages: &[WalletMessage],
    ) -> Result<(Cell, u32, u32), TonError> {
        if messages.len() > MAX_WALLET_MESSAGES {
            return Err(TonError::Cell(format!(
                "a wallet v4r2 external carries at most {MAX_WALLET_MESSAGES} messages, not {}",
                messages.len()
            )));
        }
        let need = messages
            .iter()
            .try_fold(0u128, |sum, m| sum.checked_add(m.value))
            .ok_or_else(|| TonError::Cell("the values overflow".into()))?;
        let info = self.information(wallet.address()).await?;
        if info.state.balance < need {
            return Err(TonError::WalletBalance {
                wallet: wallet.address().to_string(),
                have: info.state.balance,
                need,
            });
        }
        let (seqno, deployed) = match info.state.status {
            Status::Active => {
                let data = info.state.data.as_ref().ok_or_else(|| {
                    api(format!(
                        "wallet {} is active but has no data",
                        wallet.address()
                    ))
                })?;
                let seqno = data
                    .parser()
                    .load_u32(32)
                    .map_err(|e| api(format!("wallet {} data: {e}", wallet.address())))?;
                (seqno, true)
            }
            Status::Uninit | Status::Nonexist => (0, false),
            Status::Frozen => return Err(api(format!("wallet {} is frozen", wallet.address()))),
        };
        let internals = messages
            .iter()
            .map(internal_message)
            .collect::<Result<Vec<_>, _>>()?;
        let cell_error = |e: tonlib_core::cell::TonCellError| TonError::Cell(e.to_string());
        let ton_wallet = wallet.ton_wallet();
        let valid_until = info.sync_utime.saturating_add(EXTERNAL_TTL_SECS);
        let body = ton_wallet
            .create_external_body(valid_until, seqno, internals)
            .and_then(|body| ton_wallet.sign_external_body(&body))
            .map_err(cell_error)?;
        // Built here rather than with tonlib-core's `create_external_msg`, which inlines the
        // body whenever its bits fit, even when its four message references and the StateInit's
        // reference do not (a deploying external with four messages would not build).
        let info = CommonMsgInfo::ExtIn(ExtInMsgInfo {
            src: MsgAddressExt::None(MsgAddrNone {}),
            dest: wallet.address().to_msg_address_int(),
            import_fee: Grams::new(BigUint::from(0u32)),
        });
        let mut external = Message::new(info, Arc::new(body));
        if !deployed {
            let code = VersionHelper::get_code(ton_wallet.version).map_err(cell_error)?;
            let data = VersionHelper::get_data(
                ton_wallet.version,
                &ton_wallet.key_pair,
                ton_wallet.wallet_id,
            )
            .map_err(cell_error)?;
            external.init = Some(EitherRef {
                value: StateInit::new(code.clone(), Arc::new(data)),
                layout: EitherRefLayout::ToRef,
            });
            external.body.layout = EitherRefLayout::ToRef;
        }
        Ok((external.to_cell().map_err(cell_error)?, seqno, valid_until))
    }
}

fn internal_message(message: &WalletMessage) -> Result<ArcCell, TonError> {
    let cell_error = |e: tonlib_core::cell::TonCellError| TonError::Cell(e.to_string());
    let info = CommonMsgInfo::Int(IntMsgInfo {
        ihr_disabled: true,
        bounce: message.bounce,
        bounced: false,
        src: MsgAddress::Ext(MsgAddressExt::None(MsgAddrNone {})),
        dest: message.to.to_msg_address(),
        value: CurrencyCollection::new(BigUint::from(message.value)),
        ihr_fee: Grams::new(BigUint::from(0u32)),
        fwd_fee: Grams::new(BigUint::from(0u32)),
        created_lt: 0,
        created_at: 0,
    });
    let mut built = Message::new(info, message.body.clone());
    if let Some(init) = &message.state_init {
        // The StateInit in a reference, as the C++ runners send deploys (facts §10).
        built.init = Some(EitherRef {
            value: StateInit::from_cell(init).map_err(cell_error)?,
            layout: EitherRefLayout::ToRef,
        });
    }
    // Inline only when the body's references fit beside the StateInit's (tonlib-core would
    // decide on bits alone).
    let refs = message.body.references().len() + usize::from(message.state_init.is_some());
    if refs > 4 {
        built.body.layout = EitherRefLayout::ToRef;
    }
    Ok(Arc::new(built.to_cell().map_err(cell_error)?))
}

#[async_trait]
impl TonNetwork for ToncenterNetwork {
    fn describe(&self) -> String {
        format!("toncenter v2 at {}", self.url)
    }

    async fn now(&self) -> Result<u32, TonError> {
        let zero = TonAddress::new(0, [0u8; 32].into());
        Ok(self.information(&zero).await?.sync_utime)
    }

    async fn account(&self, address: &TonAddress) -> Result<AccountState, TonError> {
        Ok(self.information(address).await?.state)
    }

    async fn transactions(
        &self,
        address: &TonAddress,
        after_lt: u64,
        limit: usize,
    ) -> Result<Vec<InboundTx>, TonError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let info = self.information(address).await?;
        let (mut next_lt, mut next_hash) = (info.state.last_lt, info.last_hash);
        let mut newest_first = Vec::new();
        let mut pages = 0;
        while next_lt > after_lt {
            if pages == self.history_pages {
                return Err(api(format!(
                    "{address}: more than {} transactions after lt {after_lt} ({pages} pages); \
                     the history cannot be read oldest first from there",
                    newest_first.len()
                )));
            }
            pages += 1;
            let page = self.page(address, next_lt, &next_hash, after_lt).await?;
            if page.is_empty() {
                return Err(api(format!(
                    "{address}: toncenter's history stops at lt {next_lt}, above lt {after_lt} \
                     (a node without archival history?)"
                )));
            }
            for linked in page {
                if linked.tx.lt != next_lt || linked.hash != next_hash {
                    return Err(api(format!(
                        "{address}: getTransactions answered lt {} where lt {next_lt} was \
                         expected (the history does not chain)",
                        linked.tx.lt
                    )));
                }
                next_lt = linked.prev_lt;
                next_hash = linked.prev_hash;
                newest_first.push(linked.tx);
                if next_lt <= after_lt {
                    break;
                }
            }
        }
        newest_first.reverse();
        newest_first.truncate(limit);
        Ok(newest_first)
    }

    async fn send(
        &self,
        wallet: &Wallet,
        messages: &[WalletMessage],
    ) -> Result<SendOutcome, TonError> {
        let _turn = self.send_turn.lock().await;
        let (external, seqno, valid_until) = self.external(wallet, messages).await?;
        let hash = hex::encode(hash_bytes(&external));
        let boc = BagOfCells::from_root(external)
            .serialize(true)
            .map_err(|e| TonError::Cell(format!("external message: {e}")))?;
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
            .map_err(|e| api(format!("sendBocReturnHash: {e}")))?;
        let info: ExtMessageInfo = Self::unwrap(&response.body, "sendBocReturnHash")?;
        let answered = decode_hash(&info.hash, "sendBocReturnHash hash")?;
        if hex::encode(answered) != hash {
            return Err(api(format!(
                "sendBocReturnHash: answered hash {} for external {hash}",
                hex::encode(answered)
            )));
        }
        tracing::info!(wallet = %wallet.address(), messages = messages.len(), %hash, seqno, "external submitted");
        // Executed once the wallet's seqno moved past it; the next send waits for that, so it
        // is built on the new seqno. One that expires unexecuted is an error (the caller's
        // resend logic sends it again).
        loop {
            let (now_seqno, now) = self.wallet_seqno(wallet).await?;
            if now_seqno > seqno {
                return Ok(SendOutcome::Submitted { hash });
            }
            if now > valid_until {
                return Err(api(format!(
                    "external {hash} from wallet {} (seqno {seqno}) expired unexecuted",
                    wallet.address()
                )));
            }
            tokio::time::sleep(self.seqno_poll).await;
        }
    }
}
