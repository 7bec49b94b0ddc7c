//! TON for COCOON: amounts, message bodies and the proxy-signed messages, the payment rules
//! executed natively (the local chain), and the [`Chain`] trait the daemons use.
//!
//! The rules are specified in `docs/payments.md`; the Tolk contracts in `contracts/` implement
//! the same rules on a real TVM, and the conformance vectors in `contracts/vectors/` are run
//! against both.

pub mod chain;
pub mod cocoon;
pub mod coins;
pub mod keyfile;
pub mod local;
pub mod messages;
pub mod ops;
pub mod payout;
pub mod rules;
pub mod ton;
pub mod toncenter;
pub mod toncenter_v2;
pub mod tvm;
pub mod vectors;
pub mod wallet;

pub use wallet::Wallet;

pub use chain::{Chain, ChainError, Outgoing, Sent};
pub use coins::Coins;
pub use local::LocalChain;
pub use tonlib_core::TonAddress as Address;

use num_bigint::BigUint;

pub(crate) fn coins_to_big(c: Coins) -> BigUint {
    BigUint::from(c.0)
}

pub(crate) fn big_to_coins(b: &BigUint) -> Option<Coins> {
    u128::try_from(b).ok().map(Coins)
}
