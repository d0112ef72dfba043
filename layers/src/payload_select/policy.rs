//! Which valid payload wins.

use std::{fmt, str::FromStr, sync::Arc};

use alloy_primitives::U256;

/// What a policy knows of a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// `l2` or the builder's name.
    pub source: Arc<str>,
    /// Gas used.
    pub gas_used: u64,
    /// The claimed block value.
    pub block_value: U256,
    /// Number of transactions.
    pub transactions: usize,
}

/// A policy's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// op-geth's own payload.
    Local,
    /// The builder payload at this index of the candidates.
    Builder(usize),
}

/// Chooses among op-geth's payload (if it has one) and the builder payloads that passed every
/// check and op-geth's validation. Closures `Fn(Option<&Summary>, &[Summary]) -> Choice` are
/// policies too.
pub trait PayloadPolicy: Send + Sync + 'static {
    /// The choice. `builders` is never empty.
    fn choose(&self, local: Option<&Summary>, builders: &[Summary]) -> Choice;
}

impl<F> PayloadPolicy for F
where
    F: Fn(Option<&Summary>, &[Summary]) -> Choice + Send + Sync + 'static,
{
    fn choose(&self, local: Option<&Summary>, builders: &[Summary]) -> Choice {
        self(local, builders)
    }
}

/// The built-in policies (`--selection-policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SelectionPolicy {
    /// A valid builder payload beats op-geth's; among builders, the most gas used wins
    /// (ties: the first configured).
    #[default]
    MostGas,
    /// A valid builder payload beats op-geth's; among builders, the highest block value wins.
    HighestValue,
    /// rollup-boost's `gas-used` rule: as `MostGas`, but op-geth's payload wins when the best
    /// builder payload uses less than 10% of op-geth's gas (a valid but near-empty builder block
    /// would otherwise starve users).
    GasUsed,
}

impl SelectionPolicy {
    /// The policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MostGas => "most-gas",
            Self::HighestValue => "highest-value",
            Self::GasUsed => "gas-used",
        }
    }
}

impl fmt::Display for SelectionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not a known policy name.
#[derive(Debug, thiserror::Error)]
#[error("unknown selection policy {0:?} (most-gas, highest-value or gas-used)")]
pub struct UnknownPolicy(String);

impl FromStr for SelectionPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "most-gas" => Ok(Self::MostGas),
            "highest-value" => Ok(Self::HighestValue),
            "gas-used" => Ok(Self::GasUsed),
            other => Err(UnknownPolicy(other.to_owned())),
        }
    }
}

fn best_by<K: Ord>(builders: &[Summary], key: impl Fn(&Summary) -> K) -> usize {
    // max_by_key keeps the last maximum; reversing keeps the first configured on ties.
    builders
        .iter()
        .enumerate()
        .rev()
        .max_by_key(|(_, s)| key(s))
        .map_or(0, |(i, _)| i)
}

impl PayloadPolicy for SelectionPolicy {
    fn choose(&self, local: Option<&Summary>, builders: &[Summary]) -> Choice {
        match self {
            Self::MostGas => Choice::Builder(best_by(builders, |s| s.gas_used)),
            Self::HighestValue => Choice::Builder(best_by(builders, |s| s.block_value)),
            Self::GasUsed => {
                let best = best_by(builders, |s| s.gas_used);
                let starved = local.is_some_and(|l| {
                    u128::from(builders[best].gas_used) * 10 < u128::from(l.gas_used)
                });
                if starved {
                    Choice::Local
                } else {
                    Choice::Builder(best)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(source: &str, gas_used: u64, value: u64) -> Summary {
        Summary {
            source: source.into(),
            gas_used,
            block_value: U256::from(value),
            transactions: 1,
        }
    }

    #[test]
    fn most_gas_and_highest_value_pick_among_builders() {
        let builders = [
            summary("a", 100, 9),
            summary("b", 300, 1),
            summary("c", 300, 5),
        ];
        assert_eq!(
            SelectionPolicy::MostGas.choose(None, &builders),
            Choice::Builder(1),
            "ties go to the first"
        );
        assert_eq!(
            SelectionPolicy::HighestValue.choose(None, &builders),
            Choice::Builder(0)
        );
    }

    #[test]
    fn gas_used_keeps_local_when_the_builder_block_is_far_emptier() {
        let local = summary("l2", 1_000, 0);
        assert_eq!(
            SelectionPolicy::GasUsed.choose(Some(&local), &[summary("a", 99, 0)]),
            Choice::Local
        );
        assert_eq!(
            SelectionPolicy::GasUsed.choose(Some(&local), &[summary("a", 100, 0)]),
            Choice::Builder(0)
        );
        assert_eq!(
            SelectionPolicy::GasUsed.choose(None, &[summary("a", 1, 0)]),
            Choice::Builder(0)
        );
    }

    #[test]
    fn closures_are_policies() {
        let always_local = |_: Option<&Summary>, _: &[Summary]| Choice::Local;
        assert_eq!(
            always_local.choose(None, &[summary("a", 1, 1)]),
            Choice::Local
        );
    }
}
