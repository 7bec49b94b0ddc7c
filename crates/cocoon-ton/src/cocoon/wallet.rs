//! The cocoon wallet (facts §10): a wallet-v3-style node wallet with an owner who can withdraw,
//! block and unblock it, and send any message through it.
//!
//! Storage: `seqno:u32 subwallet:u32 public_key:u256 status:u32 (bit 0 = blocked) owner:addr`.
//! External: `signature:bits512 subwallet:u32 valid_until:u32 seqno:u32 (mode:u8 ^message)*`
//! with at most four messages; the signature covers the representation hash of the cell made of
//! everything after the signature. Internal bodies from the owner: `owner_wallet_send_message
//! query_id mode:u8 ^message` and the text commands `w`, `b`, `u`.
//!
//! Pitfalls (facts §13): a transfer with a comment from anyone but the owner bounces (1040);
//! externals fail below 2 TON (1035). The address of *our* wallet differs from the C++ runner's
//! (other code); any wallet works as far as the contracts are concerned.

use tonlib_core::cell::{ArcCell, Cell};
use tonlib_core::TonAddress;

use super::cell::{read_op, Reader, Writer};
use super::{op, CodecError, Hash256};
use crate::keys::{verify_ed25519, ProxyKey};

/// Text command: everything but 0.01 TON to the owner.
pub const TEXT_WITHDRAW: u8 = b'w';
/// Text command: refuse externals.
pub const TEXT_BLOCK: u8 = b'b';
/// Text command: accept externals again.
pub const TEXT_UNBLOCK: u8 = b'u';
/// Bit 0 of `status`.
pub const STATUS_BLOCKED: u32 = 1;
/// The most messages one external carries.
pub const MAX_MESSAGES: usize = 4;

/// The cocoon wallet's storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletData {
    /// The next external's seqno.
    pub seqno: u32,
    /// The subwallet id (the C++ uses 0).
    pub subwallet: u32,
    /// The key that signs externals.
    pub public_key: Hash256,
    /// Bit 0: externals blocked.
    pub status: u32,
    /// The owner.
    pub owner: TonAddress,
}

impl WalletData {
    /// The data at deploy (facts §9): seqno 0, subwallet 0, status 0.
    pub fn initial(public_key: Hash256, owner: TonAddress) -> WalletData {
        WalletData {
            seqno: 0,
            subwallet: 0,
            public_key,
            status: 0,
            owner,
        }
    }

    /// Whether the owner blocked externals.
    pub fn is_blocked(&self) -> bool {
        self.status & STATUS_BLOCKED != 0
    }

    /// The storage cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        Writer::new()
            .u32(self.seqno)?
            .u32(self.subwallet)?
            .bytes(&self.public_key)?
            .u32(self.status)?
            .address(&self.owner, "owner")?
            .build()
    }

    /// Reads the storage cell.
    pub fn from_cell(cell: &Cell) -> Result<WalletData, CodecError> {
        let mut r = Reader::new(cell);
        let data = WalletData {
            seqno: r.u32("seqno")?,
            subwallet: r.u32("subwallet")?,
            public_key: r.hash("public_key")?,
            status: r.u32("status")?,
            owner: r.address("owner")?,
        };
        r.finish("wallet storage")?;
        Ok(data)
    }
}

/// A signed external message to a cocoon wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletExternal {
    /// Ed25519 over the hash of [`WalletExternal::signed_cell`].
    pub signature: [u8; 64],
    /// Must equal the stored subwallet (1033).
    pub subwallet: u32,
    /// Must be in the future (1030).
    pub valid_until: u32,
    /// Must equal the stored seqno (1032).
    pub seqno: u32,
    /// Up to four `(send mode, full internal message)` pairs.
    pub messages: Vec<(u8, ArcCell)>,
}

impl WalletExternal {
    /// Builds and signs an external.
    pub fn sign(
        key: &ProxyKey,
        subwallet: u32,
        valid_until: u32,
        seqno: u32,
        messages: Vec<(u8, ArcCell)>,
    ) -> Result<WalletExternal, CodecError> {
        let mut external = WalletExternal {
            signature: [0; 64],
            subwallet,
            valid_until,
            seqno,
            messages,
        };
        let hash = external.signed_cell()?.cell_hash();
        external.signature = key.sign(hash.as_slice());
        Ok(external)
    }

    /// The cell the signature covers: everything after the signature.
    pub fn signed_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        self.write_unsigned(&mut w)?;
        w.build()
    }

    fn write_unsigned(&self, w: &mut Writer) -> Result<(), CodecError> {
        if self.messages.len() > MAX_MESSAGES {
            return Err(CodecError::TooManyMessages(self.messages.len()));
        }
        w.u32(self.subwallet)?
            .u32(self.valid_until)?
            .u32(self.seqno)?;
        for (mode, message) in &self.messages {
            w.uint(8, u64::from(*mode))?.reference(message)?;
        }
        Ok(())
    }

    /// Whether the signature is `public_key`'s (1034).
    pub fn verify(&self, public_key: &Hash256) -> bool {
        match self.signed_cell() {
            Ok(cell) => verify_ed25519(public_key, cell.cell_hash().as_slice(), &self.signature),
            Err(_) => false,
        }
    }

    /// The external body.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        w.bytes(&self.signature)?;
        self.write_unsigned(&mut w)?;
        w.build()
    }

    /// Reads an external body: one mode byte per ref, nothing else.
    pub fn from_cell(cell: &Cell) -> Result<WalletExternal, CodecError> {
        let mut r = Reader::new(cell);
        let signature = r.bytes::<64>("signature")?;
        let subwallet = r.u32("subwallet")?;
        let valid_until = r.u32("valid_until")?;
        let seqno = r.u32("seqno")?;
        let mut messages = Vec::new();
        while r.remaining_refs() > 0 {
            let mode = r.u8(8, "mode")?;
            messages.push((mode, r.reference("message")?));
        }
        r.finish("wallet external")?;
        Ok(WalletExternal {
            signature,
            subwallet,
            valid_until,
            seqno,
            messages,
        })
    }
}

/// The internal bodies a cocoon wallet acts on (owner only; `excesses`, `payout` and
/// `do_not_process` from anyone are accepted and ignored: see [`super::common`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalletMessage {
    /// `owner_wallet_send_message query_id mode:u8 ^message`: sends the message as given.
    SendMessage {
        /// Not echoed anywhere.
        query_id: u64,
        /// The send mode.
        mode: u8,
        /// A full internal message.
        message: ArcCell,
    },
    /// Op 0 + `w`: everything but 0.01 TON to the owner, as a bounceable `w` comment (the
    /// wallet's answer has this same body).
    TextWithdraw,
    /// Op 0 + `b`: block externals.
    TextBlock,
    /// Op 0 + `u`: unblock externals.
    TextUnblock,
}

impl WalletMessage {
    /// The body cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        match self {
            WalletMessage::SendMessage {
                query_id,
                mode,
                message,
            } => {
                w.u32(op::OWNER_WALLET_SEND_MESSAGE)?
                    .u64(*query_id)?
                    .uint(8, u64::from(*mode))?
                    .reference(message)?;
            }
            WalletMessage::TextWithdraw => {
                w.u32(op::TEXT_COMMAND)?.uint(8, u64::from(TEXT_WITHDRAW))?;
            }
            WalletMessage::TextBlock => {
                w.u32(op::TEXT_COMMAND)?.uint(8, u64::from(TEXT_BLOCK))?;
            }
            WalletMessage::TextUnblock => {
                w.u32(op::TEXT_COMMAND)?.uint(8, u64::from(TEXT_UNBLOCK))?;
            }
        }
        w.build()
    }

    /// Reads a body.
    pub fn from_cell(cell: &Cell) -> Result<WalletMessage, CodecError> {
        let mut r = Reader::new(cell);
        let message = match read_op(&mut r)? {
            op::OWNER_WALLET_SEND_MESSAGE => WalletMessage::SendMessage {
                query_id: r.u64("query_id")?,
                mode: r.u8(8, "mode")?,
                message: r.reference("message")?,
            },
            op::TEXT_COMMAND => match r.u8(8, "text command")? {
                TEXT_WITHDRAW => WalletMessage::TextWithdraw,
                TEXT_BLOCK => WalletMessage::TextBlock,
                TEXT_UNBLOCK => WalletMessage::TextUnblock,
                other => {
                    return Err(CodecError::UnknownTextCommand {
                        layout: "wallet",
                        command: other,
                    })
                }
            },
            other => {
                return Err(CodecError::UnknownOp {
                    layout: "wallet",
                    op: other,
                })
            }
        };
        r.finish("wallet message")?;
        Ok(message)
    }
}
