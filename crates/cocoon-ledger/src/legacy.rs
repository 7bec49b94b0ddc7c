//! The format before the log file: one redb database with three tables. Read only, to migrate
//! an existing file (see `store::open`); nothing writes it any more.
//!
//! Tables:
//! - `meta`: `format` → `[1]`, `public_key` → the proxy's Ed25519 key (32 bytes);
//! - `records`: seqno → `h_n ‖ encoding(record_n)`;
//! - `signatures`: seqno → Ed25519 signature, for the last record of every batch.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use crate::accounts::Books;
use crate::chain::{genesis_hash, verify_batch, PublicKey, Signature};
use crate::error::{CorruptReason, OpenError};
use crate::store::{verify_row, Head};

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
pub(crate) const SIGNATURES: TableDefinition<u64, [u8; 64]> = TableDefinition::new("signatures");

/// The first bytes of every redb file.
pub(crate) const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// The only redb format the ledger ever wrote.
const FORMAT: u8 = 1;

/// One committed batch of the old file: its rows (`seqno`, `h_n ‖ encoding`) and the signature
/// of its last record.
pub(crate) struct Batch {
    pub(crate) rows: Vec<(u64, Vec<u8>)>,
    pub(crate) signature: Signature,
}

fn corrupt(seqno: u64, reason: CorruptReason) -> OpenError {
    OpenError::Corrupt { seqno, reason }
}

fn redb_error(error: impl Into<redb::Error>) -> OpenError {
    OpenError::Storage(std::io::Error::other(format!(
        "reading the old redb ledger: {}",
        error.into()
    )))
}

/// Reads and verifies the redb ledger at `path` exactly as the redb-based ledger did at open
/// (key, seqnos, hash chain, signatures, rules), and returns its batches and head.
pub(crate) fn read_verified(
    path: &Path,
    public_key: &PublicKey,
) -> Result<(Vec<Batch>, Head), OpenError> {
    let db = Database::open(path).map_err(redb_error)?;
    let txn = db.begin_read().map_err(redb_error)?;
    let meta = match txn.open_table(META) {
        Ok(table) => Some(table),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(redb_error(e)),
    };
    let format = match &meta {
        Some(meta) => meta
            .get("format")
            .map_err(redb_error)?
            .map(|v| v.value().to_vec()),
        None => None,
    };
    let records = match txn.open_table(RECORDS) {
        Ok(table) => Some(table),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(redb_error(e)),
    };
    match (format.as_deref(), &meta) {
        (None, _) => {
            let empty = match &records {
                Some(records) => records.iter().map_err(redb_error)?.next().is_none(),
                None => true,
            };
            if !empty {
                return Err(OpenError::UnsupportedFormat(
                    "records without a format marker".into(),
                ));
            }
            // A database the old code created but never wrote to: an empty ledger.
            let head = Head {
                seqno: 0,
                hash: genesis_hash(public_key),
            };
            return Ok((Vec::new(), head));
        }
        (Some([FORMAT]), Some(meta)) => {
            let stored = meta
                .get("public_key")
                .map_err(redb_error)?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            let file_key: [u8; 32] = stored
                .as_slice()
                .try_into()
                .map_err(|_| OpenError::UnsupportedFormat("public key is not 32 bytes".into()))?;
            if &file_key != public_key {
                return Err(OpenError::WrongKey {
                    file_key,
                    configured_key: *public_key,
                });
            }
        }
        (Some(other), _) => {
            return Err(OpenError::UnsupportedFormat(format!(
                "format marker {}",
                hex::encode(other)
            )))
        }
    }
    let Some(records) = records else {
        return Ok((
            Vec::new(),
            Head {
                seqno: 0,
                hash: genesis_hash(public_key),
            },
        ));
    };
    let signatures_table = match txn.open_table(SIGNATURES) {
        Ok(table) => Some(table),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(redb_error(e)),
    };
    let mut signatures = match &signatures_table {
        Some(table) => Some(table.iter().map_err(redb_error)?.peekable()),
        None => None,
    };

    let mut books = Books::default();
    let mut batches = Vec::new();
    let mut rows = Vec::new();
    let mut head = Head {
        seqno: 0,
        hash: genesis_hash(public_key),
    };
    let mut head_signed = true;
    for row in records.iter().map_err(redb_error)? {
        let (key, value) = row.map_err(redb_error)?;
        let value = value.value();
        head = verify_row(&head, &mut books, key.value(), value)?;
        let seqno = head.seqno;
        head_signed = false;
        rows.push((seqno, value.to_vec()));

        // Signatures are keyed by the record they follow; both tables ascend together.
        let Some(signatures) = signatures.as_mut() else {
            continue;
        };
        if let Some(signature_row) = signatures.peek() {
            let signed_seqno = match signature_row {
                Ok((key, _)) => key.value(),
                Err(_) => match signatures.next() {
                    Some(Err(error)) => return Err(redb_error(error)),
                    _ => 0,
                },
            };
            if signed_seqno < seqno {
                return Err(corrupt(signed_seqno, CorruptReason::DanglingSignature));
            }
            if signed_seqno == seqno {
                let (_, signature) = signatures
                    .next()
                    .expect("peeked just above")
                    .map_err(redb_error)?;
                let signature = signature.value();
                if !verify_batch(public_key, seqno, &head.hash, &signature) {
                    return Err(OpenError::BadSignature { seqno });
                }
                head_signed = true;
                batches.push(Batch {
                    rows: std::mem::take(&mut rows),
                    signature,
                });
            }
        }
    }
    if let Some(row) = signatures.as_mut().and_then(|s| s.next()) {
        let (key, _) = row.map_err(redb_error)?;
        return Err(corrupt(key.value(), CorruptReason::DanglingSignature));
    }
    if !head_signed {
        return Err(OpenError::UnsignedHead { seqno: head.seqno });
    }
    Ok((batches, head))
}
