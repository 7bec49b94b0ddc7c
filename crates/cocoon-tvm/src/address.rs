//! Account addresses as plain data (`workchain:hash`), and their conversion to tycho's `StdAddr`.

use std::fmt;
use std::str::FromStr;

use tycho_types::cell::HashBytes;
use tycho_types::models::{IntAddr, StdAddr};

use crate::error::{Error, Result};

/// An `addr_std` address without anycast: a workchain and a 256-bit account id. Written
/// `0:4f…` (the "raw" form of TON tools), which is also how `Display` and `FromStr` read it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub workchain: i8,
    pub hash: [u8; 32],
}

impl Address {
    /// A basechain (workchain 0) address.
    pub const fn basechain(hash: [u8; 32]) -> Self {
        Self { workchain: 0, hash }
    }

    pub(crate) fn to_std(self) -> StdAddr {
        StdAddr::new(self.workchain, HashBytes(self.hash))
    }

    pub(crate) fn from_std(address: &StdAddr) -> Self {
        Self {
            workchain: address.workchain,
            hash: address.address.0,
        }
    }

    /// The address of a message's source or destination; `addr_var` and anycast addresses are
    /// outside what this network simulates.
    pub(crate) fn from_int(address: &IntAddr) -> Result<Self> {
        match address {
            IntAddr::Std(std) if std.anycast.is_none() => Ok(Self::from_std(std)),
            other => Err(Error::UnsupportedWorkchain(other.to_string())),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.workchain, hex::encode(self.hash))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BadAddress(s.to_owned());
        let (workchain, hash) = s.split_once(':').ok_or_else(bad)?;
        let workchain = workchain.parse::<i8>().map_err(|_| bad())?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hash, &mut bytes).map_err(|_| bad())?;
        Ok(Self {
            workchain,
            hash: bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_form_round_trips_and_rejects_garbage() {
        let text = "0:20c6e2a0b8a7e2e8d1c7b0a4f1b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9";
        let address: Address = text.parse().unwrap();
        assert_eq!(address.to_string(), text);
        assert_eq!(Address::from_std(&address.to_std()), address);
        let minus_one: Address = format!("-1:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(minus_one.workchain, -1);
        for bad in [
            "",
            "0",
            "0:",
            "0:abc",
            "x:00",
            "300:00",
            &format!("0:{}", "zz".repeat(32)),
        ] {
            assert!(
                matches!(bad.parse::<Address>(), Err(Error::BadAddress(_))),
                "{bad:?}"
            );
        }
    }
}
