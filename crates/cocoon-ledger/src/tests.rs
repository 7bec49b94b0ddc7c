//! In-crate tests: tampering with the stored file through redb itself, which needs the table
//! definitions.

use std::path::Path;

use redb::{Database, ReadableTable};

use crate::store::{RECORDS, SIGNATURES};
use crate::{CorruptReason, Ledger, LedgerConfig, OpenError};

fn config(seed: u8) -> LedgerConfig {
    LedgerConfig {
        // One record per batch would hide nothing; 4 makes batches with unsigned middles.
        max_batch: 4,
        ..LedgerConfig::new([seed; 32], 20, 19)
    }
}

/// A closed ledger with 1 sync and `charges` charges, submitted together so they batch.
fn write(path: &Path, charges: u64) {
    let ledger = Ledger::open(path, config(1)).expect("open");
    ledger
        .sync_client("alice-the-client", 1_000_000, 0, 0)
        .wait()
        .expect("sync");
    let pending: Vec<_> = (0..charges)
        .map(|n| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&n.to_le_bytes());
            let reservation = ledger.reserve("alice-the-client", 10).expect("reserve");
            ledger.charge(reservation, "worker-bee", 5, id)
        })
        .collect();
    for p in pending {
        p.wait().expect("charge");
    }
    ledger.close().expect("close");
}

fn edit(path: &Path, change: impl FnOnce(&redb::WriteTransaction)) {
    let db = Database::create(path).expect("redb open");
    let txn = db.begin_write().expect("begin");
    change(&txn);
    txn.commit().expect("commit");
}

fn signed_seqnos(path: &Path) -> Vec<u64> {
    let db = Database::create(path).expect("redb open");
    let txn = redb::ReadableDatabase::begin_read(&db).expect("begin");
    let table = txn.open_table(SIGNATURES).expect("table");
    table
        .iter()
        .expect("iter")
        .map(|row| row.expect("row").0.value())
        .collect()
}

#[test]
fn a_flipped_byte_in_a_record_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    edit(&path, |txn| {
        let mut records = txn.open_table(RECORDS).unwrap();
        let mut value = records.get(7).unwrap().unwrap().value().to_vec();
        let last = value.len() - 1;
        value[last] ^= 1;
        records.insert(7, value.as_slice()).unwrap();
    });
    match Ledger::open(&path, config(1)) {
        Err(OpenError::Corrupt {
            seqno: 7,
            reason: CorruptReason::HashMismatch,
        }) => {}
        other => panic!("expected corrupt record 7, got {other:?}"),
    }
}

#[test]
fn a_record_forged_with_a_consistent_hash_is_found_by_the_signature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    let signed = signed_seqnos(&path);
    assert!(signed.len() > 1, "expected several batches: {signed:?}");
    let target = *signed.last().unwrap();
    // Rewrite the last record to charge nothing, with the chain hash recomputed.
    edit(&path, |txn| {
        let mut records = txn.open_table(RECORDS).unwrap();
        let previous: [u8; 32] = records.get(target - 1).unwrap().unwrap().value()[..32]
            .try_into()
            .unwrap();
        let value = records.get(target).unwrap().unwrap().value().to_vec();
        let (_, mut record) = crate::Record::decode(&value[32..]).unwrap();
        if let crate::Record::Charge(charge) = &mut record {
            charge.tokens = 0;
        }
        let encoded = record.to_bytes(target);
        let mut forged = crate::next_hash(&previous, &encoded).to_vec();
        forged.extend_from_slice(&encoded);
        records.insert(target, forged.as_slice()).unwrap();
    });
    assert!(matches!(
        Ledger::open(&path, config(1)),
        Err(OpenError::BadSignature { seqno }) if seqno == target
    ));
}

#[test]
fn a_changed_signature_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    let first = signed_seqnos(&path)[1];
    edit(&path, |txn| {
        let mut signatures = txn.open_table(SIGNATURES).unwrap();
        let mut signature = signatures.get(first).unwrap().unwrap().value();
        signature[10] ^= 0x40;
        signatures.insert(first, signature).unwrap();
    });
    assert!(matches!(
        Ledger::open(&path, config(1)),
        Err(OpenError::BadSignature { seqno }) if seqno == first
    ));
}

#[test]
fn a_truncated_batch_and_a_gap_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    let copy = dir.path().join("copy");
    std::fs::copy(&path, &copy).unwrap();
    // The last batch of more than one record: how the writer grouped the charges depends on
    // timing (the final batch may hold a single record), so it is looked up, not assumed.
    let signed = signed_seqnos(&path);
    let cut = signed
        .windows(2)
        .rev()
        .find(|w| w[1] > w[0] + 1)
        .map(|w| w[1])
        .expect("20 charges submitted together make a batch of several records");
    // Dropping that batch's signed end and everything after leaves an unsigned end.
    edit(&path, |txn| {
        let mut records = txn.open_table(RECORDS).unwrap();
        let mut signatures = txn.open_table(SIGNATURES).unwrap();
        for seqno in cut..=*signed.last().unwrap() {
            records.remove(seqno).unwrap();
            signatures.remove(seqno).unwrap();
        }
    });
    match Ledger::open(&path, config(1)) {
        Err(OpenError::UnsignedHead { seqno }) => assert_eq!(seqno, cut - 1),
        other => panic!("expected UnsignedHead, got {other:?}"),
    }
    edit(&copy, |txn| {
        txn.open_table(RECORDS).unwrap().remove(5).unwrap();
    });
    assert!(matches!(
        Ledger::open(&copy, config(1)),
        Err(OpenError::Corrupt {
            seqno: 5,
            reason: CorruptReason::Gap { expected: 5 }
        })
    ));
}

#[test]
fn a_flipped_byte_in_the_raw_file_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"worker-bee";
    let mut flipped = 0;
    for at in 0..bytes.len().saturating_sub(needle.len()) {
        if &bytes[at..at + needle.len()] == needle {
            bytes[at] ^= 0x20;
            flipped += 1;
        }
    }
    assert!(flipped > 0);
    std::fs::write(&path, &bytes).unwrap();
    let error = Ledger::open(&path, config(1)).expect_err("tampered file opened");
    // Our chain finds it, unless redb's own checksums did first.
    assert!(
        matches!(error, OpenError::Corrupt { .. } | OpenError::Storage(_)),
        "unexpected error: {error}"
    );
}

#[test]
fn another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 3);
    let error = Ledger::open(&path, config(2)).expect_err("opened with another key");
    assert!(matches!(error, OpenError::WrongKey { .. }), "{error}");
    assert!(error.to_string().contains("written by key"));
}
