//! Quote providers: where a node's own evidence comes from.
//!
//! - [`ConfigFsTsm`]: a real TDX quote from the kernel's configfs-tsm interface, inside a TD
//!   guest.
//! - [`ConfigFsTsmSnp`]: real AMD SEV-SNP evidence (report and VCEK) from the same interface,
//!   inside an SNP guest.
//! - [`NoTee`]: no evidence (clients, which are not TEEs).
//! - [`danger::FakeTdx`] and [`danger::FakeSnp`]: fake evidence for development machines.
//!
//! Beside the CPU's evidence, a node may attest its GPUs ([`GpuEvidenceSource`]):
//! [`NvidiaGpus`] through NVML, [`danger::FakeGpus`] for development.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cocoon_net::policy::{OID_SNP_EVIDENCE, OID_TDX_QUOTE};

use crate::gpu::nvml::Nvml;
use crate::policy::AttestError;
use crate::snp::{CertificateTable, SnpEvidence};

/// Where configfs-tsm lives in a TD guest.
pub const DEFAULT_TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

/// Produces this node's quote for a given report data.
pub trait QuoteProvider: Send + Sync + Debug {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// A quote over `report_data`, or `None` when this node has no TEE.
    fn quote(&self, report_data: &[u8; 64]) -> Result<Option<Vec<u8>>, AttestError>;
    /// The certificate extension the quote goes into: the TDX quote's unless a provider says
    /// otherwise (SEV-SNP evidence has its own).
    fn extension_oid(&self) -> &'static str {
        OID_TDX_QUOTE
    }
}

/// Produces this node's GPU evidence: the GPU evidence extension's bytes
/// ([`crate::gpu::GpuEvidence`]) answering a nonce.
pub trait GpuEvidenceSource: Send + Sync + Debug {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Every GPU's evidence for `nonce`, encoded.
    fn evidence(&self, nonce: &[u8; 32]) -> Result<Vec<u8>, AttestError>;
}

/// Real NVIDIA confidential-computing GPUs, through NVML loaded at run time
/// ([`crate::gpu::nvml`]).
#[derive(Debug)]
pub struct NvidiaGpus {
    nvml: Nvml,
}

impl NvidiaGpus {
    /// Loads NVML from `library`; refuses at once when the driver is absent, so a daemon
    /// configured with `gpu = "nvidia"` on a machine without one stops with a clear message.
    pub fn new(library: &str) -> Result<NvidiaGpus, AttestError> {
        let nvml = Nvml::open(library).map_err(|e| {
            AttestError::TeeUnavailable(format!(
                "{e}; tee.gpu = \"nvidia\" needs the NVIDIA driver (use \"danger_fake_gpu\" for development)"
            ))
        })?;
        Ok(NvidiaGpus { nvml })
    }
}

impl GpuEvidenceSource for NvidiaGpus {
    fn name(&self) -> &'static str {
        "nvidia"
    }

    fn evidence(&self, nonce: &[u8; 32]) -> Result<Vec<u8>, AttestError> {
        let evidence = self
            .nvml
            .collect(nonce)
            .map_err(|e| AttestError::TeeUnavailable(e.to_string()))?;
        evidence
            .encode()
            .map_err(|e| AttestError::TeeUnavailable(e.to_string()))
    }
}

/// No TEE: certificates carry no quote.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTee;

impl QuoteProvider for NoTee {
    fn name(&self) -> &'static str {
        "none"
    }

    fn quote(&self, _report_data: &[u8; 64]) -> Result<Option<Vec<u8>>, AttestError> {
        Ok(None)
    }
}

/// Real TDX quotes through configfs-tsm (Linux ≥ 6.7 in a TD guest): create a report entry,
/// write the report data to `inblob`, read the quote from `outblob`, remove the entry.
#[derive(Debug)]
pub struct ConfigFsTsm {
    root: PathBuf,
}

static NEXT_ENTRY: AtomicU64 = AtomicU64::new(0);

impl ConfigFsTsm {
    /// Uses `root` (normally [`DEFAULT_TSM_REPORT_DIR`]); refuses at once if it is missing, so a
    /// daemon asked for `--tee tdx` outside a TD stops with a clear message.
    pub fn new(root: &Path) -> Result<ConfigFsTsm, AttestError> {
        if !root.is_dir() {
            return Err(AttestError::TeeUnavailable(format!(
                "{} does not exist: this is not an Intel TDX guest, or its kernel lacks configfs-tsm (CONFIG_TSM_REPORTS); use --tee fake for development",
                root.display()
            )));
        }
        Ok(ConfigFsTsm {
            root: root.to_path_buf(),
        })
    }
}

impl QuoteProvider for ConfigFsTsm {
    fn name(&self) -> &'static str {
        "tdx"
    }

    fn quote(&self, report_data: &[u8; 64]) -> Result<Option<Vec<u8>>, AttestError> {
        let (quote, _) = tsm_report(&self.root, report_data, None)?;
        Ok(Some(quote))
    }
}

/// One configfs-tsm report: create an entry, write the report data to `inblob`, read
/// `outblob`, remove the entry. With `expected_provider` (SEV-SNP), the entry's `provider` must
/// name it, and `auxblob` is read too (empty when absent or when the host supplied nothing);
/// the TDX path reads exactly what it always did.
fn tsm_report(
    root: &Path,
    report_data: &[u8; 64],
    expected_provider: Option<&str>,
) -> Result<(Vec<u8>, Vec<u8>), AttestError> {
    let entry = root.join(format!(
        "cocoon-{}-{}",
        std::process::id(),
        NEXT_ENTRY.fetch_add(1, Ordering::Relaxed)
    ));
    let io = |what: &str, error: std::io::Error| {
        AttestError::TeeUnavailable(format!("configfs-tsm {what} {}: {error}", entry.display()))
    };
    std::fs::create_dir(&entry).map_err(|e| io("mkdir", e))?;
    let result = read_tsm_entry(&entry, report_data, expected_provider);
    // The entry must go even when reading failed, or the kernel keeps it.
    let _ = std::fs::remove_dir(&entry);
    result
}

/// The file protocol inside one report entry (the kernel made its attribute files at mkdir).
fn read_tsm_entry(
    entry: &Path,
    report_data: &[u8; 64],
    expected_provider: Option<&str>,
) -> Result<(Vec<u8>, Vec<u8>), AttestError> {
    let io = |what: &str, error: std::io::Error| {
        AttestError::TeeUnavailable(format!("configfs-tsm {what} {}: {error}", entry.display()))
    };
    if let Some(expected) = expected_provider {
        let provider =
            std::fs::read_to_string(entry.join("provider")).map_err(|e| io("read provider", e))?;
        if provider.trim() != expected {
            return Err(AttestError::TeeUnavailable(format!(
                "configfs-tsm provider is '{}', expected '{expected}'",
                provider.trim()
            )));
        }
    }
    std::fs::write(entry.join("inblob"), report_data).map_err(|e| io("write inblob", e))?;
    let quote = std::fs::read(entry.join("outblob")).map_err(|e| io("read outblob", e))?;
    if quote.is_empty() {
        return Err(AttestError::TeeUnavailable(
            "configfs-tsm returned an empty quote".into(),
        ));
    }
    if expected_provider.is_none() {
        return Ok((quote, Vec::new()));
    }
    let aux = match std::fs::read(entry.join("auxblob")) {
        Ok(aux) => aux,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io("read auxblob", e)),
    };
    Ok((quote, aux))
}

/// The configfs-tsm provider name of an SEV-SNP guest.
pub const SNP_TSM_PROVIDER: &str = "sev_guest";

/// Real SEV-SNP evidence through configfs-tsm in an SNP guest: the report from `outblob`, the
/// VCEK (and ASK/ARK, if the host supplies them) from the certificate table in `auxblob`, else
/// the VCEK given at construction (fetched by the operator from AMD's KDS for this chip and
/// TCB). The evidence goes into the SNP extension (`1.3.6.1.4.1.12345.3`).
#[derive(Debug)]
pub struct ConfigFsTsmSnp {
    root: PathBuf,
    vcek_fallback: Option<Vec<u8>>,
}

impl ConfigFsTsmSnp {
    /// Uses `root` (normally [`DEFAULT_TSM_REPORT_DIR`]); refuses at once if it is missing.
    /// `vcek_fallback` (DER) is used when the host's certificate table has no VCEK.
    pub fn new(root: &Path, vcek_fallback: Option<Vec<u8>>) -> Result<ConfigFsTsmSnp, AttestError> {
        if !root.is_dir() {
            return Err(AttestError::TeeUnavailable(format!(
                "{} does not exist: this is not an AMD SEV-SNP guest, or its kernel lacks configfs-tsm (CONFIG_TSM_REPORTS); use kind = \"danger_fake_snp\" for development",
                root.display()
            )));
        }
        Ok(ConfigFsTsmSnp {
            root: root.to_path_buf(),
            vcek_fallback,
        })
    }
}

impl QuoteProvider for ConfigFsTsmSnp {
    fn name(&self) -> &'static str {
        "sev_snp"
    }

    fn quote(&self, report_data: &[u8; 64]) -> Result<Option<Vec<u8>>, AttestError> {
        let (report, aux) = tsm_report(&self.root, report_data, Some(SNP_TSM_PROVIDER))?;
        snp_evidence_from_tsm(report, &aux, self.vcek_fallback.as_deref()).map(Some)
    }

    fn extension_oid(&self) -> &'static str {
        OID_SNP_EVIDENCE
    }
}

/// The SNP evidence (encoded) from what configfs-tsm returned: the report (`outblob`) and the
/// host's certificate table (`auxblob`, may be empty). The VCEK comes from the table, else
/// from `vcek_fallback`; an ASK or ARK in the table is passed on (the verifier accepts only
/// pinned ones).
pub fn snp_evidence_from_tsm(
    report: Vec<u8>,
    auxblob: &[u8],
    vcek_fallback: Option<&[u8]>,
) -> Result<Vec<u8>, AttestError> {
    let table = CertificateTable::parse(auxblob)
        .map_err(|e| AttestError::TeeUnavailable(format!("configfs-tsm auxblob: {e}")))?;
    let vcek = table
        .vcek
        .or_else(|| vcek_fallback.map(<[u8]>::to_vec))
        .ok_or_else(|| {
            AttestError::TeeUnavailable(
                "the host supplies no VCEK in the certificate table and tee.snp_vcek_file is not set"
                    .into(),
            )
        })?;
    let evidence = SnpEvidence {
        ask_der: table.ask,
        ark_der: table.ark,
        ..SnpEvidence::hardware(report, vcek)
    };
    evidence
        .encode()
        .map_err(|e| AttestError::TeeUnavailable(e.to_string()))
}

/// Evidence that proves nothing, for machines without TDX.
pub mod danger {
    use super::*;
    use crate::tdx::TdxMeasurements;

    /// A fake TDX: the "quote" is the 64-byte report data (the reference's fake format), or —
    /// when fake measurements are configured — the report data followed by the 384-byte
    /// measurement block, so development networks can exercise image-hash allow-lists. Only
    /// the `danger_fake_tdx` policy accepts it; the `tdx` policy never does.
    #[derive(Debug, Clone)]
    pub struct FakeTdx {
        measurements: Option<TdxMeasurements>,
    }

    impl FakeTdx {
        /// A fake TEE; `measurements` = None gives the reference's 64-byte fake quote.
        pub fn new(measurements: Option<TdxMeasurements>) -> FakeTdx {
            tracing::warn!("danger: fake TEE in use; this node's attestation proves nothing");
            FakeTdx { measurements }
        }
    }

    impl QuoteProvider for FakeTdx {
        fn name(&self) -> &'static str {
            "danger_fake"
        }

        fn quote(&self, report_data: &[u8; 64]) -> Result<Option<Vec<u8>>, AttestError> {
            let mut quote = report_data.to_vec();
            if let Some(measurements) = &self.measurements {
                quote.extend_from_slice(&measurements.to_bytes());
            }
            Ok(Some(quote))
        }
    }

    /// Presents a fixed quote, whatever it is asked to vouch for: a quote taken from elsewhere.
    /// Tests use it to build certificates a policy must refuse (a moved quote), and the
    /// attestation bench to put a real sample quote in a certificate.
    #[derive(Debug, Clone)]
    pub struct ReplayQuote(pub Vec<u8>);

    impl QuoteProvider for ReplayQuote {
        fn name(&self) -> &'static str {
            "danger_replay"
        }

        fn quote(&self, _report_data: &[u8; 64]) -> Result<Option<Vec<u8>>, AttestError> {
            Ok(Some(self.0.clone()))
        }
    }

    /// A fake SEV-SNP guest: an unsigned report (see [`crate::snp::danger::fake_report`])
    /// carrying the report data and a configured MEASUREMENT (zero by default), in the SNP
    /// extension. Only the `danger_fake_snp` policy accepts it; `sev_snp` never does.
    #[derive(Debug, Clone)]
    pub struct FakeSnp {
        measurement: [u8; 48],
    }

    impl FakeSnp {
        /// A fake SNP guest whose image is `measurement`.
        pub fn new(measurement: Option<[u8; 48]>) -> FakeSnp {
            tracing::warn!("danger: fake SEV-SNP in use; this node's attestation proves nothing");
            FakeSnp {
                measurement: measurement.unwrap_or([0; 48]),
            }
        }
    }

    impl QuoteProvider for FakeSnp {
        fn name(&self) -> &'static str {
            "danger_fake_snp"
        }

        fn quote(&self, report_data: &[u8; 64]) -> Result<Option<Vec<u8>>, AttestError> {
            crate::snp::danger::fake_evidence(report_data, &self.measurement)
                .encode()
                .map(Some)
                .map_err(|e| AttestError::TeeUnavailable(e.to_string()))
        }

        fn extension_oid(&self) -> &'static str {
            OID_SNP_EVIDENCE
        }
    }

    /// Presents fixed SNP evidence whatever it is asked to vouch for (tests: a real published
    /// report in a certificate, which must fail the binding).
    #[derive(Debug, Clone)]
    pub struct ReplaySnpEvidence(pub Vec<u8>);

    impl QuoteProvider for ReplaySnpEvidence {
        fn name(&self) -> &'static str {
            "danger_replay_snp"
        }

        fn quote(&self, _report_data: &[u8; 64]) -> Result<Option<Vec<u8>>, AttestError> {
            Ok(Some(self.0.clone()))
        }

        fn extension_oid(&self) -> &'static str {
            OID_SNP_EVIDENCE
        }
    }

    /// Fake NVIDIA GPUs: unsigned SPDM reports answering the nonce (see
    /// [`crate::gpu::danger::fake_report`]), without certificates. Only a peer policy with
    /// `gpu = "danger_fake_gpu"` accepts them; `gpu = "nvidia"` never does.
    #[derive(Debug, Clone)]
    pub struct FakeGpus {
        count: usize,
        measurement: Vec<u8>,
    }

    impl FakeGpus {
        /// `count` fake GPUs (1 to 8) whose one measurement block is `measurement`.
        pub fn new(count: usize, measurement: Vec<u8>) -> FakeGpus {
            tracing::warn!(
                count,
                "danger: fake NVIDIA GPUs in use; this node's GPU attestation proves nothing"
            );
            FakeGpus { count, measurement }
        }
    }

    impl GpuEvidenceSource for FakeGpus {
        fn name(&self) -> &'static str {
            "danger_fake_gpu"
        }

        fn evidence(&self, nonce: &[u8; 32]) -> Result<Vec<u8>, AttestError> {
            crate::gpu::danger::fake_evidence(nonce, &self.measurement, self.count)
                .encode()
                .map_err(|e| AttestError::TeeUnavailable(e.to_string()))
        }
    }

    /// Presents fixed GPU evidence whatever nonce it is asked for (tests: NVIDIA's published
    /// sample, or another node's evidence, in a certificate, which policies must refuse).
    #[derive(Debug, Clone)]
    pub struct ReplayGpuEvidence(pub Vec<u8>);

    impl GpuEvidenceSource for ReplayGpuEvidence {
        fn name(&self) -> &'static str {
            "danger_replay_gpu"
        }

        fn evidence(&self, _nonce: &[u8; 32]) -> Result<Vec<u8>, AttestError> {
            Ok(self.0.clone())
        }
    }

    /// The length of a fake quote without / with measurements.
    pub const FAKE_QUOTE_LENGTHS: [usize; 2] = [64, 64 + 384];

    /// Reads a fake quote: (report data, measurements; zero when absent).
    pub fn parse_fake_quote(quote: &[u8]) -> Option<([u8; 64], TdxMeasurements)> {
        let report_data: [u8; 64] = quote.get(..64)?.try_into().ok()?;
        let measurements = match quote.len() {
            64 => TdxMeasurements::zero(),
            448 => TdxMeasurements::from_bytes(&quote[64..])?,
            _ => return None,
        };
        Some((report_data, measurements))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry as the kernel lays it out for an SNP guest.
    fn snp_entry(provider: &str, aux: Option<&[u8]>) -> tempfile::TempDir {
        let entry = tempfile::tempdir().unwrap();
        std::fs::write(entry.path().join("provider"), format!("{provider}\n")).unwrap();
        std::fs::write(entry.path().join("outblob"), [7u8; 1184]).unwrap();
        if let Some(aux) = aux {
            std::fs::write(entry.path().join("auxblob"), aux).unwrap();
        }
        entry
    }

    #[test]
    fn an_snp_entry_gives_the_report_and_the_certificate_table() {
        let table = CertificateTable {
            vcek: Some(vec![1, 2, 3]),
            ..CertificateTable::default()
        };
        let entry = snp_entry("sev_guest", Some(&table.encode()));
        let (report, aux) = read_tsm_entry(entry.path(), &[9; 64], Some(SNP_TSM_PROVIDER)).unwrap();
        assert_eq!(report, vec![7u8; 1184]);
        assert_eq!(CertificateTable::parse(&aux).unwrap(), table);
        assert_eq!(
            std::fs::read(entry.path().join("inblob")).unwrap(),
            vec![9u8; 64],
            "the report data went to inblob"
        );
        // No auxblob: an empty table.
        let bare = snp_entry("sev_guest", None);
        let (_, aux) = read_tsm_entry(bare.path(), &[9; 64], Some(SNP_TSM_PROVIDER)).unwrap();
        assert!(aux.is_empty());
    }

    #[test]
    fn another_provider_is_refused_and_the_tdx_path_reads_no_auxblob() {
        let tdx = snp_entry("tdx_guest", None);
        assert!(matches!(
            read_tsm_entry(tdx.path(), &[0; 64], Some(SNP_TSM_PROVIDER)),
            Err(AttestError::TeeUnavailable(message)) if message.contains("tdx_guest")
        ));
        // An unreadable auxblob (a directory here) fails SNP, and TDX never touches it.
        std::fs::create_dir(tdx.path().join("auxblob")).unwrap();
        assert!(read_tsm_entry(tdx.path(), &[0; 64], None).is_ok());
        let snp = snp_entry("sev_guest", None);
        std::fs::create_dir(snp.path().join("auxblob")).unwrap();
        assert!(read_tsm_entry(snp.path(), &[0; 64], Some(SNP_TSM_PROVIDER)).is_err());
    }

    #[test]
    fn a_failed_report_leaves_no_entry_behind() {
        // A plain directory is not configfs: mkdir gives an empty entry, reading fails.
        let root = tempfile::tempdir().unwrap();
        let provider = ConfigFsTsmSnp::new(root.path(), None).unwrap();
        assert!(matches!(
            provider.quote(&[0; 64]),
            Err(AttestError::TeeUnavailable(_))
        ));
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
        assert_eq!(provider.extension_oid(), OID_SNP_EVIDENCE);
    }
}
