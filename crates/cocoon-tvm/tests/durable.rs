//! The durable local network: replay reproduces an in-memory run of the same inputs exactly
//! (snapshot bytes, balances, get-methods, history), a snapshot plus the journal's tail equals
//! the whole journal, a torn last record is cut at any byte, other damage is an error naming the
//! file and offset, and handles in one process or two see each other's writes.

mod common;

use std::path::Path;

use cocoon_tvm::{
    Address, Clock, Error, Genesis, History, InternalMessage, LocalNetwork, Network, Options,
    StackValue, Trace,
};
use serde_json::Value;

const TON: u128 = 1_000_000_000;

fn manual(snapshot_every: u64) -> Options {
    Options {
        snapshot_every,
        clock: Clock::Manual,
        ..Options::default()
    }
}

fn plain(byte: u8) -> Address {
    Address::basechain([byte; 32])
}

fn transfer(to: Address, value: u128) -> InternalMessage {
    InternalMessage {
        from: plain(1),
        to,
        value,
        bounce: false,
        body: Vec::new(),
        state_init: None,
    }
}

fn journal_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(cocoon_tvm::durable::JOURNAL_FILE))
        .unwrap()
        .len()
}

/// The fixture's get-method calls (account, method, arguments).
fn gets(fixture: &Value) -> Vec<(Address, String, Vec<StackValue>)> {
    fixture["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|step| step.get("get"))
        .map(|get| {
            let args = get["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|arg| match arg["type"].as_str() {
                    Some("int") => StackValue::Int(arg["value"].as_str().unwrap().parse().unwrap()),
                    _ => StackValue::Slice(common::base64(&arg["boc"])),
                })
                .collect();
            (
                common::address(&get["account"]),
                get["method"].as_str().unwrap().to_owned(),
                args,
            )
        })
        .collect()
}

fn named_addresses(fixture: &Value) -> Vec<Address> {
    fixture["addresses"]
        .as_object()
        .unwrap()
        .values()
        .map(common::address)
        .collect()
}

/// Sends a fixture message through a local network.
fn send_durable(network: &LocalNetwork, message: &Value) -> Result<Trace, Error> {
    let state_init = message["state_init"]
        .as_str()
        .map(|_| common::base64(&message["state_init"]));
    match message["kind"].as_str() {
        Some("internal") => network.send_internal(&InternalMessage {
            from: common::address(&message["from"]),
            to: common::address(&message["to"]),
            value: common::nano(&message["value"]),
            bounce: message["bounce"].as_bool().unwrap(),
            body: common::base64(&message["body"]),
            state_init,
        }),
        _ => network.send_external(
            &common::address(&message["to"]),
            &common::base64(&message["body"]),
            state_init.as_deref(),
        ),
    }
}

/// Runs every fixture step on a local network and on an in-memory network with a history,
/// requiring the same outcome from both at every step. Time only moves forward (the fixture's
/// last get-methods look back in time; here they run at the latest time).
fn run_scenario(durable: &LocalNetwork, fixture: &Value) -> (Network, History) {
    let steps = fixture["steps"].as_array().unwrap();
    let mut memory = Network::new(common::now_of(&steps[0])).unwrap();
    let mut history = History::default();
    for step in steps {
        let name = &step["name"];
        let now = common::now_of(step).max(memory.now());
        if now != memory.now() {
            memory.set_now(now).unwrap();
            durable.set_now(now).unwrap();
        }
        if let Some(message) = step.get("message") {
            let expected = common::send(&mut memory, message);
            if let Ok(trace) = &expected {
                history.record(trace);
            }
            let actual = send_durable(durable, message);
            assert_eq!(
                actual.map_err(|e| e.to_string()),
                expected.map_err(|e| e.to_string()),
                "step {name}"
            );
        }
    }
    (memory, history)
}

/// Everything observable must equal the in-memory run's.
fn assert_same(durable: &LocalNetwork, memory: &Network, history: &History, fixture: &Value) {
    assert_eq!(
        durable.network_snapshot().unwrap(),
        memory.snapshot().unwrap()
    );
    assert_eq!(durable.lt().unwrap(), memory.lt());
    for address in named_addresses(fixture) {
        assert_eq!(
            durable.balance(&address).unwrap(),
            memory.balance(&address).unwrap()
        );
        assert_eq!(
            durable.transactions(&address, 0, usize::MAX).unwrap(),
            history.transactions(&address, 0, usize::MAX),
            "history of {address}"
        );
    }
    for (account, method, args) in gets(fixture) {
        assert_eq!(
            durable.run_get_method(&account, &method, &args).unwrap(),
            memory.run_get_method(&account, &method, &args).unwrap(),
            "{method}"
        );
    }
}

#[test]
fn replay_equals_an_in_memory_run_of_the_same_inputs() {
    let fixture = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let start = common::now_of(&fixture["steps"][0]);
    let durable = LocalNetwork::create_with(dir.path(), &Genesis::at(start), manual(0)).unwrap();
    let (memory, history) = run_scenario(&durable, &fixture);
    assert_same(&durable, &memory, &history, &fixture);
    let records = durable.records().unwrap();
    drop(durable);

    // Reopened with no snapshot: the whole journal replays to the same network.
    assert!(!dir.path().join(cocoon_tvm::durable::SNAPSHOT_FILE).exists());
    let reopened = LocalNetwork::open_with(dir.path(), manual(0)).unwrap();
    assert_eq!(reopened.records().unwrap(), records);
    assert_same(&reopened, &memory, &history, &fixture);

    // And the executor is deterministic: a second in-memory run is byte-identical.
    let other = LocalNetwork::create_with(
        tempfile::tempdir().unwrap().path(),
        &Genesis::at(start),
        manual(0),
    )
    .unwrap();
    let (again, _) = run_scenario(&other, &fixture);
    assert_eq!(again.snapshot().unwrap(), memory.snapshot().unwrap());
}

#[test]
fn a_snapshot_plus_the_tail_equals_the_whole_journal() {
    let fixture = common::fixture();
    let start = common::now_of(&fixture["steps"][0]);
    let dir = tempfile::tempdir().unwrap();
    let durable = LocalNetwork::create_with(dir.path(), &Genesis::at(start), manual(7)).unwrap();
    let (memory, history) = run_scenario(&durable, &fixture);
    let records = durable.records().unwrap();
    drop(durable);
    let snapshot = dir.path().join(cocoon_tvm::durable::SNAPSHOT_FILE);
    assert!(snapshot.exists(), "a snapshot every 7 records");

    // From the snapshot and the records after it.
    let from_snapshot = LocalNetwork::open_with(dir.path(), manual(0)).unwrap();
    assert_eq!(from_snapshot.records().unwrap(), records);
    assert!(
        !records.is_multiple_of(7),
        "the journal must have a tail after the last snapshot ({records} records)"
    );
    assert_same(&from_snapshot, &memory, &history, &fixture);
    drop(from_snapshot);

    // From the journal alone.
    std::fs::remove_file(&snapshot).unwrap();
    let from_journal = LocalNetwork::open_with(dir.path(), manual(0)).unwrap();
    assert_same(&from_journal, &memory, &history, &fixture);

    // A snapshot at the very end (no tail) too, and a history bound applied on reopening.
    from_journal.write_snapshot().unwrap();
    drop(from_journal);
    let bounded = LocalNetwork::open_with(
        dir.path(),
        Options {
            history_limit: 1,
            ..manual(0)
        },
    )
    .unwrap();
    assert_eq!(
        bounded.network_snapshot().unwrap(),
        memory.snapshot().unwrap()
    );
    for address in named_addresses(&fixture) {
        let all = history.transactions(&address, 0, usize::MAX);
        assert_eq!(
            bounded.transactions(&address, 0, usize::MAX).unwrap(),
            all.last().cloned().into_iter().collect::<Vec<_>>()
        );
    }
}

#[test]
fn history_is_oldest_first_pages_by_lt_and_survives_restarts() {
    let fixture = common::fixture();
    let start = common::now_of(&fixture["steps"][0]);
    let dir = tempfile::tempdir().unwrap();
    let durable = LocalNetwork::create_with(dir.path(), &Genesis::at(start), manual(0)).unwrap();
    run_scenario(&durable, &fixture);
    let proxy = common::address(&fixture["addresses"]["proxy"]);
    let client = common::address(&fixture["addresses"]["client"]);
    let all = durable.transactions(&proxy, 0, usize::MAX).unwrap();
    assert!(all.len() >= 3, "the proxy had {} transactions", all.len());
    assert!(all.windows(2).all(|w| w[0].lt < w[1].lt), "oldest first");
    // The client's top-up reached the proxy: a transaction from the client, with value.
    assert!(all
        .iter()
        .any(|tx| tx.in_message.source == Some(client) && tx.in_message.value > 0));

    // Paging one at a time from after_lt = 0 visits the same transactions.
    let mut paged = Vec::new();
    let mut after = 0;
    while let Some(tx) = durable
        .transactions(&proxy, after, 1)
        .unwrap()
        .into_iter()
        .next()
    {
        after = tx.lt;
        paged.push(tx);
    }
    assert_eq!(paged, all);
    let middle = all[all.len() / 2].lt;
    assert_eq!(
        durable.transactions(&proxy, middle, usize::MAX).unwrap(),
        all[all.len() / 2 + 1..]
    );
    assert!(durable
        .transactions(&plain(0xee), 0, 10)
        .unwrap()
        .is_empty());

    // The last K per account, across restarts.
    drop(durable);
    let bounded = LocalNetwork::open_with(
        dir.path(),
        Options {
            history_limit: 2,
            ..manual(0)
        },
    )
    .unwrap();
    assert_eq!(
        bounded.transactions(&proxy, 0, usize::MAX).unwrap(),
        all[all.len() - 2..]
    );
    let dropped = bounded
        .read(|_, history| history.dropped_through_lt(&proxy))
        .unwrap();
    assert_eq!(dropped, all[all.len() - 3].lt);
}

/// A network with the scenario, a snapshot, and then one small record (a plain transfer).
/// Returns the directory, the state before the last record, and where that record starts.
fn with_a_last_record(snapshot_before_it: bool) -> (tempfile::TempDir, Vec<u8>, u64, Vec<u8>) {
    let fixture = common::fixture();
    let start = common::now_of(&fixture["steps"][0]);
    let dir = tempfile::tempdir().unwrap();
    let durable = LocalNetwork::create_with(dir.path(), &Genesis::at(start), manual(0)).unwrap();
    run_scenario(&durable, &fixture);
    if snapshot_before_it {
        durable.write_snapshot().unwrap();
    }
    let before = durable.network_snapshot().unwrap();
    let last_start = journal_len(dir.path());
    durable.send_internal(&transfer(plain(42), TON)).unwrap();
    let journal = std::fs::read(dir.path().join("journal")).unwrap();
    (dir, before, last_start, journal)
}

#[test]
fn a_crash_at_any_byte_of_the_last_record_opens_to_the_state_before_it() {
    for snapshot_before_it in [true, false] {
        let (dir, before, last_start, journal) = with_a_last_record(snapshot_before_it);
        let path = dir.path().join("journal");
        let cuts: Vec<usize> = if snapshot_before_it {
            (last_start as usize..journal.len()).collect()
        } else {
            // Without a snapshot each open replays everything: a few cuts are enough.
            vec![
                last_start as usize,
                last_start as usize + 5,
                journal.len() - 1,
            ]
        };
        for cut in cuts {
            std::fs::write(&path, &journal[..cut]).unwrap();
            let reopened = LocalNetwork::open_with(dir.path(), manual(0))
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(reopened.network_snapshot().unwrap(), before, "cut at {cut}");
            assert_eq!(journal_len(dir.path()), last_start, "cut at {cut}");
            assert!(reopened.transactions(&plain(42), 0, 10).unwrap().is_empty());
        }
        // A file extended with zeros (written metadata, unwritten data) is a torn tail too.
        let mut zeroed = journal.clone();
        zeroed[last_start as usize..].fill(0);
        std::fs::write(&path, &zeroed).unwrap();
        let reopened = LocalNetwork::open_with(dir.path(), manual(0)).unwrap();
        assert_eq!(reopened.network_snapshot().unwrap(), before);
        // And the network goes on from there, durably.
        reopened.send_internal(&transfer(plain(42), TON)).unwrap();
        drop(reopened);
        let again = LocalNetwork::open_with(dir.path(), manual(0)).unwrap();
        assert_eq!(again.balance(&plain(42)).unwrap(), TON);
        assert_eq!(std::fs::read(&path).unwrap(), journal);
    }
}

#[test]
fn damage_before_the_last_record_is_an_error_naming_the_file_and_offset() {
    let (dir, _, last_start, journal) = with_a_last_record(false);
    let path = dir.path().join("journal");
    // A byte of the genesis, of a record in the middle, and of the last record's header with
    // the record complete after it.
    let cases: [(usize, Option<u64>); 3] = [
        (14, Some(12)),
        (200, None),
        (last_start as usize + 1, Some(last_start)),
    ];
    for (at, record_start) in cases {
        let mut damaged = journal.clone();
        damaged[at] ^= 0x10;
        std::fs::write(&path, &damaged).unwrap();
        let error = LocalNetwork::open_with(dir.path(), manual(0)).unwrap_err();
        match &error {
            Error::Corrupt {
                path: named,
                offset,
                ..
            } => {
                assert_eq!(named, &path, "{error}");
                if let Some(start) = record_start {
                    assert_eq!(*offset, start, "{error}");
                }
                assert!(*offset <= at as u64, "{error}");
            }
            other => panic!("byte {at}: {other}"),
        }
        assert!(error.to_string().contains("journal"), "{error}");
    }
    std::fs::write(&path, &journal).unwrap();
    LocalNetwork::open_with(dir.path(), manual(0)).unwrap();

    // A damaged snapshot is an error naming the snapshot; one from another journal too.
    let durable = LocalNetwork::open_with(dir.path(), manual(0)).unwrap();
    durable.write_snapshot().unwrap();
    drop(durable);
    let snapshot = dir.path().join("snapshot");
    let good = std::fs::read(&snapshot).unwrap();
    let mut damaged = good.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    std::fs::write(&snapshot, &damaged).unwrap();
    match LocalNetwork::open_with(dir.path(), manual(0)).unwrap_err() {
        Error::Corrupt { path, .. } => assert_eq!(path, snapshot),
        other => panic!("{other}"),
    }
    std::fs::write(&snapshot, &good).unwrap();
    std::fs::write(&path, &journal[..last_start as usize]).unwrap();
    match LocalNetwork::open_with(dir.path(), manual(0)).unwrap_err() {
        Error::Corrupt { path, reason, .. } => {
            assert_eq!(path, snapshot, "{reason}");
        }
        other => panic!("{other}"),
    }
    std::fs::remove_file(&snapshot).unwrap();
    LocalNetwork::open_with(dir.path(), manual(0)).unwrap();

    // Not a journal at all.
    std::fs::write(&path, b"{\"genesis\":1}\n").unwrap();
    assert!(matches!(
        LocalNetwork::open(dir.path()),
        Err(Error::Corrupt { offset: 0, .. })
    ));
    assert!(matches!(
        LocalNetwork::open(dir.path().join("missing")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn two_handles_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let a = LocalNetwork::create_with(dir.path(), &Genesis::at(1_750_000_000), manual(5)).unwrap();
    let b = LocalNetwork::open_with(dir.path(), manual(5)).unwrap();
    assert!(matches!(
        LocalNetwork::create(dir.path(), &Genesis::at(1)),
        Err(Error::AlreadyExists(_))
    ));
    a.mint(&plain(7), 3 * TON).unwrap();
    assert_eq!(b.balance(&plain(7)).unwrap(), 3 * TON);
    b.send_internal(&transfer(plain(8), TON)).unwrap();
    assert_eq!(a.balance(&plain(8)).unwrap(), TON);
    assert_eq!(a.transactions(&plain(8), 0, 10).unwrap().len(), 1);
    b.set_now(1_750_000_100).unwrap();
    assert_eq!(a.now().unwrap(), 1_750_000_100);
    assert!(matches!(
        a.set_now(1_750_000_099),
        Err(Error::TimeBackwards { .. })
    ));

    // Both at once from two threads: every write lands once, in one order both agree on.
    std::thread::scope(|scope| {
        for handle in [&a, &b] {
            scope.spawn(move || {
                for _ in 0..25 {
                    handle.mint(&plain(9), 1).unwrap();
                    handle.send_internal(&transfer(plain(10), 2)).unwrap();
                }
            });
        }
    });
    assert_eq!(a.balance(&plain(9)).unwrap(), 50);
    assert_eq!(b.records().unwrap(), a.records().unwrap());
    assert_eq!(b.network_snapshot().unwrap(), a.network_snapshot().unwrap());
    let history = a.transactions(&plain(10), 0, usize::MAX).unwrap();
    assert_eq!(history.len(), 50);
    assert_eq!(b.transactions(&plain(10), 0, usize::MAX).unwrap(), history);
    let state = a.network_snapshot().unwrap();
    drop((a, b));
    assert_eq!(
        LocalNetwork::open(dir.path())
            .unwrap()
            .network_snapshot()
            .unwrap(),
        state
    );
}

/// The child side of `a_child_process_shares_the_directory` (does nothing when run alone).
#[test]
fn child_process_writer() {
    let Ok(dir) = std::env::var("COCOON_TVM_CHILD_DIR") else {
        return;
    };
    let network = LocalNetwork::open_with(&dir, manual(4)).unwrap();
    for _ in 0..30 {
        network.mint(&plain(11), 1).unwrap();
        network.send_internal(&transfer(plain(12), 1)).unwrap();
    }
}

#[test]
fn a_child_process_shares_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let network =
        LocalNetwork::create_with(dir.path(), &Genesis::at(1_750_000_000), manual(4)).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_writer", "--test-threads=1"])
        .env("COCOON_TVM_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..30 {
        network.mint(&plain(11), 1).unwrap();
        network.send_internal(&transfer(plain(12), 1)).unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(network.balance(&plain(11)).unwrap(), 60);
    assert_eq!(network.transactions(&plain(12), 0, 1000).unwrap().len(), 60);
    assert_eq!(network.records().unwrap(), 1 + 120);
    let state = network.network_snapshot().unwrap();
    drop(network);
    assert_eq!(
        LocalNetwork::open(dir.path())
            .unwrap()
            .network_snapshot()
            .unwrap(),
        state
    );
}

#[test]
fn only_what_changed_the_network_is_journalled_and_time_only_goes_forward() {
    let dir = tempfile::tempdir().unwrap();
    let network = LocalNetwork::create(dir.path(), &Genesis::at(1_000)).unwrap();
    // The system clock is far past 1,000: a write moves time to it.
    network.mint(&plain(7), TON).unwrap();
    let now = network.now().unwrap();
    assert!(now > 1_700_000_000, "{now}");
    assert!(matches!(
        network.set_now(now - 1),
        Err(Error::TimeBackwards { .. })
    ));

    // A failed send changes nothing and writes nothing (time included).
    let records = network.records().unwrap();
    let len = journal_len(dir.path());
    let bad = InternalMessage {
        body: b"not a boc".to_vec(),
        ..transfer(plain(7), 1)
    };
    assert!(matches!(
        network.send_internal(&bad),
        Err(Error::BadBoc { .. })
    ));
    assert_eq!(
        (network.records().unwrap(), journal_len(dir.path())),
        (records, len)
    );

    // A refused external is journalled (it uses up an lt step) and replays the same.
    let lt = network.lt().unwrap();
    let refused = network.send_external(&plain(7), &tycho_empty_boc(), None);
    assert!(matches!(refused, Err(Error::ExternalNotAccepted { .. })));
    assert_eq!(network.lt().unwrap(), lt + cocoon_tvm::LT_STEP);
    assert_eq!(network.records().unwrap(), records + 1);
    network.set_rand_seed([5; 32]).unwrap();
    network.set_balance(&plain(8), 5).unwrap();
    let (deployed, trace) = network
        .deploy(&plain(1), &tycho_empty_boc(), &tycho_empty_boc(), TON, &[])
        .unwrap();
    assert_eq!(trace.transactions[0].account, deployed);
    // A code-less wallet pays for what it sends; one that cannot pay changes nothing.
    let wallet = plain(20);
    network.mint(&wallet, 10 * TON).unwrap();
    let paid = InternalMessage {
        from: wallet,
        ..transfer(plain(21), 3 * TON)
    };
    let trace = network.transfer(&paid).unwrap();
    assert_eq!(trace.transactions[0].in_message.source, Some(wallet));
    assert_eq!(network.balance(&wallet).unwrap(), 7 * TON);
    let records = network.records().unwrap();
    let before_failures = network.network_snapshot().unwrap();
    let too_much = InternalMessage {
        value: 8 * TON,
        ..paid.clone()
    };
    assert!(matches!(
        network.transfer(&too_much),
        Err(Error::InsufficientBalance { .. })
    ));
    let unsendable = InternalMessage {
        body: b"not a boc".to_vec(),
        ..paid
    };
    assert!(matches!(
        network.transfer(&unsendable),
        Err(Error::BadBoc { .. })
    ));
    assert_eq!(network.network_snapshot().unwrap(), before_failures);
    assert_eq!(network.records().unwrap(), records);
    assert!(network.current_time().unwrap() >= network.now().unwrap());

    let state = network.network_snapshot().unwrap();
    drop(network);
    let reopened = LocalNetwork::open(dir.path()).unwrap();
    assert_eq!(reopened.network_snapshot().unwrap(), state);
    // The refused external, the deploy and the paid transfer each took an lt step.
    assert_eq!(reopened.lt().unwrap(), lt + 3 * cocoon_tvm::LT_STEP);
    assert_eq!(reopened.balance(&wallet).unwrap(), 7 * TON);

    // open_or_create opens what is there and creates what is not.
    let other = tempfile::tempdir().unwrap();
    let created = LocalNetwork::open_or_create(other.path(), &Genesis::at(5), manual(0)).unwrap();
    assert_eq!(created.now().unwrap(), 5);
    let existing = LocalNetwork::open_or_create(dir.path(), &Genesis::at(5), manual(0)).unwrap();
    assert_eq!(existing.network_snapshot().unwrap(), state);
}

/// The BOC of an empty cell.
fn tycho_empty_boc() -> Vec<u8> {
    use tycho_types::cell::CellFamily;
    tycho_types::boc::Boc::encode(tycho_types::cell::Cell::empty_cell())
}
