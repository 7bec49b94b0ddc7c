//! Attestation policies: the decision, at handshake time, whether a peer's certificate proves
//! what this node requires.
//!
//! - `tdx`: the certificate must carry a real TDX quote that DCAP-verifies against Intel's
//!   collateral with an accepted TCB status, whose report data is SHA-512 of the claims naming
//!   the certificate's key, and whose measurements and image hash pass the allow-lists.
//! - `danger_fake_tdx` (in [`danger`]): the same binding and allow-lists over a fake quote.
//! - `sev_snp`: the certificate must carry AMD SEV-SNP evidence that verifies against the
//!   pinned AMD roots ([`crate::snp`]), bound to the claims the same way, whose MEASUREMENT
//!   and image hash (SHA-256 of it) pass the allow-lists.
//! - `danger_fake_snp` (in [`danger`]): the same binding and allow-lists over a fake report.
//! - `danger_any`: `cocoon-net`'s accept-any policy (no attestation).
//!
//! Any attesting policy may also demand GPUs ([`GpuRequirement`]): NVIDIA evidence verified
//! against NVIDIA's pinned root ([`crate::gpu`]), or, in [`danger`], fake GPU evidence; both
//! bound to the claims the CPU evidence vouches for and to the certificate's key.
//!
//! Any attesting policy may also demand a worker's model identity from its claims
//! ([`AllowLists::model_hashes`], [`AllowLists::weights_digests`] and the `require_` switches):
//! the hash of the model name it serves and the digest of the weights it loaded.

use std::sync::Arc;
use std::time::SystemTime;

use cocoon_net::{PeerIdentity, PeerPolicy, PolicyError};

use crate::cert::{certificate_claims, parse_certificate};
use crate::claims::UserClaims;
use crate::dcap::{DcapError, DcapVerifier};
use crate::gpu::{
    check_certificate_gpus, GpuError, GpuMeasurementPolicy, GpuVerifier, VerifiedGpu,
};
use crate::hex;
use crate::pccs::FetchRequests;
use crate::snp::{snp_image_hash, SnpError, SnpEvidence, SnpVerifier};
use crate::tdx::TdxMeasurements;

/// Why attestation failed (or could not be produced). Each refusal has its own variant so
/// operators and tests can tell them apart.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone)]
pub enum AttestError {
    /// This node cannot produce evidence (not a TD guest, configfs-tsm failed).
    #[error("TEE unavailable: {0}")]
    TeeUnavailable(String),
    /// A certificate could not be built.
    #[error("cannot build certificate: {0}")]
    Certificate(String),
    /// The certificate failed the checks every policy shares.
    #[error("certificate refused: {0}")]
    Rejected(PolicyError),
    /// The user claims are malformed or name another key.
    #[error("user claims: {0}")]
    Claims(String),
    /// The policy needs a quote and the certificate has none.
    #[error("certificate carries no quote, but the policy requires attestation")]
    MissingQuote,
    /// A fake quote was presented to the `tdx` policy.
    #[error("a fake quote is never accepted by the tdx policy")]
    FakeQuoteRefused,
    /// The `danger_fake_tdx` policy got something that is not a fake quote.
    #[error("not a fake quote ({0} bytes)")]
    NotAFakeQuote(usize),
    /// The quote's report data is not SHA-512 of this certificate's claims: the quote was made
    /// for another key.
    #[error("quote is not bound to this certificate (report data mismatch)")]
    ReportDataMismatch,
    /// DCAP verification failed.
    #[error("quote verification failed: {0}")]
    Dcap(#[from] DcapError),
    /// The policy needs SEV-SNP evidence and the certificate has none.
    #[error("certificate carries no SEV-SNP evidence, but the policy requires it")]
    MissingSnpEvidence,
    /// SEV-SNP evidence was refused; the inner error says which check failed.
    #[error("SEV-SNP evidence refused: {0}")]
    Snp(#[from] SnpError),
    /// GPU evidence was missing or refused; the inner error says which check failed.
    #[error("GPU evidence refused: {0}")]
    Gpu(#[from] GpuError),
    /// The SNP MEASUREMENT is not in the allow-list (or the peer is not an SNP guest and the
    /// policy lists SNP measurements).
    #[error("SNP measurement {0} is not allowed")]
    SnpMeasurementNotAllowed(String),
    /// The image hash is not in the allow-list.
    #[error("image hash {0} is not allowed")]
    ImageHashNotAllowed(String),
    /// MRTD is not in the allow-list.
    #[error("MRTD {0} is not allowed")]
    MrtdNotAllowed(String),
    /// The RTMR set is not in the allow-list.
    #[error("RTMR set is not allowed")]
    RtmrNotAllowed,
    /// The policy requires a model hash (claims tag 3) and the peer's claims carry none.
    #[error("the peer's claims carry no model hash, but the policy requires one")]
    MissingModelHash,
    /// The model hash the peer's claims carry is not in the allow-list.
    #[error("model hash {0} is not allowed")]
    ModelHashNotAllowed(String),
    /// The policy requires a weights digest (claims tag 4) and the peer's claims carry none.
    #[error("the peer's claims carry no weights digest, but the policy requires one")]
    MissingWeightsDigest,
    /// The weights digest the peer's claims carry is not in the allow-list.
    #[error("weights digest {0} is not allowed")]
    WeightsDigestNotAllowed(String),
    /// The policy configuration is invalid.
    #[error("attestation config: {0}")]
    Config(String),
    /// Collateral could not be fetched from the PCCS.
    #[error("collateral fetch: {0}")]
    Collateral(String),
}

/// An image allow-list that can be replaced while the policy is in use: a client following
/// the root's `proxy_hashes`. Unlike the configured list, an empty one allows nothing.
#[derive(Clone, Debug, Default)]
pub struct LiveImageHashes(Arc<LiveInner>);

#[derive(Debug, Default)]
struct LiveInner {
    hashes: std::sync::RwLock<Vec<[u8; 32]>>,
    /// Bumped by every replacement, so users that cached what the list allowed can tell.
    generation: std::sync::atomic::AtomicU64,
}

impl LiveImageHashes {
    /// A list holding `hashes`.
    pub fn new(hashes: Vec<[u8; 32]>) -> LiveImageHashes {
        LiveImageHashes(Arc::new(LiveInner {
            hashes: std::sync::RwLock::new(hashes),
            generation: Default::default(),
        }))
    }

    /// The hashes allowed now.
    pub fn get(&self) -> Vec<[u8; 32]> {
        self.0
            .hashes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the list; handshakes from now on are checked against `hashes`.
    pub fn set(&self, hashes: Vec<[u8; 32]>) {
        *self.0.hashes.write().unwrap_or_else(|p| p.into_inner()) = hashes;
        self.0
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// How many times the list was replaced: what was checked against an older generation
    /// must be checked again.
    pub fn generation(&self) -> u64 {
        self.0.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Replaces the list (the root changed it) and closes those of `connections` whose peer
    /// attested an image no longer in it: dialled again, they are refused like any new peer.
    /// `peer` names what the peers are ("proxy"), for the logs.
    pub fn replace_and_close(
        &self,
        hashes: Vec<[u8; 32]>,
        connections: impl IntoIterator<Item = cocoon_net::ConnectionHandle>,
        peer: &str,
    ) {
        if hashes.is_empty() {
            tracing::warn!(
                "the root allows no {peer} image now: no {peer} connection will be trusted"
            );
        }
        self.set(hashes);
        for handle in connections {
            if let Some(image) = handle.peer().image_hash {
                if !self.contains(&image) {
                    tracing::warn!(remote = %handle.remote_addr(), image = %hex(&image), "the root no longer allows this {peer}'s image; closing its connection");
                    handle.close(&format!("the root no longer allows this {peer}'s image"));
                }
            }
        }
    }

    /// Whether `hash` is allowed.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.0
            .hashes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(hash)
    }
}

/// Allow-lists over measurements. An empty list allows everything of its kind.
#[derive(Clone, Debug, Default)]
pub struct AllowLists {
    /// Allowed image hashes.
    pub image_hashes: Vec<[u8; 32]>,
    /// When set, it replaces `image_hashes`, and may change while the policy is in use.
    pub live_image_hashes: Option<LiveImageHashes>,
    /// Allowed MRTD values.
    pub mrtd: Vec<[u8; 48]>,
    /// Allowed RTMR0..3 sets.
    pub rtmr_sets: Vec<[[u8; 48]; 4]>,
    /// Allowed SEV-SNP MEASUREMENTs.
    pub snp_measurements: Vec<[u8; 48]>,
    /// Allowed model hashes (claims tag 3: SHA-256 of the model name). Not empty: the claims
    /// must carry one of them.
    pub model_hashes: Vec<[u8; 32]>,
    /// The claims must carry a model hash, whichever (implied by a `model_hashes` list).
    pub require_model_hash: bool,
    /// Allowed weights digests (claims tag 4: SHA-256 of the weights file, or a dm-verity
    /// root). Not empty: the claims must carry one of them.
    pub weights_digests: Vec<[u8; 32]>,
    /// The claims must carry a weights digest, whichever (implied by a `weights_digests` list).
    pub require_weights_digest: bool,
}

/// What a peer's evidence measured: TDX registers or an SEV-SNP launch measurement.
// One value per handshake: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMeasurements {
    /// MRTD, RTMRs and the rest, from a TDX quote (or a fake one).
    Tdx(TdxMeasurements),
    /// MEASUREMENT from an SEV-SNP report (or a fake one).
    Snp([u8; 48]),
}

impl PeerMeasurements {
    /// The image hash: the reference's hash over the TDX registers, or SHA-256 of the SNP
    /// MEASUREMENT.
    pub fn image_hash(&self) -> [u8; 32] {
        match self {
            PeerMeasurements::Tdx(m) => m.image_hash(),
            PeerMeasurements::Snp(m) => snp_image_hash(m),
        }
    }
}

/// Checks one optional claim against its requirement: present when `required` or the list is
/// not empty, and on the list when it is not empty.
fn check_claim(
    claim: Option<&[u8; 32]>,
    allowed: &[[u8; 32]],
    required: bool,
    missing: AttestError,
    not_allowed: fn(String) -> AttestError,
) -> Result<(), AttestError> {
    match claim {
        None if required || !allowed.is_empty() => Err(missing),
        Some(value) if !allowed.is_empty() && !allowed.contains(value) => {
            Err(not_allowed(hex(value)))
        }
        _ => Ok(()),
    }
}

impl AllowLists {
    /// Checks the model identity in the peer's claims (which its evidence vouches for).
    fn check_model(&self, claims: &UserClaims) -> Result<(), AttestError> {
        check_claim(
            claims.model_hash.as_ref(),
            &self.model_hashes,
            self.require_model_hash,
            AttestError::MissingModelHash,
            AttestError::ModelHashNotAllowed,
        )?;
        check_claim(
            claims.weights_digest.as_ref(),
            &self.weights_digests,
            self.require_weights_digest,
            AttestError::MissingWeightsDigest,
            AttestError::WeightsDigestNotAllowed,
        )
    }

    /// Checks the lists of each kind; a list of another TEE's measurements refuses the peer
    /// (it cannot be on it).
    fn check(&self, measurements: &PeerMeasurements) -> Result<[u8; 32], AttestError> {
        let image_hash = measurements.image_hash();
        match measurements {
            PeerMeasurements::Tdx(m) => {
                if !self.mrtd.is_empty() && !self.mrtd.contains(&m.mrtd) {
                    return Err(AttestError::MrtdNotAllowed(hex(&m.mrtd)));
                }
                if !self.rtmr_sets.is_empty() && !self.rtmr_sets.contains(&m.rtmr) {
                    return Err(AttestError::RtmrNotAllowed);
                }
                if !self.snp_measurements.is_empty() {
                    return Err(AttestError::SnpMeasurementNotAllowed(
                        "none (the peer is a TDX guest)".into(),
                    ));
                }
            }
            PeerMeasurements::Snp(m) => {
                if !self.snp_measurements.is_empty() && !self.snp_measurements.contains(m) {
                    return Err(AttestError::SnpMeasurementNotAllowed(hex(m)));
                }
                if !self.mrtd.is_empty() {
                    return Err(AttestError::MrtdNotAllowed(
                        "none (the peer is an SEV-SNP guest)".into(),
                    ));
                }
                if !self.rtmr_sets.is_empty() {
                    return Err(AttestError::RtmrNotAllowed);
                }
            }
        }
        let allowed = match &self.live_image_hashes {
            Some(live) => live.contains(&image_hash),
            None => self.image_hashes.is_empty() || self.image_hashes.contains(&image_hash),
        };
        if !allowed {
            return Err(AttestError::ImageHashNotAllowed(hex(&image_hash)));
        }
        Ok(image_hash)
    }
}

enum Evidence {
    Tdx(Box<DcapVerifier>, Option<FetchRequests>),
    Fake,
    Snp(Box<SnpVerifier>),
    FakeSnp,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Evidence::Tdx(..) => "Tdx(DcapVerifier)",
            Evidence::Fake => "Fake",
            Evidence::Snp(_) => "Snp(SnpVerifier)",
            Evidence::FakeSnp => "FakeSnp",
        })
    }
}

/// The name of the policy that verifies TDX quotes with DCAP.
pub(crate) const TDX_POLICY: &str = "tdx";
/// The name of the policy that accepts fake quotes (development).
pub(crate) const FAKE_TDX_POLICY: &str = "danger_fake_tdx";
/// The name of the policy that verifies SEV-SNP evidence.
pub(crate) const SNP_POLICY: &str = "sev_snp";
/// The name of the policy that accepts fake SEV-SNP evidence (development).
pub(crate) const FAKE_SNP_POLICY: &str = "danger_fake_snp";

/// What a policy demands of a peer's GPUs: NVIDIA evidence through a verifier, or (built by
/// [`danger::fake_gpus`]) fake evidence; and which measurements.
#[derive(Debug)]
pub struct GpuRequirement {
    /// None: fake evidence only.
    verifier: Option<GpuVerifier>,
    measurements: GpuMeasurementPolicy,
}

impl GpuRequirement {
    /// NVIDIA GPUs, verified by `verifier`, whose measurements pass `measurements`.
    pub fn nvidia(verifier: GpuVerifier, measurements: GpuMeasurementPolicy) -> GpuRequirement {
        GpuRequirement {
            verifier: Some(verifier),
            measurements,
        }
    }
}

/// A policy that requires attestation (real or, in development, fake).
#[derive(Debug)]
pub struct AttestationPolicy {
    evidence: Evidence,
    allow: AllowLists,
    gpus: Option<GpuRequirement>,
}

/// The outcome of checking a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestedPeer {
    /// The certificate's key.
    pub public_key: [u8; 32],
    /// The peer's image hash.
    pub image_hash: [u8; 32],
    /// Its measurements.
    pub measurements: PeerMeasurements,
    /// TCB status from DCAP, the reported TCB of an SNP report ("fake" for fake evidence).
    pub tcb_status: String,
    /// The HPKE key for sealed requests its claims carry (workers that take them).
    pub sealing_key: Option<[u8; 32]>,
    /// The model hash its claims carry (SHA-256 of the model name a worker serves).
    pub model_hash: Option<[u8; 32]>,
    /// The weights digest its claims carry (SHA-256 of the weights file, or a dm-verity root).
    pub weights_digest: Option<[u8; 32]>,
    /// The peer's verified GPUs, when the policy demands GPUs (empty otherwise).
    pub gpus: Vec<VerifiedGpu>,
}

impl AttestationPolicy {
    /// The `tdx` policy: DCAP through `verifier`, then the allow-lists.
    pub fn tdx(verifier: DcapVerifier, allow: AllowLists) -> AttestationPolicy {
        AttestationPolicy {
            evidence: Evidence::Tdx(Box::new(verifier), None),
            allow,
            gpus: None,
        }
    }

    /// The `tdx` policy that asks a PCCS fetcher for collateral it lacks (the handshake
    /// still fails; the peer's next attempt finds the collateral).
    pub fn tdx_with_fetcher(
        verifier: DcapVerifier,
        allow: AllowLists,
        fetcher: FetchRequests,
    ) -> AttestationPolicy {
        AttestationPolicy {
            evidence: Evidence::Tdx(Box::new(verifier), Some(fetcher)),
            allow,
            gpus: None,
        }
    }

    /// The `sev_snp` policy: SEV-SNP evidence verified by `verifier`, then the allow-lists.
    pub fn sev_snp(verifier: SnpVerifier, allow: AllowLists) -> AttestationPolicy {
        AttestationPolicy {
            evidence: Evidence::Snp(Box::new(verifier)),
            allow,
            gpus: None,
        }
    }

    /// This policy, also demanding GPU evidence as `gpus` says.
    pub fn with_gpus(self, gpus: GpuRequirement) -> AttestationPolicy {
        AttestationPolicy {
            gpus: Some(gpus),
            ..self
        }
    }

    /// Checks a certificate at `now`, with a specific error for each way it can fail.
    pub fn check(&self, cert_der: &[u8], now: SystemTime) -> Result<AttestedPeer, AttestError> {
        let facts = parse_certificate(cert_der, now)?;
        let claims = certificate_claims(&facts)?;
        let tdx_quote = || facts.quote.as_deref().ok_or(AttestError::MissingQuote);
        let snp_evidence = || -> Result<SnpEvidence, AttestError> {
            let bytes = facts
                .snp_evidence
                .as_deref()
                .ok_or(AttestError::MissingSnpEvidence)?;
            Ok(SnpEvidence::decode(bytes)?)
        };
        let (report_data, measurements, tcb_status) = match &self.evidence {
            Evidence::Tdx(verifier, fetcher) => {
                let quote = tdx_quote()?;
                if crate::provider::danger::parse_fake_quote(quote).is_some() {
                    return Err(AttestError::FakeQuoteRefused);
                }
                let verified = match verifier.verify(quote, now) {
                    Ok(verified) => verified,
                    Err(error) => {
                        if let (Some(fetcher), true) = (fetcher, needs_collateral(&error)) {
                            fetcher.request(quote);
                        }
                        return Err(error.into());
                    }
                };
                (
                    verified.quote.report_data,
                    PeerMeasurements::Tdx(verified.quote.measurements),
                    verified.tcb_status,
                )
            }
            Evidence::Fake => {
                let quote = tdx_quote()?;
                let (report_data, measurements) = crate::provider::danger::parse_fake_quote(quote)
                    .ok_or(AttestError::NotAFakeQuote(quote.len()))?;
                (
                    report_data,
                    PeerMeasurements::Tdx(measurements),
                    "fake".to_string(),
                )
            }
            Evidence::Snp(verifier) => {
                let verified = verifier.verify_evidence(&snp_evidence()?)?;
                let report = verified.report;
                (
                    report.report_data,
                    PeerMeasurements::Snp(report.measurement),
                    format!("{} {}", verified.product_line, report.reported_tcb),
                )
            }
            Evidence::FakeSnp => {
                let report = crate::snp::danger::verify_fake(&snp_evidence()?)?;
                (
                    report.report_data,
                    PeerMeasurements::Snp(report.measurement),
                    "fake".to_string(),
                )
            }
        };
        if report_data != claims.report_data() {
            return Err(AttestError::ReportDataMismatch);
        }
        // The CPU evidence vouches for the claims; the claims for the GPU evidence.
        let gpus = match &self.gpus {
            Some(required) => check_certificate_gpus(
                required.verifier.as_ref(),
                &required.measurements,
                facts.gpu_evidence.as_deref(),
                claims.gpu_evidence_hash.as_ref(),
                &facts.public_key,
                now,
            )?,
            None => Vec::new(),
        };
        let image_hash = self.allow.check(&measurements)?;
        self.allow.check_model(&claims)?;
        Ok(AttestedPeer {
            public_key: facts.public_key,
            image_hash,
            measurements,
            tcb_status,
            sealing_key: claims.hpke_public_key,
            model_hash: claims.model_hash,
            weights_digest: claims.weights_digest,
            gpus,
        })
    }

    fn name(&self) -> &'static str {
        match self.evidence {
            Evidence::Tdx(..) => TDX_POLICY,
            Evidence::Fake => FAKE_TDX_POLICY,
            Evidence::Snp(_) => SNP_POLICY,
            Evidence::FakeSnp => FAKE_SNP_POLICY,
        }
    }
}

/// Whether a refusal would go away with fresh collateral.
fn needs_collateral(error: &DcapError) -> bool {
    matches!(
        error,
        DcapError::NoCollateral(_) | DcapError::CollateralExpired { .. }
    )
}

impl PeerPolicy for AttestationPolicy {
    fn name(&self) -> &'static str {
        AttestationPolicy::name(self)
    }

    fn verify_peer(&self, cert_der: &[u8], now: SystemTime) -> Result<PeerIdentity, PolicyError> {
        match self.check(cert_der, now) {
            Ok(peer) => Ok(PeerIdentity {
                public_key: peer.public_key,
                image_hash: Some(peer.image_hash),
                policy: AttestationPolicy::name(self),
                certificate: Default::default(),
            }),
            Err(AttestError::Rejected(error)) => Err(error),
            Err(error) => Err(PolicyError::Refused(error.to_string())),
        }
    }
}

/// Policies that prove nothing, for development.
pub mod danger {
    use super::*;

    /// The `danger_fake_tdx` policy: fake quotes, bound to the certificate like real ones, with
    /// the same allow-lists. Never accepts a real or missing quote.
    pub fn fake_tdx(allow: AllowLists) -> AttestationPolicy {
        tracing::warn!("danger: peer policy danger_fake_tdx accepts FAKE attestation");
        AttestationPolicy {
            evidence: Evidence::Fake,
            allow,
            gpus: None,
        }
    }

    /// The `danger_fake_snp` policy: fake SEV-SNP evidence, bound to the certificate like real
    /// evidence, with the same allow-lists. Never accepts real or missing evidence.
    pub fn fake_snp(allow: AllowLists) -> AttestationPolicy {
        tracing::warn!("danger: peer policy danger_fake_snp accepts FAKE SEV-SNP attestation");
        AttestationPolicy {
            evidence: Evidence::FakeSnp,
            allow,
            gpus: None,
        }
    }

    /// Fake GPU evidence ([`crate::gpu::danger`]), bound to the certificate like real evidence,
    /// whose measurements pass `measurements`. Never accepts real or missing GPU evidence.
    pub fn fake_gpus(measurements: GpuMeasurementPolicy) -> GpuRequirement {
        tracing::warn!("danger: peer policy gpu = danger_fake_gpu accepts FAKE GPU attestation");
        GpuRequirement {
            verifier: None,
            measurements,
        }
    }

    /// The `danger_any` policy: no attestation at all.
    pub fn any() -> Arc<dyn PeerPolicy> {
        Arc::new(cocoon_net::policy::danger::AcceptAnySelfSigned::new())
    }
}
