//! The OpenAI-compatible HTTP API: `/v1/models`, `/v1/chat/completions`, `/v1/completions`
//! (JSON and SSE), `/v1/embeddings`, plus `/stats` and `/metrics`. `/v1/responses` is
//! translated onto chat completions in [`crate::responses`].
//!
//! The body is parsed only for what routing needs (`model`, `stream`, `max_tokens`) and the
//! Cocoon extras (`max_coefficient`, `timeout`, `request_guid`, `enable_debug`), which are
//! removed before the request travels on. Everything else reaches the worker unchanged.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cocoon_attest::hex;
use cocoon_attest::sealed::AnswerOpener;
use cocoon_net::config::MAX_SECONDS;
use cocoon_net::metrics::unix_time_f64;
use cocoon_proto::{codes, *};
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::proxies::{Answers, PendingGuard, MAX_QUEUED_PER_STREAM};
use crate::sealing::{E2e, ReceiptCheck, SealedAnswer};
use crate::ClientShared;

/// Extra time the client waits beyond the request timeout, so the proxy's precise timeout error
/// arrives before ours.
const TIMEOUT_SLACK: Duration = Duration::from_secs(2);
/// Proxies one request is sent to at most, when connections are lost before its answer began.
const MAX_PROXY_TRIES: usize = 3;
/// Response headers that describe the hop, not the content, and are recomputed here.
const HOP_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// An OpenAI-style error response.
pub(crate) fn api_error(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: impl Into<String>,
) -> Response {
    let body =
        serde_json::json!({"error": {"message": message.into(), "type": kind, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// Maps a proxy/worker error code to what the app sees.
fn proxy_error(code: i32, message: &str) -> Response {
    let (status, kind, name) = match code {
        codes::BAD_REQUEST => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "bad_request",
        ),
        codes::PAYMENT_REQUIRED => (
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_quota",
            "insufficient_balance",
        ),
        codes::MODEL_NOT_FOUND => (
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
        ),
        codes::NO_WORKER_AVAILABLE => (
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "no_worker_available",
        ),
        codes::TIMEOUT => (StatusCode::GATEWAY_TIMEOUT, "timeout", "timeout"),
        _ => (StatusCode::BAD_GATEWAY, "upstream_error", "upstream_failed"),
    };
    api_error(status, kind, name, message)
}

/// The most characters of a client-supplied text (a `request_guid`, a model name, a header)
/// that reach a log line.
const LOG_TEXT_MAX_CHARS: usize = 64;

/// A client-supplied text as it may appear in logs: control characters, quotes and
/// backslashes escaped (a newline cannot start a forged log line) and at most
/// [`LOG_TEXT_MAX_CHARS`] characters, a cut marked with `…`.
pub(crate) fn log_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(LOG_TEXT_MAX_CHARS * 2));
    for (index, c) in text.chars().enumerate() {
        if index == LOG_TEXT_MAX_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

/// What the connected proxies offer of one model, summed over them.
#[derive(Default)]
struct Offer {
    proxies: usize,
    workers: usize,
    active_requests: i64,
    max_active_requests: i64,
    min_coefficient: Option<i32>,
    max_coefficient: Option<i32>,
}

/// `GET /v1/models`: every model with a live worker on any connected proxy (asked at once),
/// with what it costs and how busy it is under `cocoon`: workers and proxies offering it, their
/// requests running and accepted at once, the coefficient range (1000 = 1.0×), and with
/// `[chain]` the root's price per token at the cheapest coefficient.
pub(crate) async fn models(State(shared): State<Arc<ClientShared>>) -> Response {
    let query = ClientGetWorkerTypesV2 {}.to_bytes();
    let answers =
        futures_util::future::join_all(shared.pool.connected().into_iter().map(|proxy| {
            let query = &query;
            async move { proxy.query(query, Duration::from_secs(5)).await }
        }))
        .await;
    let mut offers: std::collections::BTreeMap<String, Offer> = Default::default();
    for answer in answers {
        let types = match answer.map(|a| ClientWorkerTypesV2::from_bytes(&a)) {
            Ok(Ok(types)) => types,
            Ok(Err(error)) => {
                debug!(%error, "bad worker types answer");
                continue;
            }
            Err(error) => {
                debug!(%error, "worker types query failed");
                continue;
            }
        };
        for t in types.types.into_iter().filter(|t| !t.workers.is_empty()) {
            let offer = offers.entry(t.name).or_default();
            offer.proxies += 1;
            // Counts from a proxy are bounded before they are added up.
            for w in t.workers.iter().take(100_000) {
                offer.workers += 1;
                offer.active_requests += i64::from(w.active_requests.max(0));
                offer.max_active_requests += i64::from(w.max_active_requests.max(0));
                let c = w.coefficient.max(0);
                offer.min_coefficient = Some(offer.min_coefficient.map_or(c, |m| m.min(c)));
                offer.max_coefficient = Some(offer.max_coefficient.map_or(c, |m| m.max(c)));
            }
        }
    }
    let price = shared.pool.price_per_token();
    let data: Vec<Value> = offers
        .into_iter()
        .map(|(id, o)| {
            let mut cocoon = serde_json::json!({
                "proxies": o.proxies,
                "workers": o.workers,
                "active_requests": o.active_requests,
                "max_active_requests": o.max_active_requests,
                "min_coefficient": o.min_coefficient,
                "max_coefficient": o.max_coefficient,
            });
            if let (Some(price), Some(c)) = (price, o.min_coefficient) {
                cocoon["price_per_token_nano"] =
                    serde_json::json!(price.saturating_mul(c as u128) / 1000);
            }
            serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "cocoon", "cocoon": cocoon})
        })
        .collect();
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

/// The Cocoon extras, removed from the body before it travels on.
struct Extras {
    max_coefficient: i32,
    timeout: f64,
    request_guid: Option<String>,
    enable_debug: bool,
}

/// The few body fields the client reads. Deserialising into this skips every other field
/// without building it, so a long prompt costs one scan, not a tree of allocations.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RequestProbe {
    model: Option<Value>,
    max_tokens: Option<Value>,
    max_completion_tokens: Option<Value>,
    max_coefficient: Option<Value>,
    timeout: Option<Value>,
    request_guid: Option<Value>,
    enable_debug: Option<Value>,
    n: Option<Value>,
    stream_options: Option<Value>,
}

/// What a valid `timeout` extra is.
const TIMEOUT_RULE: &str = "'timeout' must be a number of seconds above 0 and at most 86400";

/// Workers a sealed request is tried on before it is given up (or, with `e2e = "preferred"`,
/// sent in the clear).
const MAX_SEALED_TRIES: usize = 3;

/// Body fields that belong to the client, not to the worker.
const EXTRA_FIELDS: [&str; 4] = ["max_coefficient", "timeout", "request_guid", "enable_debug"];

impl RequestProbe {
    fn has_extras(&self) -> bool {
        self.max_coefficient.is_some()
            || self.timeout.is_some()
            || self.request_guid.is_some()
            || self.enable_debug.is_some()
    }

    /// The client's extras, with these defaults for the ones the app left out.
    fn extras(&self, default_max_coefficient: i32, default_timeout: f64) -> Result<Extras, String> {
        let max_coefficient = match &self.max_coefficient {
            None | Some(Value::Null) => default_max_coefficient,
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n >= 0)
                .ok_or("'max_coefficient' must be a non-negative integer (1000 = 1.0×)")?,
            Some(_) => {
                return Err("'max_coefficient' must be a non-negative integer (1000 = 1.0×)".into())
            }
        };
        let timeout = match &self.timeout {
            None | Some(Value::Null) => default_timeout,
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|t| t.is_finite() && *t > 0.0 && *t <= MAX_SECONDS)
                .ok_or(TIMEOUT_RULE)?,
            Some(_) => return Err(TIMEOUT_RULE.into()),
        };
        let request_guid = match &self.request_guid {
            None | Some(Value::Null) => None,
            Some(Value::String(guid)) => Some(guid.clone()),
            Some(_) => return Err("'request_guid' must be a string".into()),
        };
        let enable_debug = match &self.enable_debug {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => return Err("'enable_debug' must be a boolean".into()),
        };
        Ok(Extras {
            max_coefficient,
            timeout,
            request_guid,
            enable_debug,
        })
    }
}

/// The body without the client's extras.
fn strip_extras(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if let Some(object) = value.as_object_mut() {
        for key in EXTRA_FIELDS {
            object.remove(key);
        }
    }
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}

fn timing_header(headers: &mut HeaderMap, name: &'static str, value: f64) {
    if value > 0.0 {
        if let Ok(value) = HeaderValue::from_str(&format!("{value:.6}")) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

fn final_timing_headers(headers: &mut HeaderMap, info: &ClientQueryFinalInfo) {
    if let Some(t) = &info.timings {
        timing_header(headers, "x-cocoon-proxy-start", t.proxy_start_time);
        timing_header(headers, "x-cocoon-proxy-end", t.proxy_end_time);
        timing_header(headers, "x-cocoon-worker-start", t.worker_start_time);
        timing_header(headers, "x-cocoon-worker-end", t.worker_end_time);
    }
}

/// `POST /v1/chat/completions`, `POST /v1/completions` and `POST /v1/embeddings`.
pub(crate) async fn completion(
    State(shared): State<Arc<ClientShared>>,
    uri: Uri,
    body: Body,
) -> Response {
    let client_start = unix_time_f64();
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let response = match read_body(&shared, body).await {
        Ok(body) => run_completion(&shared, uri.path(), body, client_start).await,
        Err(response) => response,
    };
    if !response.status().is_success() {
        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// The request body, within the body timeout and [`crate::MAX_BODY`]; or the error to answer.
pub(crate) async fn read_body(shared: &ClientShared, body: Body) -> Result<Bytes, Response> {
    // The headers are in; the body gets its own limit, so a stalled or trickled body cannot
    // hold the connection (hyper closes it after this answer, the body being unread).
    let body_timeout = Duration::from_secs_f64(shared.config.body_read_timeout_secs);
    let body = cocoon_net::within(body_timeout, axum::body::to_bytes(body, crate::MAX_BODY));
    match body.await {
        Some(Ok(body)) => Ok(body),
        None => Err(api_error(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!(
                "the request body did not arrive within {} s (body_read_timeout_secs)",
                shared.config.body_read_timeout_secs
            ),
        )),
        Some(Err(_)) => Err(api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!(
                "request body is larger than {} MiB (a COCOON packet carries at most 16 MiB)",
                crate::MAX_BODY >> 20
            ),
        )),
    }
}

/// Sends one OpenAI request (`path`, JSON `body`) through a proxy and answers with what the
/// worker's backend answered, streamed as it arrives.
pub(crate) async fn run_completion(
    shared: &Arc<ClientShared>,
    path: &str,
    body: Bytes,
    client_start: f64,
) -> Response {
    let AppBody {
        model,
        max_tokens,
        extras,
        several_choices,
        wants_usage,
        payload,
    } = match read_app_body(
        &body,
        shared.config.default_max_coefficient,
        shared.config.default_timeout_secs,
    ) {
        Ok(app) => app,
        Err(refused) => return refused.response(),
    };
    let http_request = HttpRequest {
        method: "POST".into(),
        url: path.into(),
        http_version: "HTTP/1.1".into(),
        headers: vec![HttpHeader {
            name: "Content-Type".into(),
            value: "application/json".into(),
        }],
        payload,
    };
    let mut query = ClientRunQueryEx {
        model_name: model.clone(),
        query: http_request.to_bytes(),
        max_coefficient: extras.max_coefficient,
        max_tokens,
        timeout: extras.timeout,
        request_id: [0; 32],
        min_config_version: 0,
        enable_debug: extras.enable_debug.then_some(true),
    };
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs_f64(extras.timeout) + TIMEOUT_SLACK;
    // A request whose proxy connection is lost before any answer came is sent again on another
    // proxy: nothing reached the app yet, and a proxy bills only what it relayed.
    let mut tried = Vec::new();
    // A request with several choices is not sealed: the proxy reserves one choice for a sealed
    // request (it cannot read `n`), and the worker refuses more.
    let e2e = match shared.sealer.mode {
        E2e::Required if several_choices => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_value",
                "'n' above 1 cannot be sealed (e2e = \"required\"): ask for one choice",
            )
        }
        E2e::Preferred if several_choices => E2e::Off,
        mode => mode,
    };
    // Workers a sealed attempt failed on before answering: the next attempt seals to another.
    let mut failed_workers: Vec<[u8; 32]> = Vec::new();
    // A proxy that had no worker for the request: its refusal, answered if no other proxy can
    // serve it.
    let mut refused: Option<(i32, String)> = None;
    let (request_id, log_id, answers, guard, first, mut sealed_answer) = loop {
        let Some(proxy) = shared.pool.pick(&tried) else {
            if let Some((code, message)) = refused {
                return proxy_error(code, &message);
            }
            if !tried.is_empty() {
                return api_error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "proxy_unavailable",
                    "proxy connection lost before the answer began, and no other proxy is connected",
                );
            }
            let message = match shared.pool.last_error() {
                Some(error) => {
                    format!("not connected to any proxy; the last attempt failed: {error}")
                }
                None => {
                    "not connected to any proxy yet; check the client's log and its proxies setting"
                        .into()
                }
            };
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "no_proxy",
                message,
            );
        };
        tried.push(proxy.id());
        let last_try = tried.len() >= MAX_PROXY_TRIES;
        let request_id: [u8; 32] = rand::random();
        // The app's own id when it sent one, escaped: it is the app's text and goes into logs.
        let log_id = extras
            .request_guid
            .as_deref()
            .map(log_safe)
            .unwrap_or_else(|| hex(&request_id[..6]));
        query.request_id = request_id;
        // Registered first: the proxy counts as busier at once, while the sealing list is asked.
        let (mut answers, guard) = shared.pool.register(request_id, proxy.id(), log_id.clone());
        // Sealed to a worker this client verified, when the proxy offers one (see `e2e`).
        let sealed = match e2e {
            E2e::Off => None,
            mode => {
                let workers = shared.sealer.workers(&proxy, &model).await;
                match shared.sealer.seal(&workers, &query, path, &failed_workers) {
                    Some(Ok(sealed)) => Some(sealed),
                    Some(Err(error)) => {
                        return api_error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "server_error",
                            "sealing_failed",
                            format!("the request could not be sealed: {error}"),
                        )
                    }
                    None if mode == E2e::Required => {
                        return api_error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "service_unavailable",
                            "no_sealing_worker",
                            format!("e2e = \"required\": no worker for model '{}' that takes sealed requests and passes this client's worker_policy is offered now{}", log_safe(&model), shared.sealer.refusal(proxy.id(), &model)),
                        )
                    }
                    None => None,
                }
            }
        };
        let sealed_to = sealed.as_ref().map(|sealed| sealed.query.worker_key);
        let (packet, sealed_answer) = match sealed {
            Some(sealed) => {
                let (packet, answer) = sealed.into_parts(&proxy);
                (packet, Some(answer))
            }
            None => (query.to_bytes(), None),
        };
        if let Err(error) = proxy.send_packet(&packet) {
            if !last_try {
                info!(request = %log_id, %error, "proxy connection failed; trying another proxy");
                continue;
            }
            return api_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "proxy_unavailable",
                format!("proxy connection failed: {error}"),
            );
        }
        debug!(request = %log_id, model = %log_safe(&model), bytes = http_request.payload.len(), "request sent");
        let sent_at = std::time::Instant::now();
        let first = match tokio::time::timeout_at(deadline, answers.recv()).await {
            Ok(Some(ClientQueryAnswer::Error(_))) | Ok(None) if proxy.is_closed() && !last_try => {
                info!(request = %log_id, "proxy connection lost before the answer began; trying another proxy");
                continue;
            }
            // The proxy cannot move a sealed request to another worker (none other can open
            // it): one that failed before answering is sealed again, to another worker.
            Ok(Some(ClientQueryAnswer::Error(error)))
                if sealed_to.is_some()
                    && matches!(
                        error.error_code,
                        codes::UPSTREAM_FAILED | codes::NO_WORKER_AVAILABLE
                    )
                    && failed_workers.len() < MAX_SEALED_TRIES =>
            {
                let worker = sealed_to.unwrap_or_default();
                info!(request = %log_id, code = error.error_code, "the worker a request was sealed to failed before answering; sealing it to another");
                shared.sealer.forget(proxy.id(), &model, &worker);
                failed_workers.push(worker);
                // The same proxy may serve the next attempt.
                tried.pop();
                continue;
            }
            // A proxy with no worker that can take it now (one just registered, whose workers
            // have not connected yet): another proxy may have one. Nothing was relayed.
            Ok(Some(ClientQueryAnswer::Error(error)))
                if error.error_code == codes::NO_WORKER_AVAILABLE && !last_try =>
            {
                debug!(request = %log_id, proxy = proxy.id(), "no worker available on this proxy; trying another");
                refused = Some((error.error_code, error.error));
                continue;
            }
            Ok(Some(answer)) => {
                // Only answers count: a proxy that fails fast must not look fast.
                if !matches!(answer, ClientQueryAnswer::Error(_)) {
                    shared
                        .pool
                        .observe_latency(proxy.id(), sent_at.elapsed().as_secs_f64());
                }
                answer
            }
            Ok(None) => {
                return api_error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "proxy_unavailable",
                    "proxy connection lost",
                )
            }
            Err(_) => {
                return api_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    "timeout",
                    format!("no answer within {:.1} s", extras.timeout),
                )
            }
        };
        break (request_id, log_id, answers, guard, first, sealed_answer);
    };
    let head = match first {
        ClientQueryAnswer::Answer(head) => head,
        ClientQueryAnswer::Error(error) => {
            info!(request = %log_id, code = error.error_code, "request failed");
            return proxy_error(error.error_code, &error.error);
        }
        ClientQueryAnswer::Part(_) => {
            return api_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "protocol",
                "proxy sent a part before the answer head",
            )
        }
    };
    let mut http_response = match HttpResponse::from_bytes(&head.answer) {
        Ok(response) => response,
        Err(error) => {
            return api_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "protocol",
                format!("malformed http.response from worker: {error}"),
            )
        }
    };
    if let Some(sealed) = sealed_answer.as_mut() {
        // The status and headers came in the clear: the first record vouches for them.
        sealed.opener.expect_head(&http_response);
        match open_sealed(
            &mut sealed.opener,
            &http_response.payload,
            head.final_info.is_some(),
        ) {
            Ok(plain) => http_response.payload = plain,
            Err(message) => {
                warn!(request = %log_id, %message, "a sealed answer did not open");
                return api_error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "sealed_answer",
                    message,
                );
            }
        }
    }
    let status = u16::try_from(http_response.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    let mut is_sse = false;
    for header in &http_response.headers {
        if HOP_HEADERS
            .iter()
            .any(|h| header.name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_str(&header.value),
        ) {
            if name == axum::http::header::CONTENT_TYPE {
                is_sse = header.value.starts_with("text/event-stream");
            }
            headers.append(name, value);
        }
    }
    timing_header(&mut headers, "x-cocoon-client-start", client_start);
    if let Ok(value) = HeaderValue::from_str(&hex(&request_id)) {
        headers.insert(HeaderName::from_static("x-cocoon-request-id"), value);
    }
    headers.insert(
        HeaderName::from_static("x-cocoon-e2e"),
        HeaderValue::from_static(if sealed_answer.is_some() { "on" } else { "off" }),
    );
    if let Some(info) = &head.final_info {
        shared.stats.tokens.add(&info.tokens_used);
        if let Some(sealed) = &sealed_answer {
            let check = sealed.check_receipt(info, &shared.sealer);
            shared.stats.count_receipt(&check, &log_id);
            receipt_headers(&mut headers, &check);
        }
        final_timing_headers(&mut headers, info);
        timing_header(&mut headers, "x-cocoon-client-end", unix_time_f64());
        debug!(request = %log_id, status = status.as_u16(), bytes = http_response.payload.len(), tokens = info.tokens_used.total_tokens_used, "request done");
        return (status, headers, http_response.payload).into_response();
    }
    if is_sse {
        headers.insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    let stream = AnswerStream {
        sealed: sealed_answer,
        receipt_event: is_sse && wants_usage,
        held: Vec::new(),
        first: Some(http_response.payload),
        answers,
        _guard: guard,
        deadline,
        is_sse,
        done: false,
        shared: shared.clone(),
        log_id,
    };
    (
        status,
        headers,
        Body::from_stream(futures_util::stream::unfold(stream, AnswerStream::next)),
    )
        .into_response()
}

/// `X-Cocoon-Receipt` (the worker's signed receipt, base64) and `X-Cocoon-Receipt-Check` (`ok`,
/// `missing`, or why it was refused) of a sealed answer.
fn receipt_headers(headers: &mut HeaderMap, check: &ReceiptCheck) {
    if let Some(Ok(value)) = check.receipt.as_deref().map(HeaderValue::from_str) {
        headers.insert(HeaderName::from_static("x-cocoon-receipt"), value);
    }
    if let Some(Ok(value)) = check.charge.as_deref().map(HeaderValue::from_str) {
        headers.insert(HeaderName::from_static("x-cocoon-charge"), value);
    }
    headers.insert(
        HeaderName::from_static("x-cocoon-receipt-check"),
        HeaderValue::from_static(check.verdict()),
    );
}

/// The fields a sealed stream's receipt adds to its usage chunk (the final event before
/// `[DONE]`, which a stream that asks for usage ends with).
fn receipt_fields(check: &ReceiptCheck) -> [(&'static str, Value); 3] {
    [
        ("cocoon_receipt", check.receipt.clone().into()),
        ("cocoon_charge", check.charge.clone().into()),
        ("cocoon_receipt_check", check.verdict().into()),
    ]
}

/// Where the tail of an SSE buffer starts that must wait for the answer's final info: its
/// trailing usage event and `data: [DONE]`.
fn tail_start(data: &[u8]) -> usize {
    let mut start = data.len();
    loop {
        let Some(end) = data[..start]
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map(|i| i + 1)
        else {
            return 0;
        };
        let begin = data[..end]
            .windows(2)
            .rposition(|w| w == b"\n\n")
            .map_or(0, |i| i + 2);
        let event = &data[begin..end];
        if event == b"data: [DONE]" || is_usage_event(event) {
            start = begin;
        } else {
            return start;
        }
    }
}

/// Whether an SSE event is a chunk that carries usage.
fn is_usage_event(event: &[u8]) -> bool {
    event.starts_with(b"data: {")
        && (event.windows(9).any(|w| w == b"\"usage\":{")
            || event.windows(10).any(|w| w == b"\"usage\": {"))
}

/// Adds the receipt's fields to the usage chunk in `tail` (what [`tail_start`] held back), or,
/// with none there, a chunk of its own (no choices, as the usage chunk has) before `[DONE]`.
fn with_receipt(tail: &[u8], check: &ReceiptCheck) -> Vec<u8> {
    let mut out = Vec::with_capacity(tail.len() + 4096);
    let mut added = false;
    for event in tail.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        if !added && event == b"data: [DONE]" {
            let mut chunk = serde_json::json!({"object": "chat.completion.chunk", "choices": []});
            for (name, value) in receipt_fields(check) {
                chunk[name] = value;
            }
            out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
            added = true;
        }
        let parsed = is_usage_event(event)
            .then(|| serde_json::from_slice::<Value>(&event[6..]).ok())
            .flatten();
        match parsed {
            Some(Value::Object(mut chunk)) if !added => {
                for (name, value) in receipt_fields(check) {
                    chunk.insert(name.into(), value);
                }
                out.extend_from_slice(format!("data: {}\n\n", Value::Object(chunk)).as_bytes());
                added = true;
            }
            _ => {
                out.extend_from_slice(event);
                out.extend_from_slice(b"\n\n");
            }
        }
    }
    out
}

/// Opens a piece of a sealed answer; the one that ends the answer (`last`) must close its
/// records. The error is the message the app gets.
fn open_sealed(opener: &mut AnswerOpener, data: &[u8], last: bool) -> Result<Vec<u8>, String> {
    let mut plain = Vec::with_capacity(data.len());
    opener
        .push(data, &mut plain)
        .and_then(|()| if last { opener.finish() } else { Ok(()) })
        .map_err(|error| format!("the worker's sealed answer did not open: {error}"))?;
    Ok(plain)
}

/// The rest of a streamed answer, part by part as the proxy relays it.
struct AnswerStream {
    /// A sealed answer: every part is opened before it goes to the app, the end must be the
    /// sealed last record, and the worker's receipt is checked against it.
    sealed: Option<SealedAnswer>,
    /// Whether the receipt goes to the app as an SSE event (a stream that asked for usage).
    receipt_event: bool,
    /// The usage event and `data: [DONE]` held back until the final part: the receipt goes
    /// into the usage chunk.
    held: Vec<u8>,
    first: Option<Vec<u8>>,
    answers: Answers,
    _guard: PendingGuard,
    deadline: tokio::time::Instant,
    is_sse: bool,
    done: bool,
    shared: Arc<ClientShared>,
    log_id: String,
}

impl AnswerStream {
    fn error_event(&self, code: i32, message: &str) -> Bytes {
        if !self.is_sse {
            // A JSON body cannot carry an error after it started; the truncated body is the
            // signal, and the log says why.
            return Bytes::new();
        }
        let kind = if code == codes::TIMEOUT {
            "timeout"
        } else {
            "upstream_error"
        };
        let event = serde_json::json!({"error": {"message": message, "type": kind, "code": code}});
        Bytes::from(format!("data: {event}\n\n"))
    }

    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, AnswerStream)> {
        if let Some(first) = self.first.take() {
            if !first.is_empty() {
                return Some((Ok(Bytes::from(first)), self));
            }
        }
        loop {
            if self.done {
                return None;
            }
            let answer = match tokio::time::timeout_at(self.deadline, self.answers.recv()).await {
                Ok(Some(answer)) => answer,
                Ok(None) if self.answers.was_cut() => {
                    self.done = true;
                    let message = format!(
                        "the app read too slowly: more than {} MiB of this answer was waiting, so the client cut it off",
                        MAX_QUEUED_PER_STREAM >> 20
                    );
                    if !self.is_sse {
                        // No in-band error fits a JSON body: abort it, so the app sees a
                        // truncated transfer rather than a short answer.
                        return Some((Err(std::io::Error::other(message)), self));
                    }
                    let event = self.error_event(codes::UPSTREAM_FAILED, &message);
                    return Some((Ok(event), self));
                }
                Ok(None) => {
                    self.done = true;
                    let event = self.error_event(codes::UPSTREAM_FAILED, "proxy connection lost");
                    return Some((Ok(event), self));
                }
                Err(_) => {
                    self.done = true;
                    info!(request = %self.log_id, "stream timed out");
                    let event = self.error_event(codes::TIMEOUT, "request timed out");
                    return Some((Ok(event), self));
                }
            };
            match answer {
                ClientQueryAnswer::Part(part) => {
                    let mut data = part.answer;
                    if let Some(sealed) = self.sealed.as_mut() {
                        match open_sealed(&mut sealed.opener, &data, part.final_info.is_some()) {
                            Ok(plain) => data = plain,
                            Err(message) => {
                                self.done = true;
                                warn!(request = %self.log_id, %message, "a sealed answer did not open");
                                let event = self.error_event(codes::UPSTREAM_FAILED, &message);
                                return Some((Ok(event), self));
                            }
                        }
                    }
                    if let Some(info) = &part.final_info {
                        self.done = true;
                        self.shared.stats.tokens.add(&info.tokens_used);
                        if let Some(sealed) = &self.sealed {
                            let check = sealed.check_receipt(info, &self.shared.sealer);
                            self.shared.stats.count_receipt(&check, &self.log_id);
                            if self.receipt_event {
                                let mut all = std::mem::take(&mut self.held);
                                all.extend_from_slice(&data);
                                let tail = tail_start(&all);
                                let finished = with_receipt(&all[tail..], &check);
                                all.truncate(tail);
                                all.extend_from_slice(&finished);
                                data = all;
                            }
                        }
                        debug!(request = %self.log_id, tokens = info.tokens_used.total_tokens_used, "stream done");
                    } else if self.receipt_event && self.sealed.is_some() {
                        let mut all = std::mem::take(&mut self.held);
                        all.extend_from_slice(&data);
                        let tail = tail_start(&all);
                        self.held = all.split_off(tail);
                        data = all;
                    }
                    if !data.is_empty() {
                        return Some((Ok(Bytes::from(data)), self));
                    }
                }
                ClientQueryAnswer::Error(error) => {
                    self.done = true;
                    self.shared
                        .stats
                        .failed_streams
                        .fetch_add(1, Ordering::Relaxed);
                    info!(request = %self.log_id, code = error.error_code, "stream ended with an error");
                    let event = self.error_event(error.error_code, &error.error);
                    return Some((Ok(event), self));
                }
                ClientQueryAnswer::Answer(_) => {
                    debug!(request = %self.log_id, "ignoring a second answer head");
                }
            }
        }
    }
}

/// Anything else: a clear 404 instead of an empty one.
pub(crate) async fn not_found(uri: Uri) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown_url",
        format!("unknown path {}; this API serves /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, /stats and /metrics", uri.path()),
    )
}

/// What the API reads from an app's chat or completions body before it picks a proxy.
pub(crate) struct AppBody {
    model: String,
    /// `max_completion_tokens` or `max_tokens`, capped to the wire's `int32`; 0 when absent.
    max_tokens: i32,
    extras: Extras,
    /// `n` above 1: several choices, which are never sealed.
    several_choices: bool,
    /// `stream_options.include_usage`: the app reads the usage chunk, where the receipt goes.
    wants_usage: bool,
    /// The bytes to forward: the app's own, less the client's extras when it sent any.
    pub(crate) payload: Vec<u8>,
}

/// Why an app's body is refused, each with its API error.
pub(crate) enum AppBodyRefused {
    NotAnObject,
    Json(serde_json::Error),
    Model,
    Extra(String),
    Strip(String),
}

impl AppBodyRefused {
    pub(crate) fn response(self) -> Response {
        let code = match &self {
            AppBodyRefused::NotAnObject | AppBodyRefused::Json(_) => "invalid_json",
            AppBodyRefused::Model => "missing_model",
            AppBodyRefused::Extra(_) => "invalid_extra",
            AppBodyRefused::Strip(error) => {
                return api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal",
                    error.clone(),
                )
            }
        };
        let message = match &self {
            AppBodyRefused::Json(error) if error.is_data() => {
                format!("invalid request body: {error}")
            }
            AppBodyRefused::Json(error) => format!("request body is not valid JSON: {error}"),
            _ => self.message(),
        };
        api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    /// The refusal's message, as the app reads it in the error body.
    pub(crate) fn message(&self) -> String {
        match self {
            AppBodyRefused::NotAnObject => "request body must be a JSON object".into(),
            AppBodyRefused::Json(error) => error.to_string(),
            AppBodyRefused::Model => "'model' must be a non-empty string".into(),
            AppBodyRefused::Extra(message) | AppBodyRefused::Strip(message) => message.clone(),
        }
    }
}

/// Reads an app's chat or completions body: the probe of the fields the client looks at, its
/// extras (with these defaults), and the body to forward. The request path and the
/// `json_request` fuzz target both go through here.
pub(crate) fn read_app_body(
    body: &[u8],
    default_max_coefficient: i32,
    default_timeout: f64,
) -> Result<AppBody, AppBodyRefused> {
    // serde would read a JSON array into the probe struct field by field; refuse it first.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AppBodyRefused::NotAnObject);
    }
    let probe: RequestProbe = serde_json::from_slice(body).map_err(AppBodyRefused::Json)?;
    let model = match &probe.model {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        _ => return Err(AppBodyRefused::Model),
    };
    let max_tokens = [&probe.max_completion_tokens, &probe.max_tokens]
        .iter()
        .find_map(|v| v.as_ref().and_then(Value::as_u64))
        .map(|n| n.min(i32::MAX as u64) as i32)
        .unwrap_or(0);
    let extras = probe
        .extras(default_max_coefficient, default_timeout)
        .map_err(AppBodyRefused::Extra)?;
    let several_choices = probe
        .n
        .as_ref()
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1);
    let wants_usage = probe
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Forward the app's bytes untouched unless extras had to be removed.
    let payload = if probe.has_extras() {
        strip_extras(body).map_err(AppBodyRefused::Strip)?
    } else {
        body.to_vec()
    };
    Ok(AppBody {
        model,
        max_tokens,
        extras,
        several_choices,
        wants_usage,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> ReceiptCheck {
        ReceiptCheck {
            outcome: Ok(()),
            receipt: Some("UkVD".into()),
            charge: Some("Q0hH".into()),
        }
    }

    #[test]
    fn the_usage_chunk_and_done_wait_for_the_receipt_which_joins_the_usage_chunk() {
        let token = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n";
        let usage = b"data: {\"choices\":[],\"usage\":{\"total_tokens\":9}}\n\n";
        let done = b"data: [DONE]\n\n";
        let all = [&token[..], usage, done].concat();
        assert_eq!(tail_start(&all), token.len(), "usage and [DONE] wait");
        assert_eq!(tail_start(token), token.len(), "a token chunk goes at once");
        assert_eq!(tail_start(usage), 0);
        let finished = with_receipt(&all[token.len()..], &check());
        let text = String::from_utf8(finished).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 2, "{text}");
        let chunk: Value = serde_json::from_str(&events[0][6..]).unwrap();
        assert_eq!(chunk["usage"]["total_tokens"], 9);
        assert_eq!(chunk["cocoon_receipt"], "UkVD");
        assert_eq!(chunk["cocoon_charge"], "Q0hH");
        assert_eq!(chunk["cocoon_receipt_check"], "ok");
        assert_eq!(events[1], "data: [DONE]");
        // No usage chunk: a chunk of its own, before [DONE].
        let text = String::from_utf8(with_receipt(done, &check())).unwrap();
        assert!(
            text.starts_with("data: {") && text.ends_with("data: [DONE]\n\n"),
            "{text}"
        );
        assert!(text.contains("\"cocoon_receipt_check\":\"ok\""), "{text}");
    }

    #[test]
    fn client_text_in_logs_cannot_break_lines_and_is_bounded() {
        let forged = "abc\n2025-01-01T00:00:00Z  INFO cocoon_client: forged\r\u{1b}[31m\"";
        let safe = log_safe(forged);
        assert!(!safe.chars().any(char::is_control), "{safe}");
        assert_eq!(
            safe,
            "abc\\n2025-01-01T00:00:00Z  INFO cocoon_client: forged\\r\\u{1b}[31m\\\""
        );
        assert_eq!(log_safe("req-42"), "req-42");
        let long = "x".repeat(1000);
        assert_eq!(log_safe(&long), format!("{}…", "x".repeat(64)));
        assert_eq!(log_safe(&"é".repeat(64)), "é".repeat(64));
    }
}
