//! [`ToncenterNetwork`] end to end against the fake toncenter (`cocoon_testkit::FakeToncenter`),
//! whose answers come from the embedded TVM: the contracts of `contracts/` deployed and
//! used from real wallet v4r2 contracts (deployed by their first external, paying their own
//! gas and forwarding fees), a registration seen in the proxy contract's history, and every
//! nano-TON accounted for from what the API answers alone. Then paging of `transactions` over
//! more than one page, history the node no longer holds, and hostile answers (errors, never
//! panics).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use base64::Engine as _;
use cocoon_testkit::FakeToncenter;
use cocoon_ton::cocoon::address::Deployment;
use cocoon_ton::cocoon::{
    ClientData, ClientMessage, ClientPayload, Params, ProxyData, ProxyMessage, RootData,
    State as ContractState,
};
use cocoon_ton::ton::{Cocoon, SendOutcome, Status, TonError, TonNetwork, WalletMessage};
use cocoon_ton::toncenter_v2::ToncenterNetwork;
use cocoon_ton::{Coins, Wallet};
use proptest::prelude::*;
use tonlib_core::cell::{ArcCell, Cell};
use tonlib_core::TonAddress;

const TON: u128 = 1_000_000_000;
const GENESIS: u32 = 1_800_000_000;

/// The contracts of `contracts/build`, as the crate embeds them.
fn code(name: &str) -> ArcCell {
    let codes = cocoon_ton::cocoon::codes();
    match name {
        "root" => codes.root.clone(),
        "proxy" => codes.proxy.clone(),
        "client" => codes.client.clone(),
        "worker" => codes.worker.clone(),
        other => panic!("no contract {other}"),
    }
}

fn wallet(byte: u8) -> Wallet {
    Wallet::from_seed(&[byte; 32])
}

fn params() -> Params {
    Params {
        params_version: 1,
        unique_id: 7,
        is_test: true,
        price_per_token: Coins(20),
        worker_fee_per_token: Coins(19),
        prompt_tokens_price_multiplier: 10_000,
        cached_tokens_price_multiplier: 10_000,
        completion_tokens_price_multiplier: 10_000,
        reasoning_tokens_price_multiplier: 10_000,
        proxy_delay_before_close: 3_600,
        client_delay_before_close: 3_600,
        min_proxy_stake: Coins(TON),
        min_client_stake: Coins(TON / 2),
        proxy_code: Some(code("proxy")),
        worker_code: Some(code("worker")),
        client_code: Some(code("client")),
    }
}

fn deploy(to: TonAddress, state_init: Cell, value: u128) -> WalletMessage {
    WalletMessage {
        to,
        value,
        bounce: false,
        body: Arc::new(Cell::default()),
        state_init: Some(Arc::new(state_init)),
    }
}

fn transfer(to: &TonAddress, value: u128) -> WalletMessage {
    WalletMessage {
        to: to.clone(),
        value,
        bounce: false,
        body: Arc::new(Cell::default()),
        state_init: None,
    }
}

/// A fake toncenter over a fresh durable network whose clock only moves when told.
async fn fake(dir: &std::path::Path, history_limit: usize) -> FakeToncenter {
    let options = cocoon_tvm::Options {
        clock: cocoon_tvm::Clock::Manual,
        history_limit,
        ..cocoon_tvm::Options::default()
    };
    let local =
        cocoon_tvm::LocalNetwork::create_with(dir, &cocoon_tvm::Genesis::at(GENESIS), options)
            .unwrap();
    FakeToncenter::start(local).await.unwrap()
}

fn submitted(outcome: SendOutcome) -> String {
    match outcome {
        SendOutcome::Submitted { hash } => hash,
        SendOutcome::Executed(_) => panic!("toncenter only submits"),
    }
}

async fn seqno(network: &ToncenterNetwork, wallet: &Wallet) -> u32 {
    let state = network.account(wallet.address()).await.unwrap();
    state.data.unwrap().parser().load_u32(32).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contracts_run_through_toncenter_from_real_wallets_and_every_nano_ton_is_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(dir.path(), cocoon_tvm::DEFAULT_HISTORY_LIMIT).await;
    let network = Arc::new(ToncenterNetwork::new(&fake.url(), None).unwrap());
    assert_eq!(network.now().await.unwrap(), GENESIS);
    let (root_w, proxy_w, client_w) = (wallet(1), wallet(2), wallet(3));
    let minted = 100 * TON;
    for w in [&root_w, &proxy_w, &client_w] {
        fake.fund(w.address(), minted).unwrap();
        let state = network.account(w.address()).await.unwrap();
        assert_eq!((state.status, state.balance), (Status::Uninit, minted));
    }

    // The root, deployed by its owner's first external (which deploys the wallet too).
    let root_data = RootData::new(root_w.address().clone(), params());
    let root_init = cocoon_ton::cocoon::StateInit::new(code("root"), root_data.to_cell().unwrap());
    let root = root_init.address().unwrap();
    let hash = submitted(
        network
            .send(
                &root_w,
                &[deploy(root.clone(), root_init.to_cell().unwrap(), 5 * TON)],
            )
            .await
            .unwrap(),
    );
    assert_eq!(hash.len(), 64, "a hex hash: {hash}");
    let wallet_state = network.account(root_w.address()).await.unwrap();
    assert_eq!(
        wallet_state.status,
        Status::Active,
        "the first external deployed the wallet"
    );
    assert_eq!(seqno(&network, &root_w).await, 1);
    let first = network.transactions(root_w.address(), 0, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].source, None, "an external message");
    let deploy_fee = first[0].total_fees + first[0].forward_fees;
    eprintln!(
        "wallet v4r2 deploy + one message: fees {} + forwarding {} nano-TON",
        first[0].total_fees, first[0].forward_fees
    );
    assert!(deploy_fee > 0 && deploy_fee < TON / 10, "{deploy_fee}");

    let cocoon = Cocoon::new(network.clone(), root.clone());
    let read = cocoon.root().await.unwrap();
    assert_eq!(read, root_data, "the root reads back as deployed");

    // Proxy and client contracts at the addresses a node derives from the root.
    let deployment = Deployment::from_root(root.clone(), &read);
    let proxy_key = [9u8; 32];
    let proxy_init = deployment.proxy(proxy_w.address(), &proxy_key).unwrap();
    let proxy = proxy_init.address().unwrap();
    network
        .send(
            &proxy_w,
            &[deploy(
                proxy.clone(),
                proxy_init.to_cell().unwrap(),
                20 * TON,
            )],
        )
        .await
        .unwrap();
    let proxy_data: ProxyData = cocoon.proxy(&proxy).await.unwrap().expect("proxy deployed");
    assert_eq!(&proxy_data.owner, proxy_w.address());

    let client_init = deployment
        .client(proxy_w.address(), &proxy_key, client_w.address())
        .unwrap();
    let client = client_init.address().unwrap();
    network
        .send(
            &client_w,
            &[deploy(
                client.clone(),
                client_init.to_cell().unwrap(),
                TON * 8 / 10,
            )],
        )
        .await
        .unwrap();
    let client_data: ClientData = cocoon
        .client(&client)
        .await
        .unwrap()
        .expect("client deployed");
    assert_eq!(&client_data.owner, client_w.address());
    assert_eq!(client_data.state, ContractState::Normal);

    // Long authorisation: the proxy learns the nonce from its contract's history, read through
    // toncenter (source = the derived client address).
    let seen_before = network.transactions(&proxy, 0, 100).await.unwrap();
    let last_lt = seen_before.last().map_or(0, |tx| tx.lt);
    let register = ClientMessage::Register {
        query_id: 77,
        nonce: 0xfeed,
        send_excesses_to: client_w.address().clone(),
    };
    let balance_before = network.account(client_w.address()).await.unwrap().balance;
    network
        .send(
            &client_w,
            &[WalletMessage {
                to: client.clone(),
                value: TON,
                bounce: true,
                body: Arc::new(register.to_cell().unwrap()),
                state_init: None,
            }],
        )
        .await
        .unwrap();
    let news = network.transactions(&proxy, last_lt, 100).await.unwrap();
    assert!(news.iter().all(|tx| tx.lt > last_lt), "paging by lt");
    let registration = news
        .iter()
        .find_map(|tx| match ProxyMessage::from_cell(&tx.body) {
            Ok(ProxyMessage::ClientRequest {
                client_owner,
                payload: Some(ClientPayload::Register { nonce }),
                ..
            }) => Some((tx.source.clone(), client_owner, nonce)),
            _ => None,
        })
        .expect("the proxy contract received the registration");
    assert_eq!(
        registration,
        (Some(client.clone()), client_w.address().clone(), 0xfeed)
    );
    // What one plain send cost the wallet (its external's transaction; excesses came back
    // in later transactions of the wallet).
    let wallet_txs = network
        .transactions(client_w.address(), 0, 100)
        .await
        .unwrap();
    let external = wallet_txs
        .iter()
        .rev()
        .find(|tx| tx.source.is_none())
        .unwrap();
    eprintln!(
        "wallet v4r2 send of one message (deployed wallet): fees {} + forwarding {} nano-TON; \
         wallet balance {} → {}",
        external.total_fees,
        external.forward_fees,
        balance_before,
        network.account(client_w.address()).await.unwrap().balance
    );
    assert_eq!(seqno(&network, &client_w).await, 2);

    // More than a wallet holds is refused before anything is signed.
    let held = network.account(client_w.address()).await.unwrap().balance;
    let too_much = network
        .send(&client_w, &[transfer(&client, held + 1)])
        .await;
    assert!(
        matches!(too_much, Err(TonError::WalletBalance { .. })),
        "{too_much:?}"
    );
    let five = vec![transfer(&client, 1); 5];
    assert!(matches!(
        network.send(&client_w, &five).await,
        Err(TonError::Cell(_))
    ));

    // Conservation, from the API's answers alone: what the wallets paid = what the contracts
    // hold + every fee (gas, storage, actions, and forwarding still carried by out-messages).
    let wallets = [root_w.address(), proxy_w.address(), client_w.address()];
    let contracts = [&root, &proxy, &client];
    let mut paid = 3 * minted;
    for w in wallets {
        paid -= network.account(w).await.unwrap().balance;
    }
    let mut received = 0;
    for c in contracts {
        received += network.account(c).await.unwrap().balance;
    }
    let mut fees = 0u128;
    for account in wallets.into_iter().chain(contracts) {
        for tx in network.transactions(account, 0, 1_000).await.unwrap() {
            fees += tx.total_fees + tx.forward_fees;
        }
    }
    assert_eq!(
        paid,
        received + fees,
        "paid {paid}, received {received}, fees {fees}"
    );
    eprintln!("wallets paid {paid} = contracts hold {received} + fees {fees}");

    // The same history as the network underneath holds, lt for lt.
    let direct = fake.network().transactions(&tvm(&proxy), 0, 1_000).unwrap();
    let through = network.transactions(&proxy, 0, 1_000).await.unwrap();
    assert_eq!(
        direct
            .iter()
            .map(|t| (t.lt, t.total_fees))
            .collect::<Vec<_>>(),
        through
            .iter()
            .map(|t| (t.lt, t.total_fees))
            .collect::<Vec<_>>()
    );
}

fn tvm(address: &TonAddress) -> cocoon_tvm::Address {
    let mut hash = [0; 32];
    hash.copy_from_slice(address.hash_part.as_slice());
    cocoon_tvm::Address { workchain: 0, hash }
}

/// `count` externals of four plain transfers each from a fresh wallet to `to`.
async fn many_transfers(
    fake: &FakeToncenter,
    network: &ToncenterNetwork,
    to: &TonAddress,
    count: usize,
) {
    let w = wallet(40);
    fake.fund(w.address(), 100 * TON).unwrap();
    for i in 0..count {
        let value = TON / 100 + i as u128;
        network
            .send(&w, &vec![transfer(to, value); 4])
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_walk_back_over_several_pages_and_answer_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(dir.path(), cocoon_tvm::DEFAULT_HISTORY_LIMIT).await;
    let network = ToncenterNetwork::new(&fake.url(), None)
        .unwrap()
        .with_page_size(5);
    let sink = wallet(41).address().clone();
    many_transfers(&fake, &network, &sink, 4).await;
    let expected: Vec<u64> = fake
        .network()
        .transactions(&tvm(&sink), 0, 100)
        .unwrap()
        .iter()
        .map(|t| t.lt)
        .collect();
    assert_eq!(expected.len(), 16);

    let all = network.transactions(&sink, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|t| t.lt).collect::<Vec<_>>(), expected);
    assert!(all
        .iter()
        .all(|t| t.source.is_some() && t.value >= TON / 100));
    // From the middle, limited: the oldest `limit` after `after_lt`.
    let some = network.transactions(&sink, expected[6], 3).await.unwrap();
    assert_eq!(
        some.iter().map(|t| t.lt).collect::<Vec<_>>(),
        expected[7..10].to_vec()
    );
    // An lt between transactions, and past the newest.
    let between = network
        .transactions(&sink, expected[6] + 1, 100)
        .await
        .unwrap();
    assert_eq!(between.first().map(|t| t.lt), Some(expected[7]));
    assert!(network
        .transactions(&sink, expected[15], 100)
        .await
        .unwrap()
        .is_empty());
    assert!(network.transactions(&sink, 0, 0).await.unwrap().is_empty());

    // A walk longer than allowed is an error, not a silently short answer.
    let short = ToncenterNetwork::new(&fake.url(), None)
        .unwrap()
        .with_page_size(5)
        .with_history_pages(3);
    let error = short.transactions(&sink, 0, 100).await.unwrap_err();
    assert!(
        matches!(error, TonError::Api(ref m) if m.contains("more than")),
        "{error}"
    );
    assert_eq!(
        short
            .transactions(&sink, expected[5], 100)
            .await
            .unwrap()
            .len(),
        10,
        "three pages of five reach back ten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_the_node_no_longer_holds_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(dir.path(), 6).await;
    let network = ToncenterNetwork::new(&fake.url(), None)
        .unwrap()
        .with_page_size(4);
    let sink = wallet(42).address().clone();
    many_transfers(&fake, &network, &sink, 3).await;
    let kept: Vec<u64> = fake
        .network()
        .transactions(&tvm(&sink), 0, 100)
        .unwrap()
        .iter()
        .map(|t| t.lt)
        .collect();
    assert_eq!(kept.len(), 6, "12 transactions, 6 kept");
    let error = network.transactions(&sink, 0, 100).await.unwrap_err();
    assert!(
        matches!(error, TonError::Api(ref m) if m.contains("history stops")),
        "{error}"
    );
    let recent = network.transactions(&sink, kept[1], 100).await.unwrap();
    assert_eq!(
        recent.iter().map(|t| t.lt).collect::<Vec<_>>(),
        kept[2..].to_vec()
    );
}

/// A server answering whatever it is told, for each endpoint.
#[derive(Clone, Default)]
struct Hostile {
    answers: Arc<Mutex<HashMap<&'static str, String>>>,
}

impl Hostile {
    fn set(&self, endpoint: &'static str, body: impl Into<String>) {
        self.answers.lock().unwrap().insert(endpoint, body.into());
    }
    fn answer(&self, endpoint: &'static str) -> String {
        self.answers
            .lock()
            .unwrap()
            .get(endpoint)
            .cloned()
            .unwrap_or_default()
    }
}

async fn hostile() -> (Hostile, String) {
    let server = Hostile::default();
    let app = axum::Router::new()
        .route(
            "/api/v2/getAddressInformation",
            get(|State(h): State<Hostile>| async move { h.answer("info") }),
        )
        .route(
            "/api/v2/getTransactions",
            get(|State(h): State<Hostile>| async move { h.answer("txs") }),
        )
        .route(
            "/api/v2/sendBocReturnHash",
            post(|State(h): State<Hostile>| async move { h.answer("send") }),
        )
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (server, format!("http://{address}/api/v2"))
}

/// Every call against whatever is set: an error or a value, never a panic.
async fn exercise(network: &ToncenterNetwork) -> Vec<bool> {
    let a = wallet(50);
    vec![
        network.now().await.is_ok(),
        network.account(a.address()).await.is_ok(),
        network.transactions(a.address(), 0, 10).await.is_ok(),
        network.transactions(a.address(), 5, 10).await.is_ok(),
        network
            .send(&a, &[transfer(wallet(51).address(), 1)])
            .await
            .is_ok(),
    ]
}

/// Answers a real fake gave, to mutate.
async fn genuine() -> (TonAddress, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(dir.path(), 100).await;
    let network = ToncenterNetwork::new(&fake.url(), None).unwrap();
    let sink = wallet(43).address().clone();
    many_transfers(&fake, &network, &sink, 1).await;
    let http = cocoon_net::http_client::HttpClient::new(
        &fake.url(),
        &[],
        std::time::Duration::from_secs(5),
        1 << 20,
    )
    .unwrap();
    let info = http
        .get(
            &format!("/getAddressInformation?address={}", sink.to_base64_url()),
            &[],
        )
        .await
        .unwrap();
    let txs = http
        .get(
            &format!("/getTransactions?address={}", sink.to_base64_url()),
            &[],
        )
        .await
        .unwrap();
    (
        sink,
        String::from_utf8(info.body).unwrap(),
        String::from_utf8(txs.body).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_errors() {
    let (server, url) = hostile().await;
    let network = ToncenterNetwork::new(&url, None).unwrap();
    let (sink, info, txs) = genuine().await;
    let info_json: serde_json::Value = serde_json::from_str(&info).unwrap();
    let txs_json: serde_json::Value = serde_json::from_str(&txs).unwrap();
    let with = |base: &serde_json::Value, pointer: &str, value: serde_json::Value| {
        let mut changed = base.clone();
        *changed.pointer_mut(pointer).unwrap() = value;
        changed.to_string()
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let infos = [
        String::new(),
        "not json".into(),
        "{}".into(),
        r#"{"ok":false,"error":"rate limited"}"#.into(),
        r#"{"ok":true}"#.into(),
        r#"{"ok":true,"result":[]}"#.into(),
        deep.clone(),
        with(&info_json, "/result/balance", "-1".into()),
        with(&info_json, "/result/balance", "1e9".into()),
        with(&info_json, "/result/balance", "9".repeat(60).into()),
        with(&info_json, "/result/balance", serde_json::json!(1.5)),
        with(&info_json, "/result/state", "weird".into()),
        with(&info_json, "/result/last_transaction_id/lt", "x".into()),
        with(
            &info_json,
            "/result/last_transaction_id/hash",
            "AAAA".into(),
        ),
    ];
    for (i, body) in infos.iter().enumerate() {
        server.set("info", body.clone());
        server.set("txs", txs.clone());
        let results = exercise(&network).await;
        assert!(!results[1], "case {i}: the account is not readable");
        if i < 7 {
            assert_eq!(results, vec![false; 5], "case {i}");
        }
    }
    // The state "active" with code and data that are not BOCs.
    let mut active = info_json.clone();
    active["result"]["state"] = "active".into();
    active["result"]["data"] = "bm90IGEgYm9j".into();
    server.set("info", active.to_string());
    assert!(network.account(wallet(50).address()).await.is_err());

    // Transaction pages, against the genuine account answer.
    let tx = |pointer: &str, value: serde_json::Value| with(&txs_json, pointer, value);
    let mut too_many = txs_json.clone();
    too_many["result"][0]["out_msgs"] =
        serde_json::Value::Array(vec![txs_json["result"][0]["in_msg"].clone(); 300]);
    let pages = [
        "not json".to_string(),
        deep,
        r#"{"ok":true,"result":{}}"#.into(),
        tx("/result/0/data", "".into()),
        tx("/result/0/data", "bm90IGEgYm9j".into()),
        tx("/result/0/transaction_id/lt", "1".into()),
        tx("/result/0/transaction_id/hash", "AAAA".into()),
        tx(
            "/result/0/transaction_id/hash",
            base64::engine::general_purpose::STANDARD
                .encode([7u8; 32])
                .into(),
        ),
        tx("/result/0/fee", "-3".into()),
        tx("/result/0/utime", 5.into()),
        tx("/result/0/in_msg/source", "garbage".into()),
        tx("/result/0/in_msg/value", "x".into()),
        tx("/result/0/in_msg/msg_data/body", "!!".into()),
        tx(
            "/result/0/in_msg/msg_data",
            serde_json::json!({"@type": "msg.dataText", "text": "!!"}),
        ),
        tx(
            "/result/0/out_msgs",
            serde_json::json!([{"fwd_fee": "99999999999999999999999999999999999999999"}]),
        ),
        tx(
            "/result/0/out_msgs",
            serde_json::json!([{"fwd_fee": u128::MAX.to_string()}, {"fwd_fee": "1"}]),
        ),
        too_many.to_string(),
    ];
    server.set("info", info.clone());
    for (i, page) in pages.iter().enumerate() {
        server.set("txs", page.clone());
        let answer = network.transactions(&sink, 0, 10).await;
        assert!(
            matches!(answer, Err(TonError::Api(_))),
            "page {i}: {answer:?}"
        );
    }
    // An encrypted comment is not an error (a stranger must not make a history unreadable),
    // and a text comment reads as op 0 and its text.
    let comment = base64::engine::general_purpose::STANDARD.encode("hello".as_bytes());
    for (data, op) in [
        (
            serde_json::json!({"@type": "msg.dataEncryptedText", "text": "AAAA"}),
            None,
        ),
        (
            serde_json::json!({"@type": "msg.dataText", "text": comment}),
            Some(0),
        ),
    ] {
        server.set("txs", tx("/result/0/in_msg/msg_data", data));
        let answer = network.transactions(&sink, 0, 10).await;
        let body = &answer.unwrap().last().unwrap().body.clone();
        assert_eq!(body.parser().load_u32(32).ok(), op);
    }

    // Sending: an answer with another hash, or a refusal.
    server.set("info", info.clone());
    for send in [
        r#"{"ok":true,"result":{"hash":"bW9jay1oYXNo"}}"#,
        r#"{"ok":false,"error":"cannot apply external message","code":500}"#,
        r#"{"ok":true,"result":{"hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#,
    ] {
        server.set("send", send);
        let answer = network
            .send(&wallet(50), &[transfer(wallet(51).address(), 1)])
            .await;
        assert!(
            matches!(answer, Err(TonError::Api(_))),
            "{send}: {answer:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random bytes and random JSON values as every answer: errors, never panics.
    #[test]
    fn random_answers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), number in any::<u64>(), text in ".{0,40}") {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async {
            let (server, url) = hostile().await;
            let network = ToncenterNetwork::new(&url, None).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let lossy = String::from_utf8_lossy(&bytes).to_string();
            let info = serde_json::json!({"ok": true, "result": {
                "balance": text, "state": "active", "code": b64, "data": b64,
                "last_transaction_id": {"lt": number.to_string(), "hash": b64}, "sync_utime": number % 1000,
            }});
            let txs = serde_json::json!({"ok": true, "result": [{
                "utime": number % 1000, "data": b64, "transaction_id": {"lt": number.to_string(), "hash": b64},
                "fee": text, "in_msg": {"source": text, "value": number.to_string(), "msg_data": {"@type": "msg.dataRaw", "body": b64}},
                "out_msgs": [],
            }]});
            for (info, txs) in [(lossy.clone(), lossy.clone()), (info.to_string(), txs.to_string())] {
                server.set("info", info);
                server.set("txs", txs);
                server.set("send", lossy.clone());
                let _ = exercise(&network).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_sends_from_one_wallet_all_land() {
    // Each external must carry the wallet's current seqno. Sent at once, they all read the
    // same one: on TON all but one would be dropped without a word (here the fake refuses
    // them). One send at a time, each waiting for the seqno to move, lands them all.
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(dir.path(), 1000).await;
    let network = std::sync::Arc::new(ToncenterNetwork::new(&fake.url(), None).unwrap());
    let w = std::sync::Arc::new(wallet(41));
    fake.fund(w.address(), 100 * TON).unwrap();
    let to = wallet(42).address().clone();
    // The first external deploys the wallet.
    network.send(&w, &[transfer(&to, TON / 100)]).await.unwrap();
    let sends: Vec<_> = (0..6u128)
        .map(|i| {
            let (network, w, to) = (network.clone(), w.clone(), to.clone());
            tokio::spawn(async move { network.send(&w, &[transfer(&to, TON / 100 + i)]).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().expect("every send lands");
    }
    assert_eq!(seqno(&network, &w).await, 7);
}
