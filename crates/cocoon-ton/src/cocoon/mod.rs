//! Typed codecs for the on-chain interface of the deployed COCOON contracts: every storage
//! layout, every message body, the proxy-signed messages and the address derivation, as recorded
//! in `shared/reference/cocoon-contracts-facts.md` (cited as "facts §n") and implemented by the
//! Tolk contracts in `contracts/`.
//!
//! | module | what | facts |
//! |---|---|---|
//! | [`op`], [`exit`] | opcodes and exit codes | §1, §2 |
//! | [`common`] | contract states, `excesses`, `payout`, the proxy's save-state commit | §0, §11 |
//! | [`params`] | the params cell and its three variants | §3 |
//! | [`root`] | root storage (with its dictionaries), get-method results, root bodies | §4 |
//! | [`proxy`] | proxy storage, every body the proxy contract accepts, client/worker payloads | §5 |
//! | [`client`] | client storage, the state cell it reports, client bodies | §6 |
//! | [`worker`] | worker storage and bodies | §7 |
//! | [`signed`] | proxy-signed messages: layout, Ed25519 over the payload cell's hash | §8 |
//! | [`address`] | StateInit and the addresses of proxy, client, worker and wallet contracts | §9 |
//! | [`wallet`] | the cocoon wallet: storage, signed externals, owner bodies | §10 |
//!
//! Every type has `to_cell()` and `from_cell()`; building then parsing gives the same value, and
//! parsing then building gives the same bits (pinned against cells the contracts made, in
//! `contracts/fixtures/codecs.json`, by `tests/cocoon_codecs.rs`).
//!
//! **Parsing is strict and never panics.** Cells may come from anyone, so every read checks
//! what is left first and returns a [`CodecError`]. Stricter than the contracts, on purpose:
//! - a layout must be consumed exactly (no trailing bits or refs), including storage and params,
//!   which the contracts read without that check;
//! - addresses must be `addr_std` without anycast (facts §0); the contracts accept any
//!   `MsgAddress` and compare bits, but nothing they are deployed with or send uses another form;
//! - coins must use the fewest bytes (facts §0): the contracts write them so, and a non-minimal
//!   encoding would rebuild to other bits (and, in storage, another address);
//! - states are 0, 1 or 2.
//!
//! A cell that passes is therefore one we can rebuild bit for bit, which is what makes a parsed
//! signed message's payload hash equal to the hash of the re-encoded payload.

pub mod address;
mod cell;
pub mod client;
pub mod codes;
pub mod common;
mod dict;
pub mod exit;
pub mod op;
pub mod params;
pub mod proxy;
pub mod root;
pub mod signed;
pub mod wallet;
pub mod worker;

#[cfg(test)]
mod tests;

use tonlib_core::cell::{ArcCell, BagOfCells, Cell, TonCellError};

pub use address::StateInit;
pub use client::{ClientData, ClientMessage, ClientReport};
pub use codes::{codes, Codes};
pub use common::{Excesses, Payout, SaveState, State};
pub use params::Params;
pub use proxy::{ClientPayload, ProxyData, ProxyMessage, WorkerPayload};
pub use root::{CocoonData, CurParams, ProxyEntry, RootData, RootMessage};
pub use signed::{SignedAction, SignedMessage, SignedPayload};
pub use wallet::{WalletData, WalletExternal, WalletMessage};
pub use worker::{WorkerData, WorkerMessage};

/// A 256-bit value stored as 32 big-endian bytes: image, model and secret hashes, public keys.
pub type Hash256 = [u8; 32];

/// The largest bag of cells [`from_boc`] reads. Signed payments and storage cells are a few
/// hundred bytes; a root with thousands of hashes is still far below this.
pub const MAX_BOC_BYTES: usize = 1 << 20;

/// Why a cell could not be read as, or built from, one of the COCOON layouts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The cell ends before `field` (the contracts fail with exit 9 here).
    #[error("the cell ends before {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The reference holding `field` is missing.
    #[error("missing reference for {field}")]
    MissingReference {
        /// The field being read.
        field: &'static str,
    },
    /// Bits or refs are left after the last field of `layout`.
    #[error("{bits} bits and {refs} refs left after {layout}")]
    TrailingData {
        /// The layout that should have ended.
        layout: &'static str,
        /// Bits left.
        bits: usize,
        /// Refs left.
        refs: usize,
    },
    /// `field` is not an `addr_std` (tag `10`): `00` none, `01` external, `11` var.
    #[error("{field}: address tag {tag:#04b} is not addr_std")]
    UnsupportedAddress {
        /// The field being read.
        field: &'static str,
        /// The two tag bits.
        tag: u8,
    },
    /// `field` is an `addr_std` with an anycast prefix.
    #[error("{field}: anycast addresses are not used by COCOON")]
    AnycastAddress {
        /// The field being read.
        field: &'static str,
    },
    /// An address to write has a workchain outside `int8`.
    #[error("{field}: workchain {workchain} does not fit int8")]
    WorkchainOutOfRange {
        /// The field being written.
        field: &'static str,
        /// The workchain.
        workchain: i32,
    },
    /// `field` holds coins with a leading zero byte (facts §0: the encoding is minimal).
    #[error("{field}: coins are not minimally encoded")]
    NonMinimalCoins {
        /// The field being read.
        field: &'static str,
    },
    /// `field` is 2^120 nanoTON or more, which `VarUInteger 16` cannot hold.
    #[error("{field}: coins do not fit 120 bits")]
    CoinsTooLarge {
        /// The field being written.
        field: &'static str,
    },
    /// The body is empty: a plain top-up, not a message.
    #[error("empty body (a plain top-up)")]
    EmptyBody,
    /// The opcode is not one that `layout` accepts.
    #[error("{layout}: unknown opcode {op:#010x}")]
    UnknownOp {
        /// The layout (contract or payload) being read.
        layout: &'static str,
        /// The opcode found.
        op: u32,
    },
    /// A text command (op 0) other than the ones the contract knows.
    #[error("{layout}: unknown text command {command:#04x}")]
    UnknownTextCommand {
        /// The layout being read.
        layout: &'static str,
        /// The command byte.
        command: u8,
    },
    /// The params struct version is not 3 (the contracts fail with 1008).
    #[error("params struct version {0} (only 3 is understood)")]
    ParamsStructVersion(u8),
    /// A `u2` state field holds 3.
    #[error("state {0} is not normal (0), closing (1) or closed (2)")]
    InvalidState(u8),
    /// A registered-proxy entry is malformed (facts §4).
    #[error("registered proxy entry: {0}")]
    ProxyEntry(&'static str),
    /// A signed payload's op or query id differs from the outer body's (the contracts fail with
    /// 1005).
    #[error("signed payload op/query_id {payload_op:#010x}/{payload_query_id} differ from the body's {op:#010x}/{query_id}")]
    SignedPayloadMismatch {
        /// The outer op.
        op: u32,
        /// The outer query id.
        query_id: u64,
        /// The payload's op.
        payload_op: u32,
        /// The payload's query id.
        payload_query_id: u64,
    },
    /// A cocoon wallet external carries more than four messages.
    #[error("{0} messages in one wallet external (at most 4)")]
    TooManyMessages(usize),
    /// A dictionary is malformed or larger than we read.
    #[error("{field}: {reason}")]
    Dictionary {
        /// The dictionary.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The params have no code for the contract whose address is asked for (facts §3 variants).
    #[error("the params carry no {0} code")]
    MissingCode(&'static str),
    /// The bag of cells could not be read (or is larger than [`MAX_BOC_BYTES`]).
    #[error("bag of cells: {0}")]
    Boc(String),
    /// tonlib-core refused to build a cell (more than 1023 bits or 4 refs).
    #[error("cell: {0}")]
    Cell(String),
}

impl From<TonCellError> for CodecError {
    fn from(e: TonCellError) -> CodecError {
        CodecError::Cell(e.to_string())
    }
}

/// The bag of cells (with CRC32) of `cell`, as `proxy.signedPayment.data` and toncenter carry.
pub fn to_boc(cell: &Cell) -> Result<Vec<u8>, CodecError> {
    BagOfCells::from_root(cell.clone())
        .serialize(true)
        .map_err(|e| CodecError::Boc(e.to_string()))
}

/// The single root of a bag of cells of at most [`MAX_BOC_BYTES`].
pub fn from_boc(bytes: &[u8]) -> Result<ArcCell, CodecError> {
    if bytes.len() > MAX_BOC_BYTES {
        return Err(CodecError::Boc(format!("{} bytes", bytes.len())));
    }
    crate::boc::parse(bytes)
        .and_then(|b| b.single_root().map_err(|e| e.to_string()))
        .map_err(CodecError::Boc)
}
