//! The operator dashboards' shared half: each daemon serves one self-contained HTML page at
//! `GET /` (its own `dashboard.html`, next to its code) that polls the same-origin `/stats`
//! JSON and draws it. This module splices the style and script every page shares
//! (`dashboard/common.css`, `dashboard/common.js`) into a page and answers it with headers that
//! let the page run nothing but its own inline code.
//!
//! The page is static: it carries no data, so serving it reveals nothing `/stats` does not.
//! Its Content-Security-Policy allows the page's exact inline `<style>` and `<script>` blocks
//! by their SHA-256 (computed here once, when the page is built), same-origin `fetch` and
//! nothing else: no other script, no frame, no form, no external font or image.

use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use sha2::{Digest, Sha256};

/// The style every page shares; a page asks for it with this marker inside its `<style>`.
const COMMON_CSS: &str = include_str!("dashboard/common.css");
/// The script every page shares; a page asks for it with this marker inside a `<script>`.
const COMMON_JS: &str = include_str!("dashboard/common.js");
const CSS_MARKER: &str = "/*@common.css*/";
const JS_MARKER: &str = "/*@common.js*/";

/// A built page and the policy that lets it run.
#[derive(Clone, Debug)]
pub struct Dashboard {
    html: Bytes,
    csp: HeaderValue,
}

impl Dashboard {
    /// Builds a page from its template: the shared style and script replace their markers, and
    /// every inline `<style>` and `<script>` block is allowed by its hash.
    pub fn new(template: &str) -> Dashboard {
        let html = template
            .replace(CSS_MARKER, COMMON_CSS)
            .replace(JS_MARKER, COMMON_JS);
        let styles = inline_hashes(&html, "<style>", "</style>");
        let scripts = inline_hashes(&html, "<script>", "</script>");
        let csp = format!(
            "default-src 'none'; script-src {scripts}; style-src {styles}; connect-src 'self'; \
             img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        Dashboard {
            html: Bytes::from(html),
            // Hashes are base64 and the rest is ASCII written here, so this never fails; the
            // fallback would only stop the page's scripts.
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        }
    }

    /// The page's HTML, as served.
    pub fn html(&self) -> &[u8] {
        &self.html
    }

    /// The Content-Security-Policy it is served with.
    pub fn content_security_policy(&self) -> &HeaderValue {
        &self.csp
    }

    /// The answer to `GET /`: the page, not cached, not sniffed, not framed.
    pub fn response(&self) -> http::Response<http_body_util::Full<Bytes>> {
        let mut response = http::Response::new(http_body_util::Full::new(self.html.clone()));
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(CONTENT_SECURITY_POLICY, self.csp.clone());
        headers.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            http::header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            http::header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        );
        response
    }
}

/// `'sha256-…'` of the text inside every `open`…`close` block of `html`, space-separated
/// (`'none'` when there is none), as CSP hashes inline code: the exact characters between the
/// tags.
fn inline_hashes(html: &str, open: &str, close: &str) -> String {
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(close) else { break };
        let digest = Sha256::digest(&body.as_bytes()[..end]);
        hashes.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &body[end + close.len()..];
    }
    if hashes.is_empty() {
        "'none'".to_string()
    } else {
        hashes.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inline_block_is_allowed_by_its_hash_and_nothing_else() {
        let page = Dashboard::new(
            "<style>/*@common.css*/</style><script>a()</script><p>x</p><script>b()</script>",
        );
        let html = std::str::from_utf8(page.html()).unwrap();
        assert!(html.contains(COMMON_CSS), "the shared style is spliced in");
        let csp = page.content_security_policy().to_str().unwrap();
        let hash = |text: &str| {
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text))
            )
        };
        assert!(csp.contains(&format!("script-src {} {};", hash("a()"), hash("b()"))));
        assert!(csp.contains(&format!("style-src {};", hash(COMMON_CSS))));
        assert!(csp.starts_with("default-src 'none';"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    }

    #[test]
    fn the_answer_carries_the_security_headers() {
        let page = Dashboard::new("<script>/*@common.js*/</script>");
        assert!(std::str::from_utf8(page.html())
            .unwrap()
            .contains(COMMON_JS));
        let response = page.response();
        let header = |name| response.headers().get(name).unwrap().to_str().unwrap();
        assert_eq!(header(CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(header(http::header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header(CACHE_CONTROL), "no-store");
        assert!(header(CONTENT_SECURITY_POLICY).contains("connect-src 'self'"));
    }
}
