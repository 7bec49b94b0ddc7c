//! TON for COCOON: the deployed contracts' interface ([`cocoon`]: every storage layout, message
//! body, proxy-signed message and address derivation of `shared/reference/cocoon-contracts-facts.md`),
//! a TON network as COCOON uses it ([`ton::TonNetwork`]: the embedded TVM in [`ton::TvmNetwork`],
//! toncenter's v2 API in [`toncenter_v2::ToncenterNetwork`]), amounts, keys and wallets.
//!
//! The contracts themselves are the Tolk sources in `contracts/`, tested in `@ton/sandbox`;
//! their compiled code (`contracts/build/*.json`) is embedded by [`cocoon::codes`].

mod boc;
pub mod cocoon;
pub mod coins;
pub mod keyfile;
pub mod keys;
pub mod payout;
pub mod ton;
pub mod toncenter_v2;
pub mod wallet;

pub use coins::Coins;
pub use keys::ProxyKey;
pub use tonlib_core::TonAddress as Address;
pub use wallet::Wallet;
