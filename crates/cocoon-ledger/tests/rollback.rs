//! The anti-rollback protocol: the chain's last committed (seqno, hash) must be in the file.

use std::path::Path;

use cocoon_ledger::{Head, Ledger, LedgerConfig, RollbackError};

fn config() -> LedgerConfig {
    LedgerConfig::new([3; 32], 20, 19)
}

/// Charges `count` requests whose ids start at `first`, and returns the head.
fn charge(path: &Path, first: u64, count: u64) -> Head {
    let ledger = Ledger::open(path, config()).expect("open");
    ledger
        .sync_client("alice", 1_000_000_000, 1_000_000_000, 0)
        .wait()
        .expect("sync");
    for n in first..first + count {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_le_bytes());
        let reservation = ledger.reserve("alice", 10).expect("reserve");
        ledger
            .charge(reservation, "w", 7, id)
            .wait()
            .expect("charge");
    }
    let head = ledger.head();
    ledger.close().expect("close");
    head
}

#[test]
fn an_old_copy_of_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let old = dir.path().join("old");
    let n = charge(&live, 0, 10);
    std::fs::copy(&live, &old).unwrap();
    let m = charge(&live, 10, 10);
    assert!(m.seqno > n.seqno);
    // The proxy commits (M, h_M) with proxy_save_state; then the old copy is restored.
    let restored = Ledger::open(&old, config()).expect("the old copy itself verifies");
    assert_eq!(restored.head(), n);
    assert_eq!(
        restored.check_chain_commit(m.seqno, m.hash),
        Err(RollbackError::RolledBack {
            local_seqno: n.seqno,
            chain_seqno: m.seqno
        })
    );
    // The live file passes, at the commit and at every older one.
    let live = Ledger::open(&live, config()).unwrap();
    assert_eq!(live.check_chain_commit(m.seqno, m.hash), Ok(()));
    assert_eq!(live.check_chain_commit(n.seqno, n.hash), Ok(()));
}

#[test]
fn a_clone_that_went_its_own_way_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let clone = dir.path().join("clone");
    charge(&live, 0, 10);
    std::fs::copy(&live, &clone).unwrap();
    let m = charge(&live, 10, 10);
    // The clone serves other requests, and even gets further than the chain's commit.
    let forked = charge(&clone, 1000, 15);
    assert!(forked.seqno > m.seqno);
    let clone = Ledger::open(&clone, config()).unwrap();
    match clone.check_chain_commit(m.seqno, m.hash) {
        Err(RollbackError::Forked {
            seqno,
            local_hash,
            chain_hash,
        }) => {
            assert_eq!(seqno, m.seqno);
            assert_eq!(chain_hash, m.hash);
            assert_ne!(local_hash, m.hash);
        }
        other => panic!("expected Forked, got {other:?}"),
    }
}
