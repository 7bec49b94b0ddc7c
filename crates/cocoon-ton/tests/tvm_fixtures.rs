//! `cocoon_ton::tvm` against the Tolk contracts, both ways:
//!
//! - the addresses Rust derives from initial data are pinned in `contracts/fixtures/addresses.json`,
//!   and `contracts/tests/tvm.test.js` recomputes them from the contracts' own layouts;
//! - `contracts/fixtures/storage.json` holds storage cells the real contracts wrote in the sandbox,
//!   with what their get methods answered; Rust must read the same values from those cells.
//!
//! After an intended change: `COCOON_UPDATE_FIXTURES=1 cargo test -p cocoon-ton --test
//! tvm_fixtures` (addresses) or `COCOON_UPDATE_FIXTURES=1 npm test` in `contracts/` (storage),
//! and review the diff.

use std::path::PathBuf;

use base64::Engine;
use cocoon_ton::ops::Params;
use cocoon_ton::tvm;
use cocoon_ton::vectors::party_seed;
use cocoon_ton::{Address, Wallet};
use serde_json::{json, Value};
use tonlib_core::cell::BagOfCells;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../contracts/fixtures/{name}"))
}

fn wallet(name: &str) -> Address {
    Wallet::from_seed(&party_seed(name)).address().clone()
}

fn params_json(p: &Params) -> Value {
    serde_json::to_value(p).unwrap()
}

#[test]
fn addresses_match_the_pinned_fixture() {
    let key = cocoon_ton::messages::ProxyKey::from_seed(&party_seed("proxy")).public_key();
    let default = Params::default();
    let odd = Params {
        price_per_token: 123_456_789_012,
        worker_fee_per_token: 1,
        prompt_multiplier: 7,
        client_close_delay: 1,
        // Within 2^53: the JS side parses the fixture with JSON.parse.
        min_client_stake: 1 << 52,
        ..Params::default()
    };
    let root = tvm::address(
        &tvm::codes().root,
        tvm::root_data(&wallet("owner"), &default).unwrap(),
    )
    .unwrap();
    let mut cases = vec![json!({
        "kind": "root", "owner": wallet("owner").to_hex(), "params": params_json(&default),
        "address": root.to_hex(),
    })];
    for params in [&default, &odd] {
        let proxy = tvm::address(
            &tvm::codes().proxy,
            tvm::proxy_data(&wallet("proxy"), &root, &key, params).unwrap(),
        )
        .unwrap();
        cases.push(json!({
            "kind": "proxy", "owner": wallet("proxy").to_hex(), "root": root.to_hex(),
            "public_key": hex::encode(key), "params": params_json(params), "address": proxy.to_hex(),
        }));
        for (kind, code, data) in [
            (
                "client",
                &tvm::codes().client,
                tvm::client_data(&wallet("alice"), &proxy, &key, params).unwrap(),
            ),
            (
                "worker",
                &tvm::codes().worker,
                tvm::worker_data(&wallet("bob"), &proxy, &key, params).unwrap(),
            ),
        ] {
            let owner = if kind == "client" {
                wallet("alice")
            } else {
                wallet("bob")
            };
            cases.push(json!({
                "kind": kind, "owner": owner.to_hex(), "proxy": proxy.to_hex(),
                "public_key": hex::encode(key), "params": params_json(params),
                "address": tvm::address(code, data).unwrap().to_hex(),
            }));
        }
    }
    let built = json!({ "cases": cases });
    let path = fixture("addresses.json");
    if std::env::var_os("COCOON_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
    }
    let pinned: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    assert!(
        pinned == built,
        "{} differs from what cocoon-ton derives; see this file's header",
        path.display()
    );
}

fn cell(b64: &Value) -> tonlib_core::cell::Cell {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().expect("data"))
        .unwrap();
    let root = BagOfCells::parse(&bytes).unwrap().single_root().unwrap();
    (*root).clone()
}

fn num(v: &Value) -> u128 {
    v.as_str().expect("numbers are strings").parse().unwrap()
}

#[test]
fn storage_written_by_the_contracts_reads_back() {
    let text =
        std::fs::read_to_string(fixture("storage.json")).expect("contracts/fixtures/storage.json");
    let s: Value = serde_json::from_str(&text).unwrap();
    let params: Params = serde_json::from_value(s["params"].clone()).unwrap();

    let root = tvm::parse_root(&cell(&s["root"]["data"])).unwrap();
    assert_eq!(root.owner.to_hex(), s["root"]["owner"].as_str().unwrap());
    assert_eq!(
        u128::from(root.params_version),
        num(&s["root"]["params_version"])
    );
    assert_eq!(root.params, params);
    let models: Vec<String> = root.model_hashes.iter().map(hex::encode).collect();
    assert_eq!(
        serde_json::to_value(&models).unwrap(),
        s["root"]["model_hashes"]
    );
    assert_eq!(
        u128::from(root.proxies.len() as u32),
        num(&s["root"]["proxies"])
    );
    assert_eq!(
        serde_json::to_value(&root.proxies).unwrap(),
        s["root"]["endpoints"]
    );

    let proxy = tvm::parse_proxy(&cell(&s["proxy"]["data"]))
        .unwrap()
        .expect("deployed");
    let p = &s["proxy"];
    assert_eq!(proxy.status.name(), p["state"].as_str().unwrap());
    assert_eq!(proxy.stake, num(&p["stake"]));
    assert_eq!(proxy.earned, num(&p["earned"]));
    assert_eq!(proxy.paid_out, num(&p["paid_out"]));
    assert_eq!(u128::from(proxy.seqno), num(&p["seqno"]));
    assert_eq!(
        hex::encode(proxy.state_hash),
        p["state_hash_hex"].as_str().unwrap()
    );
    assert_eq!(u128::from(proxy.open_clients), num(&p["open_clients"]));
    assert_eq!(u128::from(proxy.open_workers), num(&p["open_workers"]));
    assert_eq!(proxy.owner.to_hex(), p["owner"].as_str().unwrap());
    assert_eq!(
        hex::encode(proxy.public_key),
        p["public_key"].as_str().unwrap()
    );
    assert_eq!(proxy.params, params);

    let client = tvm::parse_client(&cell(&s["client"]["data"]))
        .unwrap()
        .expect("deployed");
    let c = &s["client"];
    assert_eq!(client.status.name(), c["state"].as_str().unwrap());
    assert_eq!(client.balance, num(&c["balance"]));
    assert_eq!(client.stake, num(&c["stake"]));
    assert_eq!(u128::from(client.tokens_used), num(&c["tokens_used"]));
    assert_eq!(u128::from(client.unlock_time), num(&c["unlock_time"]));
    assert_eq!(
        hex::encode(client.secret_hash),
        c["secret_hash_hex"].as_str().unwrap()
    );
    assert_eq!(client.owner.to_hex(), c["owner"].as_str().unwrap());
    assert_eq!(client.proxy.to_hex(), p["address"].as_str().unwrap());
    assert_eq!(client.price_per_token, u128::from(params.price_per_token));

    let worker = tvm::parse_worker(&cell(&s["worker"]["data"]))
        .unwrap()
        .expect("deployed");
    let w = &s["worker"];
    assert_eq!(worker.status.name(), w["state"].as_str().unwrap());
    assert_eq!(u128::from(worker.paid_tokens), num(&w["paid_tokens"]));
    assert_eq!(worker.owner.to_hex(), w["owner"].as_str().unwrap());
    assert_eq!(
        worker.worker_fee_per_token,
        u128::from(params.worker_fee_per_token)
    );

    // Initial data (state 0) reads as "not deployed".
    let key = [5; 32];
    let fresh = tvm::client_data(&wallet("alice"), &wallet("proxy"), &key, &params).unwrap();
    assert!(tvm::parse_client(&fresh).unwrap().is_none());
    let fresh = tvm::proxy_data(&wallet("proxy"), &wallet("owner"), &key, &params).unwrap();
    assert!(tvm::parse_proxy(&fresh).unwrap().is_none());
}
