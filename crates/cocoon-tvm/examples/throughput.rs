//! Throughput of the embedded network (a benchmark, not a test): replays the sandbox scenario of
//! `contracts/fixtures/traces.json` once to set up root, proxy, client and worker, then
//! measures three workloads and prints messages and transactions per second.
//!
//! ```sh
//! cargo run --release -p cocoon-tvm --example throughput
//! ```

use std::time::{Duration, Instant};

use base64::Engine;
use cocoon_tvm::{Address, InternalMessage, Network};
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

/// Runs `work` repeatedly for `RUN_FOR` and prints calls/s and transactions/s.
fn measure(label: &str, mut work: impl FnMut() -> usize) {
    let start = Instant::now();
    let (mut calls, mut transactions) = (0u64, 0u64);
    while start.elapsed() < RUN_FOR {
        transactions += work() as u64;
        calls += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{label:<58} {:>9.0} msgs/s {:>9.0} tx/s ({:.1} µs per call)",
        calls as f64 / seconds,
        transactions as f64 / seconds,
        seconds * 1e6 / calls as f64
    );
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
    let mut network = Network::new(steps[0]["now"].as_u64().unwrap() as u32).unwrap();
    for s in steps {
        network.set_now(s["now"].as_u64().unwrap() as u32).unwrap();
        if let Some(message) = s.get("message").filter(|m| m["kind"] == "internal") {
            let _ = network.send_internal(&internal(message));
        }
    }

    // A plain transfer: one transaction on a code-less account.
    let transfer = InternalMessage {
        from: Address::basechain([1; 32]),
        to: Address::basechain([2; 32]),
        value: 1_000_000_000,
        bounce: false,
        body: Vec::new(),
        state_init: None,
    };
    measure("plain transfer (1 tx)", || {
        network.send_internal(&transfer).unwrap().transactions.len()
    });
    // An owner op on the root: root (with an excess out-message) and the owner's address.
    let root_op = internal(&step("root add model hash")["message"]);
    measure("root owner op (root -> excess to the owner, 2 tx)", || {
        network.send_internal(&root_op).unwrap().transactions.len()
    });
    // A replayed signed charge: Ed25519 check in the client contract, refused, bounced.
    let charge = internal(&step("client signed charge replayed (1000, bounced)")["message"]);
    measure(
        "signed charge, replayed (Ed25519, 1000, bounce; 2 tx)",
        || network.send_internal(&charge).unwrap().transactions.len(),
    );
    // A top-up: client -> proxy -> excess to the owner.
    let top_up = internal(&step("client top-up")["message"]);
    measure("client top-up (client -> proxy -> excess, 3 tx)", || {
        network.send_internal(&top_up).unwrap().transactions.len()
    });
    let client = address(&fixture["addresses"]["client"]);
    measure("get-method get_cocoon_client_data", || {
        let result = network
            .run_get_method(&client, "get_cocoon_client_data", &[])
            .unwrap();
        assert!(result.success() && result.stack.len() == 9);
        0
    });
    let started = Instant::now();
    let snapshot = network.snapshot().unwrap();
    let restored = Network::restore(&snapshot).unwrap();
    assert_eq!(restored.lt(), network.lt());
    println!(
        "snapshot + restore of {} bytes: {:.0} µs",
        snapshot.len(),
        started.elapsed().as_secs_f64() * 1e6
    );
}
