//! Proof-of-work vectors computed outside our code, from the rule on the facts page: a nonce is
//! valid when SHA-256(salt ‖ nonce as 8 little-endian bytes) has at least `difficulty` leading
//! zero bits, counted on the first 8 bytes of the hash read as a little-endian u64.
//!
//! The literals come from this Python 3 script (hashlib), run once:
//!
//! ```text
//! def digest(salt, nonce): return hashlib.sha256(salt + nonce.to_bytes(8, "little", signed=True)).digest()
//! def zeros(h): return 64 - int.from_bytes(h[:8], "little").bit_length()   # the reference's count
//! def naive(h): return 64 - int.from_bytes(h[:8], "big").bit_length()      # the usual count
//! def first(salt, start, step, pred):
//!     n = start
//!     while not pred(digest(salt, n)): n += step
//!     return n, digest(salt, n)
//! A = bytes(range(16)); B = b"\xab" * 16; Z = bytes(16)
//! first(A, 0, 1, lambda h: zeros(h) >= 16)                     # 84956
//! first(B, 0, 1, lambda h: zeros(h) >= 20)                     # 1800571
//! first(Z, -1, -1, lambda h: zeros(h) >= 8)                    # -382
//! first(A, 0, 1, lambda h: naive(h) >= 12 and zeros(h) < 12)   # 3326
//! first(A, 0, 1, lambda h: zeros(h) >= 12 and naive(h) < 12)   # 7012
//! ```

use cocoon_proto::pow::{leading_zero_bits, PowChallenge};
use sha2::{Digest, Sha256};

struct Vector {
    what: &'static str,
    salt: [u8; 16],
    difficulty_bits: i32,
    nonce: i64,
    hash: &'static str,
    zero_bits: u32,
    valid: bool,
}

const SALT_A: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const SALT_B: [u8; 16] = [0xab; 16];
const SALT_Z: [u8; 16] = [0; 16];

const VECTORS: &[Vector] = &[
    Vector {
        what: "first nonce from 0 with 16 bits, salt 00..0f",
        salt: SALT_A,
        difficulty_bits: 16,
        nonce: 84956,
        hash: "422212365dcb0000780fae7d0447cee79fa4ba3b9fdb0c64a413eaa403eb611c",
        zero_bits: 16,
        valid: true,
    },
    Vector {
        what: "the nonce before it",
        salt: SALT_A,
        difficulty_bits: 16,
        nonce: 84955,
        hash: "a2fd02218fd3d78a1817320ed6f6395665a2865ffefc30a2e54a7234fc133bcc",
        zero_bits: 0,
        valid: false,
    },
    Vector {
        what: "first nonce from 0 at the default 20 bits, salt ab..ab",
        salt: SALT_B,
        difficulty_bits: 20,
        nonce: 1800571,
        hash: "e1d3ad501f0e000037805a398353aed54fcfe256b3a9d0055bc92b570f255c75",
        zero_bits: 20,
        valid: true,
    },
    Vector {
        what: "the nonce before it",
        salt: SALT_B,
        difficulty_bits: 20,
        nonce: 1800570,
        hash: "7b296d9c4386bb3a368ab55cca32bc17ede7b6c96011a33b0095576221bdb65e",
        zero_bits: 2,
        valid: false,
    },
    Vector {
        what: "a negative nonce (two's complement, little-endian), 8 bits, zero salt",
        salt: SALT_Z,
        difficulty_bits: 8,
        nonce: -382,
        hash: "a98a02316cb9a00057b0d4292f1f58405448e41d9edcf14f28f3ce31aab62b84",
        zero_bits: 8,
        valid: true,
    },
    Vector {
        what: "12 zero bits at the front of the hash, which the reference does not count",
        salt: SALT_A,
        difficulty_bits: 12,
        nonce: 3326,
        hash: "000ec48287e0166fceca14c241d2f5dd86dcbf78d74686350c361ca90c98159f",
        zero_bits: 1,
        valid: false,
    },
    Vector {
        what: "13 zero bits at the end of the first 8 bytes, which it does count",
        salt: SALT_A,
        difficulty_bits: 12,
        nonce: 7012,
        hash: "7e7aa796bce604004379b953e677868b06f2ca4226d4dd5f4073ed9dda509385",
        zero_bits: 13,
        valid: true,
    },
];

fn hash_from_hex(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
    }
    out
}

#[test]
fn vectors_verify_as_computed_outside() {
    assert_eq!(VECTORS.iter().filter(|vector| !vector.valid).count(), 3);
    for vector in VECTORS {
        let hash = hash_from_hex(vector.hash);
        let mut input = vector.salt.to_vec();
        input.extend_from_slice(&vector.nonce.to_le_bytes());
        assert_eq!(
            <[u8; 32]>::from(Sha256::digest(&input)),
            hash,
            "{}",
            vector.what
        );
        assert_eq!(
            leading_zero_bits(&hash),
            vector.zero_bits,
            "{}",
            vector.what
        );
        let challenge = PowChallenge {
            difficulty_bits: vector.difficulty_bits,
            salt: vector.salt,
        };
        assert_eq!(
            challenge.verify(vector.nonce),
            vector.valid,
            "{}",
            vector.what
        );
        if vector.valid {
            // One bit harder than the hash has is never enough.
            let harder = PowChallenge {
                difficulty_bits: vector.zero_bits as i32 + 1,
                ..challenge
            };
            assert!(!harder.verify(vector.nonce), "{}", vector.what);
        }
    }
}

#[test]
fn solving_finds_the_first_valid_nonce() {
    let challenge = PowChallenge {
        difficulty_bits: 16,
        salt: SALT_A,
    };
    assert_eq!(challenge.solve(0, 84956), None);
    assert_eq!(challenge.solve(0, 84957), Some(84956));
    let negative = PowChallenge {
        difficulty_bits: 8,
        salt: SALT_Z,
    };
    assert_eq!(negative.solve(-382, 1), Some(-382));
}
