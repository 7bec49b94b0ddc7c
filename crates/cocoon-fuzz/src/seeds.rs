//! Seeds: valid encodings of every message and object the targets read, made by the codecs
//! themselves, plus the repository's fixtures (quotes, reports, certificates, contract BOCs).
//! `cargo run -p cocoon-fuzz --bin cocoon-fuzz-seeds` writes them into `fuzz/corpus/`.

use std::path::Path;

use cocoon_attest::provider::danger::{FakeGpus, FakeSnp, FakeTdx};
use cocoon_attest::provider::QuoteProvider;
use cocoon_attest::receipt::{ChargeBody, ReceiptBody, ReceiptSigner, ReceiptTokens};
use cocoon_attest::sealed::{self, Padding, RequestContext, WorkerKey};
use cocoon_attest::{generate_identity_sealing, UserClaims};
use cocoon_ledger::{Charge, Progress, Record};
use cocoon_proto::frame::FrameEncoder;
use cocoon_proto::pow::{PowChallenge, PowResponse};
use cocoon_proto::*;

use crate::attest::{fuzz_now, FUZZ_NOW_SECS, SEALING_MODEL, SEALING_SEED};

/// One seed: the target it is for and its bytes.
pub type Seed = (&'static str, Vec<u8>);

fn payment() -> SignedPayment {
    SignedPayment::Signed {
        data: vec![0xab; 40],
    }
}

fn http_request() -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        url: "/v1/chat/completions".into(),
        http_version: "HTTP/1.1".into(),
        headers: vec![HttpHeader {
            name: "Content-Type".into(),
            value: "application/json".into(),
        }],
        payload:
            br#"{"model":"m","messages":[{"role":"user","content":"Hello there"}],"stream":true}"#
                .to_vec(),
    }
}

fn proxy_params() -> ProxyParams {
    ProxyParams {
        proxy_public_key: [3; 32],
        proxy_owner_address: "EQowner".into(),
        proxy_sc_address: "EQproxy".into(),
        is_test: Some(true),
        proto_version: Some(1),
    }
}

fn client_run() -> ClientRunQueryEx {
    ClientRunQueryEx {
        model_name: "m".into(),
        query: http_request().to_bytes(),
        max_coefficient: 2000,
        max_tokens: 100,
        timeout: 30.0,
        request_id: [1; 32],
        min_config_version: 0,
        enable_debug: Some(true),
    }
}

fn client_sealed_run() -> ClientRunSealedQuery {
    ClientRunSealedQuery {
        model_name: "m".into(),
        endpoint: "/v1/chat/completions".into(),
        worker_key: [4; 32],
        sealed: vec![9; 64],
        prompt_estimate: 12,
        max_coefficient: 2000,
        max_tokens: 100,
        timeout: 30.0,
        request_id: [1; 32],
        min_config_version: 0,
        enable_debug: None,
    }
}

fn proxy_run() -> ProxyRunQueryEx {
    ProxyRunQueryEx {
        query: http_request().to_bytes(),
        signed_payment: payment(),
        coefficient: 1000,
        timeout: 30.0,
        request_id: [2; 32],
        enable_debug: Some(false),
    }
}

fn proxy_sealed_run() -> ProxyRunSealedQuery {
    ProxyRunSealedQuery {
        endpoint: "/v1/completions".into(),
        sealed: vec![9; 64],
        client_request_id: [1; 32],
        prompt_estimate: 7,
        max_tokens: 10,
        signed_payment: SignedPayment::Empty,
        coefficient: 1000,
        timeout: 5.0,
        request_id: [2; 32],
        enable_debug: Some(true),
    }
}

fn client_answers() -> Vec<ClientQueryAnswer> {
    let response = HttpResponse {
        http_version: "HTTP/1.1".into(),
        status_code: 200,
        reason: "OK".into(),
        headers: vec![HttpHeader {
            name: "a".into(),
            value: "b".into(),
        }],
        payload: b"data: {}\n\n".to_vec(),
    };
    let final_info = ClientQueryFinalInfo {
        debug: Some(FinalInfoDebug::default()),
        timings: Some(ClientTimings::default()),
        ..ClientQueryFinalInfo::default()
    };
    vec![
        ClientQueryAnswer::Answer(ClientQueryAnswerEx {
            request_id: [1; 32],
            answer: response.to_bytes(),
            final_info: None,
        }),
        ClientQueryAnswer::Part(ClientQueryAnswerPartEx {
            request_id: [1; 32],
            answer: vec![7; 20],
            final_info: Some(final_info.clone()),
        }),
        ClientQueryAnswer::Error(ClientQueryAnswerErrorEx {
            request_id: [1; 32],
            error_code: 502,
            error: "no worker".into(),
            final_info: Some(final_info),
        }),
    ]
}

fn proxy_answers() -> Vec<ProxyQueryAnswer> {
    let final_info = ProxyQueryFinalInfo {
        tokens_used: TokensUsed::from_counts(10, 2, 30, 4),
        ..ProxyQueryFinalInfo::default()
    };
    vec![
        ProxyQueryAnswer::Answer(ProxyQueryAnswerEx {
            request_id: [2; 32],
            answer: b"{}".to_vec(),
            final_info: Some(final_info.clone()),
        }),
        ProxyQueryAnswer::Part(ProxyQueryAnswerPartEx {
            request_id: [2; 32],
            answer: b"data: x\n\n".to_vec(),
            final_info: None,
        }),
        ProxyQueryAnswer::Error(ProxyQueryAnswerErrorEx {
            request_id: [2; 32],
            error_code: 500,
            error: "backend".into(),
            final_info: Some(final_info),
        }),
    ]
}

fn client_proxy() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        ClientConnectToProxy {
            params: ClientParams {
                client_owner_address: "EQclient".into(),
                is_test: Some(false),
                proto_version: Some(ProtoVersionRange { min: 0, max: 1 }),
            },
            min_config_version: 1,
        }
        .to_bytes(),
        ClientConnectedToProxy {
            params: proxy_params(),
            client_sc_address: "EQsc".into(),
            auth: ProxyConnectionAuth::Short {
                secret_hash: [5; 32],
                nonce: 9,
            },
            signed_payment: payment(),
        }
        .to_bytes(),
        ClientConnectedToProxy {
            params: proxy_params(),
            client_sc_address: "EQsc".into(),
            auth: ProxyConnectionAuth::Long { nonce: 9 },
            signed_payment: SignedPayment::Empty,
        }
        .to_bytes(),
        ClientAuthorizeWithProxyShort { data: vec![1; 32] }.to_bytes(),
        ClientAuthorizeWithProxyLong::default().to_bytes(),
        AuthorizationWithProxy::Success {
            signed_payment: payment(),
            tokens_committed_to_db: 5,
            max_tokens: 6,
        }
        .to_bytes(),
        AuthorizationWithProxy::Failed {
            error_code: 1,
            error: "no".into(),
        }
        .to_bytes(),
        ClientGetWorkerTypesV2::default().to_bytes(),
        ClientWorkerTypesV2 {
            types: vec![ClientWorkerTypeV2 {
                name: "m".into(),
                workers: vec![ClientWorkerInstanceV2::default(); 2],
            }],
        }
        .to_bytes(),
        ClientGetSealingWorkers {
            model_name: "m".into(),
        }
        .to_bytes(),
        ClientSealingWorkers {
            workers: vec![ClientSealingWorker {
                certificate: vec![0x30; 40],
                coefficient: 1000,
            }],
        }
        .to_bytes(),
        ClientUpdatePaymentStatus::default().to_bytes(),
        ClientPaymentStatus {
            signed_payment: payment(),
            db_tokens: 1,
            max_tokens: 2,
        }
        .to_bytes(),
        ClientRequestRefund::default().to_bytes(),
        ClientRefund { data: vec![1, 2] }.to_bytes(),
        ClientRefundRejected { active_queries: 3 }.to_bytes(),
        client_run().to_bytes(),
        client_sealed_run().to_bytes(),
        ProxyClientRequestPayment {
            request_id: [1; 32],
            signed_payment: payment(),
            db_tokens: 1,
            max_tokens: 2,
            request_tokens: 3,
        }
        .to_bytes(),
        ProxyToClientMessage::SignedPayment(SignedPayment::Empty).to_bytes(),
    ];
    seeds.extend(client_answers().iter().map(TlBoxed::to_bytes));
    seeds
}

fn proxy_worker() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        WorkerConnectToProxy {
            params: WorkerParams {
                worker_owner_address: "EQworker".into(),
                model: "m".into(),
                coefficient: 1000,
                limits: Some(WorkerLimits {
                    is_test: true,
                    proxy_cnt: 2,
                    max_active_requests: 8,
                }),
                proto_version: Some(ProtoVersionRange { min: 0, max: 1 }),
                supports_cancel: true,
            },
        }
        .to_bytes(),
        WorkerConnectedToProxy {
            params: proxy_params(),
            worker_sc_address: "EQw".into(),
        }
        .to_bytes(),
        WorkerProxyHandshakeComplete { is_disabled: true }.to_bytes(),
        WorkerProxyHandshakeCompleted::default().to_bytes(),
        WorkerCompareBalanceWithProxy::default().to_bytes(),
        WorkerCompareBalanceWithProxyResult {
            signed_payment: payment(),
            tokens_committed_to_db: 1,
            max_tokens: 2,
            error_code: 0,
        }
        .to_bytes(),
        WorkerExtendedCompareBalanceWithProxy {
            tokens_committed_to_db: 3,
            other: vec![1; 5],
        }
        .to_bytes(),
        WorkerExtendedCompareBalanceWithProxyResult::default().to_bytes(),
        WorkerUpdatePaymentStatus::default().to_bytes(),
        WorkerPaymentStatus {
            signed_payment: payment(),
            db_tokens: 1,
            max_tokens: 2,
        }
        .to_bytes(),
        WorkerEnabledDisabled { disabled: 1 }.to_bytes(),
        WorkerNewCoefficient {
            new_coefficient: 1200,
        }
        .to_bytes(),
        proxy_run().to_bytes(),
        proxy_sealed_run().to_bytes(),
        ProxyCancelQuery {
            request_id: [2; 32],
        }
        .to_bytes(),
        ProxyWorkerRequestPayment {
            request_id: [2; 32],
            signed_payment: payment(),
            db_tokens: 1,
            max_tokens: 2,
            request_tokens: 3,
            request_client_owner: "EQc".into(),
        }
        .to_bytes(),
    ];
    seeds.extend(proxy_answers().iter().map(TlBoxed::to_bytes));
    seeds
}

fn common() -> Vec<Vec<u8>> {
    vec![
        TcpPacket::from(TcpPing { id: 1 }).to_bytes(),
        TcpPacket::from(TcpPong { id: 1 }).to_bytes(),
        TcpPacket::from(TcpPacketData { data: vec![1; 9] }).to_bytes(),
        TcpPacket::from(TcpQuery {
            id: 2,
            data: client_run().to_bytes(),
        })
        .to_bytes(),
        TcpPacket::from(TcpQueryAnswer {
            id: 2,
            data: vec![0; 300],
        })
        .to_bytes(),
        TcpPacket::from(TcpQueryError {
            id: 3,
            code: 4,
            message: "x".repeat(300),
        })
        .to_bytes(),
        TcpPacket::from(TcpConnect { id: 5 }).to_bytes(),
        TcpPacket::from(TcpConnected { id: 5 }).to_bytes(),
        http_request().to_bytes(),
        HttpResponse {
            http_version: "HTTP/1.1".into(),
            status_code: 200,
            reason: "OK".into(),
            headers: Vec::new(),
            payload: br#"{"usage":{"prompt_tokens":3}}"#.to_vec(),
        }
        .to_bytes(),
        TokensUsed::from_counts(1, 2, 3, 4).to_bytes(),
        ProxyParams {
            is_test: None,
            proto_version: None,
            ..proxy_params()
        }
        .to_bytes(),
        proxy_params().to_bytes(),
        ClientParams {
            client_owner_address: "EQc".into(),
            is_test: Some(true),
            proto_version: None,
        }
        .to_bytes(),
        payment().to_bytes(),
        SignedPayment::Empty.to_bytes(),
        ProxyConnectionAuth::Short {
            secret_hash: [1; 32],
            nonce: 2,
        }
        .to_bytes(),
        ProxyConnectionAuth::Long { nonce: 3 }.to_bytes(),
    ]
}

/// Frames of `payloads` as they go on the wire, first byte the split step of
/// [`crate::pieces`].
fn framed(step: u8, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut encoder = FrameEncoder::new();
    let mut wire = vec![step];
    for payload in payloads {
        encoder
            .encode(payload, &mut wire)
            .expect("seed frames are small");
    }
    wire
}

fn frames_and_sessions() -> Vec<Seed> {
    let connect = TcpPacket::from(TcpConnect { id: 7 }).to_bytes();
    let connected = TcpPacket::from(TcpConnected { id: 7 }).to_bytes();
    let query = TcpPacket::from(TcpQuery {
        id: 1,
        data: client_run().to_bytes(),
    })
    .to_bytes();
    let ping = TcpPacket::from(TcpPing { id: 9 }).to_bytes();
    let packet = TcpPacket::from(TcpPacketData { data: vec![1; 30] }).to_bytes();
    let mut seeds = vec![
        ("frame", framed(255, &[connect.clone(), query.clone()])),
        (
            "frame",
            framed(3, &[vec![0; 4], vec![1; 100], ping.clone()]),
        ),
    ];
    for mode in [0u8, 1, 6, 7] {
        let first = if mode & 1 == 0 { &connected } else { &connect };
        let mut input = vec![mode];
        input.extend(framed(
            17,
            &[first.clone(), query.clone(), ping.clone(), packet.clone()],
        ));
        seeds.push(("session", input));
    }
    seeds
}

fn pow() -> Vec<Vec<u8>> {
    vec![
        PowChallenge {
            difficulty_bits: 20,
            salt: [1; 16],
        }
        .to_bytes()
        .to_vec(),
        PowResponse { nonce: 12345 }.to_bytes().to_vec(),
    ]
}

/// Certificates made by the real generator with fake TEEs (TDX, SNP, GPUs, a sealing key), their
/// extensions, and receipts and charges signed under them.
fn attestation() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let gpus = FakeGpus::new(2, vec![0x11; 48]);
    let tdx = FakeTdx::new(None);
    let snp = FakeSnp::new(Some([0x22; 48]));
    let providers: [(&dyn QuoteProvider, bool); 3] = [(&tdx, false), (&snp, true), (&tdx, true)];
    let sealing = WorkerKey::from_seed(&SEALING_SEED).public_key();
    for (provider, with_gpus) in providers {
        let gpu_source =
            with_gpus.then_some(&gpus as &dyn cocoon_attest::provider::GpuEvidenceSource);
        let identity =
            generate_identity_sealing(provider, gpu_source, "fuzz", fuzz_now(), Some(sealing))
                .expect("fake evidence makes a certificate");
        let cert = identity.tls.cert_der.clone();
        seeds.push(("certificate", cert.clone()));
        if let Some(quote) = &identity.quote {
            seeds.push(("tdx_quote", quote.clone()));
        }
        if let Some(evidence) = &identity.snp_evidence {
            seeds.push(("snp", evidence.clone()));
        }
        if let Some(evidence) = &identity.gpu_evidence {
            seeds.push(("gpu", evidence.clone()));
        }
        if let Some(claims) = cocoon_attest::claims_of(&cert, fuzz_now()) {
            seeds.push(("claims", claims.serialize()));
        }
        let signer = ReceiptSigner::new(&identity.tls).expect("an Ed25519 identity signs");
        let tokens = ReceiptTokens::from_categories([10, 2, 30, 4], 46);
        let receipt = signer.sign(ReceiptBody {
            worker_key: identity.tls.public_key,
            client_request_id: [1; 32],
            request_hash: [2; 32],
            answer_hash: [3; 32],
            model: "m".into(),
            tokens,
            coefficient: 1000,
            finished_at: FUZZ_NOW_SECS,
        });
        let charge = signer.sign(ChargeBody {
            proxy_key: identity.tls.public_key,
            client_request_id: [1; 32],
            receipt_hash: receipt.hash(),
            tokens,
            charged_at: FUZZ_NOW_SECS,
        });
        seeds.push(("receipt", receipt.to_bytes()));
        seeds.push(("receipt", charge.to_bytes()));
        seeds.push(("receipt", receipt.to_base64().into_bytes()));
    }
    seeds.push(("claims", UserClaims::for_key([9; 32]).serialize()));
    seeds
}

/// A request sealed to the fuzz worker key, its plaintext, and an answer stream's framing.
fn sealing() -> Vec<Seed> {
    let key = WorkerKey::from_seed(&SEALING_SEED);
    let context = RequestContext {
        model: SEALING_MODEL,
        request_id: [7; 32],
    };
    let plaintext = sealed::request_plaintext(
        FUZZ_NOW_SECS,
        &http_request().to_bytes(),
        Padding::requests(),
    );
    let (sealed_request, _) =
        sealed::seal_request(&key.public_key(), &context, &plaintext).expect("a valid key seals");
    let mut open = vec![0];
    open.extend_from_slice(&sealed_request);
    let mut plain = vec![1];
    plain.extend_from_slice(&plaintext);
    let mut answer = vec![2, 16];
    for len in [40u32, 17] {
        answer.extend_from_slice(&len.to_le_bytes());
        answer.extend(std::iter::repeat_n(0x42, len as usize));
    }
    vec![("sealed", open), ("sealed", plain), ("sealed", answer)]
}

fn ledger() -> Vec<Vec<u8>> {
    vec![
        Record::Charge(Charge {
            request_id: [1; 32],
            client: "client-a".into(),
            worker: "worker-b".into(),
            tokens: 100,
            price_per_token: 20,
            worker_fee_per_token: 15,
        })
        .to_bytes(1),
        Record::SyncClient {
            client: "client-a".into(),
            balance_nano: 1 << 70,
            stake_nano: 5,
            tokens_used: 6,
        }
        .to_bytes(2),
        Record::SignedCharge {
            client: "client-a".into(),
            tokens: 7,
        }
        .to_bytes(3),
        Record::SignedPayout {
            worker: "worker-b".into(),
            tokens: 8,
        }
        .to_bytes(4),
        Record::Progress(Progress {
            request_id: [2; 32],
            client: "client-a".into(),
            worker: "worker-b".into(),
            tokens: 9,
        })
        .to_bytes(5),
    ]
}

fn json() -> Vec<Seed> {
    let sse = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,",
        "\"total_tokens\":12,\"prompt_tokens_details\":{\"cached_tokens\":1},",
        "\"completion_tokens_details\":{\"reasoning_tokens\":2}}}\n\n",
        "data: [DONE]\n\n"
    );
    let mut split = vec![7u8];
    split.extend_from_slice(sse.as_bytes());
    let mut whole = vec![0xfe];
    whole.extend_from_slice(sse.as_bytes());
    let body = br#"{"id":"x","choices":[{"message":{"content":"Hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
    let mut json_body = vec![255u8];
    json_body.extend_from_slice(body);
    vec![
        ("sse_usage", split),
        ("sse_usage", whole),
        ("sse_usage", json_body),
        (
            "json_request",
            br#"{"model":"m","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":20,"temperature":0.5}"#.to_vec(),
        ),
        (
            "json_request",
            br#"{"model":"m","prompt":"Once upon","max_tokens":5,"stream":false}"#.to_vec(),
        ),
        (
            "json_request",
            br#"{"model":"m","input":["a","b"],"encoding_format":"float"}"#.to_vec(),
        ),
        // The client's extras, which it strips before forwarding.
        (
            "json_request",
            br#"{"model":"m","messages":[{"role":"user","content":"Hi"}],"max_coefficient":2000,"timeout":30.5,"request_guid":"g","enable_debug":true,"n":1}"#.to_vec(),
        ),
        // A Responses API request, which the client translates into a chat completion.
        (
            "json_request",
            br#"{"model":"m","instructions":"Be brief","input":[{"role":"developer","content":"x"},{"role":"user","content":[{"type":"input_text","text":"Hi"}]}],"max_output_tokens":16,"stream":true,"temperature":0.2}"#.to_vec(),
        ),
    ]
}

/// Bytes of a fixture: hex files (`.hex`, `.txt` of hex digits) are decoded.
fn fixture_bytes(path: &Path) -> Option<Vec<u8>> {
    let raw = std::fs::read(path).ok()?;
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".hex") || name.ends_with(".txt") {
        let text: String = String::from_utf8(raw)
            .ok()?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        return hex::decode(&text).ok();
    }
    Some(raw)
}

/// The repository's fixtures, by target: TDX/SGX quotes, SNP reports and VCEKs, NVIDIA GPU
/// reports, and every BOC in `contracts/fixtures/codecs.json`.
fn fixtures(repo: &Path) -> Vec<Seed> {
    let attest = repo.join("crates/cocoon-attest/tests/fixtures");
    let mut seeds = Vec::new();
    let files: [(&str, &str); 7] = [
        ("tdx_quote", "tdx_quote"),
        ("tdx_quote", "tdx_quote_td15ex"),
        ("tdx_quote", "sgx_quote"),
        ("snp", "snp/report_milan.hex"),
        ("certificate", "snp/vcek_milan.der"),
        ("gpu", "gpu/hopperAttestationReport.txt"),
        ("certificate", "intel_sgx_root_ca.der"),
    ];
    for (target, file) in files {
        if let Some(bytes) = fixture_bytes(&attest.join(file)) {
            seeds.push((target, bytes));
        }
    }
    if let Ok(text) = std::fs::read_to_string(repo.join("contracts/fixtures/codecs.json")) {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
            use base64::Engine as _;
            for section in ["storage", "bodies", "signed"] {
                for entry in json[section].as_array().into_iter().flatten() {
                    let Some(boc) = entry["boc"].as_str() else {
                        continue;
                    };
                    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(boc) {
                        seeds.push(("boc", bytes));
                    }
                }
            }
        }
    }
    seeds
}

/// Every seed; `repo` is the repository root the fixtures are read from.
pub fn all(repo: &Path) -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, list: Vec<Vec<u8>>| {
        seeds.extend(list.into_iter().map(|bytes| (target, bytes)));
    };
    add("tl_client_proxy", client_proxy());
    add("tl_proxy_worker", proxy_worker());
    add("tl_common", common());
    add("pow", pow());
    add("ledger_record", ledger());
    seeds.extend(frames_and_sessions());
    seeds.extend(attestation());
    seeds.extend(sealing());
    seeds.extend(json());
    seeds.extend(fixtures(repo));
    seeds
}
