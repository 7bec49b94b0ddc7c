//! The engine behind an OpenAI-compatible HTTP API — `GET /v1/models`, `POST
//! /v1/chat/completions` and `POST /v1/completions`, JSON or SSE, and `POST /v1/embeddings` — so
//! a worker forwards to it exactly as it forwards to vLLM or llama.cpp's server.
//!
//! Generation runs on blocking threads (at most `max_concurrent` at once; more requests wait
//! their turn); a stream whose client went away is cancelled at the next token. Prompts and
//! answers are never logged: sizes, token counts and timings only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use crate::engine::{
    ChatMessage, Engine, FinishReason, Generation, SamplingParams, TemplateOptions,
};

/// Default most concurrent generations (the engine batches them step by step; more wait here).
pub const DEFAULT_MAX_CONCURRENT: usize = crate::engine::MAX_RUNNING;
/// Default `max_tokens` when a request gives none.
pub const DEFAULT_MAX_TOKENS: usize = 512;

struct Shared {
    engine: Arc<Engine>,
    permits: Semaphore,
}

/// A running engine server.
pub struct EngineServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The model id it serves.
    pub model: String,
    task: tokio::task::JoinHandle<()>,
}

impl EngineServer {
    /// `http://addr`, what a worker's `backend_url` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for EngineServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `engine` on `listen` (port 0: any free port).
pub async fn serve(
    engine: Arc<Engine>,
    listen: SocketAddr,
    max_concurrent: usize,
) -> std::io::Result<EngineServer> {
    let model = engine.id.clone();
    let shared = Arc::new(Shared {
        engine,
        permits: Semaphore::new(max_concurrent.max(1)),
    });
    let app = axum::Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(error) =
            axum::serve(listener.tap_io(|tcp| cocoon_net::tcp::tune(tcp)), app).await
        {
            tracing::warn!(%error, "engine server stopped");
        }
    });
    tracing::info!(%addr, model = %model, "built-in engine serving");
    Ok(EngineServer { addr, model, task })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    (
        status,
        Json(json!({"error": {"message": message.into(), "type": kind, "code": status.as_u16()}})),
    )
        .into_response()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

async fn models(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{
        "id": shared.engine.id, "object": "model", "created": 0, "owned_by": "cocoon-engine"
    }]}))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// Chat-template variables (see [`Engine::chat_prompt_with`]).
    #[serde(default)]
    chat_template_kwargs: Option<serde_json::Map<String, Value>>,
    // Read only to refuse what the engine cannot do, rather than ignore it silently.
    #[serde(default)]
    n: Option<Value>,
    #[serde(default)]
    logprobs: Option<Value>,
    #[serde(default)]
    top_logprobs: Option<Value>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    tools: Option<Value>,
}

impl Request {
    /// The first field asking for something the engine does not do, and why: an app that asks
    /// for several choices, log probabilities, a JSON schema or tool calls gets a 400 naming it
    /// instead of an answer that quietly lacks it.
    fn unsupported(&self) -> Option<String> {
        let set = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        if set(&self.n) && self.n != Some(json!(1)) {
            return Some("'n': the built-in engine makes one choice per request (n = 1)".into());
        }
        if self
            .logprobs
            .as_ref()
            .is_some_and(|v| v != &json!(false) && !v.is_null())
            || set(&self.top_logprobs)
        {
            return Some(
                "'logprobs'/'top_logprobs': the built-in engine does not return log probabilities"
                    .into(),
            );
        }
        if let Some(format) = self.response_format.as_ref().filter(|v| !v.is_null()) {
            if format.get("type") != Some(&json!("text")) {
                return Some(format!(
                    "'response_format' {}: the built-in engine has no constrained decoding (only {{\"type\":\"text\"}})",
                    format.get("type").unwrap_or(&Value::Null)
                ));
            }
        }
        if self
            .tools
            .as_ref()
            .is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()) && !t.is_null())
        {
            return Some("'tools': the built-in engine does not call tools".into());
        }
        None
    }

    fn template_options(&self) -> TemplateOptions {
        TemplateOptions {
            enable_thinking: self
                .chat_template_kwargs
                .as_ref()
                .and_then(|k| k.get("enable_thinking"))
                .and_then(Value::as_bool),
        }
    }

    fn params(&self) -> Result<SamplingParams, String> {
        let temperature = self.temperature.unwrap_or(0.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(format!("temperature {temperature} is outside 0..=2"));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(format!("top_p {top_p} is outside (0, 1]"));
        }
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens == 0 {
            return Err("max_tokens must be at least 1".into());
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 || stop.iter().any(|s| s.is_empty()) {
            return Err("stop takes up to 4 non-empty strings".into());
        }
        Ok(SamplingParams {
            temperature,
            top_p,
            seed: self.seed.unwrap_or(299_792_458),
            max_tokens,
            stop,
        })
    }
}

fn parse(body: &[u8]) -> Result<Request, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        ))
    })
}

async fn chat(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let request = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let Some(messages) = &request.messages else {
        return error(StatusCode::BAD_REQUEST, "messages is required");
    };
    if messages.is_empty() {
        return error(StatusCode::BAD_REQUEST, "messages must not be empty");
    }
    let messages: Vec<ChatMessage> = messages
        .iter()
        .map(|m| ChatMessage {
            role: m.role.clone(),
            content: match &m.content {
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => parts
                    .iter()
                    .filter_map(|p| p.text.clone())
                    .collect::<Vec<_>>()
                    .join(""),
                None => String::new(),
            },
        })
        .collect();
    let prompt = shared
        .engine
        .chat_prompt_with(&messages, &request.template_options());
    run(shared, request, prompt, true).await
}

async fn completions(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let request = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let Some(prompt) = request.prompt.clone() else {
        return error(StatusCode::BAD_REQUEST, "prompt (a string) is required");
    };
    run(shared, request, prompt, false).await
}

/// Most inputs one embeddings request may carry (OpenAI's limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;
/// Most tokens one embeddings request may carry, all inputs together.
pub const MAX_EMBEDDING_TOKENS: usize = 65_536;

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingRequest {
    #[serde(default)]
    model: Option<String>,
    input: EmbeddingInput,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    /// Accepted as OpenAI does; the engine has no use for it.
    #[serde(default, rename = "user")]
    _user: Option<String>,
}

/// `POST /v1/embeddings`: one vector per input, mean-pooled and normalised (see
/// [`Engine::embed`]); `encoding_format` `float` (the default) or `base64` (little-endian
/// `f32`s, what the openai SDKs ask for).
async fn embeddings(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let request: EmbeddingRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid embeddings request: {e} ('input' is a string, an array of strings, an array of token ids or an array of such arrays)"),
            )
        }
    };
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("'encoding_format' {other:?}: use \"float\" or \"base64\""),
            )
        }
    };
    let size = shared.engine.embedding_size();
    if let Some(dimensions) = request.dimensions.filter(|d| *d != size) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("'dimensions' {dimensions}: this model's embeddings have {size} dimensions and cannot be shortened"),
        );
    }
    let engine = shared.engine.clone();
    let inputs: Vec<Vec<u32>> = match request.input {
        EmbeddingInput::Text(text) => vec![engine.embedding_tokens(&text)],
        EmbeddingInput::Texts(texts) if texts.len() <= MAX_EMBEDDING_INPUTS => {
            texts.iter().map(|t| engine.embedding_tokens(t)).collect()
        }
        EmbeddingInput::Tokens(tokens) => vec![tokens],
        EmbeddingInput::TokenLists(lists) if lists.len() <= MAX_EMBEDDING_INPUTS => lists,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("'input' holds more than {MAX_EMBEDDING_INPUTS} inputs"),
            )
        }
    };
    if inputs.is_empty() {
        return error(StatusCode::BAD_REQUEST, "'input' must not be empty");
    }
    let tokens: usize = inputs.iter().map(Vec::len).sum();
    if tokens > MAX_EMBEDDING_TOKENS {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "'input' is {tokens} tokens; one request may carry at most {MAX_EMBEDDING_TOKENS}"
            ),
        );
    }
    let Ok(_permit) = shared.permits.acquire().await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine is shutting down",
        );
    };
    let count = inputs.len();
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || engine.embed(inputs)).await;
    let vectors = match result {
        Ok(Ok(vectors)) => vectors,
        Ok(Err(crate::engine::EngineError::Request(message))) => {
            return error(StatusCode::BAD_REQUEST, message)
        }
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    tracing::debug!(
        inputs = count,
        tokens,
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "embeddings done"
    );
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                use base64::Engine as _;
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": request.model.unwrap_or_else(|| shared.engine.id.clone()),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

fn usage(g: &Generation) -> Value {
    json!({
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.completion_tokens,
        "total_tokens": g.prompt_tokens + g.completion_tokens,
    })
}

fn finish(g: &Generation) -> &'static str {
    match g.finish {
        FinishReason::Length => "length",
        _ => "stop",
    }
}

async fn run(shared: Arc<Shared>, request: Request, prompt: String, chat: bool) -> Response {
    if let Some(message) = request.unsupported() {
        return error(StatusCode::BAD_REQUEST, message);
    }
    let params = match request.params() {
        Ok(p) => p,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if let Some(model) = &request.model {
        if model != &shared.engine.id {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "model {model:?} is not served here; this engine serves {:?}",
                    shared.engine.id
                ),
            );
        }
    }
    let id = format!(
        "{}-{:016x}",
        if chat { "chatcmpl" } else { "cmpl" },
        rand_id()
    );
    let created = now();
    let model = shared.engine.id.clone();
    let (pieces, mut receiver) = mpsc::unbounded_channel::<String>();
    let engine = shared.engine.clone();
    let shared_for_task = shared.clone();
    let task = tokio::spawn(async move {
        let _permit = shared_for_task.permits.acquire().await;
        tokio::task::spawn_blocking(move || {
            let prompt_bytes = prompt.len();
            let result = engine.generate(&prompt, &params, &mut |text| {
                pieces.send(text.to_string()).is_ok()
            });
            if let Ok(g) = &result {
                tracing::info!(
                    prompt_bytes,
                    prompt_tokens = g.prompt_tokens,
                    completion_tokens = g.completion_tokens,
                    ttft_ms = g.time_to_first_token * 1000.0,
                    decode_tok_s =
                        g.completion_tokens.saturating_sub(1) as f64 / g.decode_seconds.max(1e-9),
                    finish = g.finish.as_str(),
                    "generated"
                );
            }
            result
        })
        .await
    });
    if !request.stream {
        let mut text = String::new();
        while let Some(piece) = receiver.recv().await {
            text.push_str(&piece);
        }
        let generation = match task.await {
            Ok(Ok(Ok(g))) => g,
            Ok(Ok(Err(e))) => return error(StatusCode::BAD_REQUEST, e.to_string()),
            _ => return error(StatusCode::INTERNAL_SERVER_ERROR, "generation failed"),
        };
        let choice = if chat {
            json!({"index": 0, "message": {"role": "assistant", "content": generation.text}, "finish_reason": finish(&generation)})
        } else {
            json!({"index": 0, "text": generation.text, "finish_reason": finish(&generation)})
        };
        return Json(json!({
            "id": id, "object": if chat { "chat.completion" } else { "text_completion" },
            "created": created, "model": model, "choices": [choice], "usage": usage(&generation),
        }))
        .into_response();
    }
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let chunk = move |delta: Value, finish: Option<&str>, usage: Option<Value>| -> Event {
        let choice = if chat {
            json!({"index": 0, "delta": delta, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": delta.get("content").cloned().unwrap_or(json!("")), "finish_reason": finish})
        };
        let mut body = json!({"id": id, "object": object, "created": created, "model": model, "choices": [choice]});
        if let Some(usage) = usage {
            body["usage"] = usage;
            body["choices"] = json!([]);
        }
        Event::default().data(body.to_string())
    };
    let stream = async_stream(receiver, task, chunk, include_usage, chat);
    Sse::new(stream).into_response()
}

fn async_stream(
    mut receiver: mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<
        Result<Result<Generation, crate::EngineError>, tokio::task::JoinError>,
    >,
    chunk: impl Fn(Value, Option<&str>, Option<Value>) -> Event + Send + 'static,
    include_usage: bool,
    chat: bool,
) -> impl futures_core::Stream<Item = Result<Event, Infallible>> {
    let (sender, events) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        if chat
            && sender
                .send(Ok(chunk(
                    json!({"role": "assistant", "content": ""}),
                    None,
                    None,
                )))
                .await
                .is_err()
        {
            return;
        }
        while let Some(piece) = receiver.recv().await {
            if sender
                .send(Ok(chunk(json!({"content": piece}), None, None)))
                .await
                .is_err()
            {
                // The client went away: dropping the receiver cancels the generation.
                return;
            }
        }
        match task.await {
            Ok(Ok(Ok(g))) => {
                let _ = sender
                    .send(Ok(chunk(json!({}), Some(finish(&g)), None)))
                    .await;
                if include_usage {
                    let _ = sender
                        .send(Ok(chunk(json!({}), None, Some(usage(&g)))))
                        .await;
                }
            }
            other => {
                let message = match other {
                    Ok(Ok(Err(e))) => e.to_string(),
                    _ => "generation failed".into(),
                };
                let _ = sender
                    .send(Ok(
                        Event::default().data(json!({"error": {"message": message}}).to_string())
                    ))
                    .await;
            }
        }
        let _ = sender.send(Ok(Event::default().data("[DONE]"))).await;
    });
    tokio_stream_from(events)
}

fn tokio_stream_from(
    mut events: mpsc::Receiver<Result<Event, Infallible>>,
) -> impl futures_core::Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::poll_fn(move |cx| events.poll_recv(cx))
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now());
    h.finish()
}
