//! The ledger's rules through its public API: reservations, charges, signed counts, reopening.

use cocoon_ledger::{
    Durability, Ledger, LedgerConfig, LedgerError, OpenError, Record, RollbackError,
};

const PRICE: u128 = 20;
const FEE: u128 = 19;

fn config() -> LedgerConfig {
    LedgerConfig::new([1; 32], PRICE, FEE)
}

fn id(n: u64) -> [u8; 32] {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id
}

fn open(dir: &tempfile::TempDir) -> Ledger {
    Ledger::open(dir.path().join("ledger"), config()).expect("open")
}

/// Opens the ledger in `dir` with `config` and gives alice a million tokens.
fn open_funded(dir: &tempfile::TempDir, config: LedgerConfig) -> Ledger {
    let ledger = Ledger::open(dir.path().join("ledger"), config).expect("open");
    ledger
        .sync_client("alice", 1_000_000, 1_000_000, 0)
        .wait()
        .unwrap();
    ledger
}

#[test]
fn reserve_charge_release_arithmetic() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    ledger
        .sync_client("alice", 100_000, 100_000, 0)
        .wait()
        .unwrap();

    let reservation = ledger.reserve("alice", 1000).unwrap();
    assert_eq!(reservation.tokens(), 1000);
    let alice = &ledger.snapshot().clients["alice"];
    assert_eq!(alice.reserved_tokens, 1000);
    assert_eq!(alice.available_nano, 100_000 - 1000 * 20);

    let receipt = ledger.charge(reservation, "w1", 600, id(1)).wait().unwrap();
    assert_eq!(receipt.seqno, 2);
    let snapshot = ledger.snapshot();
    let alice = &snapshot.clients["alice"];
    assert_eq!(alice.reserved_tokens, 0);
    assert_eq!(alice.charged_tokens, 600);
    assert_eq!(alice.charged_nano, 12_000);
    assert_eq!(alice.requests, 1);
    assert_eq!(alice.available_nano, 88_000);
    let w1 = &snapshot.workers["w1"];
    assert_eq!(
        (w1.earned_tokens, w1.earned_nano, w1.requests),
        (600, 11_400, 1)
    );
    assert_eq!(snapshot.charged_nano, 12_000);
    assert_eq!(snapshot.earned_nano, 11_400);
    assert_eq!(snapshot.commission_nano, 600);
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["clients"]["alice"]["charged_nano"], 12_000);
    assert_eq!(json["workers"]["w1"]["earned_tokens"], 600);

    // Exactly the rest of the balance can be reserved, not one token more.
    let all = ledger.reserve("alice", 4400).unwrap();
    match ledger.reserve("alice", 1) {
        Err(LedgerError::InsufficientBalance {
            available_tokens: 0,
            requested_tokens: 1,
            ..
        }) => {}
        other => panic!("expected InsufficientBalance, got {other:?}"),
    }
    ledger.release(all);
    assert_eq!(ledger.snapshot().clients["alice"].reserved_tokens, 0);
    let again = ledger.reserve("alice", 4400).unwrap();
    // Dropping a reservation releases it too.
    drop(again);
    assert_eq!(ledger.snapshot().clients["alice"].available_nano, 88_000);

    // Once the chain has taken the charge, the synced balance already reflects it.
    ledger
        .sync_client("alice", 88_000, 100_000, 600)
        .wait()
        .unwrap();
    assert_eq!(ledger.snapshot().clients["alice"].available_nano, 88_000);
    // A charge beyond the reservation is cut to it.
    let small = ledger.reserve("alice", 10).unwrap();
    ledger.charge(small, "w2", 50, id(2)).wait().unwrap();
    assert_eq!(
        ledger.snapshot().clients["alice"].available_nano,
        88_000 - 10 * 20
    );
    assert_eq!(ledger.snapshot().workers["w2"].earned_tokens, 10);
}

#[test]
fn admission_counts_only_what_the_client_cannot_withdraw() {
    // The owner may withdraw everything above the stake at any moment: only the stake backs
    // what is owed and reserved.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    ledger
        .sync_client("alice", 1_000_000, 10_000, 0)
        .wait()
        .unwrap();
    assert_eq!(ledger.snapshot().clients["alice"].available_nano, 10_000);
    let held = ledger.reserve("alice", 300).unwrap();
    ledger.charge(held, "w", 200, id(1)).wait().unwrap();
    // 200 tokens owed (4,000 nano): 6,000 nano of stake left, 300 tokens.
    let rest = ledger.reserve("alice", 300).unwrap();
    assert!(matches!(
        ledger.reserve("alice", 1),
        Err(LedgerError::InsufficientBalance { .. })
    ));
    drop(rest);
    // A balance below the stake (charges took it down) is the limit.
    ledger
        .sync_client("alice", 5_000, 10_000, 200)
        .wait()
        .unwrap();
    assert_eq!(ledger.snapshot().clients["alice"].available_nano, 5_000);
}

#[test]
fn unknown_clients_and_bad_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    assert!(matches!(
        ledger.reserve("nobody", 1),
        Err(LedgerError::InsufficientBalance {
            available_tokens: 0,
            ..
        })
    ));
    assert_eq!(
        ledger.reserve("", 1).unwrap_err(),
        LedgerError::InvalidKey { len: 0 }
    );
    let long = "x".repeat(257);
    assert!(matches!(
        ledger.sync_client(&long, 1, 1, 0).wait(),
        Err(LedgerError::InvalidKey { len: 257 })
    ));
    ledger.sync_client("bob", 1000, 1000, 0).wait().unwrap();
    let reservation = ledger.reserve("bob", 1).unwrap();
    assert!(matches!(
        ledger.charge(reservation, "", 1, id(1)).wait(),
        Err(LedgerError::InvalidKey { len: 0 })
    ));
    // The refused charge released its reservation and wrote nothing.
    assert_eq!(ledger.snapshot().clients["bob"].reserved_tokens, 0);
    assert_eq!(ledger.head().seqno, 1);
}

#[test]
fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let fee_above_price = LedgerConfig::new([1; 32], 10, 11);
    assert!(matches!(
        Ledger::open(&path, fee_above_price),
        Err(OpenError::InvalidConfig(_))
    ));
    let no_batch = LedgerConfig {
        max_batch: 0,
        ..config()
    };
    assert!(matches!(
        Ledger::open(&path, no_batch),
        Err(OpenError::InvalidConfig(_))
    ));
}

#[test]
fn a_request_id_is_charged_once_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = open(&dir);
        ledger
            .sync_client("alice", 1_000_000, 1_000_000, 0)
            .wait()
            .unwrap();
        let first = ledger.reserve("alice", 10).unwrap();
        let second = ledger.reserve("alice", 10).unwrap();
        // The second charge is refused while the first is still in flight.
        let pending = ledger.charge(first, "w", 10, id(7));
        let duplicate = ledger.charge(second, "w", 10, id(7)).wait();
        assert_eq!(
            duplicate,
            Err(LedgerError::DuplicateCharge { request_id: id(7) })
        );
        pending.wait().unwrap();
        let alice = &ledger.snapshot().clients["alice"];
        assert_eq!((alice.charged_tokens, alice.reserved_tokens), (10, 0));
    }
    let ledger = open(&dir);
    let third = ledger.reserve("alice", 10).unwrap();
    assert_eq!(
        ledger.charge(third, "w", 10, id(7)).wait(),
        Err(LedgerError::DuplicateCharge { request_id: id(7) })
    );
    assert_eq!(ledger.snapshot().clients["alice"].charged_tokens, 10);
}

#[test]
fn signed_charges_and_payouts_only_grow_and_never_exceed_the_books() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    ledger
        .sync_client("alice", 1_000_000, 1_000_000, 0)
        .wait()
        .unwrap();
    let reservation = ledger.reserve("alice", 600).unwrap();
    ledger.charge(reservation, "w", 600, id(1)).wait().unwrap();

    assert_eq!(
        ledger.clients_over_threshold(100),
        vec![("alice".into(), 600)]
    );
    assert_eq!(ledger.workers_over_threshold(100), vec![("w".into(), 600)]);
    assert!(ledger.clients_over_threshold(601).is_empty());

    assert!(matches!(
        ledger.record_signed_charge("alice", 601).wait(),
        Err(LedgerError::ExceedsAccounted {
            accounted: 600,
            requested: 601,
            ..
        })
    ));
    ledger.record_signed_charge("alice", 500).wait().unwrap();
    assert!(matches!(
        ledger.record_signed_charge("alice", 499).wait(),
        Err(LedgerError::NotIncreasing {
            signed: 500,
            requested: 499,
            ..
        })
    ));
    // Signing the same count again is harmless (the chain refuses the replay).
    ledger.record_signed_charge("alice", 500).wait().unwrap();
    assert!(ledger.clients_over_threshold(101).is_empty());
    assert_eq!(
        ledger.clients_over_threshold(100),
        vec![("alice".into(), 600)]
    );

    assert!(matches!(
        ledger.record_signed_payout("w", 601).wait(),
        Err(LedgerError::ExceedsAccounted { .. })
    ));
    ledger.record_signed_payout("w", 600).wait().unwrap();
    assert!(matches!(
        ledger.record_signed_payout("w", 1).wait(),
        Err(LedgerError::NotIncreasing { signed: 600, .. })
    ));
    assert!(ledger.workers_over_threshold(0).is_empty());
    assert!(matches!(
        ledger.record_signed_payout("stranger", 1).wait(),
        Err(LedgerError::ExceedsAccounted { accounted: 0, .. })
    ));
    let snapshot = ledger.snapshot();
    assert_eq!(snapshot.clients["alice"].signed_tokens, 500);
    assert_eq!(snapshot.workers["w"].paid_tokens, 600);
}

#[test]
fn reopening_rebuilds_the_same_books_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let (snapshot, head) = {
        let ledger = open(&dir);
        for (n, client) in ["alice", "bob", "carol"].iter().enumerate() {
            ledger
                .sync_client(client, 1_000_000 * (n as u128 + 1), 1_000_000, 0)
                .wait()
                .unwrap();
        }
        let mut pending = Vec::new();
        for n in 0..300u64 {
            let client = ["alice", "bob", "carol"][n as usize % 3];
            let reservation = ledger.reserve(client, 100).unwrap();
            pending.push(ledger.charge(reservation, &format!("w{}", n % 4), n % 90, id(n)));
        }
        for p in pending {
            p.wait().unwrap();
        }
        ledger.record_signed_charge("bob", 1000).wait().unwrap();
        ledger.record_signed_payout("w1", 900).wait().unwrap();
        ledger
            .sync_client("bob", 1_990_000, 1_000_000, 500)
            .wait()
            .unwrap();
        // A reservation in flight at close does not survive it.
        let _held = ledger.reserve("carol", 5).unwrap();
        let mut snapshot = ledger.snapshot();
        snapshot.clients.get_mut("carol").unwrap().reserved_tokens = 0;
        snapshot.clients.get_mut("carol").unwrap().available_nano += 5 * PRICE;
        let head = ledger.head();
        assert_eq!(head.seqno, 3 + 300 + 3);
        assert_eq!(snapshot.seqno, head.seqno);
        (snapshot, head)
    };
    let ledger = open(&dir);
    assert_eq!(ledger.head(), head);
    assert_eq!(ledger.snapshot(), snapshot);
    assert_eq!(ledger.hash_at(head.seqno).unwrap(), Some(head.hash));
    assert_eq!(ledger.hash_at(head.seqno + 1).unwrap(), None);
    assert_eq!(
        ledger.hash_at(0).unwrap(),
        Some(cocoon_ledger::genesis_hash(&ledger.public_key()))
    );

    // The history reads back in order, every batch end signed and the head among them.
    let records = ledger.records(1, usize::MAX).unwrap();
    assert_eq!(records.len() as u64, head.seqno);
    assert!(records
        .iter()
        .enumerate()
        .all(|(i, r)| r.seqno == i as u64 + 1));
    let last = records.last().unwrap();
    assert!(last.signature.is_some());
    assert!(cocoon_ledger::verify_batch(
        &ledger.public_key(),
        last.seqno,
        &last.hash,
        last.signature.as_ref().unwrap()
    ));
    assert!(matches!(records[0].record, Record::SyncClient { .. }));

    // Writing continues from the head.
    let reservation = ledger.reserve("alice", 1).unwrap();
    let receipt = ledger
        .charge(reservation, "w0", 1, id(10_000))
        .wait()
        .unwrap();
    assert_eq!(receipt.seqno, head.seqno + 1);
    assert_eq!(
        ledger.head(),
        cocoon_ledger::Head {
            seqno: receipt.seqno,
            hash: receipt.hash
        }
    );
}

#[test]
fn a_not_durable_ledger_is_flushed_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let not_durable = LedgerConfig {
        durability: Durability::NotDurable,
        ..config()
    };
    let head = {
        let ledger = Ledger::open(&path, not_durable).unwrap();
        ledger.sync_client("alice", 1000, 1000, 0).wait().unwrap();
        let reservation = ledger.reserve("alice", 10).unwrap();
        ledger.charge(reservation, "w", 10, id(1)).wait().unwrap();
        let head = ledger.head();
        ledger.close().unwrap();
        head
    };
    let ledger = Ledger::open(&path, config()).unwrap();
    assert_eq!(ledger.head(), head);
    assert_eq!(ledger.snapshot().clients["alice"].charged_tokens, 10);
}

#[test]
fn foreign_reservations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    ledger.sync_client("alice", 1000, 1000, 0).wait().unwrap();
    let reservation = ledger.reserve("alice", 10).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(&other_dir);
    assert_eq!(
        other.charge(reservation, "w", 1, id(1)).wait(),
        Err(LedgerError::ForeignReservation)
    );
    // The foreign reservation went back to its own ledger.
    assert_eq!(ledger.snapshot().clients["alice"].reserved_tokens, 0);
    other.close().unwrap();
}

#[test]
fn chain_commit_checks() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    assert_eq!(ledger.check_chain_commit(0, [0; 32]), Ok(()));
    ledger.sync_client("alice", 1000, 1000, 0).wait().unwrap();
    let head = ledger.head();
    assert_eq!(ledger.check_chain_commit(head.seqno, head.hash), Ok(()));
    assert_eq!(
        ledger.check_chain_commit(head.seqno + 1, head.hash),
        Err(RollbackError::RolledBack {
            local_seqno: head.seqno,
            chain_seqno: head.seqno + 1
        })
    );
    assert!(matches!(
        ledger.check_chain_commit(head.seqno, [9; 32]),
        Err(RollbackError::Forked { .. })
    ));
}

#[test]
fn concurrent_async_charges_batch_and_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = std::sync::Arc::new(open(&dir));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        ledger
            .sync_client("alice", u128::MAX / 2, u128::MAX / 2, 0)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..64u64)
            .map(|task| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let mut seqnos = Vec::new();
                    for n in 0..50u64 {
                        let reservation = ledger.reserve("alice", 10).unwrap();
                        let receipt = ledger
                            .charge(reservation, "w", 3, id(task * 1000 + n))
                            .await
                            .unwrap();
                        seqnos.push(receipt.seqno);
                    }
                    seqnos
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (2..=3201).collect::<Vec<u64>>());
    });
    let snapshot = ledger.snapshot();
    assert_eq!(snapshot.clients["alice"].charged_tokens, 3 * 3200);
    assert_eq!(snapshot.clients["alice"].reserved_tokens, 0);
    let stats = ledger.writer_stats();
    assert_eq!(stats.records, 3201);
    assert!(stats.batches < stats.records, "no batching: {stats:?}");
    // Every commit's flush is timed: the longest is at least the mean, and no more commits
    // were slow than were made.
    assert!(
        stats.flush_max_micros * stats.batches >= stats.flush_micros,
        "{stats:?}"
    );
    assert!(stats.slow_flushes <= stats.batches, "{stats:?}");
}

#[test]
fn with_many_requests_running_a_commit_waits_for_more_charges_and_alone_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open_funded(
        &dir,
        LedgerConfig {
            // Longer than any test run: the commit below ends because its batch is full.
            commit_delay: std::time::Duration::from_secs(60),
            commit_siblings: 2,
            max_batch: 3,
            ..config()
        },
    );
    let before = ledger.writer_stats();
    assert_eq!(before.delayed, 0, "no request running: no reason to wait");

    // Four running requests. The first charge leaves three open, so its commit is held open;
    // the writer has long taken it when the next two come, and they join the same commit.
    let reservations: Vec<_> = (0..4)
        .map(|_| ledger.reserve("alice", 10).unwrap())
        .collect();
    let mut reservations = reservations.into_iter();
    let a = ledger.charge(reservations.next().unwrap(), "w", 3, id(1));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let b = ledger.charge(reservations.next().unwrap(), "w", 4, id(2));
    let c = ledger.charge(reservations.next().unwrap(), "w", 5, id(3));
    let seqnos = [a, b, c].map(|p| p.wait().unwrap().seqno);
    assert_eq!(seqnos, [2, 3, 4]);
    let after = ledger.writer_stats();
    assert_eq!(
        after.batches - before.batches,
        1,
        "one commit for three: {after:?}"
    );
    assert_eq!(after.delayed, 1, "{after:?}");

    // One request left running, below the siblings: its charge is committed at once, alone.
    let d = ledger.charge(reservations.next().unwrap(), "w", 6, id(4));
    assert_eq!(d.wait().unwrap().seqno, 5);
    let last = ledger.writer_stats();
    assert_eq!(last.batches - after.batches, 1);
    assert_eq!(last.delayed, 1, "nothing else running: no wait");
    let alice = &ledger.snapshot().clients["alice"];
    assert_eq!((alice.charged_tokens, alice.reserved_tokens), (18, 0));
}

mod random_histories {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Sync(usize, u128, u64),
        Charge(usize, usize, u64, u64, u8),
        SignCharge(usize, u64),
        SignPayout(usize, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 0..100_000u128, 0..2000u64).prop_map(|(c, b, u)| Op::Sync(c, b, u)),
            (0..3usize, 0..2usize, 0..300u64, 0..400u64, 0..40u8)
                .prop_map(|(c, w, r, t, id)| Op::Charge(c, w, r, t, id)),
            (0..3usize, 0..3000u64).prop_map(|(c, t)| Op::SignCharge(c, t)),
            (0..2usize, 0..3000u64).prop_map(|(w, t)| Op::SignPayout(w, t)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever was accepted or refused, reopening rebuilds the same books and head, and
        /// no reservation survives it and no signed count exceeds what was charged.
        #[test]
        fn reopening_any_history_rebuilds_the_same_books(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ledger");
            let not_durable = LedgerConfig { durability: Durability::NotDurable, ..config() };
            let clients = ["a", "b", "c"];
            let workers = ["x", "y"];
            let (snapshot, head) = {
                let ledger = Ledger::open(&path, not_durable).unwrap();
                for op in ops {
                    let _ = match op {
                        Op::Sync(c, balance, used) => ledger.sync_client(clients[c], balance, balance, used).wait(),
                        Op::Charge(c, w, reserve, tokens, request) => match ledger.reserve(clients[c], reserve) {
                            Ok(reservation) => ledger.charge(reservation, workers[w], tokens, id(u64::from(request))).wait(),
                            Err(LedgerError::InsufficientBalance { .. }) => continue,
                            Err(other) => panic!("{other}"),
                        },
                        Op::SignCharge(c, tokens) => ledger.record_signed_charge(clients[c], tokens).wait(),
                        Op::SignPayout(w, tokens) => ledger.record_signed_payout(workers[w], tokens).wait(),
                    };
                }
                let snapshot = ledger.snapshot();
                for account in snapshot.clients.values() {
                    prop_assert_eq!(account.reserved_tokens, 0);
                    prop_assert!(account.signed_tokens <= account.charged_tokens);
                }
                (snapshot, ledger.head())
            };
            let ledger = Ledger::open(&path, config()).unwrap();
            prop_assert_eq!(ledger.head(), head);
            prop_assert_eq!(ledger.snapshot(), snapshot);
        }
    }
}

#[test]
fn progress_of_a_request_a_crash_ended_is_found_and_charged_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = open(&dir);
        ledger
            .sync_client("alice", 1_000_000, 1_000_000, 0)
            .wait()
            .unwrap();
        // A finished request's checkpoint goes with its charge.
        let held = ledger.reserve("alice", 100).unwrap();
        ledger.progress(id(1), "alice", "w", 10).wait().unwrap();
        ledger.charge(held, "w", 40, id(1)).wait().unwrap();
        // A request cut by a crash: two checkpoints, no charge.
        let _held = ledger.reserve("alice", 100).unwrap();
        ledger.progress(id(2), "alice", "w", 5).wait().unwrap();
        ledger.progress(id(2), "alice", "w", 30).wait().unwrap();
        assert_eq!(ledger.unfinished().len(), 1, "the running one");
        // A checkpoint after the charge is refused.
        assert!(matches!(
            ledger.progress(id(1), "alice", "w", 50).wait(),
            Err(LedgerError::DuplicateCharge { .. })
        ));
        ledger.close().unwrap();
    }
    let ledger = open(&dir);
    let unfinished = ledger.unfinished();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(
        (unfinished[0].request_id, unfinished[0].tokens),
        (id(2), 30)
    );
    ledger.charge_unfinished(&unfinished[0]).wait().unwrap();
    assert!(ledger.unfinished().is_empty());
    assert!(matches!(
        ledger.charge_unfinished(&unfinished[0]).wait(),
        Err(LedgerError::DuplicateCharge { .. })
    ));
    let alice = &ledger.snapshot().clients["alice"];
    assert_eq!(alice.charged_tokens, 70);
    assert_eq!(alice.reserved_tokens, 0);
    ledger.close().unwrap();
    // And after another open the books are the same: nothing unfinished.
    assert!(open(&dir).unfinished().is_empty());
}

#[test]
fn a_lone_charge_is_committed_by_its_caller_and_with_others_running_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open_funded(&dir, config());
    let start = ledger.writer_stats();

    // No other request running: the record waits for its caller, who commits it in this
    // thread, so the result is there the moment commit_now returns.
    let reservation = ledger.reserve("alice", 10).unwrap();
    let mut lone = ledger.charge(reservation, "w", 3, id(1));
    let receipt = lone.commit_now().expect("committed by the caller").unwrap();
    assert_eq!(receipt.seqno, 2);
    assert_eq!(ledger.head().seqno, 2);
    let after_lone = ledger.writer_stats();
    assert_eq!(after_lone.by_caller - start.by_caller, 1, "{after_lone:?}");
    assert_eq!(after_lone.batches - start.batches, 1);

    // Another request still running: the writer thread is told at once and commits it; the
    // caller only waits (commit_now leaves it to the writer).
    let running = ledger.reserve("alice", 10).unwrap();
    let reservation = ledger.reserve("alice", 10).unwrap();
    let mut busy = ledger.charge(reservation, "w", 4, id(2));
    let receipt = match busy.commit_now() {
        Some(result) => result.unwrap(),
        None => busy.wait().unwrap(),
    };
    assert_eq!(receipt.seqno, 3);
    let after_busy = ledger.writer_stats();
    assert_eq!(after_busy.by_caller, after_lone.by_caller, "{after_busy:?}");
    assert_eq!(after_busy.batches - after_lone.batches, 1);
    drop(running);

    // A record nobody waits for is committed all the same: dropping its Pending tells the
    // writer.
    let reservation = ledger.reserve("alice", 10).unwrap();
    drop(ledger.charge(reservation, "w", 5, id(3)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ledger.head().seqno < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "a dropped record was never committed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    ledger.close().unwrap();
    let reopened = open(&dir);
    assert_eq!(reopened.head().seqno, 4);
    assert_eq!(reopened.snapshot().clients["alice"].charged_tokens, 12);
}

#[test]
fn a_caller_commit_overlapped_by_a_new_request_leaves_commits_to_the_writer_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let paused_for = |pause| {
        let config = LedgerConfig {
            caller_commit_pause: pause,
            ..config()
        };
        open_funded(&dir, config)
    };
    // commit_now, and if the commit was left to the writer, wait for it.
    let commit = |mut pending: cocoon_ledger::Pending| match pending.commit_now() {
        Some(result) => result.unwrap(),
        None => pending.wait().unwrap(),
    };

    // A request arrives (its reservation opens) after a lone charge was appended and before
    // its caller committed it: the caller still commits it, but then steps aside.
    let ledger = paused_for(std::time::Duration::from_secs(3600));
    let start = ledger.writer_stats();
    let reservation = ledger.reserve("alice", 10).unwrap();
    let lone = ledger.charge(reservation, "w", 3, id(1));
    let arrived = ledger.reserve("alice", 10).unwrap();
    commit(lone);
    let stats = ledger.writer_stats();
    assert_eq!(stats.by_caller - start.by_caller, 1, "{stats:?}");
    assert_eq!(stats.caller_pauses - start.caller_pauses, 1, "{stats:?}");
    drop(arrived);

    // Alone again, but within the pause: the writer thread commits.
    let reservation = ledger.reserve("alice", 10).unwrap();
    let next = ledger.charge(reservation, "w", 4, id(2));
    commit(next);
    let paused = ledger.writer_stats();
    assert_eq!(paused.by_caller, stats.by_caller, "{paused:?}");
    assert_eq!(paused.batches - stats.batches, 1);
    ledger.close().unwrap();

    // With a short pause, once it is over callers commit their own records again; a caller
    // commit nobody overlapped pauses nothing.
    let ledger = paused_for(std::time::Duration::from_millis(1));
    let reservation = ledger.reserve("alice", 10).unwrap();
    let lone = ledger.charge(reservation, "w", 5, id(3));
    let arrived = ledger.reserve("alice", 10).unwrap();
    commit(lone);
    drop(arrived);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = ledger.writer_stats();
    let reservation = ledger.reserve("alice", 10).unwrap();
    let again = ledger.charge(reservation, "w", 6, id(4));
    commit(again);
    let after = ledger.writer_stats();
    assert_eq!(after.by_caller - before.by_caller, 1, "{after:?}");
    assert_eq!(after.caller_pauses, before.caller_pauses, "{after:?}");
    ledger.close().unwrap();
    let reopened = open(&dir);
    assert_eq!(reopened.snapshot().clients["alice"].charged_tokens, 18);
}

#[test]
fn callers_and_the_writer_taking_turns_commit_every_record_once_in_order() {
    // Threads charging one at a time (each alone for a moment, so its caller commits) and in
    // bursts (the writer commits) at once: every record lands once, in seqno order, and the
    // reopened file holds the same books.
    let dir = tempfile::tempdir().unwrap();
    let ledger = std::sync::Arc::new(open(&dir));
    ledger
        .sync_client("alice", u128::MAX / 2, u128::MAX / 2, 0)
        .wait()
        .unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|thread| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let mut seqnos = Vec::new();
                for n in 0..200u64 {
                    let reservation = ledger.reserve("alice", 10).unwrap();
                    let mut pending = ledger.charge(reservation, "w", 1, id(thread * 1000 + n));
                    let receipt = match pending.commit_now() {
                        Some(result) => result.unwrap(),
                        None => pending.wait().unwrap(),
                    };
                    seqnos.push(receipt.seqno);
                }
                seqnos
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (2..=801).collect::<Vec<u64>>());
    let stats = ledger.writer_stats();
    assert_eq!(stats.records, 801);
    let head = ledger.head();
    let snapshot = ledger.snapshot();
    drop(ledger);
    let reopened = open(&dir);
    assert_eq!(reopened.head(), head);
    assert_eq!(reopened.snapshot(), snapshot);
    assert_eq!(snapshot.clients["alice"].charged_tokens, 800);
}
