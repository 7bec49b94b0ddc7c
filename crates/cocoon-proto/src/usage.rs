//! What a usage report bills: the four categories of [`TokensUsed`], never their sender's
//! `total`, and the protocol's price adjustment (facts: "adjusted = floor(n × coefficient/1000 ×
//! multiplier/10000)" per category, applied by the worker; the proxy charges the adjusted sum).
//!
//! All arithmetic here saturates: a report is peer input, and `i64::MAX` in one category must
//! not wrap a sum to something small (or negative) that bills nothing.

use crate::TokensUsed;

/// One multiplier of 1.0× (the root's params use 10000 = 1.0×).
pub const MULTIPLIER_ONE: u32 = 10_000;
/// One coefficient of 1.0× (workers announce 1000 = 1.0×).
pub const COEFFICIENT_ONE: u32 = 1_000;

/// The root's per-category price multipliers (10000 = 1.0×).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Multipliers {
    /// Prompt tokens that were not cached.
    pub prompt: u32,
    /// Cached prompt tokens.
    pub cached: u32,
    /// Completion tokens that were not reasoning.
    pub completion: u32,
    /// Reasoning tokens.
    pub reasoning: u32,
}

impl Multipliers {
    /// Every category at 1.0×: what a node without the root's params uses.
    pub const ONE: Multipliers = Multipliers {
        prompt: MULTIPLIER_ONE,
        cached: MULTIPLIER_ONE,
        completion: MULTIPLIER_ONE,
        reasoning: MULTIPLIER_ONE,
    };

    /// The largest multiplier: what a token of unknown category may cost at most.
    pub fn max(&self) -> u32 {
        self.prompt
            .max(self.cached)
            .max(self.completion)
            .max(self.reasoning)
    }
}

impl Default for Multipliers {
    fn default() -> Self {
        Multipliers::ONE
    }
}

/// `floor(tokens × coefficient/1000 × multiplier/10000)`, in integers (the reference computes
/// it in doubles), saturating at `u64::MAX`.
pub fn adjust_tokens(tokens: u64, coefficient: u32, multiplier: u32) -> u64 {
    let scaled = u128::from(tokens) * u128::from(coefficient) * u128::from(multiplier);
    u64::try_from(scaled / (u128::from(COEFFICIENT_ONE) * u128::from(MULTIPLIER_ONE)))
        .unwrap_or(u64::MAX)
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn field(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl TokensUsed {
    /// A report of raw counts: `prompt` tokens of which `cached` were cached, `completion`
    /// tokens of which `reasoning` were reasoning. The parts are clamped to their wholes and
    /// the total is the sum, whatever the source claimed.
    pub fn from_counts(prompt: u64, cached: u64, completion: u64, reasoning: u64) -> TokensUsed {
        let cached = cached.min(prompt);
        let reasoning = reasoning.min(completion);
        TokensUsed::from_categories([prompt - cached, cached, completion - reasoning, reasoning])
    }

    /// A report of the four categories (prompt, cached, completion, reasoning) with their sum
    /// as the total.
    pub fn from_categories(categories: [u64; 4]) -> TokensUsed {
        let total = categories
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(*c));
        TokensUsed {
            prompt_tokens_used: field(categories[0]),
            cached_tokens_used: field(categories[1]),
            completion_tokens_used: field(categories[2]),
            reasoning_tokens_used: field(categories[3]),
            total_tokens_used: field(total),
        }
    }

    /// The four categories (prompt, cached, completion, reasoning); a negative count is 0.
    pub fn categories(&self) -> [u64; 4] {
        [
            count(self.prompt_tokens_used),
            count(self.cached_tokens_used),
            count(self.completion_tokens_used),
            count(self.reasoning_tokens_used),
        ]
    }

    /// What the report bills: the sum of its categories (saturating), or its `total` when it
    /// itemises nothing (a sender that reports only a total).
    pub fn billable(&self) -> u64 {
        let sum = self
            .categories()
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(*c));
        if sum == 0 {
            count(self.total_tokens_used)
        } else {
            sum
        }
    }

    /// Whether the report's `total` disagrees with its categories.
    pub fn is_inconsistent(&self) -> bool {
        let sum = self
            .categories()
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(*c));
        sum != 0 && sum != count(self.total_tokens_used)
    }

    /// The report priced as the protocol says: each category × `coefficient`/1000 × its
    /// multiplier/10000, rounded down; the total is the sum.
    pub fn adjusted(&self, coefficient: u32, multipliers: &Multipliers) -> TokensUsed {
        let [prompt, cached, completion, reasoning] = self.categories();
        TokensUsed::from_categories([
            adjust_tokens(prompt, coefficient, multipliers.prompt),
            adjust_tokens(cached, coefficient, multipliers.cached),
            adjust_tokens(completion, coefficient, multipliers.completion),
            adjust_tokens(reasoning, coefficient, multipliers.reasoning),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn adjustment_follows_the_protocol() {
        assert_eq!(adjust_tokens(1000, 1000, 10_000), 1000);
        assert_eq!(adjust_tokens(1000, 4000, 10_000), 4000);
        assert_eq!(adjust_tokens(1000, 1000, 5_000), 500);
        assert_eq!(adjust_tokens(3, 1500, 10_000), 4); // 4.5 rounds down
        assert_eq!(adjust_tokens(u64::MAX, 1_000_000_000, u32::MAX), u64::MAX);
        let report = TokensUsed::from_counts(100, 40, 50, 10);
        let multipliers = Multipliers {
            prompt: 10_000,
            cached: 1_000,
            completion: 20_000,
            reasoning: 30_000,
        };
        let adjusted = report.adjusted(2000, &multipliers);
        assert_eq!(adjusted.categories(), [120, 8, 160, 60]);
        assert_eq!(adjusted.total_tokens_used, 348);
    }

    #[test]
    fn a_lying_total_bills_nothing_extra_and_huge_counts_saturate() {
        let lie = TokensUsed {
            prompt_tokens_used: 5,
            completion_tokens_used: 1,
            total_tokens_used: 100_000_000,
            ..TokensUsed::default()
        };
        assert_eq!(lie.billable(), 6);
        assert!(lie.is_inconsistent());
        let wrap = TokensUsed {
            prompt_tokens_used: i64::MAX,
            completion_tokens_used: i64::MAX,
            total_tokens_used: i64::MAX.wrapping_add(i64::MAX),
            ..TokensUsed::default()
        };
        assert_eq!(wrap.billable(), u64::MAX - 1);
        let negative = TokensUsed {
            prompt_tokens_used: -5,
            total_tokens_used: -5,
            ..TokensUsed::default()
        };
        assert_eq!(negative.billable(), 0);
        let only_total = TokensUsed {
            total_tokens_used: 7,
            ..TokensUsed::default()
        };
        assert_eq!(only_total.billable(), 7);
    }

    proptest! {
        #[test]
        fn billable_never_wraps(
            counts in proptest::array::uniform4(any::<i64>()),
            total in any::<i64>(),
        ) {
            let report = TokensUsed {
                prompt_tokens_used: counts[0],
                cached_tokens_used: counts[1],
                completion_tokens_used: counts[2],
                reasoning_tokens_used: counts[3],
                total_tokens_used: total,
            };
            let billable = report.billable();
            for c in report.categories() {
                prop_assert!(billable >= c);
            }
        }

        #[test]
        fn adjusting_never_bills_more_than_the_adjusted_sum(
            counts in proptest::array::uniform4(0u64..=(i64::MAX as u64) / 4),
            coefficient in 0u32..=1_000_000_000,
            multiplier in any::<u32>(),
        ) {
            let report = TokensUsed::from_categories(counts);
            let m = Multipliers { prompt: multiplier, cached: multiplier, completion: multiplier, reasoning: multiplier };
            let adjusted = report.adjusted(coefficient, &m);
            prop_assert!(adjusted.total_tokens_used >= 0);
            prop_assert!(!adjusted.is_inconsistent() || adjusted.total_tokens_used == i64::MAX);
            prop_assert!(adjusted.billable() <= adjust_tokens(report.billable(), coefficient, multiplier));
        }
    }
}
