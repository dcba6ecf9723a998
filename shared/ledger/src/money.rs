//! Money as integers: nano-USD amounts and per-token prices.

use std::fmt;

/// An amount of money in nano-USD (10⁻⁹ USD). $1 is 1,000,000,000.
pub type Nanos = u64;

/// Nano-USD in one micro-USD, the smallest unit [`format_usd`] shows.
const NANOS_PER_MICRO: u64 = 1_000;

/// Micro-USD in one USD.
const MICROS_PER_USD: u64 = 1_000_000;

/// Formats an amount for people (error messages, logs) with six decimals: 120,000 nano-USD is
/// `"$0.000120"`. Rounds to the nearest micro-USD (half up) with integer arithmetic only.
pub fn format_usd(n: Nanos) -> String {
    let micros = n / NANOS_PER_MICRO + u64::from(n % NANOS_PER_MICRO >= NANOS_PER_MICRO / 2);
    format!(
        "${}.{:06}",
        micros / MICROS_PER_USD,
        micros % MICROS_PER_USD
    )
}

/// A per-token price as an integer: nano-USD per million tokens. `0.0000025` USD per token is
/// 2,500,000,000. Money never passes through a float after the config is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Price {
    pub nano_usd_per_mtok: u64,
}

/// USD per token → nano-USD per million tokens is ×1e15.
const SCALE: f64 = 1e15;

impl Price {
    /// Converts a USD-per-token price as written in YAML. `None` for negative, non-finite or
    /// absurd (> $1,000 per token) values.
    pub fn from_usd_per_token(usd: f64) -> Option<Price> {
        if !usd.is_finite() || !(0.0..=1000.0).contains(&usd) {
            return None;
        }
        // Rounding to the nearest unit removes the float's representation error: prices have
        // at most 15 significant digits in practice.
        let scaled = (usd * SCALE).round();
        Some(Price {
            nano_usd_per_mtok: scaled as u64,
        })
    }

    /// The cost of `tokens` tokens in nano-USD, rounded up.
    pub fn cost_nano(self, tokens: u64) -> u64 {
        let total = u128::from(self.nano_usd_per_mtok) * u128::from(tokens);
        let cost = total.div_ceil(1_000_000);
        u64::try_from(cost).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.4}/Mtok", self.nano_usd_per_mtok as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_conversion_of_common_prices() {
        assert_eq!(
            Price::from_usd_per_token(0.0000025)
                .unwrap()
                .nano_usd_per_mtok,
            2_500_000_000
        );
        assert_eq!(
            Price::from_usd_per_token(0.00000015)
                .unwrap()
                .nano_usd_per_mtok,
            150_000_000
        );
        assert_eq!(Price::from_usd_per_token(0.0).unwrap().nano_usd_per_mtok, 0);
        assert!(Price::from_usd_per_token(-1.0).is_none());
        assert!(Price::from_usd_per_token(f64::NAN).is_none());
    }

    #[test]
    fn cost_rounds_up() {
        let p = Price::from_usd_per_token(0.0000025).unwrap();
        assert_eq!(p.cost_nano(1), 2_500);
        assert_eq!(p.cost_nano(1_000_000), 2_500_000_000);
        // 0.1 nano-USD per token: 1 token rounds up to 1, 10 tokens are exactly 1.
        let tiny = Price::from_usd_per_token(0.0000000001).unwrap();
        assert_eq!(tiny.cost_nano(1), 1);
        assert_eq!(tiny.cost_nano(10), 1);
        assert_eq!(tiny.cost_nano(11), 2);
    }

    #[test]
    fn usd_has_six_decimals_and_rounds_to_the_nearest_micro() {
        assert_eq!(format_usd(0), "$0.000000");
        assert_eq!(format_usd(120_000), "$0.000120");
        assert_eq!(format_usd(1_000_000_000), "$1.000000");
        assert_eq!(format_usd(12_345_678_901), "$12.345679");
        assert_eq!(format_usd(499), "$0.000000");
        assert_eq!(format_usd(500), "$0.000001");
        assert_eq!(format_usd(u64::MAX), "$18446744073.709552");
    }
}
