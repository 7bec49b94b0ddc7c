//! What every contract shares (facts §0, §11): the `u2` state, the `excesses` and `payout`
//! answers, and the proxy software's save-state commit carried in a `do_not_process` body.

use tonlib_core::cell::Cell;

use super::cell::{read_op, Reader, Writer};
use super::{op, CodecError, Hash256};

/// A contract's state, stored as `u2` (facts §0). Workers use only `Normal` and `Closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum State {
    /// 0: operating.
    #[default]
    Normal,
    /// 1: closing; completes after the unlock time.
    Closing,
    /// 2: closed for good.
    Closed,
}

impl State {
    /// The stored value.
    pub fn as_u8(self) -> u8 {
        match self {
            State::Normal => 0,
            State::Closing => 1,
            State::Closed => 2,
        }
    }

    /// The state for a stored value; 3 is [`CodecError::InvalidState`].
    pub fn from_u8(value: u8) -> Result<State, CodecError> {
        match value {
            0 => Ok(State::Normal),
            1 => Ok(State::Closing),
            2 => Ok(State::Closed),
            other => Err(CodecError::InvalidState(other)),
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<State, CodecError> {
        State::from_u8(r.u8(2, "state")?)
    }

    pub(crate) fn write(self, w: &mut Writer) -> Result<(), CodecError> {
        w.uint(2, u64::from(self.as_u8()))?;
        Ok(())
    }
}

/// Reads `op query_id` and checks the op.
pub(crate) fn read_head(
    r: &mut Reader<'_>,
    expected: u32,
    layout: &'static str,
) -> Result<u64, CodecError> {
    let found = read_op(r)?;
    if found != expected {
        return Err(CodecError::UnknownOp { layout, op: found });
    }
    r.u64("query_id")
}

/// `excesses#2565934c query_id:u64`: everything above a contract's reserve, sent back
/// non-bounceable with send mode 128 (facts §0, excess rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Excesses {
    /// The query id of the message being answered.
    pub query_id: u64,
}

impl Excesses {
    /// The body cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        Writer::new().u32(op::EXCESSES)?.u64(self.query_id)?.build()
    }

    /// Reads the body; nothing may follow the query id.
    pub fn from_cell(cell: &Cell) -> Result<Excesses, CodecError> {
        let mut r = Reader::new(cell);
        let query_id = read_head(&mut r, op::EXCESSES, "excesses")?;
        r.finish("excesses")?;
        Ok(Excesses { query_id })
    }
}

/// `payout#c59a7cd3 query_id:u64`: a payment of the message's value, non-bounceable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payout {
    /// The query id of the message that caused it.
    pub query_id: u64,
}

impl Payout {
    /// The body cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        Writer::new().u32(op::PAYOUT)?.u64(self.query_id)?.build()
    }

    /// Reads the body; nothing may follow the query id.
    pub fn from_cell(cell: &Cell) -> Result<Payout, CodecError> {
        let mut r = Reader::new(cell);
        let query_id = read_head(&mut r, op::PAYOUT, "payout")?;
        r.finish("payout")?;
        Ok(Payout { query_id })
    }
}

/// The proxy software's save-state commit (facts §11): 416 bits, no refs —
/// `do_not_process:u32 random:u64 proxy_save_state:u32 seqno:i32 session_unique_hash:bits256`,
/// sent from the proxy's wallet to its proxy contract with 1 nanoTON. Every contract ignores it;
/// the proxy reads it back from its contract's transactions to mark commits durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveState {
    /// Random; in the query-id position.
    pub random: u64,
    /// The commit's sequence number.
    pub seqno: i32,
    /// 32 random bytes per process start.
    pub session_unique_hash: Hash256,
}

impl SaveState {
    /// The body cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        Writer::new()
            .u32(op::DO_NOT_PROCESS)?
            .u64(self.random)?
            .u32(op::PROXY_SAVE_STATE)?
            .u32(self.seqno as u32)?
            .bytes(&self.session_unique_hash)?
            .build()
    }

    /// Reads the body; the inner op must be `proxy_save_state`.
    pub fn from_cell(cell: &Cell) -> Result<SaveState, CodecError> {
        let mut r = Reader::new(cell);
        let random = read_head(&mut r, op::DO_NOT_PROCESS, "save_state")?;
        let inner = r.u32("proxy_save_state")?;
        if inner != op::PROXY_SAVE_STATE {
            return Err(CodecError::UnknownOp {
                layout: "do_not_process",
                op: inner,
            });
        }
        let seqno = r.u32("seqno")? as i32;
        let session_unique_hash = r.hash("session_unique_hash")?;
        r.finish("save_state")?;
        Ok(SaveState {
            random,
            seqno,
            session_unique_hash,
        })
    }
}
