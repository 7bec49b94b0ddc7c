//! A backend that answers as a test scripts it, for the cases an honest mock cannot show: a
//! backend (or a worker behind it) that lies about usage, streams that stall, requests the test
//! wants to look at. Serves `GET /v1/models` for the worker's health probe like any backend.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// What the backend answers to a completion request.
#[derive(Clone, Debug)]
pub enum Script {
    /// A non-streamed chat completion with `content` and exactly this `usage` object.
    Json {
        /// The answer's text.
        content: String,
        /// The `usage` object, verbatim (it may lie).
        usage: Value,
    },
    /// A stream of `parts` content events `delay` apart, without usage, then `[DONE]`.
    Stream {
        /// Content events.
        parts: usize,
        /// Pause before each.
        delay: Duration,
    },
    /// A stream of `text` in content events of `chunk_chars` characters, `delay` apart,
    /// without usage, then `[DONE]`.
    Text {
        /// The whole answer.
        text: String,
        /// Characters per event (at least 1).
        chunk_chars: usize,
        /// Pause before each event.
        delay: Duration,
    },
}

struct Shared {
    model: String,
    script: Mutex<Script>,
    bodies: Mutex<Vec<Value>>,
    /// Streams still being written (decremented when a stream ends or its reader goes away).
    open_streams: Arc<std::sync::atomic::AtomicI64>,
}

/// A running scripted backend; dropping it stops the server.
pub struct ScriptedBackend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct StreamGuard(Arc<std::sync::atomic::AtomicI64>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn models(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": shared.model, "object": "model"}]}))
}

async fn complete(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared
        .bodies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(body);
    let script = shared
        .script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match script {
        Script::Json { content, usage } => Json(json!({
            "id": "scripted-1",
            "object": "chat.completion",
            "model": shared.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage,
        }))
        .into_response(),
        Script::Stream { parts, delay } => {
            let contents = (0..parts).map(|n| format!("part{n} ")).collect();
            stream(&shared, contents, delay)
        }
        Script::Text {
            text,
            chunk_chars,
            delay,
        } => {
            let chars: Vec<char> = text.chars().collect();
            let contents = chars
                .chunks(chunk_chars.max(1))
                .map(|chunk| chunk.iter().collect())
                .collect();
            stream(&shared, contents, delay)
        }
    }
}

/// An SSE answer of one content event per item of `contents`, each after `delay`.
fn stream(shared: &Arc<Shared>, contents: Vec<String>, delay: Duration) -> Response {
    shared
        .open_streams
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let guard = StreamGuard(shared.open_streams.clone());
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        let _guard = guard;
        for content in contents {
            tokio::time::sleep(delay).await;
            let event = json!({"choices": [{"index": 0, "delta": {"content": content}}]});
            if tx
                .send(Bytes::from(format!("data: {event}\n\n")))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::new(ChannelBody(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A response body fed by a channel: each message is one chunk on the wire.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(http_body::Frame::data(data))))
    }
}

impl ScriptedBackend {
    /// Starts serving `model` on an ephemeral loopback port.
    pub async fn start(model: &str, script: Script) -> std::io::Result<ScriptedBackend> {
        let shared = Arc::new(Shared {
            model: model.to_owned(),
            script: Mutex::new(script),
            bodies: Mutex::new(Vec::new()),
            open_streams: Arc::new(std::sync::atomic::AtomicI64::new(0)),
        });
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/health", get(|| async { "ok" }))
            .route("/v1/chat/completions", post(complete))
            .route("/v1/completions", post(complete))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ScriptedBackend {
            addr,
            shared,
            server,
        })
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers later requests with `script`.
    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().unwrap_or_else(|p| p.into_inner()) = script;
    }

    /// The JSON bodies of the completion requests received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.shared
            .bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Streams still being written to a reader.
    pub fn open_streams(&self) -> i64 {
        self.shared
            .open_streams
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}
