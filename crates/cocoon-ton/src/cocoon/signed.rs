//! Proxy-signed messages (facts §8): charges and grant-refunds for client contracts, payouts for
//! worker contracts, close and close-complete for the proxy contract.
//!
//! Outer body: `op:u32 query_id:u64 send_excesses_to:addr signature:bits512 ^payload`, nothing
//! after. Payload cell, no refs: `op:u32 query_id:u64 [new_tokens:u64] expected_my_address:addr`
//! (the token count for the four payment ops, nothing for the two proxy close ops). The signature
//! is Ed25519 with the proxy key over the payload cell's 32-byte representation hash.
//!
//! Pitfalls (facts §13): the signature covers neither the outer body nor BoC bytes; the payload's
//! op and query id must equal the outer ones (1005, checked after the signature, 1007); the
//! excess address is *not* signed, so each submitter puts its own ([`SignedMessage::repack`]);
//! the query id is not a nonce — replay protection is the growing token count (strict for charge
//! and payout, non-strict for grant refund and last payout); `expected_my_address` is the target
//! contract's own address (1015).

use tonlib_core::cell::{ArcCell, Cell};
use tonlib_core::TonAddress;

use super::cell::{read_op, Reader, Writer};
use super::{from_boc, op, to_boc, CodecError, Hash256};
use crate::keys::{verify_ed25519, ProxyKey};

/// What a signed message asks for, with its op-specific payload field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedAction {
    /// `ext_client_charge_signed`: charge up to this cumulative token count (strict).
    ClientCharge {
        /// The client contract's new `tokens_used`.
        new_tokens_used: u64,
    },
    /// `ext_client_grant_refund_signed`: final charge (non-strict), then refund and close.
    ClientGrantRefund {
        /// The client contract's final `tokens_used`.
        new_tokens_used: u64,
    },
    /// `ext_worker_payout_request_signed`: pay up to this count (strict).
    WorkerPayout {
        /// The worker contract's new `tokens`.
        new_tokens: u64,
    },
    /// `ext_worker_last_payout_request_signed`: last payout (non-strict), then close.
    WorkerLastPayout {
        /// The worker contract's final `tokens`.
        new_tokens: u64,
    },
    /// `ext_proxy_close_request_signed`: start closing the proxy contract.
    ProxyClose,
    /// `ext_proxy_close_complete_request_signed`: complete closing after the unlock time.
    ProxyCloseComplete,
}

impl SignedAction {
    /// The opcode (outer and payload).
    pub fn op(&self) -> u32 {
        match self {
            SignedAction::ClientCharge { .. } => op::EXT_CLIENT_CHARGE_SIGNED,
            SignedAction::ClientGrantRefund { .. } => op::EXT_CLIENT_GRANT_REFUND_SIGNED,
            SignedAction::WorkerPayout { .. } => op::EXT_WORKER_PAYOUT_REQUEST_SIGNED,
            SignedAction::WorkerLastPayout { .. } => op::EXT_WORKER_LAST_PAYOUT_REQUEST_SIGNED,
            SignedAction::ProxyClose => op::EXT_PROXY_CLOSE_REQUEST_SIGNED,
            SignedAction::ProxyCloseComplete => op::EXT_PROXY_CLOSE_COMPLETE_REQUEST_SIGNED,
        }
    }

    /// The signed token count, for the four payment ops.
    pub fn tokens(&self) -> Option<u64> {
        match *self {
            SignedAction::ClientCharge { new_tokens_used }
            | SignedAction::ClientGrantRefund { new_tokens_used } => Some(new_tokens_used),
            SignedAction::WorkerPayout { new_tokens }
            | SignedAction::WorkerLastPayout { new_tokens } => Some(new_tokens),
            SignedAction::ProxyClose | SignedAction::ProxyCloseComplete => None,
        }
    }

    /// Whether `opcode` is one of the six signed ops.
    pub fn is_signed_op(opcode: u32) -> bool {
        matches!(
            opcode,
            op::EXT_CLIENT_CHARGE_SIGNED
                | op::EXT_CLIENT_GRANT_REFUND_SIGNED
                | op::EXT_WORKER_PAYOUT_REQUEST_SIGNED
                | op::EXT_WORKER_LAST_PAYOUT_REQUEST_SIGNED
                | op::EXT_PROXY_CLOSE_REQUEST_SIGNED
                | op::EXT_PROXY_CLOSE_COMPLETE_REQUEST_SIGNED
        )
    }

    fn read(opcode: u32, r: &mut Reader<'_>) -> Result<SignedAction, CodecError> {
        Ok(match opcode {
            op::EXT_CLIENT_CHARGE_SIGNED => SignedAction::ClientCharge {
                new_tokens_used: r.u64("new_tokens_used")?,
            },
            op::EXT_CLIENT_GRANT_REFUND_SIGNED => SignedAction::ClientGrantRefund {
                new_tokens_used: r.u64("new_tokens_used")?,
            },
            op::EXT_WORKER_PAYOUT_REQUEST_SIGNED => SignedAction::WorkerPayout {
                new_tokens: r.u64("new_tokens")?,
            },
            op::EXT_WORKER_LAST_PAYOUT_REQUEST_SIGNED => SignedAction::WorkerLastPayout {
                new_tokens: r.u64("new_tokens")?,
            },
            op::EXT_PROXY_CLOSE_REQUEST_SIGNED => SignedAction::ProxyClose,
            op::EXT_PROXY_CLOSE_COMPLETE_REQUEST_SIGNED => SignedAction::ProxyCloseComplete,
            other => {
                return Err(CodecError::UnknownOp {
                    layout: "signed payload",
                    op: other,
                })
            }
        })
    }
}

/// The part the proxy signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPayload {
    /// The op and its token count.
    pub action: SignedAction,
    /// Free; the C++ picks a random one. Must equal the outer query id.
    pub query_id: u64,
    /// The contract the message is for (`expected_my_address`).
    pub expected_address: TonAddress,
}

impl SignedPayload {
    /// The payload cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        w.u32(self.action.op())?.u64(self.query_id)?;
        if let Some(tokens) = self.action.tokens() {
            w.u64(tokens)?;
        }
        w.address(&self.expected_address, "expected_my_address")?;
        w.build()
    }

    /// Reads a payload cell (no refs, nothing after the address).
    pub fn from_cell(cell: &Cell) -> Result<SignedPayload, CodecError> {
        let mut r = Reader::new(cell);
        let opcode = read_op(&mut r)?;
        if !SignedAction::is_signed_op(opcode) {
            return Err(CodecError::UnknownOp {
                layout: "signed payload",
                op: opcode,
            });
        }
        let query_id = r.u64("query_id")?;
        let action = SignedAction::read(opcode, &mut r)?;
        let expected_address = r.address("expected_my_address")?;
        r.finish("signed payload")?;
        Ok(SignedPayload {
            action,
            query_id,
            expected_address,
        })
    }

    /// The payload cell's representation hash: what the signature covers.
    pub fn hash(&self) -> Result<Hash256, CodecError> {
        Ok(hash_of(&self.to_cell()?))
    }

    /// Signs the payload with the proxy key; `send_excesses_to` is the submitter's choice.
    pub fn sign(
        &self,
        key: &ProxyKey,
        send_excesses_to: TonAddress,
    ) -> Result<SignedMessage, CodecError> {
        let payload_hash = self.hash()?;
        Ok(SignedMessage {
            payload: self.clone(),
            send_excesses_to,
            signature: key.sign(&payload_hash),
            payload_hash,
        })
    }
}

fn hash_of(cell: &Cell) -> Hash256 {
    let mut out = [0; 32];
    out.copy_from_slice(cell.cell_hash().as_slice());
    out
}

/// A complete proxy-signed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMessage {
    /// The signed part.
    pub payload: SignedPayload,
    /// Where the contract sends the excess; not signed.
    pub send_excesses_to: TonAddress,
    /// Ed25519 over [`SignedMessage::payload_hash`].
    pub signature: [u8; 64],
    pub(super) payload_hash: Hash256,
}

impl SignedMessage {
    /// The representation hash of the payload cell as it was signed or received. Parsing accepts
    /// only payloads that re-encode to the same bits, so this is also the hash of
    /// `payload.to_cell()`.
    pub fn payload_hash(&self) -> &Hash256 {
        &self.payload_hash
    }

    /// Whether the signature is `proxy_public_key`'s (what the contracts check, 1007).
    pub fn verify(&self, proxy_public_key: &Hash256) -> bool {
        verify_ed25519(proxy_public_key, &self.payload_hash, &self.signature)
    }

    /// The same signed message with another excess address (the C++ `repack`); the signature
    /// stays valid.
    pub fn repack(&self, send_excesses_to: TonAddress) -> SignedMessage {
        SignedMessage {
            send_excesses_to,
            ..self.clone()
        }
    }

    /// The outer body cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let payload = self.payload.to_cell()?;
        Writer::new()
            .u32(self.payload.action.op())?
            .u64(self.payload.query_id)?
            .address(&self.send_excesses_to, "send_excesses_to")?
            .bytes(&self.signature)?
            .child(payload)?
            .build()
    }

    /// Reads an outer body with any of the six signed ops.
    pub fn from_cell(cell: &Cell) -> Result<SignedMessage, CodecError> {
        let mut r = Reader::new(cell);
        let opcode = read_op(&mut r)?;
        if !SignedAction::is_signed_op(opcode) {
            return Err(CodecError::UnknownOp {
                layout: "signed message",
                op: opcode,
            });
        }
        let query_id = r.u64("query_id")?;
        SignedMessage::read_after_head(r, opcode, query_id)
    }

    /// Reads the rest of an outer body whose op and query id have been read, to its end.
    pub(crate) fn read_after_head(
        mut r: Reader<'_>,
        opcode: u32,
        query_id: u64,
    ) -> Result<SignedMessage, CodecError> {
        let send_excesses_to = r.address("send_excesses_to")?;
        let signature = r.bytes::<64>("signature")?;
        let payload_cell: ArcCell = r.reference("signed payload")?;
        r.finish("signed message")?;
        let payload = SignedPayload::from_cell(&payload_cell)?;
        if payload.action.op() != opcode || payload.query_id != query_id {
            return Err(CodecError::SignedPayloadMismatch {
                op: opcode,
                query_id,
                payload_op: payload.action.op(),
                payload_query_id: payload.query_id,
            });
        }
        Ok(SignedMessage {
            payload,
            send_excesses_to,
            signature,
            payload_hash: hash_of(&payload_cell),
        })
    }

    /// The bag of cells of the outer body: `proxy.signedPayment.data` (facts §8, §12).
    pub fn to_boc(&self) -> Result<Vec<u8>, CodecError> {
        to_boc(&self.to_cell()?)
    }

    /// Reads `proxy.signedPayment.data`.
    pub fn from_boc(bytes: &[u8]) -> Result<SignedMessage, CodecError> {
        SignedMessage::from_cell(&*from_boc(bytes)?)
    }
}
