//! A deterministic OpenAI-compatible HTTP backend that stands in for vLLM in tests and `cocoon devnet`.
//!
//! Every answer is a pure function of the request body and [`MockBackendConfig`], so tests can
//! compute the expected text and token counts with [`mock_prompt_tokens`],
//! [`mock_completion_tokens`], [`mock_token_text`] and [`mock_completion_text`]:
//!
//! - prompt tokens: whitespace-separated words in every string `content` (or `text` part) of
//!   `messages`, plus those in `prompt` (a string or an array of strings); at least 1;
//! - completion tokens: `min(chunk_count, max_completion_tokens or max_tokens)`;
//! - token `i`: the first `chunk_size` bytes of `"t{i} "` repeated, e.g. `"t3 t3 "`.
//!
//! The server is plain hyper over HTTP/1.1 with keep-alive. Request handling touches only
//! atomics, so it can sit under load without becoming the bottleneck it is meant to imitate.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use body::{MockBody, SseStream};
use wire::{
    to_json, Answer, AssistantMessage, ChatChoice, Endpoint, Envelope, ErrorBody, ErrorDetail,
    ModelEntry, ModelList, TextChoice,
};

mod body;
mod wire;

/// The one model a default config serves, also assumed when a request names no model.
pub const DEFAULT_MOCK_MODEL: &str = "mock-model";
/// Eight tokens are enough to see a stream as a stream while keeping tests fast.
pub const DEFAULT_CHUNK_COUNT: usize = 8;
/// Six bytes hold `"t0 t0 "`, so every default token is two readable words.
pub const DEFAULT_CHUNK_SIZE: usize = 6;

/// Request bodies beyond this are refused: a test never needs more, and an unbounded read would
/// let a misbehaving client exhaust memory.
const MAX_REQUEST_BODY_BYTES: usize = 32 * 1024 * 1024;
/// How long [`MockBackend::stop`] lets in-flight responses finish before cutting them off. Long
/// enough for a default stream, short enough that a stuck client cannot hang a test's teardown.
const STOP_GRACE_PERIOD: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (typically out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// What the mock serves and how fast.
#[derive(Clone, Debug)]
pub struct MockBackendConfig {
    /// Model ids listed by `GET /v1/models` and accepted by the completion endpoints.
    pub models: Vec<String>,
    /// Completion tokens in an answer that `max_tokens` does not cut short.
    pub chunk_count: usize,
    /// Bytes of text in each completion token (one token per SSE chunk).
    pub chunk_size: usize,
    /// Pause between consecutive token chunks of a stream.
    pub chunk_delay: Duration,
    /// Pause before a completion response (headers included) is sent; `/v1/models` and
    /// `/health` stay fast, as a real server's health probe does.
    pub headers_delay: Duration,
}

impl Default for MockBackendConfig {
    fn default() -> Self {
        MockBackendConfig {
            models: vec![DEFAULT_MOCK_MODEL.to_owned()],
            chunk_count: DEFAULT_CHUNK_COUNT,
            chunk_size: DEFAULT_CHUNK_SIZE,
            chunk_delay: Duration::ZERO,
            headers_delay: Duration::ZERO,
        }
    }
}

/// A running mock backend. Dropping it stops the server and every connection task.
pub struct MockBackend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    /// `None` only after [`MockBackend::stop`] has taken it.
    server: Option<JoinHandle<()>>,
}

/// State read by every request; atomics only, so requests never wait on each other (except on
/// [`MockBackend::hold_answers`], which is what it is for).
#[derive(Debug)]
struct Shared {
    config: MockBackendConfig,
    down: AtomicBool,
    /// `true` while completions are held (see [`MockBackend::hold_answers`]).
    held: watch::Sender<bool>,
    requests_served: AtomicU64,
    next_response_id: AtomicU64,
}

impl MockBackend {
    /// Starts serving on an ephemeral port of 127.0.0.1.
    pub async fn start(config: MockBackendConfig) -> std::io::Result<MockBackend> {
        MockBackend::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts serving on `addr`; port 0 picks a free one.
    pub async fn start_on(
        config: MockBackendConfig,
        addr: SocketAddr,
    ) -> std::io::Result<MockBackend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            down: AtomicBool::new(false),
            held: watch::Sender::new(false),
            requests_served: AtomicU64::new(0),
            next_response_id: AtomicU64::new(1),
        });
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let server = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_receiver));
        tracing::debug!(%addr, "mock backend listening");
        Ok(MockBackend {
            addr,
            shared,
            shutdown,
            server: Some(server),
        })
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// While down, every endpoint answers 503 with an OpenAI-style error, as a crashed or
    /// restarting vLLM behind a healthy port would.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// While held, completion requests wait before their answer (headers included) until
    /// released; `/v1/models` and `/health` stay prompt. Tests use it to keep a request running
    /// for exactly as long as they need (until a worker is killed, until every request is
    /// placed) instead of a delay that a slow machine may outlast.
    pub fn hold_answers(&self, hold: bool) {
        self.shared.held.send_replace(hold);
    }

    /// Completion requests (chat or text) answered in full: a stream counts once its
    /// `[DONE]` has been produced, so a stream abandoned by its client is not counted.
    pub fn requests_served(&self) -> u64 {
        self.shared.requests_served.load(Ordering::SeqCst)
    }

    /// Stops accepting, lets in-flight responses finish (up to a grace period), closes idle
    /// keep-alive connections and waits for every connection task to end.
    pub async fn stop(mut self) {
        // Ignoring the error is right: it only means the accept loop already ended.
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            if let Err(error) = server.await {
                tracing::warn!(%error, "mock backend server task failed");
            }
        }
    }
}

impl Drop for MockBackend {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task, so a
        // dropped backend leaves nothing running.
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl std::fmt::Debug for MockBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MockBackend")
            .field("addr", &self.addr)
            .field("config", &self.shared.config)
            .field("down", &self.shared.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Prompt tokens the mock reports for `body`: whitespace-separated words in all string
/// `content` fields of `messages` (including `{"type":"text","text":..}` parts) and in `prompt`
/// (a string, or an array of strings, where a bare integer counts as one token id); at least 1.
pub fn mock_prompt_tokens(body: &Value) -> u64 {
    let mut words: u64 = 0;
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for message in messages {
            match message.get("content") {
                Some(Value::String(text)) => words += count_words(text),
                Some(Value::Array(parts)) => {
                    for part in parts {
                        let is_text = part.get("type").and_then(Value::as_str) == Some("text");
                        if let (true, Some(text)) =
                            (is_text, part.get("text").and_then(Value::as_str))
                        {
                            words += count_words(text);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    match body.get("prompt") {
        Some(Value::String(text)) => words += count_words(text),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(text) => words += count_words(text),
                    Value::Number(_) => words += 1,
                    Value::Array(token_ids) => words += token_ids.len() as u64,
                    _ => {}
                }
            }
        }
        _ => {}
    }
    words.max(1)
}

/// Completion tokens the mock generates for `body`: `chunk_count`, cut to
/// `max_completion_tokens` (or, when that is absent, `max_tokens`) if it is a non-negative integer.
pub fn mock_completion_tokens(config: &MockBackendConfig, body: &Value) -> u64 {
    let chunk_count = config.chunk_count as u64;
    match requested_max_tokens(body) {
        Some(limit) => chunk_count.min(limit),
        None => chunk_count,
    }
}

/// Text of completion token `index`: the first `chunk_size` bytes of `"t{index} "` repeated.
pub fn mock_token_text(config: &MockBackendConfig, index: usize) -> String {
    let unit = format!("t{index} ");
    // The unit is ASCII, so slicing at any byte offset stays on a character boundary.
    let repeats = config.chunk_size / unit.len() + 1;
    let mut text = unit.repeat(repeats);
    text.truncate(config.chunk_size);
    text
}

/// The whole answer of `tokens` completion tokens: tokens `0..tokens` concatenated.
pub fn mock_completion_text(config: &MockBackendConfig, tokens: u64) -> String {
    let capacity = config.chunk_size.saturating_mul(tokens as usize);
    let mut text = String::with_capacity(capacity.min(1 << 20));
    for index in 0..tokens {
        text.push_str(&mock_token_text(config, index as usize));
    }
    text
}

fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The client's token limit, preferring `max_completion_tokens` as vLLM does.
fn requested_max_tokens(body: &Value) -> Option<u64> {
    body.get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64))
}

/// Resolves once a stop is requested, or when the backend handle is gone (then nobody can ask).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; dropping it here keeps callers' futures `Send`.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, shared.clone(), shutdown.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "mock backend accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            // Reaping finished connections keeps the set from growing under load.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(STOP_GRACE_PERIOD, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("mock backend connections outlived the grace period; aborting them");
    }
    connections.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    // SSE chunks are small; Nagle's algorithm would hold them back and blur chunk timing.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
    }
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle_request(&shared, request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The timer makes hyper's default header-read timeout effective, so a silent client cannot
    // hold a connection task forever.
    builder.timer(TokioTimer::new()).keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "mock backend connection ended with an error");
            }
        }
        _ = stop_requested(&mut shutdown) => {
            // Finish the response in flight, if any, then close instead of keeping alive.
            connection.as_mut().graceful_shutdown();
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "mock backend connection ended with an error");
            }
        }
    }
}

async fn handle_request(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<MockBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // The body is read before anything else so that even error answers leave the connection
    // clean for keep-alive.
    let body = match Limited::new(request.into_body(), MAX_REQUEST_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                "request body is too large",
            );
        }
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unreadable_body",
                &format!("could not read the request body: {error}"),
            );
        }
    };
    let config = &shared.config;
    if shared.down.load(Ordering::SeqCst) {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "backend_down",
            "the mock backend is down",
        );
    }
    let endpoint = match path.as_str() {
        "/v1/models" => {
            return match method {
                Method::GET => models_response(config),
                _ => method_not_allowed(&method, &path),
            };
        }
        // vLLM answers its health probe with an empty 200; workers may probe it.
        "/health" => {
            return match method {
                Method::GET => full_response(StatusCode::OK, None, Bytes::new()),
                _ => method_not_allowed(&method, &path),
            };
        }
        "/v1/chat/completions" => Endpoint::Chat,
        "/v1/completions" => Endpoint::Text,
        _ => {
            return error_response(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "not_found",
                &format!("no route for {path}"),
            );
        }
    };
    if method != Method::POST {
        return method_not_allowed(&method, &path);
    }
    // Only completions are slow, like a real model server whose health probe stays fast.
    if !config.headers_delay.is_zero() {
        tokio::time::sleep(config.headers_delay).await;
    }
    // The sender lives in `shared`, so this only returns once released.
    let _ = shared.held.subscribe().wait_for(|held| !held).await;
    completion_response(shared, endpoint, &body)
}

fn completion_response(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    body: &[u8],
) -> Response<MockBody> {
    let config = &shared.config;
    let request: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
                "the request body must be a JSON object",
            );
        }
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
                &format!("the request body is not valid JSON: {error}"),
            );
        }
    };
    // A missing model means "the served one", as with a single-model vLLM.
    let model = match request.get("model") {
        None | Some(Value::Null) => config.models.first().cloned(),
        Some(Value::String(name)) => Some(name.clone()),
        Some(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_model",
                "`model` must be a string",
            );
        }
    };
    let model = match model {
        Some(name) if config.models.contains(&name) => name,
        other => {
            let name = other.unwrap_or_default();
            return error_response(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                &format!("The model `{name}` does not exist."),
            );
        }
    };

    let answer = Answer {
        endpoint,
        id: format!(
            "{}-mock-{}",
            match endpoint {
                Endpoint::Chat => "chatcmpl",
                Endpoint::Text => "cmpl",
            },
            shared.next_response_id.fetch_add(1, Ordering::Relaxed)
        ),
        created: unix_seconds(),
        model,
        prompt_tokens: mock_prompt_tokens(&request),
        completion_tokens: mock_completion_tokens(config, &request),
        finish_reason: finish_reason(config, &request),
    };

    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let stream = SseStream::new(shared.clone(), answer, include_usage);
        let mut response = Response::new(MockBody::Sse(Box::new(stream)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return response;
    }

    let text = mock_completion_text(config, answer.completion_tokens);
    let usage = Some(answer.usage());
    let json = match endpoint {
        Endpoint::Chat => to_json(&Envelope {
            id: &answer.id,
            object: "chat.completion",
            created: answer.created,
            model: &answer.model,
            choices: [ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: &text,
                },
                finish_reason: answer.finish_reason,
            }],
            usage,
        }),
        Endpoint::Text => to_json(&Envelope {
            id: &answer.id,
            object: "text_completion",
            created: answer.created,
            model: &answer.model,
            choices: [TextChoice {
                index: 0,
                text: &text,
                finish_reason: Some(answer.finish_reason),
            }],
            usage,
        }),
    };
    shared.requests_served.fetch_add(1, Ordering::SeqCst);
    full_response(StatusCode::OK, Some("application/json"), Bytes::from(json))
}

fn finish_reason(config: &MockBackendConfig, request: &Value) -> &'static str {
    match requested_max_tokens(request) {
        Some(limit) if limit < config.chunk_count as u64 => "length",
        _ => "stop",
    }
}

fn unix_seconds() -> u64 {
    // A clock before 1970 is a broken test machine, not a reason to fail a request.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn models_response(config: &MockBackendConfig) -> Response<MockBody> {
    let data: Vec<ModelEntry<'_>> = config
        .models
        .iter()
        .map(|id| ModelEntry {
            id,
            object: "model",
            created: 0,
            owned_by: "cocoon-mock",
        })
        .collect();
    let json = to_json(&ModelList {
        object: "list",
        data,
    });
    full_response(StatusCode::OK, Some("application/json"), Bytes::from(json))
}

fn method_not_allowed(method: &Method, path: &str) -> Response<MockBody> {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        &format!("{method} is not allowed on {path}"),
    )
}

fn error_response(status: StatusCode, kind: &str, code: &str, message: &str) -> Response<MockBody> {
    let json = to_json(&ErrorBody {
        error: ErrorDetail {
            message,
            kind,
            code,
        },
    });
    full_response(status, Some("application/json"), Bytes::from(json))
}

fn full_response(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Bytes,
) -> Response<MockBody> {
    let mut response = Response::new(MockBody::Full(Some(body)));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_text_follows_the_rule() {
        let config = MockBackendConfig::default();
        assert_eq!(mock_token_text(&config, 3), "t3 t3 ");
        assert_eq!(mock_token_text(&config, 12), "t12 t1");
        let narrow = MockBackendConfig {
            chunk_size: 2,
            ..MockBackendConfig::default()
        };
        assert_eq!(mock_token_text(&narrow, 10), "t1");
        let empty = MockBackendConfig {
            chunk_size: 0,
            ..MockBackendConfig::default()
        };
        assert_eq!(mock_token_text(&empty, 0), "");
        assert_eq!(mock_completion_text(&config, 2), "t0 t0 t1 t1 ");
        assert_eq!(mock_completion_text(&config, 0), "");
    }

    #[test]
    fn prompt_tokens_count_words_of_every_kind_of_content() {
        let chat = json!({"messages": [
            {"role": "system", "content": "be  brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "one two\nthree"},
                {"type": "image_url", "image_url": {"url": "x y z"}}
            ]},
            {"role": "assistant", "content": null}
        ]});
        assert_eq!(mock_prompt_tokens(&chat), 5);
        assert_eq!(mock_prompt_tokens(&json!({"prompt": "a b c"})), 3);
        assert_eq!(mock_prompt_tokens(&json!({"prompt": ["a b", "c"]})), 3);
        assert_eq!(mock_prompt_tokens(&json!({"prompt": ""})), 1);
        assert_eq!(mock_prompt_tokens(&json!({})), 1);
    }

    #[test]
    fn completion_tokens_respect_limits() {
        let config = MockBackendConfig::default();
        assert_eq!(mock_completion_tokens(&config, &json!({})), 8);
        assert_eq!(
            mock_completion_tokens(&config, &json!({"max_tokens": 3})),
            3
        );
        assert_eq!(
            mock_completion_tokens(&config, &json!({"max_tokens": 30})),
            8
        );
        assert_eq!(
            mock_completion_tokens(&config, &json!({"max_tokens": -1})),
            8
        );
        assert_eq!(
            mock_completion_tokens(
                &config,
                &json!({"max_completion_tokens": 2, "max_tokens": 5})
            ),
            2
        );
        assert_eq!(finish_reason(&config, &json!({"max_tokens": 3})), "length");
        assert_eq!(finish_reason(&config, &json!({"max_tokens": 8})), "stop");
        assert_eq!(finish_reason(&config, &json!({})), "stop");
    }
}
