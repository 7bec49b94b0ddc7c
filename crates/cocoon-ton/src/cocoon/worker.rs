//! The worker contract (facts §7): one per (proxy contract, worker owner); it counts the tokens
//! the worker has been paid for.
//!
//! Storage: `owner:addr proxy_sc:addr proxy_public_key:u256 state:u2 tokens:u64 ^params`
//! (variant 0). Bodies: the two signed payouts (see [`super::signed`]) and
//! `owner_worker_register query_id send_excesses_to:addr`. Its reports to the proxy are
//! [`super::ProxyMessage::WorkerRequest`].
//!
//! Pitfalls (facts §13): a signed payout needs strictly more than 0.1 TON attached; payout is
//! strict, last payout non-strict; a closed worker answers 1006 to everything; the deployed data
//! holds params without code.

use tonlib_core::cell::Cell;
use tonlib_core::TonAddress;

use super::cell::{read_op, Reader, Writer};
use super::{op, CodecError, Hash256, Params, SignedMessage, State};

/// The worker contract's storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerData {
    /// Receives the payouts.
    pub owner: TonAddress,
    /// The proxy contract.
    pub proxy: TonAddress,
    /// The proxy's signing key.
    pub proxy_public_key: Hash256,
    /// Normal or closed.
    pub state: State,
    /// Tokens paid so far (only grows).
    pub tokens: u64,
    /// Params variant 0.
    pub params: Params,
}

impl WorkerData {
    /// The data at deploy (facts §9): state 0, no tokens, params without code.
    pub fn initial(
        owner: TonAddress,
        proxy: TonAddress,
        proxy_public_key: Hash256,
        params: &Params,
    ) -> WorkerData {
        WorkerData {
            owner,
            proxy,
            proxy_public_key,
            state: State::Normal,
            tokens: 0,
            params: params.without_code(),
        }
    }

    /// The storage cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        w.address(&self.owner, "owner")?
            .address(&self.proxy, "proxy")?
            .bytes(&self.proxy_public_key)?;
        self.state.write(&mut w)?;
        w.u64(self.tokens)?.child(self.params.to_cell()?)?.build()
    }

    /// Reads the storage cell.
    pub fn from_cell(cell: &Cell) -> Result<WorkerData, CodecError> {
        let mut r = Reader::new(cell);
        let data = WorkerData {
            owner: r.address("owner")?,
            proxy: r.address("proxy")?,
            proxy_public_key: r.hash("proxy_public_key")?,
            state: State::read(&mut r)?,
            tokens: r.u64("tokens")?,
            params: Params::from_cell(&*r.reference("params")?)?,
        };
        r.finish("worker storage")?;
        Ok(data)
    }
}

/// Every body the worker contract handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerMessage {
    /// `ext_worker_payout_request_signed` or `ext_worker_last_payout_request_signed`.
    Signed(SignedMessage),
    /// `owner_worker_register query_id send_excesses_to:addr`: a report without payload.
    Register {
        /// Echoed.
        query_id: u64,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
}

impl WorkerMessage {
    /// The body cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        match self {
            WorkerMessage::Signed(m) => m.to_cell(),
            WorkerMessage::Register {
                query_id,
                send_excesses_to,
            } => Writer::new()
                .u32(op::OWNER_WORKER_REGISTER)?
                .u64(*query_id)?
                .address(send_excesses_to, "send_excesses_to")?
                .build(),
        }
    }

    /// Reads a body by its op.
    pub fn from_cell(cell: &Cell) -> Result<WorkerMessage, CodecError> {
        let mut r = Reader::new(cell);
        let opcode = read_op(&mut r)?;
        match opcode {
            op::EXT_WORKER_PAYOUT_REQUEST_SIGNED | op::EXT_WORKER_LAST_PAYOUT_REQUEST_SIGNED => {
                let query_id = r.u64("query_id")?;
                Ok(WorkerMessage::Signed(SignedMessage::read_after_head(
                    r, opcode, query_id,
                )?))
            }
            op::OWNER_WORKER_REGISTER => {
                let query_id = r.u64("query_id")?;
                let send_excesses_to = r.address("send_excesses_to")?;
                r.finish("worker message")?;
                Ok(WorkerMessage::Register {
                    query_id,
                    send_excesses_to,
                })
            }
            other => Err(CodecError::UnknownOp {
                layout: "worker",
                op: other,
            }),
        }
    }
}
