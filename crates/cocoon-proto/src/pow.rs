//! The proof-of-work gate that precedes TLS: the server sends a challenge, the client finds a
//! nonce whose hash has enough leading zero bits.

use sha2::{Digest, Sha256};

/// Difficulty a server asks for by default.
pub const POW_DEFAULT_DIFFICULTY: i32 = 20;
/// Highest difficulty a client agrees to solve; anything harder is treated as hostile.
pub const POW_MAX_CLIENT_DIFFICULTY: i32 = 28;
/// Encoded size of a [`PowChallenge`].
pub const POW_CHALLENGE_LEN: usize = 24;
/// Encoded size of a [`PowResponse`].
pub const POW_RESPONSE_LEN: usize = 12;
/// Constructor id of `cocoon.powSimple` (pinned).
pub const POW_CHALLENGE_CONSTRUCTOR: u32 = 0x418e1291;
/// Constructor id of `cocoon.powSimpleResponse` (pinned).
pub const POW_RESPONSE_CONSTRUCTOR: u32 = 0x01827319;

/// Why a proof-of-work message could not be decoded.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PowError {
    /// The message does not have the fixed size of its kind.
    #[error("proof-of-work message of {got} bytes, expected {expected}")]
    WrongLength {
        /// The size the message must have.
        expected: usize,
        /// The size it had.
        got: usize,
    },
    /// The message starts with the wrong constructor id.
    #[error("proof-of-work message has constructor {found:#010x}, expected {expected:#010x}")]
    WrongConstructor {
        /// The constructor id the message must have.
        expected: u32,
        /// The constructor id it had.
        found: u32,
    },
}

fn split_fixed<const N: usize>(data: &[u8], constructor: u32) -> Result<[u8; N], PowError> {
    let array: [u8; N] = data.try_into().map_err(|_| PowError::WrongLength {
        expected: N,
        got: data.len(),
    })?;
    let found = u32::from_le_bytes([array[0], array[1], array[2], array[3]]);
    if found != constructor {
        return Err(PowError::WrongConstructor {
            expected: constructor,
            found,
        });
    }
    Ok(array)
}

/// Leading zero bits of a hash as the reference counts them: the first 8 bytes read as a
/// little-endian `u64` (so the zeros that count are at the *end* of those 8 bytes).
pub fn leading_zero_bits(hash: &[u8; 32]) -> u32 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(head).leading_zeros()
}

/// `cocoon.powSimple`: the server's challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PowChallenge {
    /// Leading zero bits the hash must have.
    pub difficulty_bits: i32,
    /// Random salt hashed before the nonce.
    pub salt: [u8; 16],
}

impl PowChallenge {
    /// The 24-byte wire form: constructor id, difficulty, salt.
    pub fn to_bytes(&self) -> [u8; POW_CHALLENGE_LEN] {
        let mut out = [0u8; POW_CHALLENGE_LEN];
        out[..4].copy_from_slice(&POW_CHALLENGE_CONSTRUCTOR.to_le_bytes());
        out[4..8].copy_from_slice(&self.difficulty_bits.to_le_bytes());
        out[8..].copy_from_slice(&self.salt);
        out
    }

    /// Parses the 24-byte wire form.
    pub fn from_bytes(data: &[u8]) -> Result<Self, PowError> {
        let raw: [u8; POW_CHALLENGE_LEN] = split_fixed(data, POW_CHALLENGE_CONSTRUCTOR)?;
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&raw[8..]);
        Ok(Self {
            difficulty_bits: i32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]),
            salt,
        })
    }

    fn salted_hasher(&self) -> Sha256 {
        Sha256::new_with_prefix(self.salt)
    }

    fn meets_difficulty(&self, hash: &[u8; 32]) -> bool {
        // Only 64 bits are counted, so a difficulty above 64 can never be met, and one of zero or
        // less is met by anything. Comparing as i64 avoids any overflow for extreme values.
        i64::from(leading_zero_bits(hash)) >= i64::from(self.difficulty_bits)
    }

    /// Whether `nonce` solves this challenge: SHA-256(salt ‖ nonce as 8 LE bytes) has at least
    /// `difficulty_bits` leading zero bits.
    pub fn verify(&self, nonce: i64) -> bool {
        let hash: [u8; 32] = self
            .salted_hasher()
            .chain_update(nonce.to_le_bytes())
            .finalize()
            .into();
        self.meets_difficulty(&hash)
    }

    /// Tries up to `max_iterations` nonces from `start_nonce` upwards (wrapping) and returns the
    /// first that solves the challenge.
    pub fn solve(&self, start_nonce: i64, max_iterations: u64) -> Option<i64> {
        if self.difficulty_bits > 64 {
            return None;
        }
        let prefix = self.salted_hasher();
        let mut nonce = start_nonce;
        for _ in 0..max_iterations {
            let hash: [u8; 32] = prefix
                .clone()
                .chain_update(nonce.to_le_bytes())
                .finalize()
                .into();
            if self.meets_difficulty(&hash) {
                return Some(nonce);
            }
            nonce = nonce.wrapping_add(1);
        }
        None
    }
}

/// `cocoon.powSimpleResponse`: the client's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PowResponse {
    /// The nonce that solves the challenge.
    pub nonce: i64,
}

impl PowResponse {
    /// The 12-byte wire form: constructor id, nonce.
    pub fn to_bytes(&self) -> [u8; POW_RESPONSE_LEN] {
        let mut out = [0u8; POW_RESPONSE_LEN];
        out[..4].copy_from_slice(&POW_RESPONSE_CONSTRUCTOR.to_le_bytes());
        out[4..].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses the 12-byte wire form.
    pub fn from_bytes(data: &[u8]) -> Result<Self, PowError> {
        let raw: [u8; POW_RESPONSE_LEN] = split_fixed(data, POW_RESPONSE_CONSTRUCTOR)?;
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&raw[4..]);
        Ok(Self {
            nonce: i64::from_le_bytes(nonce),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solved_nonce_verifies() {
        let challenge = PowChallenge {
            difficulty_bits: 12,
            salt: [7; 16],
        };
        let nonce = challenge.solve(0, 1 << 20).expect("12 bits is easy");
        assert!(challenge.verify(nonce));
        let hash: [u8; 32] = Sha256::new_with_prefix(challenge.salt)
            .chain_update(nonce.to_le_bytes())
            .finalize()
            .into();
        assert!(leading_zero_bits(&hash) >= 12);
    }

    #[test]
    fn zeros_are_counted_from_the_eighth_byte() {
        let mut hash = [0xffu8; 32];
        hash[..8].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00]);
        // Read as LE u64 the top 16 bits are the last two (zero) bytes.
        assert_eq!(leading_zero_bits(&hash), 16);
        hash[..8].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x80]);
        // Leading zero bytes at the front do not count at all.
        assert_eq!(leading_zero_bits(&hash), 0);
        hash[..8].copy_from_slice(&[0; 8]);
        assert_eq!(leading_zero_bits(&hash), 64);
    }

    #[test]
    fn extreme_difficulties_do_not_panic() {
        for difficulty_bits in [i32::MIN, -1, 0, 64, 65, i32::MAX] {
            let challenge = PowChallenge {
                difficulty_bits,
                salt: [1; 16],
            };
            let verified = challenge.verify(42);
            if difficulty_bits <= 0 {
                assert!(verified);
                assert_eq!(challenge.solve(5, 1), Some(5));
            }
            if difficulty_bits > 64 {
                assert!(!verified);
                assert_eq!(challenge.solve(0, 1000), None);
            }
        }
    }

    #[test]
    fn wire_forms_round_trip() {
        let challenge = PowChallenge {
            difficulty_bits: POW_DEFAULT_DIFFICULTY,
            salt: [3; 16],
        };
        let bytes = challenge.to_bytes();
        assert_eq!(&bytes[..8], &[0x91, 0x12, 0x8e, 0x41, 20, 0, 0, 0]);
        assert_eq!(PowChallenge::from_bytes(&bytes), Ok(challenge));
        assert!(PowChallenge::from_bytes(&bytes[..23]).is_err());
        let response = PowResponse { nonce: -5 };
        assert_eq!(PowResponse::from_bytes(&response.to_bytes()), Ok(response));
        assert!(matches!(
            PowResponse::from_bytes(&bytes[..12]),
            Err(PowError::WrongConstructor { .. })
        ));
    }
}
