//! Amounts of Toncoin in nano-TON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Nano-TON per TON.
pub const NANO_PER_TON: u128 = 1_000_000_000;

/// An amount of Toncoin, in nano-TON.
///
/// Displays as TON with up to nine decimals (`1.5 TON`); parses `1.5`, `1.5 TON`, `1500000000n`
/// (nano-TON, with the suffix `n`) and `1500000000 nano`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Coins(pub u128);

impl Coins {
    /// Zero.
    pub const ZERO: Coins = Coins(0);

    /// `n` nano-TON.
    pub const fn nano(n: u128) -> Coins {
        Coins(n)
    }

    /// `n` whole TON.
    pub const fn ton(n: u128) -> Coins {
        Coins(n * NANO_PER_TON)
    }

    /// The amount in nano-TON.
    pub const fn as_nano(self) -> u128 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Coins) -> Option<Coins> {
        self.0.checked_add(other.0).map(Coins)
    }

    /// `self − other`, or `None` when `other` is larger.
    pub fn checked_sub(self, other: Coins) -> Option<Coins> {
        self.0.checked_sub(other.0).map(Coins)
    }

    /// `self − other`, floored at zero.
    pub fn saturating_sub(self, other: Coins) -> Coins {
        Coins(self.0.saturating_sub(other.0))
    }

    /// The cell encoding (`VarUInteger 16`) holds at most 120 bits.
    pub fn fits_in_cell(self) -> bool {
        self.0 < (1u128 << 120)
    }
}

impl fmt::Display for Coins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / NANO_PER_TON;
        let frac = self.0 % NANO_PER_TON;
        if frac == 0 {
            write!(f, "{whole} TON")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{whole}.{} TON", digits.trim_end_matches('0'))
        }
    }
}

/// Why an amount did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid amount {input:?}: {why} (examples: 1.5, 1.5 TON, 1500000000n)")]
pub struct ParseCoinsError {
    input: String,
    why: &'static str,
}

impl FromStr for Coins {
    type Err = ParseCoinsError;

    fn from_str(s: &str) -> Result<Coins, ParseCoinsError> {
        let err = |why| ParseCoinsError {
            input: s.to_string(),
            why,
        };
        let t = s.trim();
        let nano = t
            .strip_suffix("nano")
            .or_else(|| t.strip_suffix('n'))
            .map(str::trim);
        if let Some(n) = nano {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("nano-TON must be a whole number"));
            }
            return n.parse::<u128>().map(Coins).map_err(|_| err("too large"));
        }
        let t = t.strip_suffix("TON").map(str::trim).unwrap_or(t);
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(err("empty"));
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("not a number"));
        }
        if frac.len() > 9 {
            return Err(err("more than nine decimals"));
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err("too large"))?
        };
        let frac_nano: u128 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}")
                .parse()
                .map_err(|_| err("not a number"))?
        };
        whole
            .checked_mul(NANO_PER_TON)
            .and_then(|n| n.checked_add(frac_nano))
            .map(Coins)
            .ok_or_else(|| err("too large"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_and_parse() {
        assert_eq!(Coins::nano(1_500_000_000).to_string(), "1.5 TON");
        assert_eq!(Coins::nano(20).to_string(), "0.00000002 TON");
        assert_eq!(Coins::ton(3).to_string(), "3 TON");
        assert_eq!("1.5".parse::<Coins>(), Ok(Coins::nano(1_500_000_000)));
        assert_eq!("1.5 TON".parse::<Coins>(), Ok(Coins::nano(1_500_000_000)));
        assert_eq!("20n".parse::<Coins>(), Ok(Coins::nano(20)));
        assert_eq!("20 nano".parse::<Coins>(), Ok(Coins::nano(20)));
        assert_eq!(".5".parse::<Coins>(), Ok(Coins::nano(500_000_000)));
        for bad in ["", "TON", "1.2.3", "-1", "1.0000000001", "abc", "1e9", "n"] {
            assert!(bad.parse::<Coins>().is_err(), "{bad:?} parsed");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(n in any::<u64>()) {
            let c = Coins::nano(u128::from(n));
            prop_assert_eq!(c.to_string().parse::<Coins>(), Ok(c));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = s.parse::<Coins>();
        }
    }
}

/// Amounts in config files as text, for `#[serde(with = "cocoon_ton::coins::text")]`: `"1.5"`
/// (TON), `"1.5 TON"` or `"1500000000n"` (nano-TON); written back as nano-TON.
pub mod text {
    use super::Coins;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `1500000000n`.
    pub fn serialize<S: Serializer>(coins: &Coins, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}n", coins.0))
    }

    /// Reads any form [`Coins`] parses.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Coins, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
