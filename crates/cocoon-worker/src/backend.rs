//! The OpenAI-compatible backend (vLLM, SGLang, llama.cpp server, Ollama, the testkit mock):
//! a keep-alive HTTP/1.1 connection pool and a health probe.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Idle keep-alive connections kept per backend: enough for the worker's whole concurrency.
const POOL_IDLE_PER_HOST: usize = 256;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A health probe that takes longer than this counts as down.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Connection refused, reset, or a malformed HTTP answer.
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    /// The backend did not answer in time.
    #[error("backend timed out")]
    Timeout,
}

/// A client for one backend: pooled keep-alive connections for JSON answers and health
/// probes, and a fresh connection for every streamed answer.
#[derive(Clone, Debug)]
pub struct Backend {
    base: String,
    api_key: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Never reuses a connection. llama-cpp-python's server (uvicorn + sse-starlette) cuts an
    /// SSE stream short ("data: [DONE]" after the first chunk, then no chunked terminator) when
    /// it runs on a keep-alive connection that served an earlier request; a connection of its
    /// own costs one loopback connect per stream.
    stream_client: Client<HttpConnector, Full<Bytes>>,
}

impl Backend {
    /// A client for `base_url` (e.g. "http://127.0.0.1:8000").
    pub fn new(base_url: &str, api_key: Option<String>) -> Backend {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector.clone());
        let stream_client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Backend {
            base: base_url.trim_end_matches('/').to_string(),
            api_key,
            client,
            stream_client,
        }
    }

    /// The backend's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, BackendError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.api_key {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        builder
            .body(Full::new(body))
            .map_err(|e| BackendError::Unreachable(e.to_string()))
    }

    /// POSTs a JSON body and returns the response head and streaming body. A request for a
    /// streamed answer (`stream`) goes on a connection of its own.
    pub async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
        stream: bool,
    ) -> Result<Response<Incoming>, BackendError> {
        let request = self.request(http::Method::POST, path, Bytes::from(body))?;
        let client = if stream {
            &self.stream_client
        } else {
            &self.client
        };
        match tokio::time::timeout(timeout, client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(BackendError::Unreachable(error.to_string())),
            Err(_) => Err(BackendError::Timeout),
        }
    }

    /// Asks `GET /v1/models`; returns the model ids, or an error when the backend is down.
    pub async fn models(&self) -> Result<Vec<String>, BackendError> {
        let request = self.request(http::Method::GET, "/v1/models", Bytes::new())?;
        let response =
            match tokio::time::timeout(HEALTH_TIMEOUT, self.client.request(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => return Err(BackendError::Unreachable(error.to_string())),
                Err(_) => return Err(BackendError::Timeout),
            };
        if response.status() != StatusCode::OK {
            return Err(BackendError::Unreachable(format!(
                "GET /v1/models answered {}",
                response.status()
            )));
        }
        let body = tokio::time::timeout(HEALTH_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| BackendError::Timeout)?
            .map_err(|e| BackendError::Unreachable(e.to_string()))?
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| BackendError::Unreachable(format!("GET /v1/models: invalid JSON: {e}")))?;
        Ok(value
            .get("data")
            .and_then(|d| d.as_array())
            .map(|models| {
                models
                    .iter()
                    .filter_map(|m| m.get("id").and_then(|id| id.as_str()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}
