//! The GPU keys of the attestation tables: `[tee] gpu` and its options, and a peer policy's
//! `gpu`, `gpu_measurements` and `danger_accept_any_gpu_measurements`.

use std::sync::Arc;

use cocoon_net::PeerPolicy;
use serde::{Deserialize, Serialize};

use super::{parse_hex, PeerPolicyConfig, PolicyKind, TeeConfig};
use crate::gpu::nvml::DEFAULT_NVML_LIBRARY;
use crate::gpu::{GpuMeasurementPolicy, GpuVerifier};
use crate::policy::{danger, AttestError, AttestationPolicy, GpuRequirement};
use crate::provider::{self, GpuEvidenceSource, NvidiaGpus};

/// Which GPUs this node attests, beside its CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuKind {
    /// No GPU evidence (the default).
    #[default]
    None,
    /// NVIDIA confidential-computing GPUs, through NVML.
    Nvidia,
    /// Fake GPUs for development: unsigned reports that prove nothing.
    DangerFakeGpu,
}

/// What a peer's GPUs must prove.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuPolicyKind {
    /// NVIDIA GPU evidence verified against NVIDIA's pinned device identity root.
    Nvidia,
    /// Fake GPU evidence (development only).
    DangerFakeGpu,
}

/// The default number of fake GPUs.
const DEFAULT_FAKE_GPU_COUNT: usize = 1;

pub(super) fn is_no_gpu(kind: &GpuKind) -> bool {
    *kind == GpuKind::None
}

impl TeeConfig {
    pub(super) fn fake_gpu_measurement(&self) -> Result<Vec<u8>, String> {
        let Some(text) = &self.danger_fake_gpu_measurement else {
            return Ok(vec![0; 48]);
        };
        let bytes = hex::decode(text.trim())
            .map_err(|e| format!("tee.danger_fake_gpu_measurement '{text}': {e}"))?;
        if bytes.is_empty() || bytes.len() > 64 {
            return Err(format!(
                "tee.danger_fake_gpu_measurement is {} bytes, expected 1 to 64",
                bytes.len()
            ));
        }
        Ok(bytes)
    }

    /// The GPU evidence source this table describes, if any (fails at once when
    /// `gpu = "nvidia"` and NVML cannot be loaded).
    pub fn gpu_source(&self) -> Result<Option<Box<dyn GpuEvidenceSource>>, AttestError> {
        Ok(match self.gpu {
            GpuKind::None => None,
            GpuKind::Nvidia => Some(Box::new(NvidiaGpus::new(
                self.nvml_library.as_deref().unwrap_or(DEFAULT_NVML_LIBRARY),
            )?)),
            GpuKind::DangerFakeGpu => Some(Box::new(provider::danger::FakeGpus::new(
                self.danger_fake_gpu_count.unwrap_or(DEFAULT_FAKE_GPU_COUNT),
                self.fake_gpu_measurement().map_err(AttestError::Config)?,
            ))),
        })
    }
}

impl PeerPolicyConfig {
    pub(super) fn gpu_problems(&self, table: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.gpu_measurement_policy(table) {
            problems.push(e);
        }
        match self.gpu {
            None => {
                if !self.gpu_measurements.is_empty() || self.danger_accept_any_gpu_measurements {
                    problems.push(format!(
                        "{table}: gpu_measurements and danger_accept_any_gpu_measurements need {table}.gpu"
                    ));
                }
            }
            Some(_) if self.policy == PolicyKind::DangerAny => problems.push(format!(
                "{table}.gpu needs an attesting policy: danger_any checks no CPU evidence to vouch for the GPUs"
            )),
            Some(GpuPolicyKind::Nvidia) => {
                if self.gpu_measurements.is_empty() && !self.danger_accept_any_gpu_measurements {
                    problems.push(format!(
                        "{table}: gpu = \"nvidia\" with no gpu_measurements accepts NVIDIA GPUs running any firmware; \
                         add {table}.gpu_measurements (64 hex digits each; `cocoon attest` prints a node's), \
                         or set {table}.danger_accept_any_gpu_measurements = true"
                    ));
                }
                if !self.gpu_measurements.is_empty() && self.danger_accept_any_gpu_measurements {
                    problems.push(format!(
                        "{table}.danger_accept_any_gpu_measurements only applies with no gpu_measurements"
                    ));
                }
            }
            Some(GpuPolicyKind::DangerFakeGpu) => {
                if self.danger_accept_any_gpu_measurements {
                    problems.push(format!(
                        "{table}.danger_accept_any_gpu_measurements only applies to gpu = \"nvidia\""
                    ));
                }
            }
        }
        problems
    }

    fn gpu_measurement_policy(&self, table: &str) -> Result<GpuMeasurementPolicy, String> {
        let allowed = self
            .gpu_measurements
            .iter()
            .map(|hash| parse_hex::<32>(&format!("{table}.gpu_measurements"), hash))
            .collect::<Result<Vec<_>, _>>()?;
        let danger_accept_any = self.danger_accept_any_gpu_measurements
            || (self.gpu == Some(GpuPolicyKind::DangerFakeGpu) && allowed.is_empty());
        Ok(GpuMeasurementPolicy {
            allowed,
            danger_accept_any,
        })
    }

    /// `policy` with this table's GPU requirement, ready for `cocoon-net`.
    pub(super) fn with_gpus(
        &self,
        policy: AttestationPolicy,
    ) -> Result<Arc<dyn PeerPolicy>, AttestError> {
        let measurements = self
            .gpu_measurement_policy("policy")
            .map_err(AttestError::Config)?;
        let policy = match self.gpu {
            None => policy,
            Some(GpuPolicyKind::Nvidia) => {
                if measurements.danger_accept_any {
                    tracing::warn!(
                        "danger: peer policy gpu = nvidia with danger_accept_any_gpu_measurements accepts NVIDIA GPUs running ANY firmware; set gpu_measurements"
                    );
                }
                policy.with_gpus(GpuRequirement::nvidia(GpuVerifier::new()?, measurements))
            }
            Some(GpuPolicyKind::DangerFakeGpu) => policy.with_gpus(danger::fake_gpus(measurements)),
        };
        Ok(Arc::new(policy))
    }
}
