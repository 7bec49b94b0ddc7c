//! The `cocoon::` codecs against cells the Tolk contracts of `contracts/` made in the
//! sandbox (`contracts/fixtures/codecs.json`, written by `scripts/codec-fixtures.js`):
//! every storage cell and body parses and rebuilds bit for bit, the root's get methods agree with
//! what Rust computes from its storage, every address the contracts derived is recomputed, and
//! the proxy-signed messages verify and re-sign to the same bits.

use std::collections::BTreeSet;
use std::str::FromStr;

use base64::Engine;
use cocoon_ton::cocoon::address::{client_contract, wallet_contract, worker_contract, Deployment};
use cocoon_ton::cocoon::{
    from_boc, op, ClientData, ClientMessage, Excesses, Hash256, Payout, ProxyData, ProxyMessage,
    RootData, RootMessage, SignedAction, SignedMessage, State, WalletData, WalletExternal,
    WalletMessage, WorkerData, WorkerMessage,
};
use cocoon_ton::ProxyKey;
use serde_json::Value;
use tonlib_core::cell::{ArcCell, Cell};
use tonlib_core::TonAddress;

const FIXTURE: &str = include_str!("../../../contracts/fixtures/codecs.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixtures/codecs.json is JSON")
}

fn cell(v: &Value) -> ArcCell {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("a base64 string"))
        .expect("base64");
    from_boc(&bytes).expect("a bag of cells with one root")
}

fn address(v: &Value) -> TonAddress {
    TonAddress::from_str(v.as_str().expect("an address")).expect("a raw address")
}

fn hash(v: &Value) -> Hash256 {
    let mut out = [0; 32];
    hex::decode_to_slice(v.as_str().expect("hex"), &mut out).expect("32 bytes of hex");
    out
}

fn storage(f: &Value, name: &str) -> ArcCell {
    let entry = f["storage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no storage entry {name}"));
    cell(&entry["boc"])
}

/// Parses `c` as `layout` and rebuilds it; returns the rebuilt cell and the op when there is one.
fn rebuild(layout: &str, c: &Cell) -> (Cell, Option<u32>) {
    let first_op = || Some(c.parser().load_u32(32).unwrap());
    match layout {
        "root" => (
            RootMessage::from_cell(c).unwrap().to_cell().unwrap(),
            first_op(),
        ),
        "proxy" => (
            ProxyMessage::from_cell(c).unwrap().to_cell().unwrap(),
            first_op(),
        ),
        "client" => (
            ClientMessage::from_cell(c).unwrap().to_cell().unwrap(),
            first_op(),
        ),
        "worker" => (
            WorkerMessage::from_cell(c).unwrap().to_cell().unwrap(),
            first_op(),
        ),
        "wallet" => (
            WalletMessage::from_cell(c).unwrap().to_cell().unwrap(),
            first_op(),
        ),
        "wallet_external" => (
            WalletExternal::from_cell(c).unwrap().to_cell().unwrap(),
            None,
        ),
        "excesses" => (
            Excesses::from_cell(c).unwrap().to_cell().unwrap(),
            first_op(),
        ),
        "payout" => (Payout::from_cell(c).unwrap().to_cell().unwrap(), first_op()),
        other => panic!("unknown layout {other}"),
    }
}

#[test]
fn storage_cells_rebuild_bit_exactly() {
    let f = fixture();
    let mut layouts = BTreeSet::new();
    for entry in f["storage"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let c = cell(&entry["boc"]);
        let layout = entry["layout"].as_str().unwrap();
        let rebuilt = match layout {
            "root" => RootData::from_cell(&c).unwrap().to_cell().unwrap(),
            "proxy" => ProxyData::from_cell(&c).unwrap().to_cell().unwrap(),
            "client" => ClientData::from_cell(&c).unwrap().to_cell().unwrap(),
            "worker" => WorkerData::from_cell(&c).unwrap().to_cell().unwrap(),
            "wallet" => WalletData::from_cell(&c).unwrap().to_cell().unwrap(),
            other => panic!("unknown layout {other}"),
        };
        assert_eq!(rebuilt, *c, "{name}");
        layouts.insert(layout.to_owned());
    }
    assert_eq!(layouts.len(), 5);
}

#[test]
fn storage_values_are_what_the_operations_left() {
    let f = fixture();
    let root =
        RootData::from_cell(&storage(&f, "root after hash, proxy and registry changes")).unwrap();
    assert_eq!(root.last_proxy_seqno, 9);
    assert_eq!(root.registered_proxies.len(), 8);
    assert!(!root.registered_proxies.contains_key(&5));
    assert_eq!(root.registered_proxies[&2].text(), "[192.168.1.1]:9000");
    assert_eq!(
        root.registered_proxies[&3].endpoints(),
        ("10.0.0.3:8001", "10.0.1.3:8002")
    );
    assert_eq!(
        (
            root.worker_hashes.len(),
            root.model_hashes.len(),
            root.proxy_hashes.len()
        ),
        (2, 5, 1)
    );
    assert_eq!(root.params.variant(), 7);
    let reset = RootData::from_cell(&storage(&f, "root after reset and owner change")).unwrap();
    assert!(reset.registered_proxies.is_empty() && reset.model_hashes.is_empty());
    assert_eq!(reset.last_proxy_seqno, 9);

    let proxy = ProxyData::from_cell(&storage(&f, "proxy closing")).unwrap();
    assert_eq!(proxy.state, State::Closing);
    assert_eq!(proxy.params.variant(), 6);
    let closed = ProxyData::from_cell(&storage(&f, "proxy closed")).unwrap();
    assert_eq!((closed.state, closed.unlock_ts), (State::Closed, 0));

    let client = ClientData::from_cell(&storage(
        &f,
        "client after register, top-ups, secret hash, stake and a charge",
    ))
    .unwrap();
    assert_eq!(client.tokens_used, 50_000_000);
    assert_eq!(client.params.variant(), 0);
    assert_eq!(
        ClientData::from_cell(&storage(&f, "client closing"))
            .unwrap()
            .state,
        State::Closing
    );
    let worker = WorkerData::from_cell(&storage(&f, "worker closed by the last payout")).unwrap();
    assert_eq!((worker.state, worker.tokens), (State::Closed, 3_000_000));
    let wallet = WalletData::from_cell(&storage(&f, "wallet after an external, blocked")).unwrap();
    assert_eq!(wallet.seqno, 1);
    assert!(wallet.is_blocked());
}

#[test]
fn root_get_methods_match_the_parsed_storage() {
    let f = fixture();
    let mut checked = 0;
    for entry in f["storage"].as_array().unwrap() {
        if entry["layout"] != "root" {
            continue;
        }
        let root = RootData::from_cell(&cell(&entry["boc"])).unwrap();
        let d = root.cocoon_data();
        let got = &entry["get_cocoon_data"];
        let n = |i: usize| -> u128 {
            match &got[i] {
                Value::Number(x) => u128::from(x.as_u64().unwrap()),
                Value::String(s) => s.parse().unwrap(),
                other => panic!("{other}"),
            }
        };
        assert_eq!(
            [n(0), n(1), n(2), n(3), n(4), n(5), n(6), n(7), n(8)],
            [
                u128::from(d.version),
                u128::from(d.last_proxy_seqno),
                u128::from(d.params_version),
                u128::from(d.unique_id),
                u128::from(d.is_test),
                d.price_per_token.0,
                d.worker_fee_per_token.0,
                d.min_proxy_stake.0,
                d.min_client_stake.0
            ]
        );
        assert_eq!(d.owner, address(&got[9]));
        let p = root.cur_params();
        let got: Vec<String> = entry["get_cur_params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let ours: Vec<String> = [
            u128::from(p.params_version),
            u128::from(p.unique_id),
            u128::from(p.is_test),
            p.price_per_token.0,
            p.worker_fee_per_token.0,
            u128::from(p.cached_tokens_price_multiplier),
            u128::from(p.reasoning_tokens_price_multiplier),
            u128::from(p.proxy_delay_before_close),
            u128::from(p.client_delay_before_close),
            p.min_proxy_stake.0,
            p.min_client_stake.0,
        ]
        .iter()
        .map(u128::to_string)
        .chain(
            [p.proxy_code_hash, p.worker_code_hash, p.client_code_hash]
                .iter()
                .map(hex::encode),
        )
        .collect();
        assert_eq!(ours, got);
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn bodies_rebuild_bit_exactly_and_cover_every_handled_op() {
    let f = fixture();
    let mut ops = BTreeSet::new();
    let mut payloads = BTreeSet::new();
    for entry in f["bodies"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let layout = entry["layout"].as_str().unwrap();
        let c = cell(&entry["boc"]);
        let (rebuilt, opcode) = rebuild(layout, &c);
        assert_eq!(rebuilt, *c, "{name} ({layout})");
        ops.extend(opcode);
        if let Ok(ProxyMessage::ClientRequest {
            payload: Some(p), ..
        }) = ProxyMessage::from_cell(&c)
        {
            payloads.insert(p.op());
        }
        if let Ok(ProxyMessage::WorkerRequest {
            payload: Some(_), ..
        }) = ProxyMessage::from_cell(&c)
        {
            payloads.insert(op::WORKER_PROXY_PAYOUT_REQUEST);
        }
    }
    let handled = [
        op::TEXT_COMMAND,
        op::EXCESSES,
        op::PAYOUT,
        op::DO_NOT_PROCESS,
        op::ROOT_ADD_WORKER_TYPE,
        op::ROOT_DEL_WORKER_TYPE,
        op::ROOT_ADD_MODEL_TYPE,
        op::ROOT_DEL_MODEL_TYPE,
        op::ROOT_ADD_PROXY_TYPE,
        op::ROOT_DEL_PROXY_TYPE,
        op::ROOT_REGISTER_PROXY,
        op::ROOT_UNREGISTER_PROXY,
        op::ROOT_UPDATE_PROXY,
        op::ROOT_CHANGE_PRICE,
        op::ROOT_CHANGE_PARAMS,
        op::ROOT_UPGRADE_CONTRACTS,
        op::ROOT_UPGRADE,
        op::ROOT_RESET,
        op::ROOT_UPGRADE_FULL,
        op::ROOT_CHANGE_OWNER,
        op::WORKER_PROXY_REQUEST,
        op::CLIENT_PROXY_REQUEST,
        op::EXT_PROXY_INCREASE_STAKE,
        op::EXT_PROXY_PAYOUT_REQUEST,
        op::OWNER_PROXY_CLOSE,
        op::EXT_PROXY_CLOSE_REQUEST_SIGNED,
        op::EXT_PROXY_CLOSE_COMPLETE_REQUEST_SIGNED,
        op::EXT_WORKER_PAYOUT_REQUEST_SIGNED,
        op::EXT_WORKER_LAST_PAYOUT_REQUEST_SIGNED,
        op::OWNER_WORKER_REGISTER,
        op::EXT_CLIENT_TOP_UP,
        op::EXT_CLIENT_CHARGE_SIGNED,
        op::EXT_CLIENT_GRANT_REFUND_SIGNED,
        op::OWNER_CLIENT_REGISTER,
        op::OWNER_CLIENT_CHANGE_SECRET_HASH,
        op::OWNER_CLIENT_CHANGE_SECRET_HASH_AND_TOP_UP,
        op::OWNER_CLIENT_REQUEST_REFUND,
        op::OWNER_CLIENT_INCREASE_STAKE,
        op::OWNER_CLIENT_WITHDRAW,
        op::OWNER_WALLET_SEND_MESSAGE,
    ];
    let missing: Vec<String> = handled
        .iter()
        .filter(|o| !ops.contains(o))
        .map(|o| format!("{o:#010x}"))
        .collect();
    assert!(missing.is_empty(), "ops without a fixture: {missing:?}");
    // Every payload the client and worker contracts send, as they sent it.
    assert_eq!(
        payloads,
        BTreeSet::from([
            op::CLIENT_PROXY_TOP_UP,
            op::CLIENT_PROXY_REGISTER,
            op::CLIENT_PROXY_REFUND_GRANTED,
            op::CLIENT_PROXY_REFUND_FORCE,
            op::WORKER_PROXY_PAYOUT_REQUEST,
        ])
    );
}

#[test]
fn every_derived_address_is_recomputed() {
    let f = fixture();
    let root_cell = storage(&f, "root at deploy");
    let root = RootData::from_cell(&root_cell).unwrap();
    let mut layouts = BTreeSet::new();
    for a in f["addresses"].as_array().unwrap() {
        let layout = a["layout"].as_str().unwrap();
        let expected = address(&a["address"]);
        let owner = address(&a["owner"]);
        let derived = match layout {
            "proxy" => {
                assert_eq!(a["params_from"], "root at deploy");
                Deployment::from_root(address(&a["root"]), &root)
                    .proxy(&owner, &hash(&a["proxy_public_key"]))
                    .unwrap()
            }
            "client" => client_contract(
                &address(&a["proxy"]),
                &root.params,
                &hash(&a["proxy_public_key"]),
                &owner,
            )
            .unwrap(),
            "worker" => worker_contract(
                &address(&a["proxy"]),
                &root.params,
                &hash(&a["proxy_public_key"]),
                &owner,
            )
            .unwrap(),
            "wallet" => {
                let build: Value =
                    serde_json::from_str(include_str!("../../../contracts/build/wallet.json"))
                        .unwrap();
                wallet_contract(
                    cell(&build["code_boc_base64"]),
                    &hash(&a["public_key"]),
                    &owner,
                )
                .unwrap()
            }
            other => panic!("unknown layout {other}"),
        };
        assert_eq!(derived.address().unwrap(), expected, "{layout} of {owner}");
        layouts.insert(layout.to_owned());
    }
    assert_eq!(layouts.len(), 4);
    // The proxy contract's own params are the root's, variant 6; from them, the same client.
    let proxy = ProxyData::from_cell(&storage(&f, "proxy with commission and stake")).unwrap();
    assert_eq!(proxy.params, root.params.for_proxy());
    assert_eq!(
        *cell(&f["params"]["proxy"]),
        proxy.params.to_cell().unwrap()
    );
    assert_eq!(*cell(&f["params"]["root"]), root.params.to_cell().unwrap());
    let client = &f["addresses"][0];
    assert_eq!(
        client_contract(
            &address(&client["proxy"]),
            &proxy.params,
            &hash(&client["proxy_public_key"]),
            &address(&client["owner"])
        )
        .unwrap()
        .address()
        .unwrap(),
        address(&client["address"])
    );
}

#[test]
fn signed_messages_verify_and_re_sign_to_the_same_bits() {
    let f = fixture();
    let mut actions = Vec::new();
    for s in f["signed"].as_array().unwrap() {
        let c = cell(&s["boc"]);
        let m = SignedMessage::from_cell(&c).unwrap();
        let public_key = hash(&s["public_key"]);
        let key = ProxyKey::from_seed(&hash(&s["seed"]));
        assert_eq!(key.public_key(), public_key);
        assert!(m.verify(&public_key));
        assert_eq!(m.payload_hash(), &hash(&s["payload_hash"]));
        assert_eq!(m.payload.expected_address, address(&s["target"]));
        // Ed25519 is deterministic: the same payload signed again gives the same body.
        let again = m.payload.sign(&key, m.send_excesses_to.clone()).unwrap();
        assert_eq!(again.to_cell().unwrap(), *c);
        // A repack keeps the signature valid; another key does not verify.
        assert!(m.repack(TonAddress::NULL).verify(&public_key));
        assert!(!m.verify(&ProxyKey::from_seed(&[1; 32]).public_key()));
        actions.push(m.payload.action);
    }
    assert_eq!(
        actions,
        [
            SignedAction::ClientCharge {
                new_tokens_used: 123_456_789
            },
            SignedAction::WorkerLastPayout { new_tokens: 42 },
            SignedAction::ProxyClose,
        ]
    );
    // The wallet external verifies with the wallet key the fixture names.
    let ext = f["bodies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["layout"] == "wallet_external")
        .unwrap();
    let parsed = WalletExternal::from_cell(&cell(&ext["boc"])).unwrap();
    assert!(parsed.verify(&hash(&ext["public_key"])));
    assert_eq!(parsed.messages.len(), 2);
}
