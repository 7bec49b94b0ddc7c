//! Sealed requests through a proxy that attacks them on the wire (issue 14): a devnet whose
//! proxy carries a `cocoon_proxy::danger::DangerTamper` forges the workers' certificates it
//! lists, re-targets, replays and swaps the sealed requests it forwards, and reorders, drops,
//! replays, cuts and swaps the sealed answer records it relays. Each test drives the client's
//! HTTP API as an app would and checks that the attack is refused where it lands (the client's
//! worker policy, the worker, or the client's record layer), with its own error, and what the
//! proxy billed for it.
//!
//! Every attack spares the devnet's first sealed request, which runs honestly (the replay and
//! swap attacks reuse its sealed body, the foreign-record attacks its answer), and hits the
//! next one; the certificate attacks forge the list from the start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cocoon_attest::sealed::WorkerKey;
use cocoon_client::E2e;
use cocoon_proto::*;
use cocoon_proxy::danger::DangerTamper;
use cocoon_testkit::devchain::CLIENT_DEPOSIT;
use cocoon_testkit::http::{sse_events, HttpAnswer};
use cocoon_testkit::{wait_until, Devnet, MockBackendConfig};
use http::Method;
use serde_json::{json, Value};

/// Bound on every test: a tampered answer must end in an error, never in a hang.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What the malicious proxy does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attack {
    /// Lists, for each worker, a certificate without attestation carrying the proxy's own
    /// sealing key.
    UnattestedCertificate,
    /// Lists a certificate of its own that carries its own sealing key next to the worker's
    /// genuine quote.
    BorrowedQuote,
    /// Lists the worker's certificate with the sealing key in it replaced by its own.
    ChangedSealingKey,
    /// Sends the request to another worker than the one it is sealed to.
    OtherWorker,
    /// Tells the worker another client request id than the one the body is sealed for.
    OtherRequestId,
    /// Tells the worker another API path than the sealed request's.
    OtherEndpoint,
    /// Declares a prompt estimate below the body's (a cut answer would be billed less).
    LowerPromptEstimate,
    /// Sends the first request's sealed body and id again in place of the next request.
    ReplayFirst,
    /// Sends the first request's sealed body under the next request's id.
    SwapSealedBody,
    /// Swaps two answer records.
    Reorder,
    /// Drops an answer record.
    Drop,
    /// Sends an answer record twice.
    Duplicate,
    /// Cuts the answer before its last record.
    Cut,
    /// Puts a record of the first request's answer in place of one of this answer's.
    ForeignRecord,
    /// Appends a copy of the last record after it.
    AfterLast,
    /// Answers itself, in the clear, in place of the worker's sealed answer.
    Unsealed,
    /// Changes the answer's status, which travels in the clear.
    ChangedStatus,
    /// Never sends the answer's last message.
    Withhold,
    /// Raises the token count in the worker's receipt.
    ReceiptTokens,
    /// Relays the first request's receipt (the same worker's, genuine) with this answer.
    ForeignReceipt,
    /// Charges more tokens than the worker's receipt states.
    OverCharge,
    /// Drops its own signed charge.
    NoCharge,
}

impl Attack {
    fn on_receipts(self) -> bool {
        matches!(
            self,
            Attack::ReceiptTokens | Attack::ForeignReceipt | Attack::OverCharge | Attack::NoCharge
        )
    }
}

/// The final info of an answer message, if it is the last.
fn final_info(answer: &mut ClientQueryAnswer) -> Option<&mut ClientQueryFinalInfo> {
    match answer {
        ClientQueryAnswer::Answer(head) => head.final_info.as_mut(),
        ClientQueryAnswer::Part(part) => part.final_info.as_mut(),
        ClientQueryAnswer::Error(error) => error.final_info.as_mut(),
    }
}

/// A proxy that performs `attack` on every sealed request but the first.
struct Malicious {
    attack: Attack,
    state: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// The certificate keys of the workers the proxy listed.
    worker_keys: Vec<[u8; 32]>,
    /// The first sealed request (let through), as the worker got it.
    first_query: Option<ProxyRunSealedQuery>,
    /// The client request id of the first sealed request.
    first_id: Option<[u8; 32]>,
    /// The client request ids of every sealed request: only their answers are touched.
    sealed_ids: Vec<[u8; 32]>,
    /// The first request's answer messages, as relayed.
    first_answer: Vec<ClientQueryAnswer>,
    /// Answer messages relayed so far, per client request id.
    relayed: HashMap<[u8; 32], usize>,
    /// A message held back to be sent after the next one.
    held: Option<ClientQueryAnswer>,
}

impl Malicious {
    fn new(attack: Attack) -> Arc<Malicious> {
        Arc::new(Malicious {
            attack,
            state: Mutex::new(Seen::default()),
        })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.state.lock().unwrap()
    }
}

/// The length-prefixed records of a sealed payload (each with its prefix).
fn records(payload: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = payload;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let (record, tail) = rest.split_at((4 + len).min(rest.len()));
        out.push(record.to_vec());
        rest = tail;
    }
    out
}

fn answer_bytes(answer: &mut ClientQueryAnswer) -> &mut Vec<u8> {
    match answer {
        ClientQueryAnswer::Answer(head) => &mut head.answer,
        ClientQueryAnswer::Part(part) => &mut part.answer,
        ClientQueryAnswer::Error(error) => panic!("no answer bytes in an error: {error:?}"),
    }
}

fn is_final(answer: &ClientQueryAnswer) -> bool {
    answer.final_info().is_some()
}

/// A fake-TEE certificate of the proxy's own, carrying its own sealing key and `quote`
/// (`None`: no attestation at all).
fn forged_certificate(quote: Option<Vec<u8>>) -> Vec<u8> {
    let own_key = WorkerKey::from_seed(&[66; 32]).public_key();
    let now = SystemTime::now();
    let identity = match quote {
        Some(quote) => cocoon_attest::generate_identity_sealing(
            &cocoon_attest::provider::danger::ReplayQuote(quote),
            None,
            "cocoon-worker",
            now,
            Some(own_key),
        ),
        None => cocoon_attest::generate_identity_sealing(
            &cocoon_attest::provider::NoTee,
            None,
            "cocoon-worker",
            now,
            Some(own_key),
        ),
    };
    identity.unwrap().tls.cert_der
}

impl DangerTamper for Malicious {
    fn sealing_workers(&self, _model: &str, listed: &mut ClientSealingWorkers) {
        let now = SystemTime::now();
        self.seen().worker_keys = listed
            .workers
            .iter()
            .map(|w| {
                cocoon_attest::parse_certificate(&w.certificate, now)
                    .unwrap()
                    .public_key
            })
            .collect();
        for worker in &mut listed.workers {
            match self.attack {
                Attack::UnattestedCertificate => worker.certificate = forged_certificate(None),
                Attack::BorrowedQuote => {
                    let facts = cocoon_attest::parse_certificate(&worker.certificate, now).unwrap();
                    worker.certificate = forged_certificate(facts.quote);
                }
                Attack::ChangedSealingKey => {
                    let key = cocoon_attest::sealing_key_of(&worker.certificate, now).unwrap();
                    let at = worker
                        .certificate
                        .windows(32)
                        .position(|w| w == key)
                        .expect("the sealing key is in the certificate");
                    worker.certificate[at..at + 32]
                        .copy_from_slice(&WorkerKey::from_seed(&[66; 32]).public_key());
                }
                _ => {}
            }
        }
    }

    fn client_sealed_query(&self, query: &mut ClientRunSealedQuery) {
        let mut seen = self.seen();
        seen.sealed_ids.push(query.request_id);
        if seen.first_id.is_none() {
            seen.first_id = Some(query.request_id);
            return;
        }
        if self.attack == Attack::OtherWorker {
            query.worker_key = *seen
                .worker_keys
                .iter()
                .find(|key| **key != query.worker_key)
                .expect("a second worker");
        }
    }

    fn sealed_to_worker(&self, mut query: ProxyRunSealedQuery) -> Vec<ProxyRunSealedQuery> {
        let mut seen = self.seen();
        let Some(first) = seen.first_query.clone() else {
            seen.first_query = Some(query.clone());
            return vec![query];
        };
        match self.attack {
            Attack::OtherRequestId => query.client_request_id[0] ^= 1,
            Attack::OtherEndpoint => query.endpoint = "/v1/embeddings".into(),
            Attack::LowerPromptEstimate => query.prompt_estimate = 0,
            Attack::ReplayFirst => {
                query.sealed = first.sealed;
                query.client_request_id = first.client_request_id;
            }
            Attack::SwapSealedBody => query.sealed = first.sealed,
            _ => {}
        }
        vec![query]
    }

    fn answer_to_client(&self, mut answer: ClientQueryAnswer) -> Vec<ClientQueryAnswer> {
        let mut seen = self.seen();
        let id = *answer.request_id();
        if Some(id) == seen.first_id {
            seen.first_answer.push(answer.clone());
            return vec![answer];
        }
        if matches!(answer, ClientQueryAnswer::Error(_)) || !seen.sealed_ids.contains(&id) {
            return vec![answer];
        }
        let index = {
            let count = seen.relayed.entry(id).or_default();
            *count += 1;
            *count - 1
        };
        if self.attack.on_receipts() {
            let first_receipt = seen
                .first_answer
                .iter()
                .cloned()
                .find_map(|mut a| final_info(&mut a).and_then(|f| f.receipt.clone()));
            if let Some(info) = final_info(&mut answer) {
                match self.attack {
                    Attack::ReceiptTokens => {
                        let bytes = info.receipt.as_mut().unwrap();
                        let mut receipt =
                            cocoon_attest::receipt::Receipt::from_bytes(bytes).unwrap();
                        receipt.body.tokens.total += 100;
                        *bytes = receipt.to_bytes();
                    }
                    Attack::ForeignReceipt => info.receipt = first_receipt,
                    Attack::OverCharge => info.tokens_used.total_tokens_used += 100,
                    Attack::NoCharge => info.charge = None,
                    _ => {}
                }
            }
            return vec![answer];
        }
        if let ClientQueryAnswer::Answer(head) = &mut answer {
            if self.attack == Attack::ChangedStatus {
                let mut response = HttpResponse::from_bytes(&head.answer).unwrap();
                response.status_code = 500;
                response.reason = "Internal Server Error".into();
                head.answer = response.to_bytes();
                return vec![answer];
            }
            if head.final_info.is_some() && self.attack == Attack::Withhold {
                return vec![];
            }
            if head.final_info.is_some() {
                // The whole answer in one message: the attack moves its records.
                let foreign = seen.first_answer.first().cloned();
                drop(seen);
                tamper_records(self.attack, head, foreign);
                return vec![answer];
            }
        }
        // A streamed answer: the head (the head record 0 and an empty record 1), then a part
        // per record.
        match (self.attack, index) {
            (Attack::Reorder, 1) => {
                seen.held = Some(answer);
                vec![]
            }
            (Attack::Reorder, 2) => {
                let held = seen.held.take().unwrap();
                vec![answer, held]
            }
            (Attack::Drop, 2) => vec![],
            (Attack::Withhold, _) if is_final(&answer) => vec![],
            (Attack::Duplicate, 1) => vec![answer.clone(), answer],
            (Attack::Cut, _) if is_final(&answer) => {
                answer_bytes(&mut answer).clear();
                vec![answer]
            }
            (Attack::ForeignRecord, 1) => {
                let mut foreign = seen.first_answer[1].clone();
                *answer_bytes(&mut answer) = std::mem::take(answer_bytes(&mut foreign));
                vec![answer]
            }
            (Attack::AfterLast, _) if is_final(&answer) => {
                let bytes = answer_bytes(&mut answer);
                let again = bytes.clone();
                bytes.extend_from_slice(&again);
                vec![answer]
            }
            _ => vec![answer],
        }
    }
}

/// Performs `attack` on the records of a whole answer in one message.
fn tamper_records(
    attack: Attack,
    head: &mut ClientQueryAnswerEx,
    first_answer: Option<ClientQueryAnswer>,
) {
    let mut response = HttpResponse::from_bytes(&head.answer).unwrap();
    let mut records = records(&response.payload);
    assert!(records.len() >= 3, "an answer of at least three records");
    match attack {
        Attack::Reorder => records.swap(0, 1),
        Attack::Drop => {
            records.remove(1);
        }
        Attack::Duplicate => records.insert(1, records[0].clone()),
        Attack::Cut => {
            records.pop();
        }
        Attack::ForeignRecord => {
            let Some(ClientQueryAnswer::Answer(first)) = first_answer else {
                panic!("the first answer is one message");
            };
            let first = HttpResponse::from_bytes(&first.answer).unwrap();
            records[0] = self::records(&first.payload)[0].clone();
        }
        Attack::AfterLast => records.push(records[records.len() - 1].clone()),
        Attack::Unsealed => {
            records = vec![
                br#"{"choices":[{"message":{"role":"assistant","content":"the proxy says hi"}}]}"#
                    .to_vec(),
            ]
        }
        _ => {}
    }
    response.payload = records.concat();
    head.answer = response.to_bytes();
}

/// A mock whose answers are several records long both ways: 8 tokens of 5,000 bytes each
/// (a record holds 16 KiB), streamed with a pause so that each token is its own part.
fn long_answers() -> MockBackendConfig {
    MockBackendConfig {
        chunk_count: 8,
        chunk_size: 5_000,
        chunk_delay: Duration::from_millis(5),
        ..MockBackendConfig::default()
    }
}

async fn devnet(attack: Attack, workers: usize) -> Devnet {
    Devnet::builder()
        .workers(workers)
        .mock(long_answers())
        .client_settings(|client| client.e2e = E2e::Required)
        .danger_tamper(Malicious::new(attack))
        .start()
        .await
        .unwrap()
}

fn question(stream: bool) -> Vec<u8> {
    let mut body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "seal these words"}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body.to_string().into_bytes()
}

async fn post_chat(devnet: &Devnet, stream: bool) -> HttpAnswer {
    devnet
        .client_http()
        .request(
            Method::POST,
            devnet.client_addr(),
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            question(stream),
        )
        .await
        .unwrap()
}

/// The billable tokens the proxy booked for its workers.
async fn booked_tokens(devnet: &Devnet) -> u64 {
    let stats = devnet.proxy_stats().await;
    stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["tokens"].as_u64().unwrap())
        .sum()
}

/// Waits until the proxy has no request in flight: everything it will bill is billed.
async fn settled(devnet: &Devnet) {
    wait_until("no request in flight at the proxy", || async {
        devnet.proxy_stats().await["requests"]["in_flight"] == 0
    })
    .await;
}

/// Runs the first (honest) sealed request; returns the tokens it was billed.
async fn honest_first(devnet: &Devnet, stream: bool) -> u64 {
    let answer = post_chat(devnet, stream).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("x-cocoon-e2e"), Some("on"));
    settled(devnet).await;
    if stream {
        let events = sse_events(answer.text().as_bytes());
        assert!(events.iter().all(|e| e["error"].is_null()), "{events:?}");
    }
    let tokens = booked_tokens(devnet).await;
    assert!(tokens > 0);
    tokens
}

/// A receipt or charge the proxy changed: the answer itself is the worker's and reaches the app,
/// whose receipt check names what is wrong (`X-Cocoon-Receipt-Check`, or the stream's receipt
/// event), and the client counts it.
async fn receipt_refused(attack: Attack, stream: bool, verdict: &str) {
    let devnet = devnet(attack, 1).await;
    honest_first(&devnet, stream).await;
    let answer = post_chat(&devnet, stream).await;
    assert_eq!(answer.status, 200, "{attack:?}: {}", answer.text());
    let seen = if stream {
        let events = sse_events(answer.text().as_bytes());
        let event = events
            .iter()
            .find(|e| e.get("cocoon_receipt_check").is_some())
            .unwrap_or_else(|| panic!("{attack:?}: no receipt event in {events:?}"))
            .clone();
        event["cocoon_receipt_check"].as_str().unwrap().to_owned()
    } else {
        answer.header("x-cocoon-receipt-check").unwrap().to_owned()
    };
    assert_eq!(seen, verdict, "{attack:?} (stream {stream})");
    let stats = devnet.client_stats().await;
    assert_eq!(stats["receipts"]["valid"], 1, "{attack:?}: {stats}");
    assert_eq!(stats["receipts"]["refused"], 1, "{attack:?}: {stats}");
    assert_eq!(
        stats["receipts"]["over_charged"],
        u64::from(verdict == "over_charged"),
        "{attack:?}: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_with_a_changed_token_count_is_refused() {
    for stream in [false, true] {
        bounded(receipt_refused(Attack::ReceiptTokens, stream, "signature")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_requests_receipt_is_refused() {
    bounded(receipt_refused(
        Attack::ForeignReceipt,
        false,
        "another_request",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_above_the_receipt_is_an_over_charge() {
    for stream in [false, true] {
        bounded(receipt_refused(Attack::OverCharge, stream, "over_charged")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_without_the_proxys_signed_charge_is_flagged() {
    bounded(receipt_refused(Attack::NoCharge, false, "charge_missing")).await;
}

/// A request the worker refused because the proxy changed it: the app gets the worker's
/// reason, and nothing is billed for it.
async fn refused_by_worker(attack: Attack, workers: usize, reason: &str) {
    let devnet = devnet(attack, workers).await;
    let billed = honest_first(&devnet, false).await;
    let answer = post_chat(&devnet, false).await;
    assert_eq!(answer.status, 400, "{attack:?}: {}", answer.text());
    let error = &answer.json()["error"];
    assert_eq!(error["code"], "bad_request", "{attack:?}: {error}");
    assert!(
        error["message"].as_str().unwrap().contains(reason),
        "{attack:?}: {error}"
    );
    settled(&devnet).await;
    assert_eq!(
        booked_tokens(&devnet).await,
        billed,
        "{attack:?}: a refused request costs nothing"
    );
    let stats = devnet.proxy_stats().await;
    assert_eq!(stats["requests"]["failed"], 1, "{attack:?}: {stats}");
}

/// An answer the client could not open: a JSON answer is a 502 naming the failure, a streamed
/// one ends with an error event naming it. The proxy billed what the worker reported (it
/// relayed the whole answer's usage): the client cannot refuse a charge, only the answer.
async fn refused_by_client(attack: Attack, stream: bool, reason: &str) {
    let devnet = devnet(attack, 1).await;
    let billed = honest_first(&devnet, stream).await;
    let answer = post_chat(&devnet, stream).await;
    // A changed head is refused before a stream begins: a 502 either way.
    let message = if stream && attack != Attack::ChangedStatus {
        assert_eq!(answer.status, 200, "{attack:?}: {}", answer.text());
        let events = sse_events(answer.text().as_bytes());
        let last = events.last().unwrap();
        assert_eq!(
            last["error"]["type"], "upstream_error",
            "{attack:?}: {last}"
        );
        assert!(
            events[..events.len() - 1]
                .iter()
                .all(|e| e["error"].is_null()),
            "{attack:?}: one error, at the end"
        );
        last["error"]["message"].as_str().unwrap().to_owned()
    } else {
        assert_eq!(answer.status, 502, "{attack:?}: {}", answer.text());
        let error = &answer.json()["error"];
        assert_eq!(error["code"], "sealed_answer", "{attack:?}: {error}");
        error["message"].as_str().unwrap().to_owned()
    };
    assert!(
        message.starts_with("the worker's sealed answer did not open: ")
            && message.contains(reason),
        "{attack:?} (stream {stream}): {message}"
    );
    // A stream the client gave up on mid-way still runs to its end at the proxy (the client
    // only stops reading it).
    settled(&devnet).await;
    assert_eq!(
        booked_tokens(&devnet).await,
        2 * billed,
        "{attack:?}: the proxy billed the answer it tampered with, as reported"
    );
}

/// A certificate the client's worker policy refuses: with `e2e = "required"` nothing is sent,
/// and the 503 says why.
async fn refused_by_policy(attack: Attack, reason: &str) {
    let devnet = devnet(attack, 1).await;
    let answer = post_chat(&devnet, false).await;
    assert_eq!(answer.status, 503, "{attack:?}: {}", answer.text());
    let error = &answer.json()["error"];
    assert_eq!(error["code"], "no_sealing_worker", "{attack:?}: {error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("the proxy listed a worker whose certificate failed it")
            && message.contains(reason),
        "{attack:?}: {message}"
    );
    let stats = devnet.proxy_stats().await;
    assert_eq!(
        stats["requests"]["total"], 0,
        "{attack:?}: nothing was sent"
    );
}

/// On a paid devnet: the first (honest) request, then one under `attack`; the client contract
/// pays exactly what the proxy's books charged it, `charged_answers` answers' worth, and that is
/// what the worker was paid plus the proxy's commission, to the nano-TON.
async fn paid(attack: Attack, status: u16, charged_answers: u64) {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::builder()
        .mock(long_answers())
        .client_settings(|client| client.e2e = E2e::Required)
        .local_chain(
            dir.path(),
            &dir.path().join("prices.toml"),
            Duration::from_millis(100),
            Duration::from_millis(200),
        )
        .danger_tamper(Malicious::new(attack))
        .start()
        .await
        .unwrap();
    let dev = devnet.chain.as_ref().unwrap();
    let (price, fee) = (
        dev.params.price_per_token.0,
        dev.params.worker_fee_per_token.0,
    );
    let worker = dev.worker_contract(dev.workers[0].address()).unwrap();
    let wallet_before = dev.balance(dev.workers[0].address()).await.unwrap();
    let first = post_chat(&devnet, false).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let tokens = first.json()["usage"]["total_tokens"].as_u64().unwrap();
    let tampered = post_chat(&devnet, false).await;
    assert_eq!(tampered.status, status, "{attack:?}: {}", tampered.text());
    settled(&devnet).await;
    let charged = charged_answers * tokens;
    let ledger = &devnet.proxy_stats().await["ledger"];
    let account = ledger["clients"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(account["charged_tokens"], charged, "{attack:?}: {ledger}");
    let on_chain = || async {
        let client = dev
            .cocoon
            .client(&dev.client_contract(dev.client.address()).unwrap())
            .await
            .unwrap()
            .unwrap();
        let proxy = dev
            .cocoon
            .proxy(&dev.proxy_contract().unwrap())
            .await
            .unwrap()
            .unwrap();
        let worker = dev.cocoon.worker(&worker).await.unwrap().unwrap();
        let wallet = dev.balance(dev.workers[0].address()).await.unwrap();
        (
            client.tokens_used,
            client.balance.0,
            worker.tokens,
            wallet,
            proxy.balance.0,
        )
    };
    wait_until("the charge and the payout on chain", || async {
        let (used, _, paid, _, _) = on_chain().await;
        used == charged && paid == charged
    })
    .await;
    let (_, balance, _, wallet, commission) = on_chain().await;
    let t = u128::from(charged);
    assert_eq!(
        balance,
        CLIENT_DEPOSIT.0 - t * price,
        "client paid tokens × price"
    );
    assert_eq!(wallet, wallet_before + t * fee, "worker got tokens × fee");
    assert_eq!(commission, t * (price - fee), "the proxy kept the rest");
}

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("the test ends in time");
}

// ---- the workers the proxy lists ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattested_certificate_is_refused_by_the_client_policy() {
    bounded(refused_by_policy(
        Attack::UnattestedCertificate,
        "certificate carries no quote, but the policy requires attestation",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_certificate_around_the_workers_quote_is_refused_by_the_client_policy() {
    bounded(refused_by_policy(
        Attack::BorrowedQuote,
        "quote is not bound to this certificate (report data mismatch)",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_with_a_changed_sealing_key_is_refused_by_the_client_policy() {
    bounded(refused_by_policy(
        Attack::ChangedSealingKey,
        "certificate is not validly self-signed",
    ))
    .await;
}

/// With `e2e = "preferred"` (the default) a client that can verify no listed worker sends the
/// request in the clear, as documented: a proxy that forges the list reads that request, and
/// the app sees it in `X-Cocoon-E2E: off`. `required` is what refuses the downgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_list_downgrades_a_preferred_client_to_the_clear_and_says_so() {
    bounded(async {
        let devnet = Devnet::builder()
            .client_settings(|client| client.e2e = E2e::Preferred)
            .danger_tamper(Malicious::new(Attack::UnattestedCertificate))
            .start()
            .await
            .unwrap();
        let answer = post_chat(&devnet, false).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.header("x-cocoon-e2e"), Some("off"));
    })
    .await;
}

// ---- the request the proxy forwards ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_to_another_worker_does_not_open_there() {
    bounded(refused_by_worker(
        Attack::OtherWorker,
        2,
        "the sealed request is sealed to another worker's key, not this worker's",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_moved_to_another_id_does_not_open() {
    bounded(refused_by_worker(
        Attack::OtherRequestId,
        1,
        "the sealed request does not open here (sealed for another request or model, or changed)",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_requests_sealed_body_does_not_open() {
    bounded(refused_by_worker(
        Attack::SwapSealedBody,
        1,
        "the sealed request does not open here (sealed for another request or model, or changed)",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_retargeted_to_another_endpoint_is_refused() {
    bounded(refused_by_worker(
        Attack::OtherEndpoint,
        1,
        "the sealed request is for /v1/chat/completions, not /v1/embeddings as the proxy was told",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_prompt_estimate_is_refused() {
    bounded(refused_by_worker(
        Attack::LowerPromptEstimate,
        1,
        "declares a prompt estimate of 0 tokens, below its body's",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_is_refused() {
    bounded(refused_by_worker(
        Attack::ReplayFirst,
        1,
        "this sealed request was opened here before (a replay)",
    ))
    .await;
}

// ---- the answer the proxy relays ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_answer_records_are_refused() {
    bounded(async {
        let reason = "answer record 0 is record 1 of this answer: records before it were dropped or reordered";
        refused_by_client(Attack::Reorder, false, reason).await;
        let reason = "answer record 2 is record 3 of this answer";
        refused_by_client(Attack::Reorder, true, reason).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_answer_record_is_refused() {
    bounded(async {
        let reason = "answer record 1 is record 2 of this answer: records before it were dropped or reordered";
        refused_by_client(Attack::Drop, false, reason).await;
        let reason = "answer record 3 is record 4 of this answer";
        refused_by_client(Attack::Drop, true, reason).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_answer_record_is_refused() {
    bounded(async {
        let reason = "answer record 1 is a copy of record 0, which arrived before (replayed)";
        refused_by_client(Attack::Duplicate, false, reason).await;
        let reason = "answer record 3 is a copy of record 2, which arrived before (replayed)";
        refused_by_client(Attack::Duplicate, true, reason).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_before_its_last_record_is_refused() {
    bounded(async {
        let reason = "the answer was cut short: it ended before its last record";
        refused_by_client(Attack::Cut, false, reason).await;
        refused_by_client(Attack::Cut, true, reason).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_another_answer_is_refused() {
    bounded(async {
        let reason = "answer record 0 failed authentication (changed, or from another answer)";
        refused_by_client(Attack::ForeignRecord, false, reason).await;
        let reason = "answer record 2 failed authentication (changed, or from another answer)";
        refused_by_client(Attack::ForeignRecord, true, reason).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_after_the_last_are_refused() {
    bounded(async {
        let reason = "data after the answer's last record";
        refused_by_client(Attack::AfterLast, false, reason).await;
        refused_by_client(Attack::AfterLast, true, reason).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_proxy_writes_itself_is_refused() {
    bounded(refused_by_client(
        Attack::Unsealed,
        false,
        "answer record 0 is malformed: record length out of range",
    ))
    .await;
}

// ---- money ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_worker_refuses_costs_nothing_on_chain() {
    bounded(paid(Attack::ReplayFirst, 400, 1)).await;
}

/// The client cannot refuse a charge, only the answer: the proxy bills the usage the worker
/// reported in the clear. Paid and earned still match exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_client_could_not_open_is_charged_as_reported_and_the_books_balance() {
    bounded(paid(Attack::Cut, 502, 2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_status_is_refused() {
    bounded(async {
        let reason = "the answer's status or headers were changed on the way (they are not what the worker sealed)";
        refused_by_client(Attack::ChangedStatus, false, reason).await;
        refused_by_client(Attack::ChangedStatus, true, reason).await;
    })
    .await;
}

/// A proxy that never sends an answer's end leaves the client waiting only until the request's
/// own timeout (here 1 s, plus the client's 2 s of slack): a 504, or a stream's last event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_end_ends_at_the_request_timeout() {
    bounded(async {
        for stream in [false, true] {
            let devnet = devnet(Attack::Withhold, 1).await;
            let billed = honest_first(&devnet, stream).await;
            let mut body: Value = serde_json::from_slice(&question(stream)).unwrap();
            body["timeout"] = json!(1);
            let answer = devnet
                .client_http()
                .request(
                    Method::POST,
                    devnet.client_addr(),
                    "/v1/chat/completions",
                    &[("content-type", "application/json")],
                    body.to_string().into_bytes(),
                )
                .await
                .unwrap();
            if stream {
                assert_eq!(answer.status, 200, "{}", answer.text());
                let events = sse_events(answer.text().as_bytes());
                let last = &events.last().unwrap()["error"];
                assert_eq!(last["type"], "timeout", "{last}");
                assert_eq!(last["message"], "request timed out", "{last}");
            } else {
                assert_eq!(answer.status, 504, "{}", answer.text());
                let error = &answer.json()["error"];
                assert_eq!(error["message"], "no answer within 1.0 s", "{error}");
            }
            settled(&devnet).await;
            assert_eq!(
                booked_tokens(&devnet).await,
                2 * billed,
                "the proxy billed the answer it withheld"
            );
        }
    })
    .await;
}
