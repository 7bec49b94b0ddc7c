//! A small HTTP/1.1 client for tests: JSON requests and chunk-by-chunk streaming reads.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A complete answer.
#[derive(Debug)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Whole body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A streaming answer, read frame by frame.
pub struct HttpStream {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    body: Incoming,
}

impl HttpStream {
    /// The next body chunk, or None at the end (or on a broken body).
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(data);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Everything that is left.
    pub async fn rest(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            out.extend_from_slice(&chunk);
        }
        out
    }
}

/// A keep-alive HTTP client.
#[derive(Clone, Debug)]
pub struct TestHttp {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Sent as `Authorization: Bearer …` with every request (a client with `api_token`).
    bearer: Option<String>,
}

impl Default for TestHttp {
    fn default() -> Self {
        TestHttp::new()
    }
}

impl TestHttp {
    /// A new client.
    pub fn new() -> TestHttp {
        // Like any OpenAI SDK's HTTP stack: small writes leave at once.
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        TestHttp {
            client: Client::builder(TokioExecutor::new()).build(connector),
            bearer: None,
        }
    }

    /// The same client, sending `Authorization: Bearer <token>` with every request when a
    /// token is given.
    pub fn with_bearer(mut self, token: Option<&str>) -> TestHttp {
        self.bearer = token.map(str::to_owned);
        self
    }

    /// Any request with exactly these extra headers (no `Content-Type` unless given; `Host`
    /// is the address unless given), read whole.
    pub async fn request(
        &self,
        method: http::Method,
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpAnswer, String> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{address}{path}"));
        if let Some(token) = &self.bearer {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(60), self.client.request(request))
            .await
            .map_err(|_| "request timed out".to_string())?
            .map_err(|e| e.to_string())?;
        collect(response).await
    }

    async fn send(
        &self,
        method: http::Method,
        address: SocketAddr,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<Incoming>, String> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{address}{path}"));
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.bearer {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(60), self.client.request(request))
            .await
            .map_err(|_| "request timed out".to_string())?
            .map_err(|e| e.to_string())
    }

    /// GET and read the whole body.
    pub async fn get(&self, address: SocketAddr, path: &str) -> Result<HttpAnswer, String> {
        let response = self.send(http::Method::GET, address, path, None).await?;
        collect(response).await
    }

    /// POST raw bytes as JSON and read the whole body.
    pub async fn post_bytes(
        &self,
        address: SocketAddr,
        path: &str,
        body: Vec<u8>,
    ) -> Result<HttpAnswer, String> {
        let response = self
            .send(http::Method::POST, address, path, Some(body))
            .await?;
        collect(response).await
    }

    /// POST JSON and read the whole body.
    pub async fn post(
        &self,
        address: SocketAddr,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<HttpAnswer, String> {
        self.post_bytes(address, path, body.to_string().into_bytes())
            .await
    }

    /// POST JSON and return the body as a stream.
    pub async fn post_stream(
        &self,
        address: SocketAddr,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<HttpStream, String> {
        let response = self
            .send(
                http::Method::POST,
                address,
                path,
                Some(body.to_string().into_bytes()),
            )
            .await?;
        let (parts, body) = response.into_parts();
        Ok(HttpStream {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

async fn collect(response: hyper::Response<Incoming>) -> Result<HttpAnswer, String> {
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(60), body.collect())
        .await
        .map_err(|_| "body timed out".to_string())?
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok(HttpAnswer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// GET a JSON document; Null on any failure.
pub async fn get_json(address: SocketAddr, path: &str) -> serde_json::Value {
    get_json_with(&TestHttp::new(), address, path).await
}

/// GET a JSON document with `http`; Null on any failure.
pub async fn get_json_with(http: &TestHttp, address: SocketAddr, path: &str) -> serde_json::Value {
    match http.get(address, path).await {
        Ok(answer) => answer.json(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Splits an SSE body into the JSON of its `data:` events (skipping `[DONE]`).
pub fn sse_events(body: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data:")))
        .map(str::trim)
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect()
}
