//! Quote providers: where a node's own evidence comes from.
//!
//! - [`ConfigFsTsm`]: a real TDX quote from the kernel's configfs-tsm interface, inside a TD
//!   guest.
//! - [`NoTee`]: no evidence (clients, which are not TEEs).
//! - [`danger::FakeTdx`]: a fake quote for development machines without TDX.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::AttestError;

/// Where configfs-tsm lives in a TD guest.
pub const DEFAULT_TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

/// Produces this node's quote for a given report data.
pub trait QuoteProvider: Send + Sync + Debug {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// A quote over `report_data`, or `None` when this node has no TEE.
    fn quote(&self, report_data: &[u8; 64]) -> Result<Option<Vec<u8>>, AttestError>;
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
        let entry = self.root.join(format!(
            "cocoon-{}-{}",
            std::process::id(),
            NEXT_ENTRY.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |what: &str, error: std::io::Error| {
            AttestError::TeeUnavailable(format!("configfs-tsm {what} {}: {error}", entry.display()))
        };
        std::fs::create_dir(&entry).map_err(|e| io("mkdir", e))?;
        let result = (|| {
            std::fs::write(entry.join("inblob"), report_data).map_err(|e| io("write inblob", e))?;
            let quote = std::fs::read(entry.join("outblob")).map_err(|e| io("read outblob", e))?;
            if quote.is_empty() {
                return Err(AttestError::TeeUnavailable(
                    "configfs-tsm returned an empty quote".into(),
                ));
            }
            Ok(Some(quote))
        })();
        // The entry must go even when reading failed, or the kernel keeps it.
        let _ = std::fs::remove_dir(&entry);
        result
    }
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
