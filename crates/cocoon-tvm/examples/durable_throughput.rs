//! Throughput of the durable local network against the in-memory one (a benchmark, not a
//! test): the same workloads on a `Network` and on a `LocalNetwork` whose every message is
//! journalled and fdatasync'ed, side by side; then how long opening takes.
//!
//! ```sh
//! cargo run --release -p cocoon-tvm --example durable_throughput [-- DIR]
//! ```
//!
//! DIR is where the journal goes (default: a temporary directory in the current one, so the
//! figures are those of the disk the repository is on; /tmp may be memory).

use std::time::{Duration, Instant};

use base64::Engine;
use cocoon_tvm::{Address, Clock, Genesis, InternalMessage, LocalNetwork, Network, Options};
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../contracts/fixtures/traces.json"
);
const RUN_FOR: Duration = Duration::from_secs(2);

fn bytes(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().expect("base64"))
        .expect("base64")
}

fn address(value: &Value) -> Address {
    value.as_str().expect("address").parse().expect("address")
}

fn internal(message: &Value) -> InternalMessage {
    InternalMessage {
        from: address(&message["from"]),
        to: address(&message["to"]),
        value: message["value"].as_str().unwrap().parse().unwrap(),
        bounce: message["bounce"].as_bool().unwrap(),
        body: bytes(&message["body"]),
        state_init: message["state_init"]
            .as_str()
            .map(|_| bytes(&message["state_init"])),
    }
}

/// Calls per second of `work`, run for `RUN_FOR`.
fn rate(mut work: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < RUN_FOR {
        work();
        calls += 1;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("fixture")).expect("json");
    let steps = fixture["steps"].as_array().expect("steps");
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name:?}"))
    };
    let dir = match std::env::args().nth(1) {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir_in("."),
    }
    .expect("a temporary directory");
    let start = steps[0]["now"].as_u64().unwrap() as u32;
    let options = Options {
        clock: Clock::Manual,
        ..Options::default()
    };
    let durable = LocalNetwork::create_with(dir.path(), &Genesis::at(start), options.clone())
        .expect("create");
    let mut memory = Network::new(start).unwrap();
    // The scenario's internal messages set up root, proxy, client and worker on both.
    for s in steps {
        let now = (s["now"].as_u64().unwrap() as u32).max(memory.now());
        memory.set_now(now).unwrap();
        durable.set_now(now).unwrap();
        if let Some(message) = s.get("message").filter(|m| m["kind"] == "internal") {
            let _ = memory.send_internal(&internal(message));
            let _ = durable.send_internal(&internal(message));
        }
    }

    let transfer = InternalMessage {
        from: Address::basechain([1; 32]),
        to: Address::basechain([2; 32]),
        value: 1_000_000_000,
        bounce: false,
        body: Vec::new(),
        state_init: None,
    };
    let top_up = internal(&step("client top-up")["message"]);
    let charge = internal(&step("client signed charge replayed (1000, bounced)")["message"]);
    println!(
        "journal in {} (every record fdatasync'ed; snapshot every {} records)",
        dir.path().display(),
        options.snapshot_every
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "workload", "in memory/s", "journalled/s"
    );
    let row = |label: &str, in_memory: f64, journalled: f64| {
        println!("{label:<52} {in_memory:>14.0} {journalled:>14.0}");
    };
    for (label, message) in [
        ("plain transfer (1 tx)", &transfer),
        ("signed charge, replayed (Ed25519, bounce; 2 tx)", &charge),
        ("client top-up (client -> proxy -> excess, 3 tx)", &top_up),
    ] {
        let in_memory = rate(|| {
            memory.send_internal(message).unwrap();
        });
        let journalled = rate(|| {
            durable.send_internal(message).unwrap();
        });
        row(label, in_memory, journalled);
    }
    let faucet = Address::basechain([3; 32]);
    let in_memory = rate(|| {
        let balance = memory.balance(&faucet).unwrap();
        memory.set_balance(&faucet, balance + 1).unwrap();
    });
    let journalled = rate(|| {
        durable.mint(&faucet, 1).unwrap();
    });
    row("faucet mint (no transaction)", in_memory, journalled);
    let client = address(&fixture["addresses"]["client"]);
    let in_memory = rate(|| {
        memory.balance(&client).unwrap();
    });
    let journalled = rate(|| {
        durable.balance(&client).unwrap();
    });
    row(
        "balance read (lock + catch-up check)",
        in_memory,
        journalled,
    );

    let records = durable.records().unwrap();
    drop(durable);
    let started = Instant::now();
    let reopened = LocalNetwork::open_with(dir.path(), options.clone()).unwrap();
    let from_snapshot = started.elapsed();
    drop(reopened);
    std::fs::remove_file(dir.path().join(cocoon_tvm::durable::SNAPSHOT_FILE)).unwrap();
    let started = Instant::now();
    let reopened = LocalNetwork::open_with(dir.path(), options).unwrap();
    let from_journal = started.elapsed();
    let journal_bytes = std::fs::metadata(reopened.journal_path()).unwrap().len();
    println!(
        "open with {records} records ({:.1} MB): {:.0} ms from the snapshot + tail, {:.0} ms replaying the whole journal",
        journal_bytes as f64 / 1e6,
        from_snapshot.as_secs_f64() * 1e3,
        from_journal.as_secs_f64() * 1e3,
    );
}
