//! Who may call the API. Whoever gets a request served spends the operator's stake, and a
//! browser will send requests to loopback on behalf of any web page it shows, so before any
//! handler runs:
//!
//! - with `api_token`, the request must carry `Authorization: Bearer <api_token>` (401);
//!   one that does is served from anywhere it can reach (but for the dashboard page, `GET /`:
//!   it is static, a browser cannot add the header to a page load, and the page sends the
//!   token on its `/stats` fetches);
//! - without it, `Host` must be a loopback address, `localhost` or one of `allowed_hosts`
//!   (421: DNS rebinding gives a page's own name to this machine, never one of these), and an
//!   `Origin`, when present, must be loopback or one of `cors_origins` (403: cross-site
//!   requests from other pages);
//! - a POST must declare `Content-Type: application/json` (415): a page can send `text/plain`
//!   or a form anywhere without a CORS preflight, but not JSON.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use futures_util::future::Either;
use sha2::{Digest, Sha256};
use tracing::debug;

use crate::api::{api_error, log_safe};
use crate::{ClientConfig, ClientShared};

/// The checks, prepared from the config once.
#[derive(Debug)]
pub(crate) struct ApiGuard {
    /// SHA-256 of `api_token`: comparing digests takes the same time whatever the token's
    /// length and wherever a guess first differs.
    token_digest: Option<[u8; 32]>,
    /// `allowed_hosts`, normalised.
    allowed_hosts: Vec<String>,
    /// `cors_origins` but `"*"` (which needs the token anyway).
    allowed_origins: Vec<String>,
}

impl ApiGuard {
    pub(crate) fn new(config: &ClientConfig) -> ApiGuard {
        ApiGuard {
            token_digest: config
                .api_token
                .as_deref()
                .map(|token| Sha256::digest(token.as_bytes()).into()),
            allowed_hosts: config
                .allowed_hosts
                .iter()
                .map(|h| normalise_host(h))
                .collect(),
            allowed_origins: config
                .cors_origins
                .iter()
                .filter(|o| *o != "*")
                .cloned()
                .collect(),
        }
    }

    /// `Ok` when the request may be served; otherwise why not.
    pub(crate) fn admit(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        match &self.token_digest {
            Some(expected) => {
                let page = (method == Method::GET || method == Method::HEAD) && uri.path() == "/";
                let given = bearer_token(headers).map(|t| Sha256::digest(t.as_bytes()));
                if !page && !given.is_some_and(|given| same_digest(&given.into(), expected)) {
                    return Err(Refusal::NoToken);
                }
            }
            None => {
                self.check_host(uri, headers)?;
                self.check_origin(headers)?;
            }
        }
        if method == Method::POST && !is_json(headers) {
            return Err(Refusal::NotJson);
        }
        Ok(())
    }

    fn check_host(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = match headers.get(header::HOST) {
            Some(value) => value.to_str().ok(),
            None => uri.authority().map(Authority::as_str),
        };
        let allowed = host
            .and_then(host_of_authority)
            .is_some_and(|host| is_loopback_host(&host) || self.allowed_hosts.contains(&host));
        if allowed {
            return Ok(());
        }
        let shown = host.map(log_safe).unwrap_or_else(|| "(none)".into());
        debug!(host = %shown, "API request refused: Host not allowed");
        Err(Refusal::Host(shown))
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            // Not a browser's cross-origin request (apps, SDKs, curl).
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("");
        if is_loopback_origin(origin)
            || self
                .allowed_origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
        {
            return Ok(());
        }
        let shown = log_safe(origin);
        debug!(origin = %shown, "API request refused: cross-origin");
        Err(Refusal::Origin(shown))
    }
}

/// Why a request is not served.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// `api_token` is set and the request does not carry it.
    NoToken,
    /// `Host` (escaped) is not loopback, `localhost` or in `allowed_hosts`.
    Host(String),
    /// `Origin` (escaped) is not loopback or in `cors_origins`.
    Origin(String),
    /// A POST without `Content-Type: application/json`.
    NotJson,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::NoToken => StatusCode::UNAUTHORIZED,
            Refusal::Host(_) => StatusCode::MISDIRECTED_REQUEST,
            Refusal::Origin(_) => StatusCode::FORBIDDEN,
            Refusal::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// The OpenAI-shaped error answer.
    fn into_response(self) -> Response {
        let status = self.status();
        let (code, message) = match self {
            Refusal::NoToken => (
                "invalid_api_key",
                "this client requires its api_token: send Authorization: Bearer <api_token>".to_string(),
            ),
            Refusal::Host(host) => (
                "host_not_allowed",
                format!("Host {host} is not allowed: address this API as localhost or a loopback address, list the name in allowed_hosts, or set api_token"),
            ),
            Refusal::Origin(origin) => (
                "origin_not_allowed",
                format!("requests from web origin {origin} are refused: list it in cors_origins, or set api_token and send it"),
            ),
            Refusal::NotJson => (
                "unsupported_media_type",
                "request body must be JSON: send Content-Type: application/json".to_string(),
            ),
        };
        let mut response = api_error(status, "invalid_request_error", code, message);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The layer that runs [`ApiGuard::admit`] before any handler (see [`GuardService`]).
#[derive(Clone)]
pub(crate) struct GuardLayer(pub Arc<ClientShared>);

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> GuardService<S> {
        GuardService {
            inner,
            shared: self.0.clone(),
        }
    }
}

/// Answers a refused request itself and passes the others on. A plain service rather than
/// `axum::middleware::from_fn`, which boxes every request's future and clones the router
/// behind it: on the relay path that cost a few percent of the client's throughput.
#[derive(Clone)]
pub(crate) struct GuardService<S> {
    inner: S,
    shared: Arc<ClientShared>,
}

impl<S, B> tower_service::Service<axum::http::Request<B>> for GuardService<S>
where
    S: tower_service::Service<axum::http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<std::future::Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        match self
            .shared
            .guard
            .admit(request.method(), request.uri(), request.headers())
        {
            Ok(()) => Either::Right(self.inner.call(request)),
            Err(refusal) => {
                self.shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                Either::Left(std::future::ready(Ok(refusal.into_response())))
            }
        }
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Equal digests, in time independent of where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Lowercase, without a root label's dot or an IPv6 address's brackets.
fn normalise_host(host: &str) -> String {
    let host = host.trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The host of `host[:port]`, normalised; None when it is not one.
fn host_of_authority(authority: &str) -> Option<String> {
    let parsed: Authority = authority.parse().ok()?;
    if parsed.as_str().contains('@') || parsed.host().is_empty() {
        return None;
    }
    Some(normalise_host(parsed.host()))
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_loopback_origin(origin: &str) -> bool {
    let Ok(uri) = origin.parse::<Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.path() == "/"
        && uri
            .authority()
            .and_then(|a| host_of_authority(a.as_str()))
            .is_some_and(|host| is_loopback_host(&host))
}

/// Whether `host` can be an entry of `allowed_hosts`: a bare host name or IP address.
pub(crate) fn is_valid_allowed_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .parse::<Authority>()
            .is_ok_and(|a| a.as_str() == host && a.port().is_none() && !host.contains('@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard_with(token: Option<&str>, allowed_hosts: &[&str], cors: &[&str]) -> ApiGuard {
        let mut config = ClientConfig::new(
            vec!["127.0.0.1:1".into()],
            cocoon_attest::PeerPolicyConfig::of(cocoon_attest::PolicyKind::DangerAny),
        );
        config.api_token = token.map(str::to_owned);
        config.allowed_hosts = allowed_hosts.iter().map(|h| h.to_string()).collect();
        config.cors_origins = cors.iter().map(|o| o.to_string()).collect();
        ApiGuard::new(&config)
    }

    fn status(guard: &ApiGuard, method: Method, headers: &[(&str, &str)]) -> u16 {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let uri: Uri = "/v1/chat/completions".parse().unwrap();
        match guard.admit(&method, &uri, &map) {
            Ok(()) => 200,
            Err(refusal) => refusal.into_response().status().as_u16(),
        }
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn with_a_token_the_dashboard_page_loads_without_it_and_its_data_does_not() {
        let guard = guard_with(Some("secret"), &[], &[]);
        let admitted = |method: Method, path: &str| {
            let uri: Uri = path.parse().unwrap();
            guard.admit(&method, &uri, &HeaderMap::new()).is_ok()
        };
        assert!(admitted(Method::GET, "/"));
        assert!(admitted(Method::HEAD, "/"));
        assert!(!admitted(Method::POST, "/"));
        assert!(!admitted(Method::GET, "/stats"));
        assert!(!admitted(Method::GET, "/v1/models"));
    }

    #[test]
    fn loopback_hosts_are_served_and_others_refused() {
        let guard = guard_with(None, &["cocoon.lan"], &[]);
        for host in [
            "127.0.0.1:10000",
            "127.0.0.1",
            "127.1.2.3:1",
            "localhost:10000",
            "LOCALHOST",
            "localhost.",
            "[::1]:10000",
            "[::1]",
            "cocoon.lan:8080",
            "Cocoon.LAN",
        ] {
            assert_eq!(
                status(&guard, Method::POST, &[("host", host), JSON]),
                200,
                "{host}"
            );
        }
        for host in [
            "evil.example",
            "evil.example:10000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "0.0.0.0:10000",
            "192.168.1.2:10000",
            "[::ffff:127.0.0.1]:10000",
            "user@127.0.0.1",
            "",
        ] {
            assert_eq!(
                status(&guard, Method::GET, &[("host", host)]),
                421,
                "{host}"
            );
        }
        assert_eq!(status(&guard, Method::GET, &[]), 421, "no Host at all");
    }

    #[test]
    fn foreign_origins_are_refused_and_loopback_or_listed_ones_served() {
        let guard = guard_with(None, &[], &["https://app.example"]);
        let host = ("host", "127.0.0.1:10000");
        for origin in [
            "http://localhost:3000",
            "http://127.0.0.1:10000",
            "https://[::1]",
            "https://app.example",
        ] {
            assert_eq!(
                status(&guard, Method::POST, &[host, ("origin", origin), JSON]),
                200,
                "{origin}"
            );
        }
        for origin in [
            "http://evil.example",
            "null",
            "http://localhost.evil.example",
            "file://",
            "https://app.example.evil",
        ] {
            assert_eq!(
                status(&guard, Method::POST, &[host, ("origin", origin), JSON]),
                403,
                "{origin}"
            );
        }
    }

    #[test]
    fn posts_must_be_json() {
        let guard = guard_with(None, &[], &[]);
        let host = ("host", "127.0.0.1:10000");
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            assert_eq!(
                status(&guard, Method::POST, &[host, ("content-type", ok)]),
                200
            );
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ] {
            assert_eq!(
                status(&guard, Method::POST, &[host, ("content-type", bad)]),
                415
            );
        }
        assert_eq!(status(&guard, Method::POST, &[host]), 415);
        assert_eq!(status(&guard, Method::GET, &[host]), 200);
    }

    #[test]
    fn with_a_token_only_its_bearers_are_served_from_anywhere() {
        let token = "0123456789abcdef0123";
        let guard = guard_with(Some(token), &[], &[]);
        let right = format!("Bearer {token}");
        let foreign = [
            ("host", "cocoon.example.com"),
            ("origin", "https://evil.example"),
        ];
        let mut with_token = foreign.to_vec();
        with_token.push(("authorization", &right));
        with_token.push(JSON);
        assert_eq!(status(&guard, Method::POST, &with_token), 200);
        let lowercase = format!("bearer {token}");
        assert_eq!(
            status(&guard, Method::GET, &[("authorization", &lowercase)]),
            200
        );
        // Loopback is no exemption once a token is set.
        assert_eq!(
            status(&guard, Method::POST, &[("host", "127.0.0.1:10000"), JSON]),
            401
        );
        for wrong in [
            "Bearer 0123456789abcdef012",
            "Bearer 0123456789abcdef01234",
            "Basic MDEyMzQ1Njc4OWFiY2RlZjAxMjM=",
            token,
            "Bearer",
        ] {
            assert_eq!(
                status(&guard, Method::POST, &[("authorization", wrong), JSON]),
                401,
                "{wrong}"
            );
        }
        // The token is checked before the body type, so a stranger learns nothing more.
        assert_eq!(status(&guard, Method::POST, &[("host", "127.0.0.1")]), 401);
        assert_eq!(
            status(&guard, Method::POST, &[("authorization", &right)]),
            415
        );
    }

    #[test]
    fn allowed_hosts_entries_are_bare_names() {
        for good in ["cocoon.lan", "10.0.0.2", "[fe80::1]", "my-host"] {
            assert!(is_valid_allowed_host(good), "{good}");
        }
        for bad in [
            "",
            "http://cocoon.lan",
            "cocoon.lan:80",
            "a@b",
            "cocoon.lan/x",
            "a b",
        ] {
            assert!(!is_valid_allowed_host(bad), "{bad}");
        }
    }
}
