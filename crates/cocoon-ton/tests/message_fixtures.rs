//! Every message body, as Rust builds it, pinned in `contracts/fixtures/messages.json`; the
//! sandbox test `contracts/tests/messages.test.js` builds the same bodies the way the contract
//! tests send them and compares cell hashes. So the daemons' messages are the contracts'.
//!
//! After an intended layout change: `COCOON_UPDATE_FIXTURES=1 cargo test -p cocoon-ton --test
//! message_fixtures`, and review the diff.

use std::path::PathBuf;

use cocoon_ton::messages::{Body, ProxyKey, SignedPayload};
use cocoon_ton::ops::{op, HashKind, Params};
use cocoon_ton::vectors::party_seed;
use cocoon_ton::{Address, Coins};
use serde_json::{json, Value};
use tonlib_core::TonHash;

fn bodies() -> Vec<(Value, Body)> {
    let q = 7u64;
    let h1 = [0x11u8; 32];
    let h2 = [0x22u8; 32];
    let target = Address::new(0, TonHash::from([0x33; 32]));
    let excess = Address::new(0, TonHash::from([0x44; 32]));
    let key = ProxyKey::from_seed(&party_seed("proxy"));
    let params = Params::default();
    let mut out = vec![
        (
            json!({"op": "top_up", "amount": "123456789"}),
            Body::TopUp {
                query_id: q,
                amount: Coins(123_456_789),
            },
        ),
        (
            json!({"op": "owner_client_increase_stake", "amount": "5000000000"}),
            Body::IncreaseStake {
                query_id: q,
                new_stake: Coins(5_000_000_000),
            },
        ),
        (
            json!({"op": "owner_client_withdraw", "amount": "1"}),
            Body::Withdraw {
                query_id: q,
                amount: Coins(1),
            },
        ),
        (
            json!({"op": "owner_client_request_refund"}),
            Body::RequestRefund { query_id: q },
        ),
        (
            json!({"op": "owner_client_register", "hash": hex::encode(h1)}),
            Body::Register {
                query_id: q,
                secret_hash: h1,
            },
        ),
        (
            json!({"op": "client_deploy", "amount": "10000000000", "stake": "100000000", "hash": hex::encode(h1)}),
            Body::ClientDeploy {
                query_id: q,
                amount: Coins(10_000_000_000),
                stake: Coins(100_000_000),
                secret_hash: h1,
            },
        ),
        (
            json!({"op": "worker_deploy"}),
            Body::WorkerDeploy { query_id: q },
        ),
        (
            json!({"op": "proxy_deploy", "amount": "1000000000"}),
            Body::ProxyDeploy {
                query_id: q,
                stake: Coins(1_000_000_000),
            },
        ),
        (
            json!({"op": "proxy_save_state", "seqno": 42, "hash": hex::encode(h2)}),
            Body::SaveState {
                query_id: q,
                seqno: 42,
                hash: h2,
            },
        ),
        (
            json!({"op": "proxy_close"}),
            Body::ProxyClose { query_id: q },
        ),
        (
            json!({"op": "root_set_params", "params": params}),
            Body::SetParams {
                query_id: q,
                params: params.clone(),
            },
        ),
        (
            json!({"op": "root_add_hash", "kind": 2, "hash": hex::encode(h2)}),
            Body::AddHash {
                query_id: q,
                kind: HashKind::Model,
                hash: h2,
            },
        ),
        (
            json!({"op": "root_remove_hash", "kind": 0, "hash": hex::encode(h1)}),
            Body::RemoveHash {
                query_id: q,
                kind: HashKind::ProxyImage,
                hash: h1,
            },
        ),
        (
            json!({"op": "root_register_proxy", "id": 5, "endpoint": "10.0.0.1:5222"}),
            Body::RegisterProxy {
                query_id: q,
                id: 5,
                endpoint: "10.0.0.1:5222".into(),
            },
        ),
        (
            json!({"op": "root_unregister_proxy", "id": 5}),
            Body::UnregisterProxy { query_id: q, id: 5 },
        ),
    ];
    for (name, opcode) in [
        ("charge_signed", op::CHARGE_SIGNED),
        ("grant_refund_signed", op::GRANT_REFUND_SIGNED),
        ("worker_payout_signed", op::WORKER_PAYOUT_SIGNED),
        ("worker_last_payout_signed", op::WORKER_LAST_PAYOUT_SIGNED),
    ] {
        for excess_to in [None, Some(&excess)] {
            let m = SignedPayload {
                op: opcode,
                query_id: q,
                tokens: 987_654_321,
                target: target.clone(),
            }
            .sign(&key, excess_to.cloned().unwrap_or(Address::NULL))
            .unwrap();
            out.push((
                json!({"op": name, "tokens": 987_654_321u64, "target": target.to_hex(), "signer": "proxy",
                       "excess_to": excess_to.map(|a| a.to_hex())}),
                Body::Signed(m),
            ));
        }
    }
    out
}

#[test]
fn bodies_match_the_pinned_fixture() {
    let entries: Vec<Value> = bodies()
        .into_iter()
        .map(|(mut fields, body)| {
            let cell = body.to_cell().unwrap();
            // Decoding gives the same body back.
            assert_eq!(Body::from_cell(&cell).unwrap(), body);
            fields["query_id"] = json!(7);
            fields["hash"] = fields.get("hash").cloned().unwrap_or(Value::Null);
            fields["cell_hash"] = json!(cell.cell_hash().to_hex());
            fields
        })
        .collect();
    let text = serde_json::to_string_pretty(&json!({
        "about": "Message bodies built by cocoon-ton (crates/cocoon-ton/tests/message_fixtures.rs); contracts/tests/messages.test.js rebuilds each and compares cell_hash.",
        "messages": entries,
    }))
    .unwrap() + "\n";
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts/fixtures/messages.json");
    if std::env::var_os("COCOON_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    // Compared as JSON values: key order depends on serde_json features the workspace unifies.
    let pinned: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let built: Value = serde_json::from_str(&text).unwrap();
    assert!(
        pinned == built,
        "{} differs from what cocoon-ton builds; see this file's header",
        path.display()
    );
}
