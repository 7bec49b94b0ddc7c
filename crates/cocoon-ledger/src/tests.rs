//! In-crate tests: tampering with the log file frame by frame (which needs its format), torn
//! tails, and the migration of the old redb format.

use std::path::Path;

use proptest::prelude::*;
use redb::ReadableTable;

use crate::store::{encode_frame, parse_body, FRAME_HEADER_LEN, HEADER_LEN};
use crate::{CorruptReason, Ledger, LedgerConfig, OpenError, Record};

fn config(seed: u8) -> LedgerConfig {
    LedgerConfig {
        // One record per batch would hide nothing; 4 makes batches with unsigned middles.
        max_batch: 4,
        ..LedgerConfig::new([seed; 32], 20, 19)
    }
}

fn request_id(n: u64) -> [u8; 32] {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id
}

/// A closed ledger with 1 sync and `charges` charges, submitted together so they batch.
fn write(path: &Path, charges: u64) {
    let ledger = Ledger::open(path, config(1)).expect("open");
    ledger
        .sync_client("alice-the-client", 1_000_000, 1_000_000, 0)
        .wait()
        .expect("sync");
    let pending: Vec<_> = (0..charges)
        .map(|n| {
            let reservation = ledger.reserve("alice-the-client", 10).expect("reserve");
            ledger.charge(reservation, "worker-bee", 5, request_id(n))
        })
        .collect();
    for p in pending {
        p.wait().expect("charge");
    }
    ledger.close().expect("close");
}

/// One frame of a file, decoded.
#[derive(Clone, Debug)]
struct TestFrame {
    offset: u64,
    /// Header and body.
    len: u64,
    rows: Vec<(u64, Vec<u8>)>,
    signed_seqno: u64,
    signature: [u8; 64],
}

/// The frames of a valid file.
fn frames(path: &Path) -> Vec<TestFrame> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = HEADER_LEN as usize;
    let mut out = Vec::new();
    loop {
        let body_len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if body_len == 0 {
            return out;
        }
        let body = &bytes[at + 8..at + 8 + body_len];
        let frame = parse_body(body).expect("a valid frame");
        out.push(TestFrame {
            offset: at as u64,
            len: FRAME_HEADER_LEN + body_len as u64,
            rows: frame
                .rows
                .iter()
                .map(|(seqno, value)| (*seqno, value.to_vec()))
                .collect(),
            signed_seqno: frame.signed_seqno,
            signature: frame.signature,
        });
        at += 8 + body_len;
    }
}

/// Rewrites the file with these frames (valid lengths and checksums), keeping its header and
/// length.
fn rewrite(path: &Path, frames: &[TestFrame]) {
    let old = std::fs::read(path).unwrap();
    let mut bytes = old[..HEADER_LEN as usize].to_vec();
    for frame in frames {
        encode_frame(
            &mut bytes,
            frame.rows.iter().map(|(s, v)| (*s, v.as_slice())),
            frame.signed_seqno,
            &frame.signature,
        );
    }
    bytes.resize(old.len().max(bytes.len()), 0);
    std::fs::write(path, &bytes).unwrap();
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<TestFrame>)) {
    let mut all = frames(path);
    change(&mut all);
    all.retain(|f| !f.rows.is_empty());
    rewrite(path, &all);
}

fn edit_raw(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
}

fn signed_seqnos(path: &Path) -> Vec<u64> {
    frames(path).iter().map(|f| f.signed_seqno).collect()
}

fn row_mut(frames: &mut [TestFrame], seqno: u64) -> &mut Vec<u8> {
    frames
        .iter_mut()
        .flat_map(|f| f.rows.iter_mut())
        .find(|(s, _)| *s == seqno)
        .map(|(_, value)| value)
        .expect("row present")
}

#[test]
fn a_flipped_byte_in_a_record_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    edit(&path, |frames| {
        let value = row_mut(frames, 7);
        let last = value.len() - 1;
        value[last] ^= 1;
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
    edit(&path, |frames| {
        let previous: [u8; 32] = row_mut(frames, target - 1)[..32].try_into().unwrap();
        let value = row_mut(frames, target);
        let (_, mut record) = Record::decode(&value[32..]).unwrap();
        if let Record::Charge(charge) = &mut record {
            charge.tokens = 0;
        }
        let encoded = record.to_bytes(target);
        let mut forged = crate::next_hash(&previous, &encoded).to_vec();
        forged.extend_from_slice(&encoded);
        *value = forged;
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
    edit(&path, |frames| {
        frames[1].signature[10] ^= 0x40;
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
    // Dropping that batch's signed end and everything after leaves an unsigned end: the
    // frame keeps a signature of a record it no longer holds.
    edit(&path, |frames| {
        for frame in frames.iter_mut() {
            frame.rows.retain(|(seqno, _)| *seqno < cut);
        }
        frames.retain(|f| f.signed_seqno <= cut);
    });
    match Ledger::open(&path, config(1)) {
        Err(OpenError::UnsignedHead { seqno }) => assert_eq!(seqno, cut - 1),
        other => panic!("expected UnsignedHead, got {other:?}"),
    }
    edit(&copy, |frames| {
        for frame in frames.iter_mut() {
            frame.rows.retain(|(seqno, _)| *seqno != 5);
        }
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
    // The frame checksum finds it, with more frames after it: corruption, not a torn tail.
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

#[test]
fn a_file_open_in_another_ledger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let first = Ledger::open(&path, config(1)).unwrap();
    let error = Ledger::open(&path, config(1)).expect_err("opened twice");
    assert!(matches!(error, OpenError::Storage(_)), "{error}");
    assert!(
        error.to_string().contains("open in another ledger"),
        "{error}"
    );
    first.close().unwrap();
    Ledger::open(&path, config(1)).expect("free again once closed");
}

#[test]
fn a_foreign_or_damaged_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    std::fs::write(
        &path,
        b"some other file, long enough to hold a header, but not a ledger at all",
    )
    .unwrap();
    let error = Ledger::open(&path, config(1)).expect_err("foreign file opened");
    assert!(matches!(error, OpenError::UnsupportedFormat(_)), "{error}");
    let path = dir.path().join("ledger2");
    write(&path, 3);
    edit_raw(&path, |bytes| bytes[9] ^= 1);
    let error = Ledger::open(&path, config(1)).expect_err("damaged header opened");
    assert!(matches!(error, OpenError::UnsupportedFormat(_)), "{error}");
}

/// Opens `path`, expecting it to hold exactly the records up to `seqno`, and checks that the
/// ledger keeps working: one more charge, then a clean reopen.
fn opens_with_head(path: &Path, seqno: u64) {
    let ledger = Ledger::open(path, config(1)).expect("a torn tail is cut off");
    assert_eq!(ledger.head().seqno, seqno);
    let records = ledger.records(1, usize::MAX).unwrap();
    assert_eq!(records.len() as u64, seqno);
    assert!(records.last().unwrap().signature.is_some());
    let reservation = ledger.reserve("alice-the-client", 10).unwrap();
    let receipt = ledger
        .charge(reservation, "worker-bee", 5, request_id(1_000_000))
        .wait()
        .unwrap();
    assert_eq!(receipt.seqno, seqno + 1);
    ledger.close().unwrap();
    let ledger = Ledger::open(path, config(1)).expect("reopens after the cut");
    assert_eq!(ledger.head().seqno, seqno + 1);
    assert_eq!(ledger.hash_at(seqno + 1).unwrap(), Some(receipt.hash));
}

#[test]
fn a_torn_last_frame_cut_short_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    let all = frames(&path);
    let last = all.last().unwrap().clone();
    let previous = all[all.len() - 2].signed_seqno;
    // The file ends in the middle of the last frame (the file itself cut short)...
    let cut = dir.path().join("cut");
    std::fs::copy(&path, &cut).unwrap();
    edit_raw(&cut, |bytes| {
        bytes.truncate((last.offset + last.len / 2) as usize)
    });
    opens_with_head(&cut, previous);
    // ...or only the first part of the frame was written, zeros after it.
    edit_raw(&path, |bytes| {
        let from = (last.offset + last.len / 2) as usize;
        bytes[from..(last.offset + last.len) as usize].fill(0);
    });
    opens_with_head(&path, previous);
}

#[test]
fn a_torn_last_frame_failing_its_checksum_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    let all = frames(&path);
    let last = all.last().unwrap().clone();
    let previous = all[all.len() - 2].signed_seqno;
    let mut flipped = path.clone();
    flipped.set_extension("flipped");
    std::fs::copy(&path, &flipped).unwrap();
    // A flipped checksum, zeros after the frame.
    edit_raw(&flipped, |bytes| bytes[last.offset as usize + 5] ^= 0x10);
    opens_with_head(&flipped, previous);
    // A frame whose first bytes never reached the disk (a zero header) but whose later ones
    // did: the pages of one write can land in any order.
    edit_raw(&path, |bytes| {
        bytes[last.offset as usize..last.offset as usize + 40].fill(0);
    });
    opens_with_head(&path, previous);
}

#[test]
fn a_damaged_frame_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    let all = frames(&path);
    assert!(all.len() >= 3, "expected several frames");
    let middle = all[1].clone();
    let expected = all[0].signed_seqno + 1;
    let original = std::fs::read(&path).unwrap();
    // A flipped byte in the body: its checksum fails and more data follows.
    edit_raw(&path, |bytes| {
        bytes[(middle.offset + middle.len) as usize - 3] ^= 1
    });
    match Ledger::open(&path, config(1)) {
        Err(OpenError::Corrupt {
            seqno,
            reason: CorruptReason::Frame { offset, .. },
        }) => {
            assert_eq!(seqno, expected);
            assert_eq!(offset, middle.offset);
        }
        other => panic!("expected a corrupt frame, got {other:?}"),
    }
    // A zeroed frame header: the log would seem to end there, but intact frames follow.
    std::fs::write(&path, &original).unwrap();
    edit_raw(&path, |bytes| {
        bytes[middle.offset as usize..(middle.offset + FRAME_HEADER_LEN) as usize].fill(0)
    });
    assert!(matches!(
        Ledger::open(&path, config(1)),
        Err(OpenError::Corrupt {
            reason: CorruptReason::Frame { .. },
            ..
        })
    ));
    // A length running past the file, with intact frames after it.
    std::fs::write(&path, &original).unwrap();
    edit_raw(&path, |bytes| {
        bytes[middle.offset as usize..middle.offset as usize + 4]
            .copy_from_slice(&u32::MAX.to_le_bytes())
    });
    assert!(matches!(
        Ledger::open(&path, config(1)),
        Err(OpenError::Corrupt {
            reason: CorruptReason::Frame { .. },
            ..
        })
    ));
    // The file was refused, not repaired: it is as the test left it.
    assert_ne!(std::fs::read(&path).unwrap(), original);
}

#[test]
fn a_removed_frame_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    write(&path, 20);
    let all = frames(&path);
    let middle = all[1].clone();
    edit_raw(&path, |bytes| {
        bytes.drain(middle.offset as usize..(middle.offset + middle.len) as usize);
    });
    let expected = middle.rows[0].0;
    match Ledger::open(&path, config(1)) {
        Err(OpenError::Corrupt {
            seqno,
            reason: CorruptReason::Gap { expected: e },
        }) => {
            assert_eq!((seqno, e), (expected, expected));
        }
        other => panic!("expected a gap, got {other:?}"),
    }
}

/// Writes a ledger in the old redb format, as the redb-based ledger did: a sync and
/// `charges` charges in batches of 3.
fn write_legacy(path: &Path, charges: u64) -> crate::Head {
    use crate::legacy::{META, RECORDS, SIGNATURES};
    let signer = crate::chain::Signer::from_seed(&[1; 32]).unwrap();
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    let mut head = crate::Head {
        seqno: 0,
        hash: crate::genesis_hash(signer.public_key()),
    };
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("format", [1u8].as_slice()).unwrap();
        meta.insert("public_key", signer.public_key().as_slice())
            .unwrap();
        let mut records = txn.open_table(RECORDS).unwrap();
        let mut signatures = txn.open_table(SIGNATURES).unwrap();
        let mut all = vec![Record::SyncClient {
            client: "alice-the-client".into(),
            balance_nano: 1_000_000,
            stake_nano: 1_000_000,
            tokens_used: 0,
        }];
        all.extend((0..charges).map(|n| {
            Record::Charge(crate::Charge {
                request_id: request_id(n),
                client: "alice-the-client".into(),
                worker: "worker-bee".into(),
                tokens: 5,
                price_per_token: 20,
                worker_fee_per_token: 19,
            })
        }));
        let count = all.len();
        for (index, record) in all.into_iter().enumerate() {
            let seqno = index as u64 + 1;
            let encoded = record.to_bytes(seqno);
            let hash = crate::next_hash(&head.hash, &encoded);
            let mut value = hash.to_vec();
            value.extend_from_slice(&encoded);
            records.insert(seqno, value.as_slice()).unwrap();
            head = crate::Head { seqno, hash };
            if seqno.is_multiple_of(3) || index + 1 == count {
                signatures
                    .insert(seqno, signer.sign_batch(seqno, &hash))
                    .unwrap();
            }
        }
    }
    txn.commit().unwrap();
    head
}

#[test]
fn a_redb_ledger_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let head = write_legacy(&path, 10);
    let ledger = Ledger::open(&path, config(1)).expect("migrated");
    assert_eq!(ledger.head(), head);
    let records = ledger.records(1, usize::MAX).unwrap();
    assert_eq!(records.len(), 11);
    let signed: Vec<u64> = records
        .iter()
        .filter(|r| r.signature.is_some())
        .map(|r| r.seqno)
        .collect();
    assert_eq!(signed, [3, 6, 9, 11]);
    assert_eq!(
        ledger.snapshot().clients["alice-the-client"].charged_tokens,
        50
    );
    // The old file is kept, the new one is a log and keeps working.
    let old = dir.path().join("ledger.redb-old");
    assert!(std::fs::read(&old).unwrap().starts_with(b"redb"));
    assert!(std::fs::read(&path).unwrap().starts_with(b"cocoonLG"));
    let reservation = ledger.reserve("alice-the-client", 10).unwrap();
    let receipt = ledger
        .charge(reservation, "worker-bee", 5, request_id(99))
        .wait()
        .unwrap();
    ledger.close().unwrap();
    let ledger = Ledger::open(&path, config(1)).unwrap();
    assert_eq!(ledger.head().seqno, receipt.seqno);
    assert_eq!(ledger.hash_at(head.seqno).unwrap(), Some(head.hash));
    ledger.close().unwrap();

    // A redb file that does not verify is refused and left as it is.
    let bad = dir.path().join("bad");
    write_legacy(&bad, 5);
    {
        let db = redb::Database::create(&bad).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut records = txn.open_table(crate::legacy::RECORDS).unwrap();
            let mut value = records.get(4).unwrap().unwrap().value().to_vec();
            let last = value.len() - 1;
            value[last] ^= 1;
            records.insert(4, value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    assert!(matches!(
        Ledger::open(&bad, config(1)),
        Err(OpenError::Corrupt {
            seqno: 4,
            reason: CorruptReason::HashMismatch
        })
    ));
    // (redb itself may rewrite its header when it opens a file; the records are untouched.)
    assert!(std::fs::read(&bad).unwrap().starts_with(b"redb"));
    assert!(!dir.path().join("bad.redb-old").exists());
    // And with another key.
    let error = Ledger::open(&old, config(2)).expect_err("another key");
    assert!(matches!(error, OpenError::WrongKey { .. }), "{error}");
}

/// A valid ledger file, written once for the property below.
fn base_file() -> &'static [u8] {
    static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        write(&path, 12);
        std::fs::read(&path).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Arbitrary bytes overwritten anywhere after the header, or appended, never make `open`
    /// panic: it opens (perhaps cutting a torn tail) or refuses.
    #[test]
    fn arbitrary_damage_to_the_log_never_panics(
        writes in proptest::collection::vec(
            (0.0..1.0f64, proptest::collection::vec(any::<u8>(), 1..64)), 1..4),
        appended in proptest::collection::vec(any::<u8>(), 0..64),
        near_frames in any::<bool>(),
    ) {
        let mut bytes = base_file().to_vec();
        // Mostly where the frames are (the first few KiB), sometimes anywhere.
        let region = if near_frames { 4096 } else { bytes.len() - HEADER_LEN as usize };
        for (at, data) in &writes {
            let at = HEADER_LEN as usize + (at * region as f64) as usize;
            let end = (at + data.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&data[..end - at]);
        }
        bytes.extend_from_slice(&appended);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(ledger) = Ledger::open(&path, config(1)) {
            let head = ledger.head();
            prop_assert_eq!(ledger.records(1, usize::MAX).unwrap().len() as u64, head.seqno);
            ledger.close().unwrap();
            // What was cut off stays cut off.
            let reopened = Ledger::open(&path, config(1)).unwrap();
            prop_assert_eq!(reopened.head(), head);
        }
    }
}

#[test]
fn flush_times_add_up_keep_their_maximum_and_count_the_slow_ones() {
    use std::time::Duration;
    let stats = crate::ledger::StatsCounters::default();
    for took in [
        Duration::from_micros(200),
        crate::SLOW_FLUSH + Duration::from_millis(1),
        Duration::from_millis(5),
        crate::SLOW_FLUSH, // not over it: not slow
    ] {
        stats.record_flush(took);
    }
    let ledger_stats = stats.snapshot();
    assert_eq!(ledger_stats.flush_micros, 200 + 11_000 + 5_000 + 10_000);
    assert_eq!(ledger_stats.flush_max_micros, 11_000);
    assert_eq!(ledger_stats.slow_flushes, 1);
}
