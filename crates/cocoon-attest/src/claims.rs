//! User claims: what a certificate's quote vouches for. The quote's 64-byte report data is
//! SHA-512 of the serialised claims, and the claims contain the certificate's public key, so a
//! quote cannot be moved onto another certificate.
//!
//! Wire form: the 32-byte key, then optional fields, each a one-byte tag and a fixed-length
//! value, in increasing tag order, each at most once:
//!
//! | tag | value |
//! |---|---|
//! | 1 | the HPKE public key (32 bytes) |
//! | 2 | SHA-256 of the GPU evidence extension (32 bytes, see [`crate::gpu`]) |
//! | 3 | the model hash: SHA-256 of the model name a worker announces (32 bytes) |
//! | 4 | the weights digest: SHA-256 of the weights file a worker loaded, or a dm-verity root hash (32 bytes) |
//!
//! Claims with no optional field are the bare key: the reference's form.

use sha2::{Digest, Sha256, Sha512};

/// Tag of the optional HPKE key field that may follow the public key.
const HPKE_TAG: u8 = 1;
/// Tag of the optional hash of the GPU evidence extension.
const GPU_EVIDENCE_TAG: u8 = 2;
/// Tag of the optional model hash (SHA-256 of the announced model name).
const MODEL_HASH_TAG: u8 = 3;
/// Tag of the optional digest of the weights a worker serves.
const WEIGHTS_DIGEST_TAG: u8 = 4;

/// The claims bound into a quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserClaims {
    /// The certificate's Ed25519 public key.
    pub public_key: [u8; 32],
    /// The HPKE key of a worker's sealed requests. The reference serialises the claims as the
    /// 32-byte key alone, so claims without this field (and the others) stay byte-identical
    /// and verify on both implementations.
    pub hpke_public_key: Option<[u8; 32]>,
    /// SHA-256 of the certificate's GPU evidence extension ([`crate::gpu::evidence_hash`]),
    /// when the node attests GPUs: the CPU's quote thereby vouches for the GPUs' evidence.
    pub gpu_evidence_hash: Option<[u8; 32]>,
    /// SHA-256 of the exact model name a worker announces (`worker.params.model`), the value
    /// the reference's root lists in `model_hashes` ([`model_hash`]): the quote vouches for
    /// which model the worker says it serves.
    pub model_hash: Option<[u8; 32]>,
    /// SHA-256 of the weights file the worker loaded, or the dm-verity root hash of the
    /// volume holding them, as its operator configured (our extension).
    pub weights_digest: Option<[u8; 32]>,
}

/// What a node adds to its claims beyond its key and GPU evidence: a worker's sealing key and
/// model identity. The default adds nothing (the reference's bare claims).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClaimsExtras {
    /// The HPKE public key of a worker's sealed requests (tag 1).
    pub sealing_key: Option<[u8; 32]>,
    /// SHA-256 of the model name the worker announces (tag 3, [`model_hash`]).
    pub model_hash: Option<[u8; 32]>,
    /// SHA-256 of the weights file it loaded, or a dm-verity root hash (tag 4).
    pub weights_digest: Option<[u8; 32]>,
}

/// The model hash of a model name: SHA-256 of its UTF-8 bytes, exactly as announced (no
/// trimming or case folding), as the reference's root computes `model_hashes`.
pub fn model_hash(model: &str) -> [u8; 32] {
    Sha256::digest(model.as_bytes()).into()
}

/// Why claims bytes were refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("malformed user claims ({0} bytes)")]
pub struct ClaimsError(pub usize);

impl UserClaims {
    /// Claims for a certificate key, with no optional fields.
    pub fn for_key(public_key: [u8; 32]) -> UserClaims {
        UserClaims {
            public_key,
            hpke_public_key: None,
            gpu_evidence_hash: None,
            model_hash: None,
            weights_digest: None,
        }
    }

    /// Claims for a certificate key carrying `extras` (no GPU evidence hash yet).
    pub fn with_extras(public_key: [u8; 32], extras: &ClaimsExtras) -> UserClaims {
        UserClaims {
            public_key,
            hpke_public_key: extras.sealing_key,
            gpu_evidence_hash: None,
            model_hash: extras.model_hash,
            weights_digest: extras.weights_digest,
        }
    }

    /// The wire form: the public key, then each present optional field as its tag and value,
    /// in tag order (`0x01 ‖ HPKE key`, `0x02 ‖ GPU evidence hash`, `0x03 ‖ model hash`,
    /// `0x04 ‖ weights digest`).
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = self.public_key.to_vec();
        for (tag, field) in [
            (HPKE_TAG, &self.hpke_public_key),
            (GPU_EVIDENCE_TAG, &self.gpu_evidence_hash),
            (MODEL_HASH_TAG, &self.model_hash),
            (WEIGHTS_DIGEST_TAG, &self.weights_digest),
        ] {
            if let Some(value) = field {
                out.push(tag);
                out.extend_from_slice(value);
            }
        }
        out
    }

    /// Parses the wire form: tags in increasing order, each at most once, nothing after.
    pub fn parse(bytes: &[u8]) -> Result<UserClaims, ClaimsError> {
        let malformed = || ClaimsError(bytes.len());
        let (public_key, mut rest) = bytes.split_first_chunk::<32>().ok_or_else(malformed)?;
        let mut claims = UserClaims::for_key(*public_key);
        let mut last_tag = 0;
        while let Some((&tag, tail)) = rest.split_first() {
            let (value, tail) = tail.split_first_chunk::<32>().ok_or_else(malformed)?;
            if tag <= last_tag {
                return Err(malformed());
            }
            match tag {
                HPKE_TAG => claims.hpke_public_key = Some(*value),
                GPU_EVIDENCE_TAG => claims.gpu_evidence_hash = Some(*value),
                MODEL_HASH_TAG => claims.model_hash = Some(*value),
                WEIGHTS_DIGEST_TAG => claims.weights_digest = Some(*value),
                _ => return Err(malformed()),
            }
            last_tag = tag;
            rest = tail;
        }
        Ok(claims)
    }

    /// SHA-512 of the wire form: the report data a quote must carry.
    pub fn report_data(&self) -> [u8; 64] {
        Sha512::digest(self.serialize()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reference_form() {
        let claims = UserClaims::for_key([7; 32]);
        assert_eq!(
            claims.serialize(),
            vec![7; 32],
            "reference form is the bare key"
        );
        assert_eq!(UserClaims::parse(&claims.serialize()).unwrap(), claims);
        let with_hpke = UserClaims {
            hpke_public_key: Some([9; 32]),
            ..claims.clone()
        };
        assert_eq!(
            UserClaims::parse(&with_hpke.serialize()).unwrap(),
            with_hpke
        );
        assert_ne!(with_hpke.report_data(), claims.report_data());
        let with_gpu = UserClaims {
            gpu_evidence_hash: Some([5; 32]),
            ..with_hpke.clone()
        };
        let bytes = with_gpu.serialize();
        assert_eq!(bytes.len(), 32 + 33 + 33);
        assert_eq!(&bytes[65..67], &[2, 5]);
        assert_eq!(UserClaims::parse(&bytes).unwrap(), with_gpu);
        let gpu_only = UserClaims {
            hpke_public_key: None,
            ..with_gpu.clone()
        };
        assert_eq!(UserClaims::parse(&gpu_only.serialize()).unwrap(), gpu_only);
        assert_ne!(gpu_only.report_data(), claims.report_data());
        // Tags out of order or repeated, unknown tags, cut or trailing bytes.
        let mut swapped = vec![7u8; 32];
        swapped.extend_from_slice(&bytes[65..]);
        swapped.extend_from_slice(&bytes[32..65]);
        let mut repeated = vec![7u8; 32];
        repeated.extend_from_slice(&bytes[32..65]);
        repeated.extend_from_slice(&bytes[32..65]);
        let mut unknown = vec![7u8; 32];
        unknown.push(5);
        unknown.extend_from_slice(&[0; 32]);
        for bad in [
            &[0u8; 31][..],
            &[0; 33],
            &[0; 65],
            &[0; 66],
            &swapped,
            &repeated,
            &unknown,
            &bytes[..bytes.len() - 1],
        ] {
            assert!(UserClaims::parse(bad).is_err(), "{}", bad.len());
        }
    }

    #[test]
    fn model_identity_round_trips_in_tag_order_and_strictly() {
        let bare = UserClaims::for_key([7; 32]);
        let model = UserClaims {
            model_hash: Some(model_hash("Qwen/Qwen3-8B")),
            ..bare.clone()
        };
        let bytes = model.serialize();
        assert_eq!(bytes.len(), 32 + 33);
        assert_eq!(bytes[32], 3);
        assert_eq!(&bytes[33..], &Sha256::digest(b"Qwen/Qwen3-8B")[..]);
        assert_eq!(UserClaims::parse(&bytes).unwrap(), model);
        assert_ne!(model.report_data(), bare.report_data());

        let weights_only = UserClaims {
            weights_digest: Some([4; 32]),
            ..bare.clone()
        };
        let bytes = weights_only.serialize();
        assert_eq!(bytes[32], 4);
        assert_eq!(UserClaims::parse(&bytes).unwrap(), weights_only);

        let all = UserClaims {
            public_key: [7; 32],
            hpke_public_key: Some([1; 32]),
            gpu_evidence_hash: Some([2; 32]),
            model_hash: Some([3; 32]),
            weights_digest: Some([4; 32]),
        };
        let bytes = all.serialize();
        assert_eq!(bytes.len(), 32 + 4 * 33);
        let tags: Vec<u8> = (0..4).map(|i| bytes[32 + 33 * i]).collect();
        assert_eq!(tags, [1, 2, 3, 4]);
        assert_eq!(UserClaims::parse(&bytes).unwrap(), all);
        // Model hash and weights digest differ only by tag: swapping them changes the claims.
        let mut swapped_values = bytes.clone();
        swapped_values[32 + 66] = 4;
        swapped_values[32 + 99] = 3;
        assert!(UserClaims::parse(&swapped_values).is_err(), "tags 4 then 3");
        let mut repeated = bytes[..32 + 99].to_vec();
        repeated.extend_from_slice(&bytes[32 + 66..32 + 99]);
        assert!(UserClaims::parse(&repeated).is_err(), "tag 3 twice");
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(UserClaims::parse(&trailing).is_err(), "a trailing byte");
        assert!(UserClaims::parse(&bytes[..bytes.len() - 1]).is_err(), "cut");
        // Every single-field variant changes the report data.
        let variants = [
            UserClaims {
                model_hash: None,
                ..all.clone()
            },
            UserClaims {
                weights_digest: None,
                ..all.clone()
            },
            UserClaims {
                weights_digest: Some([5; 32]),
                ..all.clone()
            },
        ];
        for variant in variants {
            assert_ne!(variant.report_data(), all.report_data());
        }
    }
}
