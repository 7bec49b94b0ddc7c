//! The toncenter chain against a server answering as toncenter's v2 API does (the real one is
//! unreachable from here). The accounts it serves hold the storage cells the real contracts
//! wrote in the sandbox (`contracts/fixtures/storage.json`), so reading them, and deriving
//! client and worker addresses through the proxy contract's storage, is checked against a real
//! TVM. What the chain sends is taken apart: a wallet v4r2 external message, signed by the
//! wallet's key, carrying the body, the logical amount plus gas and, for a deploy, the StateInit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::Json;
use base64::Engine;
use cocoon_ton::messages::Body;
use cocoon_ton::ops::ContractStatus;
use cocoon_ton::rules::Init;
use cocoon_ton::toncenter::{Toncenter, DEFAULT_GAS};
use cocoon_ton::{Address, Chain, ChainError, Coins, Outgoing, Sent, Wallet};
use serde_json::{json, Value};
use tonlib_core::cell::{BagOfCells, Cell, CellBuilder};
use tonlib_core::tlb_types::block::message::{CommonMsgInfo, Message};
use tonlib_core::tlb_types::tlb::TLB;

const NOW: u32 = 1_732_000_000;

#[derive(Clone, Default)]
struct Fake {
    /// raw address → (balance, data BoC base64)
    accounts: Arc<Mutex<HashMap<String, (u128, String)>>>,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    fail_with: Arc<Mutex<Option<String>>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn account(
    State(fake): State<Fake>,
    headers: http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> (http::StatusCode, Json<Value>) {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("test-key") {
        return (
            http::StatusCode::UNAUTHORIZED,
            Json(json!({"ok": false, "error": "API key does not exist", "code": 401})),
        );
    }
    if let Some(error) = fake.fail_with.lock().unwrap().clone() {
        return (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"ok": false, "error": error, "code": 500})),
        );
    }
    let address: Address = match q.get("address").map(|a| a.parse()) {
        Some(Ok(a)) => a,
        _ => {
            return (
                http::StatusCode::from_u16(416).unwrap(),
                Json(json!({"ok": false, "error": "Incorrect address", "code": 416})),
            )
        }
    };
    let known = fake
        .accounts
        .lock()
        .unwrap()
        .get(&address.to_hex())
        .cloned();
    let (balance, data, state) = match known {
        Some((balance, data)) => (balance, data, "active"),
        None => (0, String::new(), "uninitialized"),
    };
    (
        http::StatusCode::OK,
        Json(json!({"ok": true, "result": {
            "@type": "raw.fullAccountState",
            "balance": balance.to_string(),
            "extra_currencies": [],
            "code": if state == "active" { "te6cckEBAQEAAgAAAEysuc0=" } else { "" },
            "data": data,
            "last_transaction_id": {"@type": "internal.transactionId", "lt": "48213455000001", "hash": "m4UPaaUoP0cG0hZxOZ8TjDU7oBbqSWMTLNI9U7XqmCI="},
            "frozen_hash": "",
            "sync_utime": NOW,
            "@extra": "1732000000.123:0:0.5",
            "state": state
        }})),
    )
}

async fn send_boc(State(fake): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    let boc = base64::engine::general_purpose::STANDARD
        .decode(body["boc"].as_str().unwrap())
        .unwrap();
    fake.sent.lock().unwrap().push(boc);
    Json(
        json!({"ok": true, "result": {"@type": "raw.extMessageInfo", "hash": "bW9jay1oYXNo", "hash_norm": "bW9jay1oYXNo", "@extra": "x"}}),
    )
}

async fn start(fake: Fake) -> SocketAddr {
    let app = axum::Router::new()
        .route("/api/v2/getAddressInformation", get(account))
        .route("/api/v2/sendBocReturnHash", post(send_boc))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn storage() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/fixtures/storage.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn addr(v: &Value) -> Address {
    v.as_str().unwrap().parse().unwrap()
}

/// A deployed wallet v4r2's data: seqno, wallet id, key, no plugins.
fn wallet_data(wallet: &Wallet, seqno: u32) -> String {
    let cell = CellBuilder::new()
        .store_u32(32, seqno)
        .unwrap()
        .store_u32(32, 698_983_191)
        .unwrap()
        .store_slice(&wallet.key().public_key())
        .unwrap()
        .store_bit(false)
        .unwrap()
        .build()
        .unwrap();
    b64(&BagOfCells::from_root(cell).serialize(true).unwrap())
}

async fn setup() -> (Fake, Toncenter, Value) {
    let s = storage();
    let fake = Fake::default();
    {
        let mut accounts = fake.accounts.lock().unwrap();
        for (name, balance) in [("root", 1u128), ("proxy", 2), ("client", 3), ("worker", 4)] {
            accounts.insert(
                s[name]["address"].as_str().unwrap().to_string(),
                (balance, s[name]["data"].as_str().unwrap().to_string()),
            );
        }
    }
    let server = start(fake.clone()).await;
    let chain = Toncenter::new(
        &format!("http://{server}/api/v2"),
        Some("test-key".into()),
        addr(&s["root"]["address"]),
    )
    .unwrap();
    (fake, chain, s)
}

#[tokio::test]
async fn reads_contracts_and_derives_their_real_addresses() {
    let (_, chain, s) = setup().await;
    let root = chain.root().await.unwrap();
    assert_eq!(root.owner, addr(&s["root"]["owner"]));
    assert_eq!(root.model_hashes.len(), 1);
    assert_eq!(
        root.proxies.get(&3).map(String::as_str),
        Some("10.0.0.1:8888")
    );
    let proxy_address = addr(&s["proxy"]["address"]);
    let proxy = chain.proxy(&proxy_address).await.unwrap().unwrap();
    assert_eq!(proxy.seqno, 7);
    assert_eq!(proxy.status, ContractStatus::Running);
    let client = chain
        .client(&addr(&s["client"]["address"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.status, ContractStatus::Closing);
    assert_eq!(u128::from(client.tokens_used), 100);
    let worker = chain
        .worker(&addr(&s["worker"]["address"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(worker.paid_tokens, 60);
    assert_eq!(chain.now().await.unwrap(), NOW);
    assert_eq!(chain.balance(&proxy_address).await.unwrap(), Coins(2));

    // Client and worker addresses, derived through the proxy contract's storage, are the ones
    // the sandbox deployed to.
    let client_address = chain
        .address_of(&Init::Client {
            proxy: proxy_address.clone(),
            owner: addr(&s["client"]["owner"]),
        })
        .await
        .unwrap();
    assert_eq!(client_address, addr(&s["client"]["address"]));
    let worker_address = chain
        .address_of(&Init::Worker {
            proxy: proxy_address.clone(),
            owner: addr(&s["worker"]["owner"]),
        })
        .await
        .unwrap();
    assert_eq!(worker_address, addr(&s["worker"]["address"]));

    // Nothing at an address: no contract, no balance.
    let nobody = Wallet::from_seed(&[1; 32]).address().clone();
    assert!(chain.client(&nobody).await.unwrap().is_none());
    assert_eq!(chain.balance(&nobody).await.unwrap(), Coins::ZERO);
    assert!(matches!(
        chain
            .address_of(&Init::Client {
                proxy: nobody.clone(),
                owner: nobody
            })
            .await,
        Err(ChainError::NoContract(_))
    ));
}

/// Takes a wallet v4r2 external message apart: (seqno, has state init, the internal message).
fn open_external(boc: &[u8], wallet: &Wallet) -> (u32, bool, Message) {
    let message = Message::from_boc(boc).unwrap();
    match &message.info {
        CommonMsgInfo::ExtIn(info) => assert_eq!(info.dest, wallet.address().to_msg_address_int()),
        other => panic!("not an external message: {other:?}"),
    }
    let body: &Cell = message.body.value.as_ref();
    let mut p = body.parser();
    let mut signature = [0u8; 64];
    p.load_slice(&mut signature).unwrap();
    // The signature covers the rest of the body cell.
    let mut rest = CellBuilder::new();
    rest.store_remaining_bits(&mut p).unwrap();
    for r in body.references() {
        rest.store_reference(r).unwrap();
    }
    let signed = rest.build().unwrap();
    assert!(cocoon_ton::messages::verify_ed25519(
        &wallet.key().public_key(),
        signed.cell_hash().as_slice(),
        &signature
    ));
    let mut p = signed.parser();
    let _wallet_id = p.load_u32(32).unwrap();
    let valid_until = p.load_u32(32).unwrap();
    assert!(valid_until > NOW);
    let seqno = p.load_u32(32).unwrap();
    assert_eq!(p.load_u8(8).unwrap(), 0, "simple send");
    let _mode = p.load_u8(8).unwrap();
    let internal = Message::from_cell(signed.reference(0).unwrap()).unwrap();
    (seqno, message.init.is_some(), internal)
}

#[tokio::test]
async fn sends_signed_wallet_messages_with_gas_and_state_init() {
    let (fake, chain, s) = setup().await;
    let wallet = Wallet::from_seed(&[9; 32]);
    let proxy_address = addr(&s["proxy"]["address"]);
    let client_owner = addr(&s["client"]["owner"]);

    // A wallet not deployed yet: seqno 0, its own StateInit attached; a client deploy carries
    // the client contract's StateInit, whose address is where the message goes.
    let to = chain
        .address_of(&Init::Client {
            proxy: proxy_address.clone(),
            owner: client_owner.clone(),
        })
        .await
        .unwrap();
    let body = Body::ClientDeploy {
        query_id: 1,
        amount: Coins::ton(2),
        stake: Coins::ton(1),
        secret_hash: [7; 32],
    };
    let sent = chain
        .send(
            &wallet,
            Outgoing {
                to: to.clone(),
                value: Coins::ton(2),
                body: body.clone(),
                init: Some(Init::Client {
                    proxy: proxy_address.clone(),
                    owner: client_owner,
                }),
            },
        )
        .await
        .unwrap();
    assert!(matches!(sent, Sent::Submitted { ref hash } if hash == "bW9jay1oYXNo"));
    let boc = fake.sent.lock().unwrap().pop().unwrap();
    let (seqno, wallet_init, internal) = open_external(&boc, &wallet);
    assert_eq!((seqno, wallet_init), (0, true));
    let CommonMsgInfo::Int(info) = &internal.info else {
        panic!("not internal")
    };
    assert_eq!(info.dest, to.to_msg_address());
    assert!(info.bounce);
    assert_eq!(
        info.value.grams.amount,
        num_bigint::BigUint::from(Coins::ton(2).0 + DEFAULT_GAS.0)
    );
    assert_eq!(
        Cell::cell_hash(&internal.body.value),
        body.to_cell().unwrap().cell_hash()
    );
    let init = internal
        .init
        .as_ref()
        .expect("deploy carries the StateInit");
    let (code, data) = (
        init.value.code.as_ref().unwrap(),
        init.value.data.as_ref().unwrap(),
    );
    let derived = Address::derive(0, code.0.clone(), data.0.clone()).unwrap();
    assert_eq!(
        derived, to,
        "the StateInit deploys to the address the message goes to"
    );

    // A deployed wallet at seqno 5: seqno 5, no wallet StateInit, no contract StateInit.
    fake.accounts.lock().unwrap().insert(
        wallet.address().to_hex(),
        (Coins::ton(3).0, wallet_data(&wallet, 5)),
    );
    let save = Body::SaveState {
        query_id: 2,
        seqno: 9,
        hash: [1; 32],
    };
    chain
        .send(
            &wallet,
            Outgoing {
                to: proxy_address.clone(),
                value: Coins::ZERO,
                body: save.clone(),
                init: None,
            },
        )
        .await
        .unwrap();
    let boc = fake.sent.lock().unwrap().pop().unwrap();
    let (seqno, wallet_init, internal) = open_external(&boc, &wallet);
    assert_eq!((seqno, wallet_init), (5, false));
    assert!(internal.init.is_none());
    assert_eq!(
        Cell::cell_hash(&internal.body.value),
        save.to_cell().unwrap().cell_hash()
    );

    // An error answer is reported with toncenter's message; nothing is sent.
    *fake.fail_with.lock().unwrap() = Some("LITE_SERVER_UNKNOWN: cannot load block".into());
    let error = chain
        .send(
            &wallet,
            Outgoing {
                to: proxy_address,
                value: Coins::ZERO,
                body: save,
                init: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ChainError::Api(m) if m.contains("LITE_SERVER_UNKNOWN")),
        "{error}"
    );
    assert!(fake.sent.lock().unwrap().is_empty());
}
