//! A small HTTP(S)/1.1 client for the few outside services the daemons call (a PCCS for DCAP
//! collateral, toncenter for TON): one request per connection, a timeout, a size limit, the
//! web's root certificates plus optional extra ones. Nothing on a request's hot path uses it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The base URL or a certificate is unusable.
    #[error("{0}")]
    Config(String),
    /// The request failed: unreachable, TLS, timeout, too large, or a non-2xx status.
    #[error("{0}")]
    Request(String),
}

/// An answer with a 2xx status.
#[derive(Debug)]
pub struct HttpResponse {
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
}

/// An answer with any status (see [`HttpClient::send`]).
#[derive(Debug)]
pub struct HttpAnswer {
    /// Its status.
    pub status: http::StatusCode,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
}

/// A client for one base URL (`http://` or `https://host[:port][/path]`).
#[derive(Clone)]
pub struct HttpClient {
    https: bool,
    host: String,
    port: u16,
    base_path: String,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
    max_response: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HttpClient({}://{}:{}{})",
            if self.https { "https" } else { "http" },
            self.host,
            self.port,
            self.base_path
        )
    }
}

impl HttpClient {
    /// A client for `url`. HTTPS trusts the web's roots plus `extra_roots` (DER certificates,
    /// e.g. a PCCS's own CA). Requests time out after `timeout`; bodies over `max_response`
    /// bytes are refused.
    pub fn new(
        url: &str,
        extra_roots: &[Vec<u8>],
        timeout: Duration,
        max_response: usize,
    ) -> Result<HttpClient, HttpError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| HttpError::Config(format!("URL '{url}': {e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(HttpError::Config(format!(
                    "URL '{url}' must be http:// or https://"
                )))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| HttpError::Config(format!("URL '{url}' has no host")))?
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            // The system's store too (SSL_CERT_FILE / SSL_CERT_DIR or the distribution's
            // bundle): where a TLS-inspecting proxy stands between a machine and the internet,
            // its CA is there. Unreadable entries are skipped.
            let native = rustls_native_certs::load_native_certs();
            let (_added, _skipped) = roots.add_parsable_certificates(native.certs);
            for der in extra_roots {
                roots
                    .add(rustls::pki_types::CertificateDer::from(der.clone()))
                    .map_err(|e| HttpError::Config(format!("CA certificate: {e}")))?;
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(HttpClient {
            https,
            host,
            port,
            base_path: uri.path().trim_end_matches('/').to_string(),
            tls,
            timeout,
            max_response,
        })
    }

    /// The URL's path, without a trailing slash.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Replaces the base path (callers that accept several spellings of one API root).
    pub fn set_base_path(&mut self, path: &str) {
        self.base_path = path.trim_end_matches('/').to_string();
    }

    /// GET `base path + path_and_query`.
    pub async fn get(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<HttpResponse, HttpError> {
        self.request(http::Method::GET, path_and_query, headers, Vec::new())
            .await
    }

    /// POST a JSON body to `base path + path`.
    pub async fn post_json(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpResponse, HttpError> {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.request(http::Method::POST, path, &all, body).await
    }

    /// Sends a request to `base path + path_and_query` and returns the answer whatever its
    /// status (an API that explains its refusals in the body: a 429's retry delay), within the
    /// client's timeout and size limit.
    pub async fn send(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpAnswer, HttpError> {
        let what = format!("{method} {}{path_and_query}", self.base_path);
        tokio::time::timeout(
            self.timeout,
            self.send_collected(method, path_and_query, headers, body),
        )
        .await
        .map_err(|_| HttpError::Request(format!("{what} timed out after {:?}", self.timeout)))?
        .map_err(|e| HttpError::Request(format!("{what}: {e}")))
    }

    /// Sends a request and returns as soon as the answer's head arrived (within the client's
    /// timeout), whatever its status; the caller reads the body as it comes (a stream of
    /// server-sent events) and bounds it.
    pub async fn open(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<http::Response<hyper::body::Incoming>, HttpError> {
        let what = format!("{method} {}{path_and_query}", self.base_path);
        tokio::time::timeout(
            self.timeout,
            self.send_request(method, path_and_query, headers, body),
        )
        .await
        .map_err(|_| HttpError::Request(format!("{what} timed out after {:?}", self.timeout)))?
        .map_err(|e| HttpError::Request(format!("{what}: {e}")))
    }

    /// GETs `base path + path_and_query` and hands the body to `sink` as it arrives, with
    /// `progress(received, total)` after each chunk; follows up to 5 redirects (to any
    /// http(s) origin). No size limit and no overall timeout (big files take long); a
    /// connection that stalls for the client's timeout fails. Returns the bytes received.
    pub async fn download(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
        progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
    ) -> Result<u64, HttpError> {
        let mut client = self.clone();
        let mut path = path_and_query.to_string();
        for _ in 0..6 {
            let response = tokio::time::timeout(
                self.timeout,
                client.send_request(http::Method::GET, &path, headers, Vec::new()),
            )
            .await
            .map_err(|_| HttpError::Request(format!("GET {path} timed out")))?
            .map_err(|e| HttpError::Request(format!("GET {path}: {e}")))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        HttpError::Request(format!("GET {path}: {status} without a location"))
                    })?
                    .to_string();
                if location.starts_with('/') {
                    client.base_path.clear();
                    path = location;
                } else {
                    let uri: http::Uri = location
                        .parse()
                        .map_err(|e| HttpError::Request(format!("redirect to {location}: {e}")))?;
                    let origin = format!(
                        "{}://{}",
                        uri.scheme_str().unwrap_or("https"),
                        uri.authority().map(|a| a.as_str()).unwrap_or_default()
                    );
                    client = HttpClient::new(&origin, &[], self.timeout, self.max_response)?;
                    client.tls = if client.https {
                        self.tls.clone().or(client.tls)
                    } else {
                        None
                    };
                    path = uri
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "/".into());
                }
                continue;
            }
            if !status.is_success() {
                return Err(HttpError::Request(format!("GET {path}: answered {status}")));
            }
            let total = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let mut body = response.into_body();
            let mut received = 0u64;
            loop {
                let frame = tokio::time::timeout(self.timeout, body.frame())
                    .await
                    .map_err(|_| HttpError::Request(format!("GET {path}: stalled")))?;
                let Some(frame) = frame else { break };
                let frame = frame.map_err(|e| HttpError::Request(format!("GET {path}: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    sink(&data).map_err(|e| HttpError::Request(format!("writing {path}: {e}")))?;
                    received += data.len() as u64;
                    progress(received, total);
                }
            }
            if total.is_some_and(|t| t != received) {
                return Err(HttpError::Request(format!(
                    "GET {path}: {received} bytes of {} arrived",
                    total.unwrap_or_default()
                )));
            }
            return Ok(received);
        }
        Err(HttpError::Request(format!(
            "GET {path_and_query}: too many redirects"
        )))
    }

    async fn request(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpResponse, HttpError> {
        let what = format!("{method} {}{path_and_query}", self.base_path);
        tokio::time::timeout(
            self.timeout,
            self.request_inner(method, path_and_query, headers, body),
        )
        .await
        .map_err(|_| HttpError::Request(format!("{what} timed out after {:?}", self.timeout)))?
        .map_err(|e| HttpError::Request(format!("{what}: {e}")))
    }

    async fn request_inner(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpResponse, String> {
        let answer = self
            .send_collected(method, path_and_query, headers, body)
            .await?;
        if !answer.status.is_success() {
            let body = &answer.body;
            let excerpt = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(format!("answered {}: {excerpt}", answer.status));
        }
        Ok(HttpResponse {
            headers: answer.headers,
            body: answer.body,
        })
    }

    async fn send_collected(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpAnswer, String> {
        let response = self
            .send_request(method, path_and_query, headers, body)
            .await?;
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, self.max_response)
            .collect()
            .await
            .map_err(|e| format!("response: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(HttpAnswer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    async fn send_request(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let tcp = crate::tcp::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot reach {}:{}: {e}", self.host, self.port))?;
        let path = if path_and_query.starts_with('/') && !self.base_path.is_empty() {
            format!("{}{path_and_query}", self.base_path)
        } else {
            path_and_query.to_string()
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::USER_AGENT, "cocoon");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        match &self.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("host name: {e}"))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                send(stream, request).await
            }
            None => send(tcp, request).await,
        }
    }
}

async fn send<S>(
    stream: S,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    // The connection task ends with the response (one request per connection).
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))
}
