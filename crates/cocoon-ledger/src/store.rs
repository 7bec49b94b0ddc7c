//! The redb file: its tables, the verifying replay at open, batch writes and history reads.
//!
//! Tables:
//! - `meta`: `format` → `[1]`, `public_key` → the proxy's Ed25519 key (32 bytes);
//! - `records`: seqno → `h_n ‖ encoding(record_n)`;
//! - `signatures`: seqno → Ed25519 signature, for the last record of every batch.
//!
//! Rows are only ever inserted; nothing is updated or deleted.

use std::path::Path;

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError,
};

use crate::accounts::Books;
use crate::chain::{genesis_hash, next_hash, verify_batch, PublicKey, Signature, Signer};
use crate::error::{storage, CorruptReason, LedgerError, OpenError};
use crate::record::Record;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
pub(crate) const SIGNATURES: TableDefinition<u64, [u8; 64]> = TableDefinition::new("signatures");

/// The file format this build writes and reads.
const FORMAT: u8 = 1;

/// The position of the last record and the chain hash after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Seqno of the last record (0 for an empty ledger).
    pub seqno: u64,
    /// `h_seqno`.
    pub hash: [u8; 32],
}

/// A record as stored, with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its seqno.
    pub seqno: u64,
    /// The chain hash after it.
    pub hash: [u8; 32],
    /// The batch signature, when it ends a batch.
    pub signature: Option<Signature>,
    /// The record.
    pub record: Record,
}

/// What a verified file holds.
pub(crate) struct Replayed {
    pub(crate) books: Books,
    pub(crate) head: Head,
}

fn corrupt(seqno: u64, reason: CorruptReason) -> OpenError {
    OpenError::Corrupt { seqno, reason }
}

/// Opens (or creates) the database at `path`, checks it belongs to `signer`, verifies the
/// whole chain and every signature, and replays the records into books.
pub(crate) fn open(path: &Path, signer: &Signer) -> Result<(Database, Replayed), OpenError> {
    let db = Database::builder()
        .create(path)
        .map_err(redb::Error::from)?;
    let public_key = *signer.public_key();
    initialize(&db, &public_key)?;
    let replayed = replay(&db, &public_key)?;
    Ok((db, replayed))
}

/// Writes the meta table of a new file, or checks the one of an existing file.
fn initialize(db: &Database, public_key: &PublicKey) -> Result<(), OpenError> {
    let txn = db.begin_write().map_err(redb::Error::from)?;
    {
        let mut meta = txn.open_table(META).map_err(redb::Error::from)?;
        let format = meta
            .get("format")
            .map_err(redb::Error::from)?
            .map(|v| v.value().to_vec());
        match format.as_deref() {
            None => {
                // A new file, or one that lost its meta table: only the former may be empty
                // of records too.
                let records = txn.open_table(RECORDS).map_err(redb::Error::from)?;
                if !records.is_empty().map_err(redb::Error::from)? {
                    return Err(OpenError::UnsupportedFormat(
                        "records without a format marker".into(),
                    ));
                }
                meta.insert("format", [FORMAT].as_slice())
                    .map_err(redb::Error::from)?;
                meta.insert("public_key", public_key.as_slice())
                    .map_err(redb::Error::from)?;
            }
            Some([FORMAT]) => {
                let stored = meta
                    .get("public_key")
                    .map_err(redb::Error::from)?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default();
                let file_key: [u8; 32] = stored.as_slice().try_into().map_err(|_| {
                    OpenError::UnsupportedFormat("public key is not 32 bytes".into())
                })?;
                if &file_key != public_key {
                    return Err(OpenError::WrongKey {
                        file_key,
                        configured_key: *public_key,
                    });
                }
            }
            Some(other) => {
                return Err(OpenError::UnsupportedFormat(format!(
                    "format marker {}",
                    hex::encode(other)
                )))
            }
        }
        txn.open_table(SIGNATURES).map_err(redb::Error::from)?;
    }
    txn.commit().map_err(redb::Error::from)?;
    Ok(())
}

fn replay(db: &Database, public_key: &PublicKey) -> Result<Replayed, OpenError> {
    let txn = db.begin_read().map_err(redb::Error::from)?;
    let records = txn.open_table(RECORDS).map_err(redb::Error::from)?;
    let signatures_table = txn.open_table(SIGNATURES).map_err(redb::Error::from)?;
    let mut signatures = signatures_table
        .iter()
        .map_err(redb::Error::from)?
        .peekable();

    let mut books = Books::default();
    let mut head = Head {
        seqno: 0,
        hash: genesis_hash(public_key),
    };
    let mut head_signed = true;
    for row in records.iter().map_err(redb::Error::from)? {
        let (key, value) = row.map_err(redb::Error::from)?;
        let expected = head.seqno + 1;
        if key.value() != expected {
            return Err(corrupt(expected, CorruptReason::Gap { expected }));
        }
        let seqno = expected;
        let value = value.value();
        if value.len() < 32 {
            return Err(corrupt(seqno, CorruptReason::Short));
        }
        let (stored_hash, encoded) = value.split_at(32);
        let (record_seqno, record) =
            Record::decode(encoded).map_err(|e| corrupt(seqno, CorruptReason::Decode(e)))?;
        if record_seqno != seqno {
            return Err(corrupt(seqno, CorruptReason::SeqnoMismatch(record_seqno)));
        }
        let hash = next_hash(&head.hash, encoded);
        if stored_hash != hash {
            return Err(corrupt(seqno, CorruptReason::HashMismatch));
        }
        books
            .apply(&record)
            .map_err(|source| OpenError::InvalidRecord { seqno, source })?;
        head = Head { seqno, hash };
        head_signed = false;

        // Signatures are keyed by the record they follow; both tables ascend together.
        if let Some(signature_row) = signatures.peek() {
            let signed_seqno = match signature_row {
                Ok((key, _)) => key.value(),
                // Take the row to surface its error.
                Err(_) => match signatures.next() {
                    Some(Err(error)) => return Err(redb::Error::from(error).into()),
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
                    .map_err(redb::Error::from)?;
                if !verify_batch(public_key, seqno, &hash, &signature.value()) {
                    return Err(OpenError::BadSignature { seqno });
                }
                head_signed = true;
            }
        }
    }
    if let Some(row) = signatures.next() {
        let (key, _) = row.map_err(redb::Error::from)?;
        return Err(corrupt(key.value(), CorruptReason::DanglingSignature));
    }
    if !head_signed {
        return Err(OpenError::UnsignedHead { seqno: head.seqno });
    }
    Ok(Replayed { books, head })
}

/// Appends one batch in one write transaction and commits it. `encoded` holds, per record,
/// `h_n ‖ encoding`; the signature covers the last.
pub(crate) fn write_batch(
    db: &Database,
    durability: redb::Durability,
    rows: &[(u64, &[u8])],
    signature: (u64, &Signature),
) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)?;
    {
        let mut records = txn.open_table(RECORDS)?;
        for (seqno, value) in rows {
            records.insert(*seqno, *value)?;
        }
        let mut signatures = txn.open_table(SIGNATURES)?;
        signatures.insert(signature.0, signature.1)?;
    }
    txn.commit()?;
    Ok(())
}

/// Commits an empty transaction with `Durability::Immediate`, which makes every earlier
/// non-durable commit durable.
pub(crate) fn flush(db: &Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}

/// The chain hash stored with record `seqno`.
pub(crate) fn hash_at(db: &Database, seqno: u64) -> Result<Option<[u8; 32]>, LedgerError> {
    let txn = db
        .begin_read()
        .map_err(|e| LedgerError::Storage(storage(e)))?;
    let records = match txn.open_table(RECORDS) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(LedgerError::Storage(storage(e))),
    };
    let Some(value) = records
        .get(seqno)
        .map_err(|e| LedgerError::Storage(storage(e)))?
    else {
        return Ok(None);
    };
    Ok(value.value().get(..32).and_then(|h| h.try_into().ok()))
}

/// Up to `limit` records from `from` on.
pub(crate) fn records(
    db: &Database,
    from: u64,
    limit: usize,
) -> Result<Vec<StoredRecord>, LedgerError> {
    let error = |e: redb::Error| LedgerError::Storage(e.to_string().into());
    let txn = db.begin_read().map_err(|e| error(e.into()))?;
    let records = txn.open_table(RECORDS).map_err(|e| error(e.into()))?;
    let signatures = txn.open_table(SIGNATURES).map_err(|e| error(e.into()))?;
    let mut out = Vec::new();
    for row in records
        .range(from..)
        .map_err(|e| error(e.into()))?
        .take(limit)
    {
        let (key, value) = row.map_err(|e| error(e.into()))?;
        let seqno = key.value();
        let value = value.value();
        let damaged = || LedgerError::Storage(format!("record {seqno} is damaged").into());
        let hash: [u8; 32] = value
            .get(..32)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(damaged)?;
        let (_, record) = Record::decode(&value[32..]).map_err(|_| damaged())?;
        let signature = signatures
            .get(seqno)
            .map_err(|e| error(e.into()))?
            .map(|s| s.value());
        out.push(StoredRecord {
            seqno,
            hash,
            signature,
            record,
        });
    }
    Ok(out)
}
