//! DCAP verification of TDX quotes against Intel collateral held locally (no network at
//! verify time), with a TCB policy, an allow-list of root key ids and a result cache.
//!
//! The cryptography is dcap-qvl's: the collateral signatures and certificate chains up to
//! the root CA, the CRLs, the QE report, the quote signature, TCB level matching and the TD
//! attribute checks (debug TDs are refused). This module chooses the collateral, turns
//! dcap-qvl's verdict into typed errors, applies our policy on top, and caches successes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use dcap_qvl::configs::RingConfig;
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::{QuoteCollateralV3, QuotePolicy};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256, Sha384};

mod collateral;

use crate::cache::LruCache;
use crate::tdx::{parse_tdx_quote_full, ParsedQuote, QuoteError};
use collateral::{
    check_collateral_dates, from_unix_secs, rfc3339, unix_secs, CollateralFile, CollateralStore,
    DirectoryStore,
};

/// Root key id of Intel's production SGX/TDX root CA ("Intel SGX Root CA", the one
/// embedded in dcap-qvl): SHA-384 of its 65-byte uncompressed P-256 public key. See
/// [`root_key_id`] for the exact definition.
pub const INTEL_ROOT_KEY_ID: [u8; 48] = [
    0x46, 0xe4, 0x03, 0xbd, 0x34, 0xf0, 0x5a, 0x3f, 0x28, 0x17, 0xab, 0x9b, 0xad, 0xca, 0xac, 0xc7,
    0xff, 0xc9, 0x8e, 0x0f, 0x26, 0x10, 0x08, 0xcd, 0x30, 0xda, 0xe9, 0x36, 0xca, 0xce, 0x18, 0xd5,
    0xdc, 0xf5, 0x8e, 0xef, 0x31, 0x46, 0x36, 0x13, 0xde, 0x15, 0x70, 0xd5, 0x16, 0x20, 0x09, 0x93,
];

/// Default number of cached verification results. A proxy sees at most a few hundred
/// distinct peers per day and a result is ~1 KiB, so 1024 entries cost about 1 MiB and
/// keep every live peer warm.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

/// Which TCB verdicts are acceptable.
#[derive(Clone, Debug)]
pub struct TcbPolicy {
    /// TCB statuses accepted, as Intel spells them (`UpToDate`, `SWHardeningNeeded`,
    /// `OutOfDate`, ...), compared without regard to ASCII case. `Revoked` is refused by
    /// dcap-qvl whatever this list says.
    pub accepted_statuses: Vec<String>,
    /// `None`: any advisory ids are accepted for an accepted status. `Some(list)`: every
    /// advisory id of the quote's TCB level (platform, QE and, for TDX 1.5, the current TCB)
    /// must be in the list.
    pub allowed_advisory_ids: Option<Vec<String>>,
}

impl Default for TcbPolicy {
    /// Only `UpToDate`: anything weaker means the platform owner has a patch to apply, and a
    /// peer that wants to accept that must say so in its configuration.
    fn default() -> Self {
        TcbPolicy {
            accepted_statuses: vec!["UpToDate".to_string()],
            allowed_advisory_ids: None,
        }
    }
}

/// Where the verifier finds Intel collateral (TCB info, QE identity, CRLs and their
/// issuer chains).
// A source is built once per verifier and consumed by `DcapVerifier::new`, so the size of
// `Fixed` costs nothing, and boxing it would make every caller write `Box::new`.
#[allow(clippy::large_enum_variant)]
pub enum CollateralSource {
    /// Every `*.json` file in the directory is a [`QuoteCollateralV3`] in dcap-qvl's JSON
    /// format (binary fields hex-encoded, as in dcap-qvl's `sample/` files). For each quote
    /// the file whose TCB info FMSPC equals the FMSPC in the quote's PCK certificate is used;
    /// when several match, the newest one valid at `now` wins. Files are read lazily, kept
    /// parsed, and re-read when their modification time or length changes.
    Directory(PathBuf),
    /// One collateral bundle used for every quote.
    Fixed(QuoteCollateralV3),
}

/// What a successful verification establishes.
#[derive(Clone, Debug, Serialize)]
pub struct VerifiedQuote {
    /// The quote's facts, now backed by Intel's signatures.
    pub quote: ParsedQuote,
    /// The TCB status dcap-qvl computed (platform and QE converged), e.g. `UpToDate`.
    pub tcb_status: String,
    /// Advisory ids attached to that status.
    pub advisory_ids: Vec<String>,
    /// [`crate::tdx::TdxMeasurements::image_hash`] of the quote's measurements.
    #[serde(serialize_with = "crate::tdx::serialize_hex")]
    pub image_hash: [u8; 32],
    /// Earliest expiry among the collateral pieces used (TCB info, QE identity, CRLs and
    /// every certificate of the verified chains); the result must not be trusted after it.
    #[serde(serialize_with = "serialize_unix_secs")]
    pub valid_until: SystemTime,
}

fn serialize_unix_secs<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(unix_secs(*time))
}

/// Why a quote was not accepted.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone)]
pub enum DcapError {
    /// The bytes are not a readable TDX quote.
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// No collateral for the quote's platform: none configured for its FMSPC, or the
    /// collateral directory could not be read.
    #[error("no collateral for this quote: {0}")]
    NoCollateral(String),
    /// A piece of the collateral (or a certificate it or the quote carries) expired before
    /// `now`; fresh collateral must be fetched from Intel PCS or a PCCS.
    #[error("collateral expired: {piece} expired at {}, now is {}", rfc3339(*.expired_at), rfc3339(*.now))]
    CollateralExpired {
        /// Which piece: `TCB info`, `QE identity`, `root CA CRL`, `PCK CRL`, or a certificate
        /// named by its subject.
        piece: String,
        /// When it expired.
        expired_at: SystemTime,
        /// The verification time.
        now: SystemTime,
    },
    /// A piece of the collateral is not valid yet at `now` (a clock behind, or collateral
    /// from the future).
    #[error("collateral not yet valid: {piece} is valid from {}, now is {}", rfc3339(*.valid_from), rfc3339(*.now))]
    CollateralNotYetValid {
        /// Which piece, named as in [`DcapError::CollateralExpired`].
        piece: String,
        /// When it becomes valid.
        valid_from: SystemTime,
        /// The verification time.
        now: SystemTime,
    },
    /// dcap-qvl refused the quote: a bad signature anywhere (quote, QE report, collateral),
    /// a broken or revoked certificate chain, a QE that does not match its identity, a TD
    /// with debug or migration enabled, or any other verification failure. The text is
    /// dcap-qvl's.
    #[error("quote verification failed: {0}")]
    SignatureInvalid(String),
    /// The platform's TCB status is not in [`TcbPolicy::accepted_statuses`] (or is
    /// `Revoked`, which is never accepted).
    #[error("TCB status {status} not accepted (accepted: {accepted:?})")]
    TcbStatusNotAccepted {
        /// The quote's TCB status.
        status: String,
        /// What the policy accepts.
        accepted: Vec<String>,
    },
    /// The platform's TCB is below every level the TCB info lists (Intel QVL's
    /// `TCB_NOT_SUPPORTED`): not even `OutOfDate` can be assigned, so no policy accepts it.
    #[error("platform TCB not supported by the collateral: {0}")]
    TcbNotSupported(String),
    /// The quote's TCB level carries advisory ids outside [`TcbPolicy::allowed_advisory_ids`];
    /// the list holds the ones not allowed.
    #[error("advisory ids not allowed: {0:?}")]
    AdvisoryNotAllowed(Vec<String>),
    /// The quote chains to a root CA whose key id is not in the allow-list.
    #[error("root CA key id is not in the allow-list")]
    RootKeyNotAllowed,
    /// The root CA given to [`DcapVerifier::with_root_ca`] is not a parsable certificate.
    #[error("invalid root CA certificate: {0}")]
    InvalidRootCa(String),
}

/// The root key id of a root CA certificate (DER): SHA-384 over the contents of the
/// certificate's `subjectPublicKey` BIT STRING — for Intel's P-256 root, the 65-byte
/// uncompressed point `04 ‖ X ‖ Y` — not over the whole SubjectPublicKeyInfo. This is the
/// `root_key_id` of Intel's QVL appraisal claims and of dcap-qvl's `QuoteClaims`, so ids
/// can be copied from either.
pub fn root_key_id(root_ca_der: &[u8]) -> Result<[u8; 48], DcapError> {
    let (_, cert) = x509_parser::parse_x509_certificate(root_ca_der)
        .map_err(|e| DcapError::InvalidRootCa(e.to_string()))?;
    Ok(Sha384::digest(&cert.public_key().subject_public_key.data).into())
}

/// Reads one collateral file in dcap-qvl's JSON format.
pub fn load_collateral_json(path: &Path) -> Result<QuoteCollateralV3, DcapError> {
    let bytes = std::fs::read(path)
        .map_err(|e| DcapError::NoCollateral(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| DcapError::NoCollateral(format!("{}: {e}", path.display())))
}

/// Verifies TDX quotes; cheap to share behind an `Arc`, safe to call from many threads.
pub struct DcapVerifier {
    qvl: QuoteVerifier<RingConfig>,
    /// Key id of the configured root CA, or why it could not be computed.
    root_key_id: Result<[u8; 48], DcapError>,
    allowed_root_key_ids: Vec<[u8; 48]>,
    collateral: CollateralStore,
    tcb: TcbPolicy,
    cache: Mutex<LruCache<VerifiedQuote>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for DcapVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let collateral = match &self.collateral {
            CollateralStore::Fixed(file) => format!("fixed (FMSPC {:?})", file.fmspc),
            CollateralStore::Directory(store) => format!("directory {}", store.dir.display()),
        };
        f.debug_struct("DcapVerifier")
            .field("root_key_id", &self.root_key_id.as_ref().map(hex::encode))
            .field(
                "allowed_root_key_ids",
                &self
                    .allowed_root_key_ids
                    .iter()
                    .map(hex::encode)
                    .collect::<Vec<_>>(),
            )
            .field("collateral", &collateral)
            .field("tcb", &self.tcb)
            .field("cache_stats", &self.cache_stats())
            .finish_non_exhaustive()
    }
}

impl DcapVerifier {
    /// A verifier trusting Intel's production root CA only.
    pub fn new(source: CollateralSource, tcb: TcbPolicy) -> Self {
        let collateral = match source {
            CollateralSource::Directory(dir) => {
                CollateralStore::Directory(DirectoryStore::new(dir))
            }
            CollateralSource::Fixed(collateral) => {
                CollateralStore::Fixed(Arc::new(CollateralFile::new(collateral)))
            }
        };
        DcapVerifier {
            qvl: QuoteVerifier::new_prod().with_config::<RingConfig>(),
            root_key_id: Ok(INTEL_ROOT_KEY_ID),
            allowed_root_key_ids: vec![INTEL_ROOT_KEY_ID],
            collateral,
            tcb,
            cache: Mutex::new(LruCache::new(DEFAULT_CACHE_CAPACITY)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Trusts `root_ca_der` instead of Intel's root (tests, private PKIs). The root key id
    /// allow-list is left alone, so with the default list a custom root is still refused
    /// ([`DcapError::RootKeyNotAllowed`]) until its id is allowed too.
    pub fn with_root_ca(mut self, root_ca_der: Vec<u8>) -> Self {
        self.root_key_id = root_key_id(&root_ca_der);
        self.qvl = QuoteVerifier::<RingConfig>::new_with_config(root_ca_der);
        self
    }

    /// The Intel root key id allow-list: a quote is accepted only if the root CA it chains
    /// to has one of these ids (see [`root_key_id`] for the definition: SHA-384 of the root's
    /// raw public key). The default is `[INTEL_ROOT_KEY_ID]`, so a verifier pointed at any
    /// other root refuses every quote unless that root's id is listed here.
    pub fn with_allowed_root_key_ids(mut self, ids: Vec<[u8; 48]>) -> Self {
        self.allowed_root_key_ids = ids;
        self
    }

    /// How many successful verifications to remember (default
    /// [`DEFAULT_CACHE_CAPACITY`]); `0` disables the cache.
    pub fn with_cache_capacity(mut self, entries: usize) -> Self {
        self.cache = Mutex::new(LruCache::new(entries));
        self
    }

    /// Verifies `raw_quote` as of `now`, which decides every validity question (collateral,
    /// certificates, CRLs, cache entries); the system clock is never read.
    ///
    /// A success is cached under SHA-256 of the quote until the collateral's earliest
    /// expiry; failures are not cached, so refreshed collateral takes effect on the next
    /// attempt without a restart. A cached success is not re-checked against collateral that changes later
    /// within its window; a change seen by a later cache miss clears the cache.
    pub fn verify(&self, raw_quote: &[u8], now: SystemTime) -> Result<VerifiedQuote, DcapError> {
        let key: [u8; 32] = Sha256::digest(raw_quote).into();
        if let Some(hit) = lock(&self.cache).get(&key, now) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let (verified, valid_from) = self.verify_uncached(raw_quote, now)?;
        lock(&self.cache).insert(key, verified.clone(), valid_from, verified.valid_until);
        Ok(verified)
    }

    /// `(hits, misses)` of the result cache since construction.
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The full verification; returns the result and the earliest time it is valid from.
    fn verify_uncached(
        &self,
        raw_quote: &[u8],
        now: SystemTime,
    ) -> Result<(VerifiedQuote, SystemTime), DcapError> {
        let (parsed, quote) = parse_tdx_quote_full(raw_quote)?;
        // Refuse an unlisted root before spending a millisecond on signatures.
        let root_key_id = self.root_key_id.clone()?;
        if !self.allowed_root_key_ids.contains(&root_key_id) {
            return Err(DcapError::RootKeyNotAllowed);
        }

        let quote_fmspc = dcap_qvl::intel::quote_fmspc(&quote)
            .ok()
            .map(hex::encode_upper);
        let (file, collateral_changed) = match &self.collateral {
            CollateralStore::Fixed(file) => (file.clone(), false),
            CollateralStore::Directory(store) => store.select(quote_fmspc.as_deref(), now)?,
        };
        if collateral_changed {
            // Results verified against replaced collateral must be judged again.
            lock(&self.cache).clear();
        }
        if let (Some(quote_fmspc), Some(file_fmspc)) = (&quote_fmspc, &file.fmspc) {
            if !quote_fmspc.eq_ignore_ascii_case(file_fmspc) {
                return Err(DcapError::NoCollateral(format!(
                    "the collateral is for FMSPC {file_fmspc}, the quote's platform is {quote_fmspc}"
                )));
            }
        }
        // dcap-qvl reports expiry as an untyped message; looking at the dates first gives
        // the caller a typed answer. This reads unverified dates, which is fine: it can only
        // turn an acceptance into a refusal, never the other way round.
        check_collateral_dates(&file.collateral, &quote, now)?;

        let now_secs = unix_secs(now);
        let claims = self
            .qvl
            .verify_with_policy(
                raw_quote,
                &file.collateral,
                now_secs,
                // Policy is ours (below); dcap-qvl only verifies and reports.
                &QuotePolicy::claims_only(now_secs),
            )
            .map_err(|e| self.classify_qvl_error(&e.to_string(), &format!("{e:#}")))?;

        // Defence in depth: the id dcap-qvl derived from the root it actually used.
        let verified_root: Option<[u8; 48]> =
            claims.platform.root_key_id.as_slice().try_into().ok();
        if !verified_root.is_some_and(|id| self.allowed_root_key_ids.contains(&id)) {
            return Err(DcapError::RootKeyNotAllowed);
        }

        let tcb_status = claims.tcb.status.to_string();
        if !self
            .tcb
            .accepted_statuses
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&tcb_status))
        {
            return Err(DcapError::TcbStatusNotAccepted {
                status: tcb_status,
                accepted: self.tcb.accepted_statuses.clone(),
            });
        }

        // The converged verdict's advisories, plus those of a TDX 1.5 TD's current TCB,
        // which dcap-qvl keeps apart.
        let mut advisory_ids = claims.tcb.advisory_ids.clone();
        for id in claims
            .platform
            .current_tcb_level
            .iter()
            .flat_map(|level| &level.advisory_ids)
        {
            if !advisory_ids.contains(id) {
                advisory_ids.push(id.clone());
            }
        }
        check_advisories(&self.tcb, &advisory_ids)?;

        let image_hash = parsed.measurements.image_hash();
        let verified = VerifiedQuote {
            quote: parsed,
            tcb_status,
            advisory_ids,
            image_hash,
            valid_until: from_unix_secs(claims.earliest_expiration_date),
        };
        Ok((verified, from_unix_secs(claims.latest_issue_date)))
    }
}

impl DcapVerifier {
    /// Turns dcap-qvl's untyped refusal into our error. dcap-qvl says "no" with a message;
    /// the two TCB verdicts it hard-codes are recognised by their exact text, everything
    /// else is [`DcapError::SignatureInvalid`]. Misrecognising a message can only pick the
    /// wrong refusal, never accept.
    ///
    /// `message` is the outermost message, `chain` the whole context chain.
    fn classify_qvl_error(&self, message: &str, chain: &str) -> DcapError {
        if message == "TCB status is invalid: Revoked" {
            DcapError::TcbStatusNotAccepted {
                status: "Revoked".to_string(),
                accepted: self.tcb.accepted_statuses.clone(),
            }
        } else if message == "No matching TCB level found"
            || message.contains("is below minimum required from TDX module TCB levels")
        {
            DcapError::TcbNotSupported(chain.to_string())
        } else {
            DcapError::SignatureInvalid(chain.to_string())
        }
    }
}

/// Refuses advisory ids outside the policy's allow-list, naming every one refused.
fn check_advisories(tcb: &TcbPolicy, advisory_ids: &[String]) -> Result<(), DcapError> {
    let Some(allowed) = &tcb.allowed_advisory_ids else {
        return Ok(());
    };
    let refused: Vec<String> = advisory_ids
        .iter()
        .filter(|id| !allowed.iter().any(|a| a.eq_ignore_ascii_case(id)))
        .cloned()
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(DcapError::AdvisoryNotAllowed(refused))
    }
}

/// Locks a mutex, taking the data of a poisoned one: the cache and the file table stay
/// consistent across a panic elsewhere (every update is a single insert or remove).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisory_allow_list() {
        let ids = vec!["INTEL-SA-00837".to_string(), "INTEL-SA-00960".to_string()];
        let mut tcb = TcbPolicy::default();
        assert!(check_advisories(&tcb, &ids).is_ok());
        tcb.allowed_advisory_ids = Some(vec!["intel-sa-00837".to_string()]);
        match check_advisories(&tcb, &ids) {
            Err(DcapError::AdvisoryNotAllowed(refused)) => assert_eq!(refused, ["INTEL-SA-00960"]),
            other => panic!("expected AdvisoryNotAllowed, got {other:?}"),
        }
        tcb.allowed_advisory_ids = Some(Vec::new());
        assert!(check_advisories(&tcb, &[]).is_ok());
        assert!(matches!(
            check_advisories(&tcb, &ids),
            Err(DcapError::AdvisoryNotAllowed(refused)) if refused == ids
        ));
    }
}
