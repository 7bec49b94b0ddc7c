//! The proxy contract (facts §5): one per proxy instance. Its TON is the pool holding every client
//! deposit; it pays workers, client refunds and the proxy's commission from it.
//!
//! Storage: `owner:addr proxy_public_key:u256 root:addr state:u2 balance:coins stake:coins
//! unlock_ts:u32 ^params` (variant 6: worker and client code). `balance` is the earned
//! commission; `stake` starts at 0 and only grows through `ext_proxy_increase_stake`.
//!
//! Inbound bodies are [`ProxyMessage`]; the client and worker contracts' reports carry an
//! optional [`ClientPayload`] / [`WorkerPayload`]. Pitfalls (facts §13): a report *without*
//! payload is accepted from anyone, so the proxy software must check that its sender is the
//! derived client or worker address (see [`super::address`]); text commands are op 0 and one
//! byte, no query id; the register payload carries the nonce.

use tonlib_core::cell::{ArcCell, Cell};
use tonlib_core::TonAddress;

use super::cell::{read_op, Reader, Writer};
use super::client::ClientReport;
use super::common::SaveState;
use super::{op, CodecError, Hash256, Params, SignedMessage, State};
use crate::Coins;

/// The text command that starts closing (`c`).
pub const TEXT_CLOSE: u8 = b'c';
/// The text command that pays the commission and the message's leftover to the owner (`w`).
pub const TEXT_WITHDRAW: u8 = b'w';

/// The proxy contract's storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyData {
    /// Receives commission payouts and the close remainder.
    pub owner: TonAddress,
    /// The key that signs charges and payouts.
    pub proxy_public_key: Hash256,
    /// The root it was derived from.
    pub root: TonAddress,
    /// Normal, closing or closed.
    pub state: State,
    /// Earned commission, not yet paid out.
    pub balance: Coins,
    /// The proxy's stake (pays forced client refunds).
    pub stake: Coins,
    /// When closing may complete (`now >= unlock_ts`).
    pub unlock_ts: u32,
    /// Params variant 6.
    pub params: Params,
}

impl ProxyData {
    /// The data at deploy (facts §9): state 0, nothing earned or staked, the root's params
    /// turned into variant 6.
    pub fn initial(
        owner: TonAddress,
        proxy_public_key: Hash256,
        root: TonAddress,
        root_params: &Params,
    ) -> ProxyData {
        ProxyData {
            owner,
            proxy_public_key,
            root,
            state: State::Normal,
            balance: Coins::ZERO,
            stake: Coins::ZERO,
            unlock_ts: 0,
            params: root_params.for_proxy(),
        }
    }

    /// The storage cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        w.address(&self.owner, "owner")?
            .bytes(&self.proxy_public_key)?
            .address(&self.root, "root")?;
        self.state.write(&mut w)?;
        w.coins(self.balance, "balance")?
            .coins(self.stake, "stake")?
            .u32(self.unlock_ts)?
            .child(self.params.to_cell()?)?
            .build()
    }

    /// Reads the storage cell.
    pub fn from_cell(cell: &Cell) -> Result<ProxyData, CodecError> {
        let mut r = Reader::new(cell);
        let data = ProxyData {
            owner: r.address("owner")?,
            proxy_public_key: r.hash("proxy_public_key")?,
            root: r.address("root")?,
            state: State::read(&mut r)?,
            balance: r.coins("balance")?,
            stake: r.coins("stake")?,
            unlock_ts: r.u32("unlock_ts")?,
            params: Params::from_cell(&*r.reference("params")?)?,
        };
        r.finish("proxy storage")?;
        Ok(data)
    }
}

/// The payload of a client contract's report (`client_proxy_request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientPayload {
    /// `client_proxy_top_up amount:coins send_excesses_to:addr`: a deposit (stays in the pool
    /// while the proxy is normal, else goes back to the client's owner).
    TopUp {
        /// The deposit.
        amount: Coins,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `client_proxy_register nonce:u64`: the long-auth nonce, for the proxy software only.
    Register {
        /// The nonce from `client.proxyConnectionAuthLong`.
        nonce: u64,
    },
    /// `client_proxy_refund_granted amount:coins send_excesses_to:addr`.
    RefundGranted {
        /// Paid to the client's owner.
        amount: Coins,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `client_proxy_refund_force amount:coins send_excesses_to:addr`: paid out of the stake
    /// (at most all of it).
    RefundForce {
        /// Asked for.
        amount: Coins,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
}

impl ClientPayload {
    /// The payload op.
    pub fn op(&self) -> u32 {
        match self {
            ClientPayload::TopUp { .. } => op::CLIENT_PROXY_TOP_UP,
            ClientPayload::Register { .. } => op::CLIENT_PROXY_REGISTER,
            ClientPayload::RefundGranted { .. } => op::CLIENT_PROXY_REFUND_GRANTED,
            ClientPayload::RefundForce { .. } => op::CLIENT_PROXY_REFUND_FORCE,
        }
    }

    /// The payload cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        w.u32(self.op())?;
        match self {
            ClientPayload::Register { nonce } => {
                w.u64(*nonce)?;
            }
            ClientPayload::TopUp {
                amount,
                send_excesses_to,
            }
            | ClientPayload::RefundGranted {
                amount,
                send_excesses_to,
            }
            | ClientPayload::RefundForce {
                amount,
                send_excesses_to,
            } => {
                w.coins(*amount, "amount")?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
        }
        w.build()
    }

    /// Reads a payload cell.
    pub fn from_cell(cell: &Cell) -> Result<ClientPayload, CodecError> {
        let mut r = Reader::new(cell);
        let opcode = read_op(&mut r)?;
        let payload = match opcode {
            op::CLIENT_PROXY_REGISTER => ClientPayload::Register {
                nonce: r.u64("nonce")?,
            },
            op::CLIENT_PROXY_TOP_UP
            | op::CLIENT_PROXY_REFUND_GRANTED
            | op::CLIENT_PROXY_REFUND_FORCE => {
                let amount = r.coins("amount")?;
                let send_excesses_to = r.address("send_excesses_to")?;
                match opcode {
                    op::CLIENT_PROXY_TOP_UP => ClientPayload::TopUp {
                        amount,
                        send_excesses_to,
                    },
                    op::CLIENT_PROXY_REFUND_GRANTED => ClientPayload::RefundGranted {
                        amount,
                        send_excesses_to,
                    },
                    _ => ClientPayload::RefundForce {
                        amount,
                        send_excesses_to,
                    },
                }
            }
            other => {
                return Err(CodecError::UnknownOp {
                    layout: "client payload",
                    op: other,
                })
            }
        };
        r.finish("client payload")?;
        Ok(payload)
    }
}

/// The payload of a worker contract's report (`worker_proxy_request`):
/// `worker_proxy_payout_request worker_part:coins proxy_part:coins send_excesses_to:addr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPayload {
    /// Paid to the worker's owner: Δtokens × worker_fee_per_token.
    pub worker_part: Coins,
    /// Added to the proxy's commission: Δtokens × (price − worker_fee).
    pub proxy_part: Coins,
    /// Receives the excess.
    pub send_excesses_to: TonAddress,
}

impl WorkerPayload {
    /// The payload cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        Writer::new()
            .u32(op::WORKER_PROXY_PAYOUT_REQUEST)?
            .coins(self.worker_part, "worker_part")?
            .coins(self.proxy_part, "proxy_part")?
            .address(&self.send_excesses_to, "send_excesses_to")?
            .build()
    }

    /// Reads a payload cell.
    pub fn from_cell(cell: &Cell) -> Result<WorkerPayload, CodecError> {
        let mut r = Reader::new(cell);
        let opcode = read_op(&mut r)?;
        if opcode != op::WORKER_PROXY_PAYOUT_REQUEST {
            return Err(CodecError::UnknownOp {
                layout: "worker payload",
                op: opcode,
            });
        }
        let payload = WorkerPayload {
            worker_part: r.coins("worker_part")?,
            proxy_part: r.coins("proxy_part")?,
            send_excesses_to: r.address("send_excesses_to")?,
        };
        r.finish("worker payload")?;
        Ok(payload)
    }
}

/// Every body the proxy contract acts on or ignores on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyMessage {
    /// `worker_proxy_request query_id worker_owner:addr state:u2 tokens:u64 payload:(Maybe
    /// ^WorkerPayload)`, from a worker contract.
    WorkerRequest {
        /// The query id of the worker's operation.
        query_id: u64,
        /// The claimed worker owner (derive the worker address from it).
        worker_owner: TonAddress,
        /// The worker contract's state after the operation.
        state: State,
        /// Its tokens after the operation.
        tokens: u64,
        /// A payout request, or none (a registration, accepted from anyone).
        payload: Option<WorkerPayload>,
    },
    /// `client_proxy_request query_id client_owner:addr ^ClientReport payload:(Maybe
    /// ^ClientPayload)`, from a client contract.
    ClientRequest {
        /// The query id of the client's operation.
        query_id: u64,
        /// The claimed client owner (derive the client address from it).
        client_owner: TonAddress,
        /// The client contract's counters after the operation.
        report: ClientReport,
        /// What to do, or none ("info", accepted from anyone).
        payload: Option<ClientPayload>,
    },
    /// `ext_proxy_payout_request query_id send_excesses_to:addr`: pay the commission.
    PayoutRequest {
        /// Echoed.
        query_id: u64,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `ext_proxy_increase_stake query_id grams:coins send_excesses_to:addr`.
    IncreaseStake {
        /// Echoed.
        query_id: u64,
        /// Added to the stake (value must be ≥ grams + 0.1 TON).
        grams: Coins,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `owner_proxy_close query_id send_excesses_to:addr`.
    OwnerClose {
        /// Echoed.
        query_id: u64,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `ext_proxy_close_request_signed` or `ext_proxy_close_complete_request_signed`.
    Signed(SignedMessage),
    /// Op 0 + `c` (no query id): the owner starts closing.
    TextClose,
    /// Op 0 + `w` (no query id): commission and leftover to the owner.
    TextWithdraw,
    /// A `do_not_process` body with the save-state layout (ignored by the contract).
    SaveState(SaveState),
}

impl ProxyMessage {
    /// The body cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        match self {
            ProxyMessage::WorkerRequest {
                query_id,
                worker_owner,
                state,
                tokens,
                payload,
            } => {
                w.u32(op::WORKER_PROXY_REQUEST)?
                    .u64(*query_id)?
                    .address(worker_owner, "worker_owner")?;
                state.write(&mut w)?;
                w.u64(*tokens)?;
                let payload = payload.as_ref().map(WorkerPayload::to_cell).transpose()?;
                w.maybe_ref(payload.map(Cell::to_arc).as_ref())?;
            }
            ProxyMessage::ClientRequest {
                query_id,
                client_owner,
                report,
                payload,
            } => {
                w.u32(op::CLIENT_PROXY_REQUEST)?
                    .u64(*query_id)?
                    .address(client_owner, "client_owner")?
                    .child(report.to_cell()?)?;
                let payload = payload.as_ref().map(ClientPayload::to_cell).transpose()?;
                w.maybe_ref(payload.map(Cell::to_arc).as_ref())?;
            }
            ProxyMessage::PayoutRequest {
                query_id,
                send_excesses_to,
            } => {
                w.u32(op::EXT_PROXY_PAYOUT_REQUEST)?
                    .u64(*query_id)?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ProxyMessage::IncreaseStake {
                query_id,
                grams,
                send_excesses_to,
            } => {
                w.u32(op::EXT_PROXY_INCREASE_STAKE)?
                    .u64(*query_id)?
                    .coins(*grams, "grams")?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ProxyMessage::OwnerClose {
                query_id,
                send_excesses_to,
            } => {
                w.u32(op::OWNER_PROXY_CLOSE)?
                    .u64(*query_id)?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ProxyMessage::Signed(m) => return m.to_cell(),
            ProxyMessage::TextClose => {
                w.u32(op::TEXT_COMMAND)?.uint(8, u64::from(TEXT_CLOSE))?;
            }
            ProxyMessage::TextWithdraw => {
                w.u32(op::TEXT_COMMAND)?.uint(8, u64::from(TEXT_WITHDRAW))?;
            }
            ProxyMessage::SaveState(s) => return s.to_cell(),
        }
        w.build()
    }

    /// Reads a body by its op.
    pub fn from_cell(cell: &Cell) -> Result<ProxyMessage, CodecError> {
        let mut r = Reader::new(cell);
        let opcode = read_op(&mut r)?;
        let message = match opcode {
            op::TEXT_COMMAND => {
                let command = r.u8(8, "text command")?;
                match command {
                    TEXT_CLOSE => ProxyMessage::TextClose,
                    TEXT_WITHDRAW => ProxyMessage::TextWithdraw,
                    other => {
                        return Err(CodecError::UnknownTextCommand {
                            layout: "proxy",
                            command: other,
                        })
                    }
                }
            }
            op::DO_NOT_PROCESS => return Ok(ProxyMessage::SaveState(SaveState::from_cell(cell)?)),
            op::EXT_PROXY_CLOSE_REQUEST_SIGNED | op::EXT_PROXY_CLOSE_COMPLETE_REQUEST_SIGNED => {
                let query_id = r.u64("query_id")?;
                return Ok(ProxyMessage::Signed(SignedMessage::read_after_head(
                    r, opcode, query_id,
                )?));
            }
            op::WORKER_PROXY_REQUEST => {
                let query_id = r.u64("query_id")?;
                let worker_owner = r.address("worker_owner")?;
                let state = State::read(&mut r)?;
                let tokens = r.u64("tokens")?;
                let payload = r.maybe_ref("worker payload")?;
                ProxyMessage::WorkerRequest {
                    query_id,
                    worker_owner,
                    state,
                    tokens,
                    payload: read_optional(payload, WorkerPayload::from_cell)?,
                }
            }
            op::CLIENT_PROXY_REQUEST => {
                let query_id = r.u64("query_id")?;
                let client_owner = r.address("client_owner")?;
                let report = ClientReport::from_cell(&*r.reference("client state")?)?;
                let payload = r.maybe_ref("client payload")?;
                ProxyMessage::ClientRequest {
                    query_id,
                    client_owner,
                    report,
                    payload: read_optional(payload, ClientPayload::from_cell)?,
                }
            }
            op::EXT_PROXY_PAYOUT_REQUEST => ProxyMessage::PayoutRequest {
                query_id: r.u64("query_id")?,
                send_excesses_to: r.address("send_excesses_to")?,
            },
            op::EXT_PROXY_INCREASE_STAKE => ProxyMessage::IncreaseStake {
                query_id: r.u64("query_id")?,
                grams: r.coins("grams")?,
                send_excesses_to: r.address("send_excesses_to")?,
            },
            op::OWNER_PROXY_CLOSE => ProxyMessage::OwnerClose {
                query_id: r.u64("query_id")?,
                send_excesses_to: r.address("send_excesses_to")?,
            },
            other => {
                return Err(CodecError::UnknownOp {
                    layout: "proxy",
                    op: other,
                })
            }
        };
        r.finish("proxy message")?;
        Ok(message)
    }
}

fn read_optional<T>(
    cell: Option<ArcCell>,
    parse: fn(&Cell) -> Result<T, CodecError>,
) -> Result<Option<T>, CodecError> {
    cell.map(|c| parse(&c)).transpose()
}
