//! Attestation for COCOON hops: RA-TLS certificates that carry an Intel TDX quote or AMD SEV-SNP
//! evidence bound to the certificate's key, quote providers (TDX and SEV-SNP via configfs-tsm,
//! and fakes for development), DCAP verification of peers' quotes against Intel's collateral,
//! verification of SNP reports against AMD's pinned roots ([`snp`]), NVIDIA
//! confidential-computing GPU evidence collected through NVML and verified against NVIDIA's
//! pinned root ([`gpu`]), allow-lists of measurements and image hashes, and the policies that
//! plug all of it into `cocoon-net`'s `PeerPolicy` seam.
//!
//! **Architecture invariant:** this is the only crate that parses quotes and reports.
//! Everything that weakens security (the fake TEEs and GPUs, the `any`, `fake_tdx`, `fake_snp`
//! and `fake_gpus` policies) lives in a `danger` module and is logged loudly when used; a peer
//! can never choose it.

mod cache;
pub mod cert;
pub mod claims;
pub mod config;
pub mod dcap;
pub mod gpu;
pub mod pccs;
pub mod policy;
pub mod provider;
pub mod receipt;
pub mod renewal;
pub mod sealed;
pub mod snp;
pub mod tdx;

pub use cert::{
    check_claimed_model, claims_of, generate_identity, generate_identity_sealing,
    generate_identity_with_extras, parse_certificate, sealing_key_of, RaTlsIdentity,
};
pub use claims::{model_hash, ClaimsExtras, UserClaims};
pub use config::{
    BuiltPolicy, GpuKind, GpuPolicyKind, PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind,
};
pub use policy::{AttestError, AttestationPolicy, LiveImageHashes};
pub use provider::QuoteProvider;

/// Lower-case hex, for logs and `inspect` output.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}
