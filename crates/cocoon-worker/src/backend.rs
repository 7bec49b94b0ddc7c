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

/// A client for one backend: pooled keep-alive connections for every request, streamed or
/// not, and for the health probes.
///
/// Streams reuse connections too: a fresh connection per stream cost a connect, an accept and
/// a close per request (+0.2 ms at p50 and half the throughput in `bench/relay.sh`) and leaves
/// a TIME_WAIT socket behind each. (An earlier version gave each stream its own connection
/// because llama-cpp-python's server cut streams short; that was its `interrupt_requests`
/// default, which must be off behind a worker anyway, and `tests/e2e/test_llama_cpp.py`
/// streams over reused connections.)
#[derive(Clone, Debug)]
pub struct Backend {
    base: String,
    api_key: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Backend {
    /// A client for `base_url` (e.g. "http://127.0.0.1:8000").
    pub fn new(base_url: &str, api_key: Option<String>) -> Backend {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Backend {
            base: base_url.trim_end_matches('/').to_string(),
            api_key,
            client,
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

    /// POSTs a JSON body over a pooled connection and returns the response head and streaming
    /// body.
    pub async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, BackendError> {
        let request = self.request(http::Method::POST, path, Bytes::from(body))?;
        match tokio::time::timeout(timeout, self.client.request(request)).await {
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
