//! The attestation parts of a daemon's TOML: its own evidence (`[tee]`) and what it demands of
//! peers (`[…_policy]` tables). Checked fully before anything starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use cocoon_net::PeerPolicy;
use serde::{Deserialize, Serialize};

use crate::cert::{generate_identity_with_extras, RaTlsIdentity};
use crate::claims::ClaimsExtras;
use crate::dcap::{CollateralSource, DcapVerifier, TcbPolicy};
use crate::gpu::MAX_GPUS;
use crate::pccs::{CollateralFetcher, PccsClient};
use crate::policy::{danger, AllowLists, AttestError, AttestationPolicy, LiveImageHashes};
use crate::provider::{self, ConfigFsTsm, ConfigFsTsmSnp, NoTee, QuoteProvider};
use crate::snp::{ProductLine, SnpTcb, SnpVerifier};
use crate::tdx::TdxMeasurements;

mod gpu;

use gpu::is_no_gpu;
pub use gpu::{GpuKind, GpuPolicyKind};

/// Where this node's evidence comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TeeKind {
    /// No TEE (clients).
    None,
    /// A fake TEE for development: quotes that prove nothing.
    DangerFake,
    /// Intel TDX through configfs-tsm.
    Tdx,
    /// AMD SEV-SNP through configfs-tsm (`sev_snp`).
    SevSnp,
    /// A fake SEV-SNP guest for development: unsigned reports that prove nothing.
    DangerFakeSnp,
}

impl TeeKind {
    /// The TEE a peer proved it runs in, from the name of the policy that accepted it
    /// (`PeerIdentity::policy`): a TDX quote, a fake one, or none.
    pub fn proven_by_policy(policy: &str) -> TeeKind {
        match policy {
            crate::policy::TDX_POLICY => TeeKind::Tdx,
            crate::policy::FAKE_TDX_POLICY => TeeKind::DangerFake,
            crate::policy::SNP_POLICY => TeeKind::SevSnp,
            crate::policy::FAKE_SNP_POLICY => TeeKind::DangerFakeSnp,
            _ => TeeKind::None,
        }
    }
}

fn default_tsm_dir() -> PathBuf {
    PathBuf::from(provider::DEFAULT_TSM_REPORT_DIR)
}

/// `[tee]`: this node's own evidence.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TeeConfig {
    /// `none`, `danger_fake`, `tdx`, `sev_snp` or `danger_fake_snp`.
    pub kind: TeeKind,
    /// With `danger_fake`: a fake MRTD (96 hex digits), so a development network can test
    /// image-hash allow-lists. Without it the fake quote is the reference's 64-byte form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub danger_fake_mrtd: Option<String>,
    /// With `danger_fake_snp`: a fake SNP MEASUREMENT (96 hex digits), for image-hash
    /// allow-lists on a development network. Zero without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub danger_fake_snp_measurement: Option<String>,
    /// With `tdx` or `sev_snp`: the configfs-tsm report directory.
    #[serde(default = "default_tsm_dir")]
    pub tsm_report_dir: PathBuf,
    /// With `sev_snp`: this chip's VCEK certificate (DER, from AMD's KDS for the current TCB),
    /// used when the host supplies no certificate table with the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp_vcek_file: Option<PathBuf>,
    /// GPUs attested beside the CPU: `none` (default), `nvidia` or `danger_fake_gpu`. Needs a
    /// CPU TEE (`kind` other than `none`) to vouch for the GPU evidence.
    #[serde(default, skip_serializing_if = "is_no_gpu")]
    pub gpu: GpuKind,
    /// With `gpu = "nvidia"`: the NVML library to load. Default `libnvidia-ml.so.1`, found
    /// through the dynamic loader's search path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvml_library: Option<String>,
    /// With `gpu = "danger_fake_gpu"`: how many fake GPUs (1 to 8, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub danger_fake_gpu_count: Option<usize>,
    /// With `gpu = "danger_fake_gpu"`: the fake GPUs' measurement (hex, 1 to 64 bytes), for
    /// GPU allow-lists on a development network. Default: 48 zero bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub danger_fake_gpu_measurement: Option<String>,
}

fn parse_hex<const N: usize>(what: &str, text: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("{what} '{text}': {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{what} '{text}' is {} bytes, expected {N}", b.len()))
}

impl TeeConfig {
    /// A node without a TEE.
    pub fn none() -> TeeConfig {
        TeeConfig::of(TeeKind::None)
    }

    /// A config of the given kind with defaults.
    pub fn of(kind: TeeKind) -> TeeConfig {
        TeeConfig {
            kind,
            danger_fake_mrtd: None,
            danger_fake_snp_measurement: None,
            tsm_report_dir: default_tsm_dir(),
            snp_vcek_file: None,
            gpu: GpuKind::None,
            nvml_library: None,
            danger_fake_gpu_count: None,
            danger_fake_gpu_measurement: None,
        }
    }

    /// Every problem with this table.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(mrtd) = &self.danger_fake_mrtd {
            if self.kind != TeeKind::DangerFake {
                problems.push(
                    "tee.danger_fake_mrtd only makes sense with kind = \"danger_fake\"".into(),
                );
            }
            if let Err(e) = parse_hex::<48>("tee.danger_fake_mrtd", mrtd) {
                problems.push(e);
            }
        }
        if let Some(measurement) = &self.danger_fake_snp_measurement {
            if self.kind != TeeKind::DangerFakeSnp {
                problems.push(
                    "tee.danger_fake_snp_measurement only makes sense with kind = \"danger_fake_snp\"".into(),
                );
            }
            if let Err(e) = parse_hex::<48>("tee.danger_fake_snp_measurement", measurement) {
                problems.push(e);
            }
        }
        if let Some(file) = &self.snp_vcek_file {
            if self.kind != TeeKind::SevSnp {
                problems.push("tee.snp_vcek_file only makes sense with kind = \"sev_snp\"".into());
            } else if !file.is_file() {
                problems.push(format!(
                    "tee.snp_vcek_file {} is not a file",
                    file.display()
                ));
            }
        }
        if self.gpu != GpuKind::None && self.kind == TeeKind::None {
            problems.push(
                "tee.gpu needs a CPU TEE to vouch for the GPU evidence: set tee.kind too".into(),
            );
        }
        if self.nvml_library.is_some() && self.gpu != GpuKind::Nvidia {
            problems.push("tee.nvml_library only makes sense with gpu = \"nvidia\"".into());
        }
        if (self.danger_fake_gpu_count.is_some() || self.danger_fake_gpu_measurement.is_some())
            && self.gpu != GpuKind::DangerFakeGpu
        {
            problems.push(
                "tee.danger_fake_gpu_count and tee.danger_fake_gpu_measurement only make sense with gpu = \"danger_fake_gpu\"".into(),
            );
        }
        if let Some(count) = self.danger_fake_gpu_count {
            if count == 0 || count > MAX_GPUS {
                problems.push(format!(
                    "tee.danger_fake_gpu_count is {count}; 1 to {MAX_GPUS} GPUs can be attested"
                ));
            }
        }
        if let Err(e) = self.fake_gpu_measurement() {
            problems.push(e);
        }
        problems
    }

    /// The quote provider this table describes (fails at once when TDX is absent).
    pub fn provider(&self) -> Result<Box<dyn QuoteProvider>, AttestError> {
        Ok(match self.kind {
            TeeKind::None => Box::new(NoTee),
            TeeKind::Tdx => Box::new(ConfigFsTsm::new(&self.tsm_report_dir)?),
            TeeKind::DangerFake => {
                let measurements = match &self.danger_fake_mrtd {
                    Some(mrtd) => {
                        let mut m = TdxMeasurements::zero();
                        m.mrtd = parse_hex::<48>("tee.danger_fake_mrtd", mrtd)
                            .map_err(AttestError::Config)?;
                        Some(m)
                    }
                    None => None,
                };
                Box::new(provider::danger::FakeTdx::new(measurements))
            }
            TeeKind::SevSnp => {
                let vcek = match &self.snp_vcek_file {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        AttestError::Config(format!("tee.snp_vcek_file {}: {e}", path.display()))
                    })?),
                    None => None,
                };
                Box::new(ConfigFsTsmSnp::new(&self.tsm_report_dir, vcek)?)
            }
            TeeKind::DangerFakeSnp => {
                let measurement = match &self.danger_fake_snp_measurement {
                    Some(text) => Some(
                        parse_hex::<48>("tee.danger_fake_snp_measurement", text)
                            .map_err(AttestError::Config)?,
                    ),
                    None => None,
                };
                Box::new(provider::danger::FakeSnp::new(measurement))
            }
        })
    }

    /// A fresh RA-TLS identity named `name`.
    pub fn identity(&self, name: &str) -> Result<RaTlsIdentity, AttestError> {
        self.identity_sealing(name, None)
    }

    /// A fresh RA-TLS identity whose claims carry `sealing_key` (a worker's HPKE key).
    pub fn identity_sealing(
        &self,
        name: &str,
        sealing_key: Option<[u8; 32]>,
    ) -> Result<RaTlsIdentity, AttestError> {
        let extras = ClaimsExtras {
            sealing_key,
            ..ClaimsExtras::default()
        };
        self.identity_with_extras(name, &extras)
    }

    /// A fresh RA-TLS identity whose claims carry `extras` (a worker's HPKE key and model
    /// identity).
    pub fn identity_with_extras(
        &self,
        name: &str,
        extras: &ClaimsExtras,
    ) -> Result<RaTlsIdentity, AttestError> {
        let gpus = self.gpu_source()?;
        generate_identity_with_extras(
            self.provider()?.as_ref(),
            gpus.as_deref(),
            name,
            SystemTime::now(),
            extras,
        )
    }
}

/// What a peer must prove.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// A DCAP-verified Intel TDX quote.
    Tdx,
    /// A fake quote (development only).
    DangerFakeTdx,
    /// AMD SEV-SNP evidence verified against the pinned AMD roots.
    SevSnp,
    /// Fake SEV-SNP evidence (development only).
    DangerFakeSnp,
    /// Nothing: any self-signed certificate (development only).
    DangerAny,
}

fn default_statuses() -> Vec<String> {
    TcbPolicy::default().accepted_statuses
}

/// A peer policy table, e.g. `[worker_policy]` in a proxy's config.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerPolicyConfig {
    /// `tdx`, `danger_fake_tdx`, `sev_snp`, `danger_fake_snp` or `danger_any`.
    pub policy: PolicyKind,
    /// Allowed image hashes (64 hex digits each); empty allows any. A client with `[chain]`
    /// fills an empty list from the root's `proxy_hashes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_hashes: Vec<String>,
    /// Allowed MRTDs (96 hex digits each); empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mrtd: Vec<String>,
    /// Allowed RTMR sets, each four values of 96 hex digits; empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rtmr_sets: Vec<Vec<String>>,
    /// TCB statuses accepted from DCAP (`tdx` only). Default: only "UpToDate".
    #[serde(default = "default_statuses")]
    pub accepted_tcb_statuses: Vec<String>,
    /// When set, every advisory id of an accepted quote must be listed (`tdx` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_advisory_ids: Option<Vec<String>>,
    /// Directory of DCAP collateral JSON files (`tdx` only; required for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral_dir: Option<PathBuf>,
    /// A PCCS (or Intel PCS) to fill `collateral_dir` from when a peer's platform has no
    /// usable collateral, and to refresh it; fetching never happens during a handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pccs_url: Option<String>,
    /// PEM file with the CA of a PCCS that uses its own certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pccs_ca_file: Option<PathBuf>,
    /// With `tdx` and no allow-list at all (`image_hashes`, `mrtd`, `rtmr_sets` all empty):
    /// accept a genuine TDX VM running *any* code, which proves nothing about what handles the
    /// traffic. Refused as a config error unless this is set; logged as a warning when it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub danger_accept_any_tdx_image: bool,
    /// Allowed SEV-SNP MEASUREMENTs (96 hex digits each; `sev_snp` and `danger_fake_snp`);
    /// empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snp_measurements: Vec<String>,
    /// The AMD product lines whose built-in ARK and ASK are trusted (`sev_snp` only).
    /// Default: all built in (`milan`, `genoa`, `turin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp_product_lines: Option<Vec<ProductLine>>,
    /// The lowest REPORTED_TCB accepted (`sev_snp` only), e.g.
    /// `{ bootloader = 3, tee = 0, snp = 8, microcode = 115 }` (`fmc` too on Turin). Default:
    /// any TCB that AMD issued a VCEK for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp_minimum_tcb: Option<SnpTcb>,
    /// The `sev_snp` counterpart of `danger_accept_any_tdx_image`: with no allow-list, accept
    /// a genuine SNP guest running any code.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub danger_accept_any_snp_image: bool,
    /// What the peer's GPUs must prove, beside its CPU: `nvidia` or `danger_fake_gpu`. Absent:
    /// no GPU evidence is demanded (any the peer sends is not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuPolicyKind>,
    /// Allowed GPU measurement hashes (64 hex digits each: SHA-256 of an SPDM response's
    /// measurement record, as `cocoon attest` prints it); every GPU must be on the list.
    /// With `gpu = "danger_fake_gpu"` an empty list allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_measurements: Vec<String>,
    /// With `gpu = "nvidia"` and no `gpu_measurements`: accept genuine NVIDIA GPUs running any
    /// firmware and driver. Refused as a config error unless this is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub danger_accept_any_gpu_measurements: bool,
    /// Allowed model hashes (64 hex digits each: SHA-256 of the model name, as the root's
    /// `model_hashes` and `cocoon attest inspect` print it). Not empty: a peer's claims must
    /// carry one of them. Empty (default): any, or none unless `require_model_hash`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_hashes: Vec<String>,
    /// A peer's claims must carry a model hash (any, unless `model_hashes` lists some).
    /// Default off: the reference's workers carry none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_model_hash: bool,
    /// Allowed weights digests (64 hex digits each: SHA-256 of the weights file, or the
    /// dm-verity root hash of the volume that holds it). Not empty: a peer's claims must carry
    /// one of them. Empty (default): any, or none unless `require_weights_digest`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights_sha256: Vec<String>,
    /// A peer's claims must carry a weights digest (any, unless `weights_sha256` lists some).
    /// Default off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_weights_digest: bool,
}

/// A built peer policy, and the collateral fetcher to run beside it when a PCCS is configured.
pub struct BuiltPolicy {
    /// The policy for `cocoon-net`.
    pub policy: Arc<dyn PeerPolicy>,
    /// Run it (`fetcher.run(shutdown)`) for as long as the daemon lives.
    pub fetcher: Option<CollateralFetcher>,
}

impl PeerPolicyConfig {
    /// A table of the given kind with empty allow-lists.
    pub fn of(policy: PolicyKind) -> PeerPolicyConfig {
        PeerPolicyConfig {
            policy,
            image_hashes: Vec::new(),
            mrtd: Vec::new(),
            rtmr_sets: Vec::new(),
            accepted_tcb_statuses: default_statuses(),
            allowed_advisory_ids: None,
            collateral_dir: None,
            pccs_url: None,
            pccs_ca_file: None,
            danger_accept_any_tdx_image: false,
            snp_measurements: Vec::new(),
            snp_product_lines: None,
            snp_minimum_tcb: None,
            danger_accept_any_snp_image: false,
            gpu: None,
            gpu_measurements: Vec::new(),
            danger_accept_any_gpu_measurements: false,
            model_hashes: Vec::new(),
            require_model_hash: false,
            weights_sha256: Vec::new(),
            require_weights_digest: false,
        }
    }

    /// Whether the table demands anything of a peer's model identity.
    fn demands_model_identity(&self) -> bool {
        !self.model_hashes.is_empty()
            || self.require_model_hash
            || !self.weights_sha256.is_empty()
            || self.require_weights_digest
    }

    /// Whether no allow-list is set: any measurement is accepted.
    pub fn has_no_allow_list(&self) -> bool {
        self.image_hashes.is_empty()
            && self.mrtd.is_empty()
            && self.rtmr_sets.is_empty()
            && self.snp_measurements.is_empty()
    }

    fn is_snp(&self) -> bool {
        matches!(self.policy, PolicyKind::SevSnp | PolicyKind::DangerFakeSnp)
    }

    fn allow_lists(&self, table: &str) -> Result<AllowLists, Vec<String>> {
        let mut problems = Vec::new();
        let mut allow = AllowLists::default();
        for hash in &self.image_hashes {
            match parse_hex::<32>(&format!("{table}.image_hashes"), hash) {
                Ok(h) => allow.image_hashes.push(h),
                Err(e) => problems.push(e),
            }
        }
        for mrtd in &self.mrtd {
            match parse_hex::<48>(&format!("{table}.mrtd"), mrtd) {
                Ok(m) => allow.mrtd.push(m),
                Err(e) => problems.push(e),
            }
        }
        for set in &self.rtmr_sets {
            let parsed: Result<Vec<[u8; 48]>, String> = set
                .iter()
                .map(|r| parse_hex::<48>(&format!("{table}.rtmr_sets"), r))
                .collect();
            match parsed.map(<[[u8; 48]; 4]>::try_from) {
                Ok(Ok(set)) => allow.rtmr_sets.push(set),
                Ok(Err(_)) => {
                    problems.push(format!("{table}.rtmr_sets: each set needs exactly 4 RTMRs"))
                }
                Err(e) => problems.push(e),
            }
        }
        for measurement in &self.snp_measurements {
            match parse_hex::<48>(&format!("{table}.snp_measurements"), measurement) {
                Ok(m) => allow.snp_measurements.push(m),
                Err(e) => problems.push(e),
            }
        }
        for hash in &self.model_hashes {
            match parse_hex::<32>(&format!("{table}.model_hashes"), hash) {
                Ok(h) => allow.model_hashes.push(h),
                Err(e) => problems.push(e),
            }
        }
        for digest in &self.weights_sha256 {
            match parse_hex::<32>(&format!("{table}.weights_sha256"), digest) {
                Ok(d) => allow.weights_digests.push(d),
                Err(e) => problems.push(e),
            }
        }
        allow.require_model_hash = self.require_model_hash;
        allow.require_weights_digest = self.require_weights_digest;
        if problems.is_empty() {
            Ok(allow)
        } else {
            Err(problems)
        }
    }

    /// Every problem with this table; `table` names it in messages.
    pub fn problems(&self, table: &str) -> Vec<String> {
        let mut problems = self.problems_with_allow_list_from_elsewhere(table);
        if self.policy == PolicyKind::Tdx
            && self.has_no_allow_list()
            && !self.danger_accept_any_tdx_image
        {
            problems.push(format!(
                "{table}: policy = \"tdx\" with no allow-list accepts any TDX VM running any code; \
                 add {table}.image_hashes (the image hashes you trust, 64 hex digits each; \
                 `cocoon attest` prints a node's), or {table}.mrtd / {table}.rtmr_sets, \
                 or set {table}.danger_accept_any_tdx_image = true to accept any image"
            ));
        }
        if self.policy == PolicyKind::SevSnp
            && self.has_no_allow_list()
            && !self.danger_accept_any_snp_image
        {
            problems.push(format!(
                "{table}: policy = \"sev_snp\" with no allow-list accepts any SEV-SNP guest running any code; \
                 add {table}.image_hashes (SHA-256 of the MEASUREMENT, 64 hex digits each) or \
                 {table}.snp_measurements, or set {table}.danger_accept_any_snp_image = true to accept any image"
            ));
        }
        problems
    }

    /// Every problem with this table except an empty allow-list under `tdx`: for a caller that
    /// fills the allow-list itself before building the policy (a client with `[chain]` takes
    /// the root's `proxy_hashes`) and checks it again then.
    pub fn problems_with_allow_list_from_elsewhere(&self, table: &str) -> Vec<String> {
        let mut problems = self.allow_lists(table).err().unwrap_or_default();
        if self.danger_accept_any_tdx_image
            && (self.policy != PolicyKind::Tdx || !self.has_no_allow_list())
        {
            problems.push(format!(
                "{table}.danger_accept_any_tdx_image only applies to policy = \"tdx\" with no allow-list"
            ));
        }
        if self.policy == PolicyKind::Tdx {
            match &self.collateral_dir {
                None => problems.push(format!(
                    "{table}.collateral_dir is required for policy = \"tdx\""
                )),
                Some(dir) if !dir.is_dir() => problems.push(format!(
                    "{table}.collateral_dir {} is not a directory",
                    dir.display()
                )),
                Some(_) => {}
            }
            if let Err(error) = self.pccs_client() {
                problems.push(format!("{table}: {error}"));
            }
            if self.accepted_tcb_statuses.is_empty() {
                problems.push(format!(
                    "{table}.accepted_tcb_statuses is empty: no peer could ever connect"
                ));
            }
        }
        if self.policy != PolicyKind::Tdx
            && (self.pccs_url.is_some() || self.collateral_dir.is_some())
        {
            problems.push(format!(
                "{table}: collateral_dir and pccs_url only apply to policy = \"tdx\""
            ));
        }
        if self.danger_accept_any_snp_image
            && (self.policy != PolicyKind::SevSnp || !self.has_no_allow_list())
        {
            problems.push(format!(
                "{table}.danger_accept_any_snp_image only applies to policy = \"sev_snp\" with no allow-list"
            ));
        }
        if self.is_snp() && (!self.mrtd.is_empty() || !self.rtmr_sets.is_empty()) {
            problems.push(format!(
                "{table}: mrtd and rtmr_sets are TDX measurements; an SEV-SNP policy lists snp_measurements"
            ));
        }
        if !self.is_snp()
            && self.policy != PolicyKind::DangerAny
            && !self.snp_measurements.is_empty()
        {
            problems.push(format!(
                "{table}.snp_measurements only applies to policy = \"sev_snp\" or \"danger_fake_snp\""
            ));
        }
        if self.policy != PolicyKind::SevSnp
            && (self.snp_product_lines.is_some() || self.snp_minimum_tcb.is_some())
        {
            problems.push(format!(
                "{table}: snp_product_lines and snp_minimum_tcb only apply to policy = \"sev_snp\""
            ));
        }
        if matches!(&self.snp_product_lines, Some(lines) if lines.is_empty()) {
            problems.push(format!(
                "{table}.snp_product_lines is empty: no SEV-SNP peer could ever connect"
            ));
        }
        if self.policy == PolicyKind::DangerAny && !self.has_no_allow_list() {
            problems.push(format!(
                "{table}: allow-lists need an attesting policy; danger_any checks no measurements"
            ));
        }
        if self.policy == PolicyKind::DangerAny && self.demands_model_identity() {
            problems.push(format!(
                "{table}: model_hashes, require_model_hash, weights_sha256 and require_weights_digest need an attesting policy; danger_any checks no claims"
            ));
        }
        problems.extend(self.gpu_problems(table));
        problems
    }

    fn pccs_client(&self) -> Result<Option<PccsClient>, AttestError> {
        let Some(url) = &self.pccs_url else {
            return Ok(None);
        };
        let ca = match &self.pccs_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                AttestError::Config(format!("pccs_ca_file {}: {e}", path.display()))
            })?),
            None => None,
        };
        PccsClient::new(url, ca.as_deref()).map(Some)
    }

    /// Builds the policy (call after `problems` came back empty).
    pub fn build(&self) -> Result<BuiltPolicy, AttestError> {
        self.build_with(None)
    }

    /// Builds the policy with an image allow-list the caller may replace while it runs (it
    /// stands instead of `image_hashes`; empty, it allows nothing).
    pub fn build_with_live_image_hashes(
        &self,
        live: LiveImageHashes,
    ) -> Result<BuiltPolicy, AttestError> {
        self.build_with(Some(live))
    }

    /// Takes the image allow-list from the root contract's `root` list when this table names
    /// none and its policy checks images at all (not `danger_any`, not
    /// `danger_accept_any_tdx_image`): `image_hashes` is set to the root's list (so `tdx` sees
    /// an allow-list) and the live list to build with ([`Self::build_following`]) is returned,
    /// for the caller to replace as the root changes. `None`: this table's own list stands.
    /// `Err(empty)` when the root lists no image at all.
    pub fn follow_root_images(
        &mut self,
        root: LiveImageHashes,
        empty: &str,
    ) -> Result<Option<LiveImageHashes>, String> {
        if !self.image_hashes.is_empty()
            || self.policy == PolicyKind::DangerAny
            || self.danger_accept_any_tdx_image
            || self.danger_accept_any_snp_image
        {
            return Ok(None);
        }
        let hashes = root.get();
        if hashes.is_empty() {
            return Err(empty.to_owned());
        }
        self.image_hashes = hashes.iter().map(|h| crate::hex(h)).collect();
        Ok(Some(root))
    }

    /// Builds the policy with the live list [`Self::follow_root_images`] returned, if any.
    pub fn build_following(
        &self,
        live: Option<LiveImageHashes>,
    ) -> Result<BuiltPolicy, AttestError> {
        self.build_with(live)
    }

    fn build_with(&self, live: Option<LiveImageHashes>) -> Result<BuiltPolicy, AttestError> {
        let mut allow = self
            .allow_lists("policy")
            .map_err(|p| AttestError::Config(p.join("; ")))?;
        allow.live_image_hashes = live;
        let (policy, fetcher): (Arc<dyn PeerPolicy>, _) = match self.policy {
            PolicyKind::DangerAny => (danger::any(), None),
            PolicyKind::DangerFakeTdx => (self.with_gpus(danger::fake_tdx(allow))?, None),
            PolicyKind::DangerFakeSnp => (self.with_gpus(danger::fake_snp(allow))?, None),
            PolicyKind::SevSnp => {
                if self.has_no_allow_list() {
                    if !self.danger_accept_any_snp_image {
                        return Err(AttestError::Config(
                            "policy = \"sev_snp\" with no allow-list accepts any image: set image_hashes or snp_measurements (or danger_accept_any_snp_image)".into(),
                        ));
                    }
                    tracing::warn!(
                        "danger: peer policy sev_snp with danger_accept_any_snp_image accepts ANY SEV-SNP guest running ANY code; set image_hashes to say which images you trust"
                    );
                }
                let lines = self
                    .snp_product_lines
                    .clone()
                    .unwrap_or_else(|| ProductLine::ALL.to_vec());
                let verifier = SnpVerifier::new(&lines, self.snp_minimum_tcb)?;
                (
                    self.with_gpus(AttestationPolicy::sev_snp(verifier, allow))?,
                    None,
                )
            }
            PolicyKind::Tdx => {
                if self.has_no_allow_list() {
                    if !self.danger_accept_any_tdx_image {
                        return Err(AttestError::Config(
                            "policy = \"tdx\" with no allow-list accepts any image: set image_hashes, mrtd or rtmr_sets (or danger_accept_any_tdx_image)".into(),
                        ));
                    }
                    tracing::warn!(
                        "danger: peer policy tdx with danger_accept_any_tdx_image accepts ANY TDX VM running ANY code; set image_hashes to say which images you trust"
                    );
                }
                let dir = self.collateral_dir.clone().ok_or_else(|| {
                    AttestError::Config("collateral_dir is required for tdx".into())
                })?;
                let tcb = TcbPolicy {
                    accepted_statuses: self.accepted_tcb_statuses.clone(),
                    allowed_advisory_ids: self.allowed_advisory_ids.clone(),
                };
                let verifier = DcapVerifier::new(CollateralSource::Directory(dir.clone()), tcb);
                match self.pccs_client()? {
                    Some(client) => {
                        let (fetcher, requests) = CollateralFetcher::new(client, dir);
                        (
                            self.with_gpus(AttestationPolicy::tdx_with_fetcher(
                                verifier, allow, requests,
                            ))?,
                            Some(fetcher),
                        )
                    }
                    None => (
                        self.with_gpus(AttestationPolicy::tdx(verifier, allow))?,
                        None,
                    ),
                }
            }
        };
        Ok(BuiltPolicy { policy, fetcher })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_s_tee_is_the_one_its_accepting_policy_verified() {
        let name = |policy: &dyn PeerPolicy| TeeKind::proven_by_policy(policy.name());
        let fake = danger::fake_tdx(AllowLists::default());
        assert_eq!(name(&fake), TeeKind::DangerFake);
        assert_eq!(TeeKind::proven_by_policy("tdx"), TeeKind::Tdx);
        assert_eq!(name(&cocoon_net::policy::UnattestedClients), TeeKind::None);
        assert_eq!(
            name(&cocoon_net::policy::danger::AcceptAnySelfSigned),
            TeeKind::None
        );
    }

    /// A `tdx` table as a config file states it (JSON here; TOML maps to the same serde
    /// fields), `extra` being more `"key": value` pairs.
    fn tdx_table(extra: &str) -> PeerPolicyConfig {
        let dir = std::env::temp_dir().display().to_string();
        let text = format!("{{\"policy\": \"tdx\", \"collateral_dir\": {dir:?}{extra}}}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn tdx_without_any_allow_list_is_refused_unless_the_danger_switch_is_set() {
        let open = tdx_table("");
        let problems = open.problems("proxy_policy");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("accepts any TDX VM running any code")
                && problems[0].contains("proxy_policy.image_hashes")
                && problems[0].contains("proxy_policy.danger_accept_any_tdx_image = true"),
            "{}",
            problems[0]
        );
        assert!(open.build().is_err(), "build refuses it too");
        // A caller that fills the list itself (a client with [chain]) is not told yet.
        assert!(open
            .problems_with_allow_list_from_elsewhere("proxy_policy")
            .is_empty());

        let opted_in = tdx_table(", \"danger_accept_any_tdx_image\": true");
        assert!(opted_in.problems("proxy_policy").is_empty());
        assert!(opted_in.build().is_ok());

        let listed = tdx_table(&format!(", \"image_hashes\": [\"{}\"]", "ab".repeat(32)));
        assert!(listed.problems("worker_policy").is_empty());
        let mrtd_only = tdx_table(&format!(", \"mrtd\": [\"{}\"]", "cd".repeat(48)));
        assert!(mrtd_only.problems("worker_policy").is_empty());
    }

    #[test]
    fn the_danger_switch_is_refused_where_it_means_nothing() {
        let both = tdx_table(&format!(
            ", \"image_hashes\": [\"{}\"], \"danger_accept_any_tdx_image\": true",
            "ab".repeat(32)
        ));
        assert_eq!(both.problems("worker_policy").len(), 1);
        let mut fake = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx);
        assert!(fake.problems("worker_policy").is_empty());
        fake.danger_accept_any_tdx_image = true;
        assert_eq!(fake.problems("worker_policy").len(), 1);
    }
}
