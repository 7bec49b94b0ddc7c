//! Fetching DCAP collateral from a PCCS (or Intel's PCS) over HTTP(S), off the handshake path.
//!
//! Verification never touches the network: it reads collateral from a directory. The
//! [`CollateralFetcher`] fills that directory — when a handshake found no usable collateral for
//! a quote's platform (FMSPC), and again before fetched collateral expires — so the next
//! attempt (peers reconnect with backoff) verifies offline.
//!
//! Requests follow the PCS v4 API: `sgx/certification/v4/pckcrl`, `…/rootcacrl`,
//! `tdx/certification/v4/tcb` and `tdx/certification/v4/qe/identity`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use cocoon_net::http_client::HttpClient;
use dcap_qvl::QuoteCollateralV3;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::policy::AttestError;

/// A PCCS request that takes longer than this fails (the next handshake retries).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Fetched collateral is refreshed this long before its earliest expiry.
const REFRESH_AHEAD: Duration = Duration::from_secs(24 * 3600);
/// The same platform is not fetched again within this time after a failure.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// Largest response accepted (CRLs and TCB info are tens of kilobytes).
const MAX_RESPONSE: usize = 4 << 20;

fn fetch_error(message: impl Into<String>) -> AttestError {
    AttestError::Collateral(message.into())
}

/// A minimal HTTP(S) GET client for one PCCS base URL.
#[derive(Clone, Debug)]
pub struct PccsClient {
    http: HttpClient,
}

struct Response {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

#[derive(Deserialize)]
struct TcbInfoResponse<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: &'a serde_json::value::RawValue,
    signature: String,
}

#[derive(Deserialize)]
struct QeIdentityResponse<'a> {
    #[serde(rename = "enclaveIdentity", borrow)]
    enclave_identity: &'a serde_json::value::RawValue,
    signature: String,
}

impl PccsClient {
    /// A client for `url` (e.g. `https://pccs.example:8081` or Intel's
    /// `https://api.trustedservices.intel.com`). HTTPS trusts the usual web roots plus
    /// `extra_ca_pem` (a PCCS often has its own CA).
    pub fn new(url: &str, extra_ca_pem: Option<&[u8]>) -> Result<PccsClient, AttestError> {
        let extra = match extra_ca_pem {
            Some(pem) => parse_pem_certs(pem)?,
            None => Vec::new(),
        };
        let mut http = HttpClient::new(url, &extra, REQUEST_TIMEOUT, MAX_RESPONSE)
            .map_err(|e| AttestError::Config(format!("pccs_url: {e}")))?;
        // Accept base URLs given with or without the API path, as PCCS docs show both.
        let base_path = http
            .base_path()
            .trim_end_matches("/sgx/certification/v4")
            .trim_end_matches("/tdx/certification/v4")
            .to_string();
        http.set_base_path(&base_path);
        Ok(PccsClient { http })
    }

    async fn get(&self, path_and_query: &str) -> Result<Response, AttestError> {
        let response = self
            .http
            .get(path_and_query, &[])
            .await
            .map_err(|e| fetch_error(format!("PCCS: {e}")))?;
        Ok(Response {
            headers: response.headers,
            body: response.body,
        })
    }

    /// Fetches the collateral a quote needs: its platform (FMSPC) and PCK CA are read from the
    /// PCK certificate chain inside the quote.
    pub async fn fetch(
        &self,
        raw_quote: &[u8],
    ) -> Result<(String, QuoteCollateralV3), AttestError> {
        let quote = dcap_qvl::quote::Quote::parse(raw_quote)
            .map_err(|e| fetch_error(format!("quote: {e}")))?;
        let fmspc = hex::encode_upper(
            dcap_qvl::intel::quote_fmspc(&quote).map_err(|e| fetch_error(format!("FMSPC: {e}")))?,
        );
        let chain = dcap_qvl::intel::extract_cert_chain(&quote)
            .map_err(|e| fetch_error(format!("PCK chain: {e}")))?;
        let leaf = chain
            .first()
            .ok_or_else(|| fetch_error("quote carries no PCK certificate"))?;
        let ca = dcap_qvl::intel::pck_ca(leaf)
            .map_err(|e| fetch_error(format!("PCK CA: {e}")))?
            .as_id_str();

        let pck_crl = self
            .get(&format!(
                "/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"
            ))
            .await?;
        let tcb = self
            .get(&format!(
                "/tdx/certification/v4/tcb?fmspc={fmspc}&update=standard"
            ))
            .await?;
        let qe = self
            .get("/tdx/certification/v4/qe/identity?update=standard")
            .await?;
        let root_crl = self.get("/sgx/certification/v4/rootcacrl").await?;

        let tcb_body: TcbInfoResponse<'_> = serde_json::from_slice(&tcb.body)
            .map_err(|e| fetch_error(format!("TCB info JSON: {e}")))?;
        let qe_body: QeIdentityResponse<'_> = serde_json::from_slice(&qe.body)
            .map_err(|e| fetch_error(format!("QE identity JSON: {e}")))?;
        let collateral = QuoteCollateralV3 {
            pck_crl_issuer_chain: header(&pck_crl, &["SGX-PCK-CRL-Issuer-Chain"])?,
            // A PCCS serves the root CA CRL hex-encoded; Intel's PCS as DER.
            root_ca_crl: match std::str::from_utf8(&root_crl.body)
                .ok()
                .and_then(|t| hex::decode(t.trim()).ok())
            {
                Some(der) => der,
                None => root_crl.body.clone(),
            },
            pck_crl: pck_crl.body.clone(),
            tcb_info_issuer_chain: header(
                &tcb,
                &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
            )?,
            // The signature covers the exact bytes of the tcbInfo object: keep them raw.
            tcb_info: tcb_body.tcb_info.get().to_string(),
            tcb_info_signature: hex::decode(&tcb_body.signature)
                .map_err(|e| fetch_error(format!("TCB info signature: {e}")))?,
            qe_identity_issuer_chain: header(&qe, &["SGX-Enclave-Identity-Issuer-Chain"])?,
            qe_identity: qe_body.enclave_identity.get().to_string(),
            qe_identity_signature: hex::decode(&qe_body.signature)
                .map_err(|e| fetch_error(format!("QE identity signature: {e}")))?,
            pck_certificate_chain: None,
        };
        Ok((fmspc, collateral))
    }
}

fn header(response: &Response, names: &[&str]) -> Result<String, AttestError> {
    let value = names
        .iter()
        .find_map(|name| response.headers.get(*name))
        .ok_or_else(|| fetch_error(format!("PCCS response lacks the {} header", names[0])))?;
    let text = value
        .to_str()
        .map_err(|_| fetch_error("issuer chain header is not text"))?;
    urlencoding::decode(text)
        .map(|decoded| decoded.into_owned())
        .map_err(|e| fetch_error(format!("issuer chain header: {e}")))
}

fn parse_pem_certs(pem: &[u8]) -> Result<Vec<Vec<u8>>, AttestError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| AttestError::Config("PCCS CA file is not PEM text".into()))?;
    let mut certs = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let body = block
            .split("-----END CERTIFICATE-----")
            .next()
            .unwrap_or_default();
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        certs.push(
            base64_decode(&b64)
                .ok_or_else(|| AttestError::Config("PCCS CA file: bad base64".into()))?,
        );
    }
    if certs.is_empty() {
        return Err(AttestError::Config(
            "PCCS CA file holds no certificate".into(),
        ));
    }
    Ok(certs)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte)? as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The most platforms (FMSPCs) a fetcher keeps track of. A real fleet has a handful; the
/// FMSPC comes from a quote nobody has verified yet (its collateral is what is missing), so
/// without a bound anyone could grow the map with invented ones.
pub const MAX_KNOWN_PLATFORMS: usize = 64;

/// One platform a fetcher knows of.
#[derive(Debug)]
struct Platform {
    /// The last quote seen from it (needed to fetch again).
    quote: Vec<u8>,
    /// When it may be fetched next.
    due: tokio::time::Instant,
    /// Whether its last fetch succeeded.
    fetched: bool,
}

/// The platforms a fetcher refreshes, bounded by [`MAX_KNOWN_PLATFORMS`]. Only platforms
/// whose collateral the PCCS actually served are kept and refreshed; a failed one is held just
/// long enough to stop it being fetched again before its retry time, then forgotten (a
/// handshake that still needs it asks again), and it is the first to go when the map is full.
#[derive(Debug, Default)]
struct KnownPlatforms(HashMap<String, Platform>);

impl KnownPlatforms {
    /// Whether a request for `fmspc` should be fetched now.
    fn should_fetch(&self, fmspc: &str, now: tokio::time::Instant) -> bool {
        self.0.get(fmspc).is_none_or(|platform| platform.due <= now)
    }

    /// Records the outcome of a fetch. When the map is full a failed platform makes room; if
    /// none has failed, a new platform is not kept (its collateral was written all the same; it
    /// is just not refreshed ahead of time).
    fn record(&mut self, fmspc: String, platform: Platform) {
        if !self.0.contains_key(&fmspc) && self.0.len() >= MAX_KNOWN_PLATFORMS {
            let failed = self
                .0
                .iter()
                .filter(|(_, known)| !known.fetched)
                .min_by_key(|(_, known)| known.due)
                .map(|(key, _)| key.clone());
            match failed {
                Some(key) => {
                    self.0.remove(&key);
                }
                None => {
                    tracing::warn!(
                        fmspc,
                        max = MAX_KNOWN_PLATFORMS,
                        "too many platforms to refresh; this one is not tracked"
                    );
                    return;
                }
            }
        }
        self.0.insert(fmspc, platform);
    }

    /// The fetched platforms due for a refresh (with their quotes); failed platforms past their
    /// retry time are forgotten.
    fn take_due(&mut self, now: tokio::time::Instant) -> Vec<(String, Vec<u8>)> {
        self.0
            .retain(|_, platform| platform.fetched || platform.due > now);
        self.0
            .iter()
            .filter(|(_, platform)| platform.due <= now)
            .map(|(fmspc, platform)| (fmspc.clone(), platform.quote.clone()))
            .collect()
    }
}

/// Keeps a collateral directory supplied from a PCCS. Handshakes that lack collateral send
/// the quote here (never waiting for it); fetched collateral is written as
/// `<FMSPC>-<ca>.json` (atomically) and refreshed a day before it expires.
#[derive(Debug)]
pub struct CollateralFetcher {
    client: PccsClient,
    dir: PathBuf,
    requests: mpsc::Receiver<Vec<u8>>,
}

/// The handshake side of a [`CollateralFetcher`]: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct FetchRequests(mpsc::Sender<Vec<u8>>);

impl FetchRequests {
    /// Asks for collateral for this quote's platform; dropped when the queue is full.
    pub fn request(&self, quote: &[u8]) {
        let _ = self.0.try_send(quote.to_vec());
    }
}

impl CollateralFetcher {
    /// A fetcher for `client` filling `dir`, and the handle handshakes use to ask it.
    pub fn new(client: PccsClient, dir: PathBuf) -> (CollateralFetcher, FetchRequests) {
        let (sender, requests) = mpsc::channel(64);
        (
            CollateralFetcher {
                client,
                dir,
                requests,
            },
            FetchRequests(sender),
        )
    }

    /// Fetches one quote's collateral into the directory now; returns the file written.
    pub async fn fetch_now(&self, quote: &[u8]) -> Result<PathBuf, AttestError> {
        let (fmspc, collateral) = self.client.fetch(quote).await?;
        let json =
            serde_json::to_vec_pretty(&collateral).map_err(|e| fetch_error(e.to_string()))?;
        let path = self.dir.join(format!("{fmspc}.json"));
        let temporary = self.dir.join(format!(".{fmspc}.json.tmp"));
        std::fs::write(&temporary, json)
            .map_err(|e| fetch_error(format!("write {}: {e}", temporary.display())))?;
        std::fs::rename(&temporary, &path)
            .map_err(|e| fetch_error(format!("rename to {}: {e}", path.display())))?;
        tracing::info!(fmspc, path = %path.display(), "fetched DCAP collateral");
        Ok(path)
    }

    /// Serves fetch requests and refreshes fetched collateral until `shutdown` drains.
    pub async fn run(mut self, shutdown: cocoon_net::Shutdown) {
        let mut known = KnownPlatforms::default();
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(quote) = request else { return };
                    let Ok(parsed) = dcap_qvl::quote::Quote::parse(&quote) else { continue };
                    let Ok(fmspc) = dcap_qvl::intel::quote_fmspc(&parsed).map(hex::encode_upper) else { continue };
                    if !known.should_fetch(&fmspc, tokio::time::Instant::now()) {
                        continue;
                    }
                    let platform = self.fetch_and_schedule(quote).await;
                    known.record(fmspc, platform);
                }
                _ = tick.tick() => {
                    for (fmspc, quote) in known.take_due(tokio::time::Instant::now()) {
                        let platform = self.fetch_and_schedule(quote).await;
                        known.record(fmspc, platform);
                    }
                }
                _ = shutdown.draining() => return,
            }
        }
    }

    async fn fetch_and_schedule(&self, quote: Vec<u8>) -> Platform {
        let now = tokio::time::Instant::now();
        match self.fetch_now(&quote).await {
            // Collateral lives about a month; refreshing daily keeps well ahead of expiry
            // without needing to parse every piece's nextUpdate here.
            Ok(_) => Platform {
                quote,
                due: now + REFRESH_AHEAD,
                fetched: true,
            },
            Err(error) => {
                tracing::warn!(%error, "collateral fetch failed; will retry");
                Platform {
                    quote,
                    due: now + RETRY_AFTER_FAILURE,
                    fetched: false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(now: tokio::time::Instant, fetched: bool) -> Platform {
        Platform {
            quote: vec![1; 16],
            due: now
                + if fetched {
                    REFRESH_AHEAD
                } else {
                    RETRY_AFTER_FAILURE
                },
            fetched,
        }
    }

    #[test]
    fn invented_platforms_cannot_grow_the_map() {
        let now = tokio::time::Instant::now();
        let mut known = KnownPlatforms::default();
        known.record("REAL".into(), platform(now, true));
        for i in 0..10_000 {
            known.record(format!("INVENTED{i}"), platform(now, false));
        }
        assert_eq!(known.0.len(), MAX_KNOWN_PLATFORMS);
        assert!(known.0.contains_key("REAL"), "a fetched platform is kept");
        // A failed one is not fetched again before its retry time...
        assert!(!known.should_fetch("INVENTED9999", now));
        // ...and afterwards forgotten, while the fetched one stays (not due yet).
        let later = now + RETRY_AFTER_FAILURE + Duration::from_secs(1);
        assert!(known.take_due(later).is_empty());
        assert_eq!(known.0.len(), 1);
        assert!(known.should_fetch("INVENTED9999", later));
        // A day on, the fetched one is due for its refresh.
        let due = known.take_due(now + REFRESH_AHEAD);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, "REAL");
    }

    #[test]
    fn a_map_full_of_fetched_platforms_keeps_them() {
        let now = tokio::time::Instant::now();
        let mut known = KnownPlatforms::default();
        for i in 0..MAX_KNOWN_PLATFORMS {
            known.record(format!("REAL{i}"), platform(now, true));
        }
        known.record("ONE_MORE".into(), platform(now, false));
        assert_eq!(known.0.len(), MAX_KNOWN_PLATFORMS);
        assert!(!known.0.contains_key("ONE_MORE"));
        // An update of a known platform is always recorded.
        known.record("REAL0".into(), platform(now, false));
        assert!(!known.0["REAL0"].fetched);
    }
}
