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
//!
//! Claims with no optional field are the bare key: the reference's form.

use sha2::{Digest, Sha512};

/// Tag of the optional HPKE key field that may follow the public key.
const HPKE_TAG: u8 = 1;
/// Tag of the optional hash of the GPU evidence extension.
const GPU_EVIDENCE_TAG: u8 = 2;

/// The claims bound into a quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserClaims {
    /// The certificate's Ed25519 public key.
    pub public_key: [u8; 32],
    /// A key for end-to-end encryption of prompts (reserved; not sent yet). The reference
    /// serialises the claims as the 32-byte key alone, so claims without this field stay
    /// byte-identical and verify on both implementations.
    pub hpke_public_key: Option<[u8; 32]>,
    /// SHA-256 of the certificate's GPU evidence extension ([`crate::gpu::evidence_hash`]),
    /// when the node attests GPUs: the CPU's quote thereby vouches for the GPUs' evidence.
    pub gpu_evidence_hash: Option<[u8; 32]>,
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
        }
    }

    /// The wire form: the public key, then (only if present) `0x01 ‖ HPKE key`, then (only if
    /// present) `0x02 ‖ GPU evidence hash`.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = self.public_key.to_vec();
        for (tag, field) in [
            (HPKE_TAG, &self.hpke_public_key),
            (GPU_EVIDENCE_TAG, &self.gpu_evidence_hash),
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
        unknown.push(3);
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
}
