//! Running one request: decode the `http.request`, check it against the allow-list, forward it
//! to the backend, and stream the answer back to the proxy part by part as it arrives, with
//! exact usage in the final part.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_net::metrics::unix_time_f64;
use cocoon_net::ConnectionHandle;
use cocoon_proto::{codes, *};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::{debug, info, warn};

use cocoon_attest::receipt::{ReceiptBody, ReceiptTokens};
use cocoon_attest::sealed::AnswerSealer;

use crate::sealing::ReceiptContext;

use crate::usage::{tokens_from_json_body, Pricing, SseUsageTracker};
use crate::validate::{validate_request, Endpoint};
use crate::WorkerShared;

/// Largest non-streamed answer we relay: it travels as one packet, which carries at most
/// 16 MiB with its framing. A larger one fails at once with a clear error (stream it instead)
/// rather than being refused by the link and lost.
const MAX_JSON_ANSWER: usize = 15 << 20;
/// Used when a proxy sends a nonsensical timeout.
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(120);

/// A request as the proxy sent it.
pub(crate) enum Job {
    /// `proxy.runQueryEx`.
    Plain(ProxyRunQueryEx),
    /// `proxy.runSealedQuery`: opened in the request's task.
    Sealed(ProxyRunSealedQuery),
}

impl Job {
    /// The id the worker answers under.
    pub fn request_id(&self) -> [u8; 32] {
        match self {
            Job::Plain(query) => query.request_id,
            Job::Sealed(query) => query.request_id,
        }
    }
}

struct Reply<'a> {
    link: &'a ConnectionHandle,
    request_id: [u8; 32],
    start_time: f64,
    /// This worker's price coefficient (1000 = 1.0×) and the root's multipliers: the usage
    /// reported to the proxy is adjusted by them, as the protocol bills.
    coefficient: u32,
    multipliers: Multipliers,
    /// With `[chain]`: the root's prices, for the cost the worker adds to `usage` (as the
    /// reference's worker does).
    pricing: Option<Pricing>,
    /// A sealed request's answer: every payload byte goes out as sealed records, the last one
    /// with the final part.
    sealer: Option<std::sync::Mutex<AnswerSealer>>,
    /// A sealed request's receipt inputs: a whole answer ends with the signed receipt.
    receipt: Option<ReceiptContext>,
    /// The model the request ran on, for its receipt.
    model: &'a str,
}

impl Reply<'_> {
    fn final_info(&self, tokens: TokensUsed) -> ProxyQueryFinalInfo {
        let tokens_used = tokens.adjusted(self.coefficient, &self.multipliers);
        ProxyQueryFinalInfo {
            tokens_used,
            worker_debug: None,
            timings: Some(WorkerTimings {
                worker_start_time: self.start_time,
                worker_end_time: unix_time_f64(),
            }),
            receipt: self.receipt(&tokens_used),
        }
    }

    /// The signed receipt of a sealed answer whose last record went out; none otherwise.
    fn receipt(&self, tokens: &TokensUsed) -> Option<Vec<u8>> {
        let context = self.receipt.as_ref()?;
        let sealer = self
            .sealer
            .as_ref()?
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !sealer.is_done() {
            return None;
        }
        let receipt = context.signer.sign(ReceiptBody {
            worker_key: context.signer.public_key(),
            client_request_id: context.client_request_id,
            request_hash: context.request_hash,
            answer_hash: sealer.answer_hash(),
            model: self.model.to_string(),
            tokens: ReceiptTokens::from_categories(
                tokens.categories(),
                u64::try_from(tokens.total_tokens_used).unwrap_or(0),
            ),
            coefficient: self.coefficient,
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        Some(receipt.to_bytes())
    }

    fn send(&self, message: ProxyQueryAnswer) -> Result<(), ()> {
        match self.link.send_packet(&message.to_bytes()) {
            Ok(()) => Ok(()),
            Err(error @ cocoon_net::NetError::Backpressure { .. }) => {
                // The link is up but the proxy is not taking our output: end this request
                // alone with a small error, so the proxy does not wait for the rest.
                warn!(%error, "the proxy does not take this answer; ending the request");
                let end = ProxyQueryAnswer::Error(ProxyQueryAnswerErrorEx {
                    request_id: self.request_id,
                    error_code: codes::UPSTREAM_FAILED,
                    error: format!("the worker could not queue the answer: {error}"),
                    final_info: Some(self.final_info(TokensUsed::default())),
                });
                let _ = self.link.send_packet(&end.to_bytes());
                Err(())
            }
            Err(error) => {
                debug!(%error, "proxy link closed; abandoning request");
                Err(())
            }
        }
    }

    /// `data` as it travels: itself, or sealed records (the last one when `last`).
    fn seal(&self, data: Vec<u8>, last: bool) -> Vec<u8> {
        match &self.sealer {
            None => data,
            Some(sealer) => {
                let mut out = Vec::with_capacity(data.len() + 64);
                sealer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .seal(&data, last, &mut out);
                out
            }
        }
    }

    fn head(&self, mut response: HttpResponse, final_tokens: Option<TokensUsed>) -> Result<(), ()> {
        let payload = std::mem::take(&mut response.payload);
        response.payload = self.seal_head(&response, payload, final_tokens.is_some());
        self.send(ProxyQueryAnswer::Answer(ProxyQueryAnswerEx {
            request_id: self.request_id,
            answer: response.to_bytes(),
            final_info: final_tokens.map(|t| self.final_info(t)),
        }))
    }

    /// A head's payload as it travels: itself, or the head record (vouching for the status and
    /// headers the proxy relays in the clear) and the payload's sealed records.
    fn seal_head(&self, head: &HttpResponse, payload: Vec<u8>, last: bool) -> Vec<u8> {
        let Some(sealer) = &self.sealer else {
            return payload;
        };
        let mut sealer = sealer.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(payload.len() + 320);
        sealer.seal_head(head, &mut out);
        sealer.seal(&payload, last, &mut out);
        out
    }

    fn part(&self, data: Vec<u8>, final_tokens: Option<TokensUsed>) -> Result<(), ()> {
        self.send(ProxyQueryAnswer::Part(ProxyQueryAnswerPartEx {
            request_id: self.request_id,
            answer: self.seal(data, final_tokens.is_some()),
            final_info: final_tokens.map(|t| self.final_info(t)),
        }))
    }

    fn error(&self, code: i32, message: String, tokens: TokensUsed) -> Result<(), ()> {
        self.send(ProxyQueryAnswer::Error(ProxyQueryAnswerErrorEx {
            request_id: self.request_id,
            error_code: code,
            error: message,
            final_info: Some(self.final_info(tokens)),
        }))
    }

    /// A complete HTTP answer made by the worker itself (validation errors).
    fn http_error(&self, status: u16, kind: &str, message: &str) -> Result<(), ()> {
        let body = serde_json::json!({"error": {"message": message, "type": kind, "code": status}});
        self.head(
            HttpResponse {
                http_version: "HTTP/1.1".into(),
                status_code: status as i32,
                reason: http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
                    .into(),
                headers: vec![HttpHeader {
                    name: "Content-Type".into(),
                    value: "application/json".into(),
                }],
                payload: body.to_string().into_bytes(),
            },
            Some(TokensUsed::default()),
        )
    }
}

/// The query of a sealed request that did not open: only its id and timing are used, to
/// answer the refusal.
fn placeholder(sealed: &ProxyRunSealedQuery) -> ProxyRunQueryEx {
    ProxyRunQueryEx {
        query: Vec::new(),
        signed_payment: SignedPayment::Empty,
        coefficient: sealed.coefficient,
        timeout: sealed.timeout,
        request_id: sealed.request_id,
        enable_debug: None,
    }
}

pub(crate) fn short_id(id: &[u8; 32]) -> String {
    id[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one `proxy.runQueryEx` to completion.
pub(crate) async fn run_request(shared: Arc<WorkerShared>, link: ConnectionHandle, job: Job) {
    let started = Instant::now();
    let coefficient = u32::try_from(shared.coefficient.load(Ordering::Relaxed)).unwrap_or(0);
    let (query, sealer, receipt, refusal) = match job {
        Job::Plain(query) => (query, None, None, None),
        Job::Sealed(sealed) => match shared
            .sealing
            .as_ref()
            .map(|s| s.open(&sealed, &shared.config.model))
        {
            Some(Ok((query, sealer, receipt))) => (
                query,
                Some(sealer.with_padding(shared.config.answer_padding)),
                receipt,
                None,
            ),
            Some(Err(message)) => (placeholder(&sealed), None, None, Some(message)),
            None => (
                placeholder(&sealed),
                None,
                None,
                Some("this worker does not take sealed requests".to_string()),
            ),
        },
    };
    let reply = Reply {
        link: &link,
        request_id: query.request_id,
        start_time: unix_time_f64(),
        coefficient,
        multipliers: shared
            .chain
            .as_ref()
            .map_or(Multipliers::ONE, |chain| chain.multipliers()),
        pricing: match (&shared.chain, shared.config.root_prices) {
            (Some(chain), _) => Some(chain.pricing(coefficient)),
            (None, Some((price_per_token, multipliers))) => Some(Pricing {
                coefficient,
                multipliers,
                price_per_token,
            }),
            (None, None) => None,
        },
        sealer: sealer.map(std::sync::Mutex::new),
        receipt,
        model: &shared.config.model,
    };
    let id = short_id(&query.request_id);
    let stats = &shared.stats;
    let outcome = match refusal {
        None => serve(&shared, &reply, &query, &id).await,
        Some(message) => {
            info!(request = %id, %message, "sealed request refused");
            let _ = reply.error(codes::BAD_REQUEST, message, TokensUsed::default());
            Err(())
        }
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(tokens) => {
            stats.succeeded.fetch_add(1, Ordering::Relaxed);
            stats.tokens.add(&tokens);
            debug!(request = %id, tokens = tokens.total_tokens_used, elapsed_ms, "request served");
        }
        Err(()) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            debug!(request = %id, elapsed_ms, "request failed");
        }
    }
}

async fn serve(
    shared: &WorkerShared,
    reply: &Reply<'_>,
    query: &ProxyRunQueryEx,
    id: &str,
) -> Result<TokensUsed, ()> {
    let request = match HttpRequest::from_bytes(&query.query) {
        Ok(request) => request,
        Err(error) => {
            reply.error(
                codes::BAD_REQUEST,
                format!("invalid http.request: {error}"),
                TokensUsed::default(),
            )?;
            return Err(());
        }
    };
    let Some(endpoint) = Endpoint::from_path(&request.url) else {
        reply.http_error(
            404,
            "invalid_request_error",
            &format!(
                "unsupported path '{}': workers serve /v1/chat/completions, /v1/completions and /v1/embeddings",
                request.url
            ),
        )?;
        return Err(());
    };
    if !request.method.eq_ignore_ascii_case("POST") {
        reply.http_error(
            405,
            "invalid_request_error",
            &format!("{} needs POST", endpoint.path()),
        )?;
        return Err(());
    }
    let validated = match validate_request(endpoint, &request.payload) {
        Ok(validated) => validated,
        Err(message) => {
            info!(request = %id, "rejected by the allow-list");
            reply.http_error(400, "invalid_request_error", &message)?;
            return Err(());
        }
    };
    if validated.model != shared.config.model {
        reply.http_error(
            400,
            "invalid_request_error",
            &format!(
                "this worker serves '{}', not '{}'",
                shared.config.model, validated.model
            ),
        )?;
        return Err(());
    }
    let timeout = if query.timeout.is_finite() && query.timeout > 0.0 {
        Duration::from_secs_f64(query.timeout.min(3600.0))
    } else {
        FALLBACK_TIMEOUT
    };
    let deadline = tokio::time::Instant::now() + timeout;
    debug!(request = %id, endpoint = endpoint.path(), bytes = validated.body.len(), stream = validated.stream, "forwarding to backend");
    let response = match shared
        .backend
        .post(endpoint.path(), validated.body, timeout)
        .await
    {
        Ok(response) => response,
        Err(error) => {
            let code = match error {
                crate::BackendError::Timeout => codes::TIMEOUT,
                crate::BackendError::Unreachable(_) => codes::UPSTREAM_FAILED,
            };
            reply.error(code, error.to_string(), TokensUsed::default())?;
            return Err(());
        }
    };
    let status = response.status();
    let is_sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut head = HttpResponse {
        http_version: "HTTP/1.1".into(),
        status_code: status.as_u16() as i32,
        reason: status.canonical_reason().unwrap_or("").into(),
        headers: response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                vec![HttpHeader {
                    name: "Content-Type".into(),
                    value: v.to_string(),
                }]
            })
            .unwrap_or_default(),
        payload: Vec::new(),
    };
    let mut body = response.into_body();
    if !is_sse {
        let collected = tokio::time::timeout_at(deadline, collect_limited(&mut body)).await;
        return match collected {
            Ok(Ok(bytes)) => {
                let tokens = tokens_from_json_body(&bytes).unwrap_or_default();
                if status.is_success() && tokens.total_tokens_used == 0 {
                    info!(request = %id, "backend answer carries no usage; nothing to bill");
                }
                head.payload = match reply.pricing.filter(|_| status.is_success()) {
                    Some(pricing) => pricing.annotate_body(&bytes).unwrap_or(bytes),
                    None => bytes,
                };
                reply.head(head, Some(tokens))?;
                Ok(tokens)
            }
            Ok(Err(message)) => {
                reply.error(codes::UPSTREAM_FAILED, message, TokensUsed::default())?;
                Err(())
            }
            Err(_) => {
                reply.error(
                    codes::TIMEOUT,
                    "backend did not finish in time".into(),
                    TokensUsed::default(),
                )?;
                Err(())
            }
        };
    }
    stream_sse(
        reply,
        head,
        body,
        !validated.client_wants_usage,
        validated.prompt_bytes,
        deadline,
        id,
    )
    .await
}

async fn collect_limited(body: &mut Incoming) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("backend answer broke: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_JSON_ANSWER {
                return Err(format!(
                    "the backend's answer is larger than {} MiB, the most a non-streamed answer may be: ask for it with \"stream\": true",
                    MAX_JSON_ANSWER >> 20
                ));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Next data chunk: Ok(Some) data, Ok(None) end of body, Err broken.
async fn next_data(body: &mut Incoming) -> Result<Option<Bytes>, String> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(error)) => return Err(format!("backend stream broke: {error}")),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Whether the body is over without waiting: lets the last chunk travel as the final part
/// instead of being followed by an empty one.
fn ended_now(body: &mut Incoming) -> Option<Result<Option<Bytes>, String>> {
    use hyper::body::Body;
    if body.is_end_stream() {
        return Some(Ok(None));
    }
    next_data(body).now_or_never()
}

async fn stream_sse(
    reply: &Reply<'_>,
    head: HttpResponse,
    mut body: Incoming,
    strip_usage: bool,
    prompt_bytes: usize,
    deadline: tokio::time::Instant,
    id: &str,
) -> Result<TokensUsed, ()> {
    let mut tracker = SseUsageTracker::new(strip_usage, reply.pricing);
    let mut out = Vec::new();
    // The head travels with the first complete event, so the app's first byte is content.
    let mut head = Some(head);
    let send =
        |head: &mut Option<HttpResponse>, data: Vec<u8>, tokens: Option<TokensUsed>| match head
            .take()
        {
            Some(mut response) => {
                response.payload = data;
                reply.head(response, tokens)
            }
            None => reply.part(data, tokens),
        };
    // A chunk already read but not yet handled (read ahead to detect the end).
    let mut next: Option<Result<Option<Bytes>, String>> = None;
    loop {
        let chunk = match next.take() {
            Some(chunk) => chunk,
            None => match tokio::time::timeout_at(deadline, next_data(&mut body)).await {
                Ok(chunk) => chunk,
                Err(_) => {
                    let tokens = tracker.usage().unwrap_or_default();
                    reply.error(
                        codes::TIMEOUT,
                        "backend did not finish in time".into(),
                        tokens,
                    )?;
                    return Err(());
                }
            },
        };
        let finished = match chunk {
            Ok(Some(data)) => {
                tracker.push(&data, &mut out);
                next = ended_now(&mut body);
                matches!(next, Some(Ok(None)))
            }
            Ok(None) => true,
            Err(message) => {
                info!(request = %id, %message, "backend stream failed");
                let tokens = tracker.usage().unwrap_or_default();
                reply.error(codes::UPSTREAM_FAILED, message, tokens)?;
                return Err(());
            }
        };
        if finished {
            tracker.finish(&mut out);
            let tokens = match tracker.usage() {
                Some(tokens) => tokens,
                None => {
                    // Some servers (llama-cpp-python's) ignore `include_usage`. Billing nothing
                    // would serve for free; the estimate counts the text events exactly and
                    // guesses the prompt from its size.
                    let estimate = tracker.estimate(prompt_bytes);
                    warn!(
                        request = %id,
                        events = tracker.events(),
                        completion_tokens = estimate.completion_tokens_used,
                        prompt_tokens = estimate.prompt_tokens_used,
                        "the backend's stream carried no usage; billing an estimate (use a backend that reports usage: vLLM, SGLang, llama.cpp's llama-server)"
                    );
                    estimate
                }
            };
            send(&mut head, std::mem::take(&mut out), Some(tokens))?;
            return Ok(tokens);
        }
        if !out.is_empty() {
            send(&mut head, std::mem::take(&mut out), None)?;
        }
    }
}
