//! Journals written by hand: records that check but do not replay as written are errors that
//! name the journal and the record's offset.

use std::io::Write;

use super::journal;
use super::record::{Input, Record};
use super::*;

fn transfer() -> InternalMessage {
    InternalMessage {
        from: Address::basechain([1; 32]),
        to: Address::basechain([2; 32]),
        value: 1_000_000_000,
        bounce: false,
        body: Vec::new(),
        state_init: None,
    }
}

fn manual() -> Options {
    Options {
        snapshot_every: 0,
        clock: Clock::Manual,
        ..Options::default()
    }
}

/// A network with one transfer at time 100, and the journal's length after it.
fn network() -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let network = LocalNetwork::create_with(dir.path(), &Genesis::at(100), manual()).unwrap();
    network.send_internal(&transfer()).unwrap();
    let len = std::fs::metadata(dir.path().join(JOURNAL_FILE))
        .unwrap()
        .len();
    (dir, len)
}

fn append_payload(dir: &Path, payload: &[u8]) {
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.join(JOURNAL_FILE))
        .unwrap();
    file.write_all(&journal::frame(payload).unwrap()).unwrap();
}

fn open_error(dir: &Path) -> Error {
    LocalNetwork::open_with(dir, manual()).unwrap_err()
}

#[test]
fn records_that_do_not_replay_as_written_are_errors() {
    let cases: [(Record, bool); 4] = [
        // The lt it left is not the lt it leaves now (a different executor, say).
        (
            Record {
                now: 100,
                lt_after: 999,
                input: Input::Internal(transfer()),
            },
            true,
        ),
        // A send that now fails.
        (
            Record {
                now: 100,
                lt_after: 0,
                input: Input::Internal(InternalMessage {
                    body: b"garbage".to_vec(),
                    ..transfer()
                }),
            },
            true,
        ),
        // Time going back.
        (
            Record {
                now: 99,
                lt_after: 1_000_000,
                input: Input::Tick,
            },
            false,
        ),
        // A second genesis.
        (
            Record {
                now: 100,
                lt_after: 0,
                input: Input::Genesis(Genesis::at(100)),
            },
            false,
        ),
    ];
    for (record, is_replay_error) in cases {
        let (dir, len) = network();
        append_payload(dir.path(), &record.encode());
        let error = open_error(dir.path());
        let offset = match &error {
            Error::Replay { path, offset, .. } if is_replay_error => {
                assert_eq!(path, &dir.path().join(JOURNAL_FILE));
                *offset
            }
            Error::Corrupt { offset, .. } if !is_replay_error => *offset,
            other => panic!("{record:?}: {other}"),
        };
        assert_eq!(offset, len, "{error}");
    }

    // A record that checks but does not decode.
    let (dir, len) = network();
    append_payload(dir.path(), &[0xff; 20]);
    assert!(matches!(
        open_error(dir.path()),
        Error::Corrupt { offset, .. } if offset == len
    ));
}

#[test]
fn a_failed_append_changes_nothing_and_the_handle_reloads_from_disk() {
    let (dir, len) = network();
    let network = LocalNetwork::open_with(dir.path(), manual()).unwrap();
    let before = network.network_snapshot().unwrap();
    // A journal handle that cannot write: the send runs in memory, then its append fails.
    let path = dir.path().join(JOURNAL_FILE);
    let writable = std::mem::replace(
        &mut network.inner.lock().unwrap().journal,
        File::open(&path).unwrap(),
    );
    assert!(matches!(
        network.send_internal(&transfer()),
        Err(Error::Io { .. })
    ));
    assert!(
        network.inner.lock().unwrap().state.is_none(),
        "stale state dropped"
    );
    assert_eq!(network.network_snapshot().unwrap(), before);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);

    network.inner.lock().unwrap().journal = writable;
    network.send_internal(&transfer()).unwrap();
    assert_ne!(network.network_snapshot().unwrap(), before);
}
