//! Ledger records and their binary encoding (version 1), the bytes the hash chain covers.
//!
//! ```text
//! record        = version:u8 (= 1) seqno:u64 kind:u8 body
//! charge        (kind 1) = request_id:[32] client:key worker:key tokens:u64
//!                          price_per_token:u128 worker_fee_per_token:u128
//! sync_client   (kind 2) = client:key balance_nano:u128 stake_nano:u128 tokens_used:u64
//! signed_charge (kind 3) = client:key tokens:u64
//! signed_payout (kind 4) = worker:key tokens:u64
//! progress      (kind 5) = request_id:[32] client:key worker:key tokens:u64
//! key           = len:u16 (1..=256) UTF-8 bytes
//! ```
//!
//! Integers are little-endian. The encoding is canonical: nothing may follow the body, so a
//! decoded record re-encodes to exactly the bytes it came from. Decoding checks every length
//! against the bytes that remain and never panics.

use std::fmt;

/// The encoding version written by this build.
pub const RECORD_VERSION: u8 = 1;

/// Longest client or worker key, in bytes. A TON address is 48 (user-friendly) or 66 (raw)
/// characters; the margin leaves room for prefixes without letting one record grow large.
pub const MAX_KEY_LEN: usize = 256;

const KIND_CHARGE: u8 = 1;
const KIND_SYNC_CLIENT: u8 = 2;
const KIND_SIGNED_CHARGE: u8 = 3;
const KIND_SIGNED_PAYOUT: u8 = 4;
const KIND_PROGRESS: u8 = 5;

/// One entry of the ledger. Entries are appended, never changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A finished request billed to a client and credited to a worker.
    Charge(Charge),
    /// The client contract's state as last read from the chain.
    SyncClient {
        /// Client key.
        client: String,
        /// The contract's logical balance, nano-TON.
        balance_nano: u128,
        /// The contract's stake, nano-TON.
        stake_nano: u128,
        /// The contract's `tokens_used` (tokens already charged on chain).
        tokens_used: u64,
    },
    /// The proxy signed a `charge_signed(tokens)` for the client's contract.
    SignedCharge {
        /// Client key.
        client: String,
        /// The cumulative token count signed.
        tokens: u64,
    },
    /// The proxy signed a `worker_payout_signed(tokens)` for the worker's contract.
    SignedPayout {
        /// Worker key.
        worker: String,
        /// The cumulative token count signed.
        tokens: u64,
    },
    /// A running request had delivered work worth at least `tokens` (a checkpoint of a long
    /// answer). Its charge, when it finishes, supersedes it; one the proxy never charged (it
    /// crashed) is charged for `tokens` when the ledger is opened again.
    Progress(Progress),
}

/// The body of [`Record::Progress`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The request's id (the one its charge will carry).
    pub request_id: [u8; 32],
    /// Client key.
    pub client: String,
    /// Worker key.
    pub worker: String,
    /// Tokens delivered so far (never above the request's reservation).
    pub tokens: u64,
}

/// The body of [`Record::Charge`]. Prices are recorded with each charge so that history keeps
/// its meaning when the configured prices change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// Unique id of the request; a second charge with the same id is refused.
    pub request_id: [u8; 32],
    /// Client key.
    pub client: String,
    /// Worker key.
    pub worker: String,
    /// Billed tokens.
    pub tokens: u64,
    /// Nano-TON per token charged to the client.
    pub price_per_token: u128,
    /// Nano-TON per token credited to the worker.
    pub worker_fee_per_token: u128,
}

/// Why bytes are not a record.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the record does.
    #[error("record truncated: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Where the missing field starts.
        offset: usize,
        /// How many bytes it needed.
        needed: usize,
    },
    /// A version this build does not read.
    #[error("unsupported record version {0}")]
    UnsupportedVersion(u8),
    /// An unknown record kind.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// A key that is empty, too long, or not UTF-8.
    #[error("invalid key at offset {0}")]
    InvalidKey(usize),
    /// Bytes after the end of the record.
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
}

impl Record {
    /// Appends the encoding of this record at position `seqno` to `out`.
    ///
    /// Keys longer than [`MAX_KEY_LEN`] cannot be encoded; the ledger refuses them before a
    /// record is built (`LedgerError::InvalidKey`), so here they are truncated to keep the
    /// function total — the result would then fail to decode, which the writer never produces.
    pub fn encode(&self, seqno: u64, out: &mut Vec<u8>) {
        out.push(RECORD_VERSION);
        out.extend_from_slice(&seqno.to_le_bytes());
        match self {
            Record::Charge(charge) => {
                out.push(KIND_CHARGE);
                out.extend_from_slice(&charge.request_id);
                put_key(out, &charge.client);
                put_key(out, &charge.worker);
                out.extend_from_slice(&charge.tokens.to_le_bytes());
                out.extend_from_slice(&charge.price_per_token.to_le_bytes());
                out.extend_from_slice(&charge.worker_fee_per_token.to_le_bytes());
            }
            Record::SyncClient {
                client,
                balance_nano,
                stake_nano,
                tokens_used,
            } => {
                out.push(KIND_SYNC_CLIENT);
                put_key(out, client);
                out.extend_from_slice(&balance_nano.to_le_bytes());
                out.extend_from_slice(&stake_nano.to_le_bytes());
                out.extend_from_slice(&tokens_used.to_le_bytes());
            }
            Record::SignedCharge { client, tokens } => {
                out.push(KIND_SIGNED_CHARGE);
                put_key(out, client);
                out.extend_from_slice(&tokens.to_le_bytes());
            }
            Record::SignedPayout { worker, tokens } => {
                out.push(KIND_SIGNED_PAYOUT);
                put_key(out, worker);
                out.extend_from_slice(&tokens.to_le_bytes());
            }
            Record::Progress(progress) => {
                out.push(KIND_PROGRESS);
                out.extend_from_slice(&progress.request_id);
                put_key(out, &progress.client);
                put_key(out, &progress.worker);
                out.extend_from_slice(&progress.tokens.to_le_bytes());
            }
        }
    }

    /// The encoding of this record at position `seqno`.
    pub fn to_bytes(&self, seqno: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode(seqno, &mut out);
        out
    }

    /// Decodes one record and its seqno; the bytes must hold exactly one record.
    pub fn decode(bytes: &[u8]) -> Result<(u64, Record), DecodeError> {
        let mut reader = Reader { bytes, offset: 0 };
        let version = reader.u8()?;
        if version != RECORD_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let seqno = reader.u64()?;
        let record = match reader.u8()? {
            KIND_CHARGE => Record::Charge(Charge {
                request_id: reader.array()?,
                client: reader.key()?,
                worker: reader.key()?,
                tokens: reader.u64()?,
                price_per_token: reader.u128()?,
                worker_fee_per_token: reader.u128()?,
            }),
            KIND_SYNC_CLIENT => Record::SyncClient {
                client: reader.key()?,
                balance_nano: reader.u128()?,
                stake_nano: reader.u128()?,
                tokens_used: reader.u64()?,
            },
            KIND_SIGNED_CHARGE => Record::SignedCharge {
                client: reader.key()?,
                tokens: reader.u64()?,
            },
            KIND_SIGNED_PAYOUT => Record::SignedPayout {
                worker: reader.key()?,
                tokens: reader.u64()?,
            },
            KIND_PROGRESS => Record::Progress(Progress {
                request_id: reader.array()?,
                client: reader.key()?,
                worker: reader.key()?,
                tokens: reader.u64()?,
            }),
            other => return Err(DecodeError::UnknownKind(other)),
        };
        let rest = bytes.len().saturating_sub(reader.offset);
        if rest != 0 {
            return Err(DecodeError::TrailingBytes(rest));
        }
        Ok((seqno, record))
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::Charge(c) => write!(
                f,
                "charge {} tokens of {} to {} (request {})",
                c.tokens,
                c.client,
                c.worker,
                hex::encode(c.request_id)
            ),
            Record::SyncClient {
                client,
                balance_nano,
                tokens_used,
                ..
            } => write!(
                f,
                "sync {client}: balance {balance_nano} nano, {tokens_used} tokens used on chain"
            ),
            Record::SignedCharge { client, tokens } => {
                write!(f, "signed charge of {client} up to {tokens} tokens")
            }
            Record::SignedPayout { worker, tokens } => {
                write!(f, "signed payout of {worker} up to {tokens} tokens")
            }
            Record::Progress(p) => write!(
                f,
                "progress of request {}: {} tokens of {} to {}",
                hex::encode(p.request_id),
                p.tokens,
                p.client,
                p.worker
            ),
        }
    }
}

/// Whether `key` can be a client or worker key.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN
}

fn put_key(out: &mut Vec<u8>, key: &str) {
    let bytes = &key.as_bytes()[..key.len().min(MAX_KEY_LEN)];
    // At most MAX_KEY_LEN (256), so the cast cannot truncate.
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, needed: usize) -> Result<&'a [u8], DecodeError> {
        let truncated = DecodeError::Truncated {
            offset: self.offset,
            needed,
        };
        let end = self.offset.checked_add(needed).ok_or(truncated.clone())?;
        let slice = self.bytes.get(self.offset..end).ok_or(truncated)?;
        self.offset = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    fn key(&mut self) -> Result<String, DecodeError> {
        let at = self.offset;
        let len = usize::from(u16::from_le_bytes(self.array()?));
        if len == 0 || len > MAX_KEY_LEN {
            return Err(DecodeError::InvalidKey(at));
        }
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidKey(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        // Any Unicode, trimmed to the byte limit on a character boundary.
        "\\PC{1,80}".prop_map(|s| {
            let mut end = s.len().min(MAX_KEY_LEN);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        })
    }

    pub(crate) fn record() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                any::<[u8; 32]>(),
                key(),
                key(),
                any::<u64>(),
                any::<u128>(),
                any::<u128>()
            )
                .prop_map(|(request_id, client, worker, tokens, price, fee)| {
                    Record::Charge(Charge {
                        request_id,
                        client,
                        worker,
                        tokens,
                        price_per_token: price,
                        worker_fee_per_token: fee,
                    })
                }),
            (key(), any::<u128>(), any::<u128>(), any::<u64>()).prop_map(
                |(client, balance_nano, stake_nano, tokens_used)| Record::SyncClient {
                    client,
                    balance_nano,
                    stake_nano,
                    tokens_used,
                }
            ),
            (key(), any::<u64>())
                .prop_map(|(client, tokens)| Record::SignedCharge { client, tokens }),
            (key(), any::<u64>())
                .prop_map(|(worker, tokens)| Record::SignedPayout { worker, tokens }),
            (any::<[u8; 32]>(), key(), key(), any::<u64>()).prop_map(
                |(request_id, client, worker, tokens)| Record::Progress(Progress {
                    request_id,
                    client,
                    worker,
                    tokens,
                })
            ),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(record in record(), seqno in any::<u64>()) {
            let bytes = record.to_bytes(seqno);
            prop_assert_eq!(Record::decode(&bytes), Ok((seqno, record)));
            // Every strict prefix of a record is truncated, never a shorter record.
            for cut in 0..bytes.len() {
                prop_assert!(Record::decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_decode_canonically(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..400),
                // Mostly past the version byte, with a plausible kind, to reach the fields.
                (1u8..=5, proptest::collection::vec(any::<u8>(), 0..400)).prop_map(|(kind, rest)| {
                    let mut bytes = vec![RECORD_VERSION, 1, 0, 0, 0, 0, 0, 0, 0, kind];
                    bytes.extend(rest);
                    bytes
                }),
            ]
        ) {
            if let Ok((seqno, record)) = Record::decode(&bytes) {
                prop_assert_eq!(record.to_bytes(seqno), bytes);
            }
        }

        #[test]
        fn mutated_records_never_panic(record in record(), position in any::<prop::sample::Index>(), xor in 1u8..) {
            let mut bytes = record.to_bytes(7);
            let at = position.index(bytes.len());
            bytes[at] ^= xor;
            if let Ok((seqno, decoded)) = Record::decode(&bytes) {
                prop_assert_eq!(decoded.to_bytes(seqno), bytes);
            }
        }
    }

    #[test]
    fn known_encoding() {
        let record = Record::SignedCharge {
            client: "ab".into(),
            tokens: 5,
        };
        assert_eq!(
            hex::encode(record.to_bytes(1)),
            "01010000000000000003020061620500000000000000"
        );
        assert_eq!(
            Record::decode(&[2]),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let mut bytes = record.to_bytes(1);
        bytes.push(0);
        assert_eq!(Record::decode(&bytes), Err(DecodeError::TrailingBytes(1)));
    }
}
