//! User claims: what a certificate's quote vouches for. The quote's 64-byte report data is
//! SHA-512 of the serialised claims, and the claims contain the certificate's public key, so a
//! quote cannot be moved onto another certificate.

use sha2::{Digest, Sha512};

/// Tag of the optional HPKE key field that may follow the public key.
const HPKE_TAG: u8 = 1;

/// The claims bound into a quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserClaims {
    /// The certificate's Ed25519 public key.
    pub public_key: [u8; 32],
    /// A key for end-to-end encryption of prompts (reserved; not sent yet). The reference
    /// serialises the claims as the 32-byte key alone, so claims without this field stay
    /// byte-identical and verify on both implementations.
    pub hpke_public_key: Option<[u8; 32]>,
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
        }
    }

    /// The wire form: the public key, then (only if present) `0x01 ‖ HPKE key`.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = self.public_key.to_vec();
        if let Some(hpke) = &self.hpke_public_key {
            out.push(HPKE_TAG);
            out.extend_from_slice(hpke);
        }
        out
    }

    /// Parses the wire form.
    pub fn parse(bytes: &[u8]) -> Result<UserClaims, ClaimsError> {
        let public_key: [u8; 32] = bytes
            .get(..32)
            .and_then(|k| k.try_into().ok())
            .ok_or(ClaimsError(bytes.len()))?;
        let hpke_public_key = match &bytes[32..] {
            [] => None,
            [HPKE_TAG, key @ ..] if key.len() == 32 => {
                Some(key.try_into().map_err(|_| ClaimsError(bytes.len()))?)
            }
            _ => return Err(ClaimsError(bytes.len())),
        };
        Ok(UserClaims {
            public_key,
            hpke_public_key,
        })
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
        for bad in [&[0u8; 31][..], &[0; 33], &[0; 65], &[0; 66]] {
            assert!(UserClaims::parse(bad).is_err());
        }
    }
}
