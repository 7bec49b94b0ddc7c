//! The client embedded in an app's own process: the same proxy connections, attestation
//! checks, payments and answers as the HTTP API, called as Rust functions. Requests and answers
//! are OpenAI JSON (`serde_json::Value`), so what an app sends to `/v1/chat/completions` it
//! passes here unchanged, Cocoon extras (`max_coefficient`, `timeout`, …) included.
//!
//! ```no_run
//! # async fn demo(config: cocoon_client::ClientConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! let (_trigger, shutdown) = cocoon_net::shutdown::ShutdownTrigger::new();
//! let client = cocoon_client::Client::start(config, shutdown).await?;
//! client.wait_for_proxy(std::time::Duration::from_secs(30)).await?;
//! let question = serde_json::json!({"model": "SmolLM2-135M-Instruct",
//!     "messages": [{"role": "user", "content": "What is the capital of France?"}]});
//! let answer = client.chat(question.clone()).await?;
//! println!("{}", answer["choices"][0]["message"]["content"]);
//! let mut stream = client.chat_stream(question).await?;
//! while let Some(chunk) = stream.next().await {
//!     print!("{}", chunk?["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
//! }
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use cocoon_net::metrics::unix_time_f64;
use cocoon_net::sse::{event_data, take_event};
use cocoon_net::Shutdown;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::{ClientConfig, ClientError, ClientShared};

/// Most bytes of a non-streamed answer an embedded call collects.
const MAX_ANSWER_BYTES: usize = 16 << 20;
/// Most bytes one event of a stream may take.
const MAX_EVENT_BYTES: usize = 4 << 20;

/// A request that failed, as the HTTP API would have answered it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status the API would have sent (400, 402, 404, 503, 504, …).
    pub status: u16,
    /// OpenAI's error `type` (`invalid_request_error`, `service_unavailable`, …).
    pub kind: String,
    /// The error `code` (`model_not_found`, `no_proxy`, `timeout`, …).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    fn new(status: u16, kind: &str, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind: kind.into(),
            code: code.into(),
            message: message.into(),
        }
    }

    fn from_error_json(status: u16, body: &[u8]) -> ApiError {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = &value["error"];
        let text = |name: &str| error[name].as_str().unwrap_or_default().to_string();
        ApiError {
            status,
            kind: text("type"),
            code: text("code"),
            message: match error["message"].as_str() {
                Some(message) => message.to_string(),
                None => String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            },
        }
    }
}

/// The client running inside the app's process. Cheap to clone; stops with its [`Shutdown`].
#[derive(Clone)]
pub struct Client {
    shared: Arc<ClientShared>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("proxies", &self.shared.config.proxies)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Checks the config and starts connecting to proxies (and, with `[chain]`, the client's
    /// contract work), exactly as `cocoon client` does, without binding `listen`.
    pub async fn start(config: ClientConfig, shutdown: Shutdown) -> Result<Client, ClientError> {
        let (shared, _, task) = crate::launch(config, shutdown, false).await?;
        Ok(Client {
            shared,
            task: Arc::new(task),
        })
    }

    /// Waits until a proxy connection is up (and authorised), at most `timeout`.
    pub async fn wait_for_proxy(&self, timeout: Duration) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !self.shared.pool.connected().is_empty() {
                return Ok(());
            }
            if self.task.is_finished() {
                return Err(ApiError::new(
                    503,
                    "service_unavailable",
                    "stopped",
                    "the client stopped",
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                let last = self
                    .shared
                    .pool
                    .last_error()
                    .map(|e| format!("; the last attempt failed: {e}"))
                    .unwrap_or_default();
                return Err(ApiError::new(
                    503,
                    "service_unavailable",
                    "no_proxy",
                    format!("no proxy connection within {timeout:?}{last}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /v1/models`: the models the connected proxies offer.
    pub async fn models(&self) -> Result<Value, ApiError> {
        let response = crate::api::models(axum::extract::State(self.shared.clone())).await;
        json_answer(response).await
    }

    /// `POST /v1/chat/completions` without streaming: the completion object.
    pub async fn chat(&self, request: Value) -> Result<Value, ApiError> {
        self.call("/v1/chat/completions", request).await
    }

    /// `POST /v1/completions` without streaming.
    pub async fn completion(&self, request: Value) -> Result<Value, ApiError> {
        self.call("/v1/completions", request).await
    }

    /// `POST /v1/embeddings`: one vector per input.
    pub async fn embeddings(&self, request: Value) -> Result<Value, ApiError> {
        self.call("/v1/embeddings", request).await
    }

    /// `POST /v1/responses` without streaming: the Responses object.
    pub async fn response(&self, mut request: Value) -> Result<Value, ApiError> {
        if let Some(object) = request.as_object_mut() {
            object.remove("stream");
        }
        let body = Bytes::from(request.to_string());
        self.counted(crate::responses::run_response(&self.shared, &body, unix_time_f64()).await)
            .await
    }

    /// `POST /v1/chat/completions` with `"stream": true` (set here): the chunks as they
    /// arrive. Ask for `stream_options.include_usage` to get the usage chunk.
    pub async fn chat_stream(&self, mut request: Value) -> Result<ChatStream, ApiError> {
        match request.as_object_mut() {
            Some(object) => {
                object.insert("stream".into(), Value::Bool(true));
            }
            None => {
                return Err(ApiError::new(
                    400,
                    "invalid_request_error",
                    "invalid_json",
                    "request body must be a JSON object",
                ))
            }
        }
        let response = self.send("/v1/chat/completions", &request).await;
        if !response.status().is_success() {
            return Err(self.failed(response).await);
        }
        Ok(ChatStream {
            body: Box::pin(response.into_body().into_data_stream()),
            pending: Vec::new(),
            ready: std::collections::VecDeque::new(),
            done: false,
        })
    }

    async fn send(&self, path: &str, request: &Value) -> Response {
        self.shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        let body = Bytes::from(request.to_string());
        crate::api::run_completion(&self.shared, path, body, unix_time_f64()).await
    }

    async fn call(&self, path: &str, request: Value) -> Result<Value, ApiError> {
        let response = self.send(path, &request).await;
        if !response.status().is_success() {
            return Err(self.failed(response).await);
        }
        json_answer(response).await
    }

    /// Counts a request made outside [`Client::send`] and reads its answer.
    async fn counted(&self, response: Response) -> Result<Value, ApiError> {
        self.shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        if !response.status().is_success() {
            return Err(self.failed(response).await);
        }
        json_answer(response).await
    }

    async fn failed(&self, response: Response) -> ApiError {
        self.shared.stats.failed.fetch_add(1, Ordering::Relaxed);
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 64 << 10)
            .await
            .unwrap_or_default();
        ApiError::from_error_json(status, &body)
    }
}

async fn json_answer(response: Response) -> Result<Value, ApiError> {
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .map_err(|e| {
            ApiError::new(
                502,
                "upstream_error",
                "upstream_failed",
                format!("the answer broke or was larger than 16 MiB: {e}"),
            )
        })?;
    if !(200..300).contains(&status) {
        return Err(ApiError::from_error_json(status, &body));
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            502,
            "upstream_error",
            "upstream_failed",
            format!("the answer is not JSON: {e}"),
        )
    })
}

/// A streamed chat completion: each chunk as a JSON value; ends after `[DONE]`. An error the
/// stream carries (a timeout, a lost proxy) comes as an `Err` and ends it.
pub struct ChatStream {
    body: Pin<Box<axum::body::BodyDataStream>>,
    pending: Vec<u8>,
    ready: std::collections::VecDeque<Result<Value, ApiError>>,
    done: bool,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    fn on_event(&mut self, event: &[u8]) {
        let data = event_data(event);
        if data.is_empty() {
            return;
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        let item = match serde_json::from_str::<Value>(&data) {
            Ok(chunk) if chunk.get("error").is_some() => {
                self.done = true;
                let error = &chunk["error"];
                let code = error["code"].as_str().unwrap_or("upstream_failed");
                let status = if code == "timeout" { 504 } else { 502 };
                Err(ApiError::new(
                    status,
                    error["type"].as_str().unwrap_or("upstream_error"),
                    code,
                    error["message"].as_str().unwrap_or("the stream failed"),
                ))
            }
            Ok(chunk) => Ok(chunk),
            Err(e) => {
                self.done = true;
                Err(ApiError::new(
                    502,
                    "upstream_error",
                    "upstream_failed",
                    format!("the stream carried an event that is not JSON: {e}"),
                ))
            }
        };
        self.ready.push_back(item);
    }

    fn split_events(&mut self) {
        while !self.done {
            let Some(event) = take_event(&mut self.pending) else {
                break;
            };
            self.on_event(&event);
        }
        if !self.done && self.pending.len() > MAX_EVENT_BYTES {
            self.done = true;
            self.ready.push_back(Err(ApiError::new(
                502,
                "upstream_error",
                "upstream_failed",
                "the stream carried an event larger than 4 MiB",
            )));
        }
    }
}

impl Stream for ChatStream {
    type Item = Result<Value, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Poll::Ready(Some(item));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match self.body.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) => {
                    self.pending.extend_from_slice(&data);
                    self.split_events();
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(ApiError::new(
                        502,
                        "upstream_error",
                        "upstream_failed",
                        format!("the stream broke: {e}"),
                    ))));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let rest = std::mem::take(&mut self.pending);
                    if !rest.iter().all(u8::is_ascii_whitespace) {
                        self.on_event(&rest);
                    }
                }
            }
        }
    }
}
