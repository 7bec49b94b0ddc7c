//! Parity with @ton/sandbox: replays `contracts/fixtures/traces.json` (inputs and the
//! sandbox's results, written by `contracts/scripts/traces.js`) on the embedded network and
//! requires every transaction, balance and get-method result to be equal, fees to the nanoton.
//! Cells are compared by hash, so the two sides may write their BOCs differently.

use cocoon_tvm::{
    cell_hash, AccountStatus, Address, ComputeSkipReason, Error, GetMethodResult, Network,
    StackValue, Transaction,
};
use serde_json::{json, Value};

mod common;

use common::{address, base64, nano, now_of};

/// A BOC in the fixture, replaced by its cell hash.
fn boc_hash(text: &Value) -> Value {
    json!(hex::encode(cell_hash(&base64(text)).expect("fixture boc")))
}

fn hash_of(boc: &[u8]) -> Value {
    json!(hex::encode(cell_hash(boc).expect("our boc")))
}

fn status(status: AccountStatus) -> &'static str {
    match status {
        AccountStatus::NonExisting => "non-existing",
        AccountStatus::Uninit => "uninitialized",
        AccountStatus::Active => "active",
        AccountStatus::Frozen => "frozen",
    }
}

fn skip_reason(reason: ComputeSkipReason) -> &'static str {
    match reason {
        ComputeSkipReason::NoState => "no-state",
        ComputeSkipReason::BadState => "bad-state",
        ComputeSkipReason::NoGas => "no-gas",
        ComputeSkipReason::Suspended => "suspended",
    }
}

/// The fixture's transaction with its BOCs replaced by hashes.
fn expected_transaction(tx: &Value) -> Value {
    let mut tx = tx.clone();
    for out in tx["out_messages"].as_array_mut().expect("out_messages") {
        out["body"] = boc_hash(&out["body"]);
    }
    tx
}

/// Our transaction in the fixture's notation.
fn actual_transaction(tx: &Transaction) -> Value {
    let out_messages: Vec<Value> = tx
        .out_messages
        .iter()
        .map(|m| match &m.dest {
            Some(dest) => json!({
                "kind": "internal", "dest": dest.to_string(), "value": m.value.to_string(),
                "bounce": m.bounce, "bounced": m.bounced, "fwd_fee": m.fwd_fee.to_string(),
                "created_lt": m.created_lt.to_string(), "body": hash_of(&m.body),
            }),
            None => json!({
                "kind": "external", "dest": null, "value": null, "bounce": null, "bounced": null,
                "fwd_fee": null, "created_lt": m.created_lt.to_string(), "body": hash_of(&m.body),
            }),
        })
        .collect();
    json!({
        "account": tx.account.to_string(),
        "lt": tx.lt.to_string(),
        "orig_status": status(tx.orig_status),
        "end_status": status(tx.end_status),
        "compute_skip_reason": tx.compute_skipped.map(skip_reason),
        "exit_code": tx.exit_code,
        "compute_success": tx.compute_success,
        "gas_used": tx.gas_used.to_string(),
        "gas_fees": tx.gas_fees.to_string(),
        "action_success": tx.action_success,
        "action_result_code": tx.action_result_code,
        "aborted": tx.aborted,
        "storage_fees": tx.storage_fees.to_string(),
        "total_fees": tx.total_fees.to_string(),
        "balance_before": tx.balance_before.to_string(),
        "balance_after": tx.balance_after.to_string(),
        "out_messages": out_messages,
    })
}

fn stack_arg(arg: &Value) -> StackValue {
    match arg["type"].as_str() {
        Some("int") => StackValue::Int(arg["value"].as_str().unwrap().parse().unwrap()),
        Some("slice") => StackValue::Slice(base64(&arg["boc"])),
        other => panic!("fixture argument type {other:?}"),
    }
}

fn expected_stack_item(item: &Value) -> Value {
    match item["type"].as_str() {
        Some("cell" | "slice" | "builder") => {
            json!({ "type": item["type"], "hash": boc_hash(&item["boc"]) })
        }
        Some("tuple") => json!({
            "type": "tuple",
            "items": item["items"].as_array().unwrap().iter().map(expected_stack_item).collect::<Vec<_>>(),
        }),
        _ => item.clone(),
    }
}

fn actual_stack_item(item: &StackValue) -> Value {
    match item {
        StackValue::Null => json!({ "type": "null" }),
        StackValue::NaN => json!({ "type": "nan" }),
        StackValue::Int(value) => json!({ "type": "int", "value": value.to_string() }),
        StackValue::Cell(boc) => json!({ "type": "cell", "hash": hash_of(boc) }),
        StackValue::Slice(boc) => json!({ "type": "slice", "hash": hash_of(boc) }),
        StackValue::Builder(boc) => json!({ "type": "builder", "hash": hash_of(boc) }),
        StackValue::Tuple(items) => {
            json!({ "type": "tuple", "items": items.iter().map(actual_stack_item).collect::<Vec<_>>() })
        }
    }
}

fn actual_get(result: &GetMethodResult) -> Value {
    json!({
        "exit_code": result.exit_code,
        "gas_used": result.gas_used.to_string(),
        "stack": result.stack.iter().map(actual_stack_item).collect::<Vec<_>>(),
    })
}

#[test]
fn every_sandbox_trace_and_get_method_is_reproduced_to_the_nanoton() {
    let fixture = common::fixture();
    let steps = fixture["steps"].as_array().expect("steps");
    let names: Vec<(String, Address)> = fixture["addresses"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, a)| (name.clone(), address(a)))
        .collect();
    let mut network = Network::new(now_of(&steps[0])).unwrap();
    let (mut transactions, mut get_methods, mut balances) = (0, 0, 0);
    for step in steps {
        let name = step["name"].as_str().unwrap();
        network.set_now(now_of(step)).unwrap();
        let expected = &step["result"];
        if let Some(get) = step.get("get") {
            let args: Vec<StackValue> = get["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(stack_arg)
                .collect();
            let result = network
                .run_get_method(
                    &address(&get["account"]),
                    get["method"].as_str().unwrap(),
                    &args,
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = json!({
                "exit_code": expected["exit_code"],
                "gas_used": expected["gas_used"],
                "stack": expected["stack"].as_array().unwrap().iter().map(expected_stack_item).collect::<Vec<_>>(),
            });
            assert_eq!(actual_get(&result), expected, "get-method step {name:?}");
            get_methods += 1;
            continue;
        }
        match (
            common::send(&mut network, &step["message"]),
            expected["rejected"].is_null(),
        ) {
            (Ok(trace), true) => {
                let actual: Vec<Value> =
                    trace.transactions.iter().map(actual_transaction).collect();
                let wanted: Vec<Value> = expected["transactions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(expected_transaction)
                    .collect();
                assert_eq!(
                    actual.len(),
                    wanted.len(),
                    "transaction count of step {name:?}"
                );
                for (i, (a, w)) in actual.iter().zip(&wanted).enumerate() {
                    assert_eq!(a, w, "step {name:?}, transaction {i}");
                }
                transactions += actual.len();
            }
            (Err(Error::ExternalNotAccepted { exit_code, .. }), false) => {
                assert_eq!(
                    exit_code.map(i64::from),
                    expected["rejected"]["exit_code"].as_i64(),
                    "step {name:?}"
                );
            }
            (outcome, _) => panic!(
                "step {name:?}: {outcome:?}, sandbox: {}",
                expected["rejected"]
            ),
        }
        for (account, address) in &names {
            assert_eq!(
                network.balance(address).unwrap(),
                nano(&expected["balances"][account]),
                "balance of {account} after step {name:?}"
            );
            balances += 1;
        }
    }
    // What was compared, for the record (visible with --nocapture).
    eprintln!(
        "parity: {} steps, {transactions} transactions, {get_methods} get-methods, {balances} balances: all equal",
        steps.len()
    );
    assert!(
        steps.len() >= 27 && transactions >= 39 && get_methods >= 7 && balances >= 220,
        "the fixture lost its content"
    );
}
