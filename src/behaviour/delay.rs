//! How long `/` takes: the distribution its processing time is drawn from.
//!
//! The seed draws uniformly between 0 and 5 s. For a uniform distribution the linear
//! interpolation that `histogram_quantile` does inside a bucket is exact, so the seed's
//! quantiles never show the bucket error that histograms are about. Real services have long
//! tails (a lognormal) and several modes (cache hits and misses): those are here too.
//!
//! Whatever the distribution, a draw stays within `[--min-delay, --max-delay]`: one that falls
//! outside is clamped to the nearer bound, so that the range is a hard limit.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

/// The standard normal distribution's 99th percentile: a lognormal's p99 is its median times
/// e^(σ × this).
const Z99: f64 = 2.326_347_874_040_841;

/// The spread of each mode of a bimodal distribution, as the σ of a lognormal around it: a
/// mode's p99 is about 1.8 times its median.
const MODE_SIGMA: f64 = 0.25;

/// What every error names: the forms the distribution is written in.
const FORMS: &str = "expected uniform, lognormal:MEDIAN:P99 (e.g. lognormal:250ms:3s) or \
                     bimodal:FAST:SLOW:SLOW_SHARE (e.g. bimodal:20ms:2s:0.1)";

/// A distribution of processing times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Every time in the range equally likely: the seed's.
    Uniform,
    /// A long tail: half the draws below `median`, 99 % below `p99`.
    LogNormal {
        median: Duration,
        p99: Duration,
        /// σ of the underlying normal, derived from the two.
        sigma: f64,
    },
    /// Two modes, as a cache's hits and misses: `slow_share` of the draws around `slow`, the
    /// rest around `fast`, each a lognormal with a spread of its own ([`MODE_SIGMA`]).
    Bimodal {
        fast: Duration,
        slow: Duration,
        slow_share: f64,
    },
}

impl Distribution {
    /// A lognormal with this median and 99th percentile (`p99` above `median`, both above 0).
    pub fn lognormal(median: Duration, p99: Duration) -> Result<Self, String> {
        if median.is_zero() || p99 <= median {
            return Err("the median must be above 0 and the p99 above the median".to_owned());
        }
        let sigma = (p99.as_secs_f64() / median.as_secs_f64()).ln() / Z99;
        Ok(Self::LogNormal { median, p99, sigma })
    }

    /// Two modes (`fast` below `slow`, both above 0), `slow_share` of the draws the slow one.
    pub fn bimodal(fast: Duration, slow: Duration, slow_share: f64) -> Result<Self, String> {
        if fast.is_zero() || slow <= fast {
            return Err("FAST must be above 0 and SLOW above FAST".to_owned());
        }
        if !(0.0..=1.0).contains(&slow_share) {
            return Err(format!(
                "the share of slow draws, {slow_share}, is outside [0, 1]"
            ));
        }
        Ok(Self::Bimodal {
            fast,
            slow,
            slow_share,
        })
    }

    /// One draw, within `range`.
    pub fn draw(&self, range: &RangeInclusive<Duration>, rng: &mut dyn Rng) -> Duration {
        let (low, high) = (*range.start(), *range.end());
        if low == high {
            return low;
        }
        let around = |median: Duration, sigma: f64, rng: &mut dyn Rng| {
            let z: f64 = rng.sample(StandardNormal);
            median.as_secs_f64() * (sigma * z).exp()
        };
        let seconds = match *self {
            Self::Uniform => return rng.random_range(range.clone()),
            Self::LogNormal { median, sigma, .. } => around(median, sigma, rng),
            Self::Bimodal {
                fast,
                slow,
                slow_share,
            } => {
                let mode = if rng.random_bool(slow_share) {
                    slow
                } else {
                    fast
                };
                around(mode, MODE_SIGMA, rng)
            }
        };
        Duration::try_from_secs_f64(seconds).map_or(high, |d| d.clamp(low, high))
    }
}

impl FromStr for Distribution {
    type Err = String;

    /// `uniform`, `lognormal:MEDIAN:P99` or `bimodal:FAST:SLOW:SLOW_SHARE`; an error names the
    /// accepted forms.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split(':').map(str::trim).collect();
        let duration =
            |text: &str| crate::config::duration(text).map_err(|e| format!("{text:?}: {e}"));
        let parsed = match parts.as_slice() {
            ["uniform"] => Ok(Self::Uniform),
            ["lognormal", median, p99] => {
                duration(median).and_then(|median| Self::lognormal(median, duration(p99)?))
            }
            ["bimodal", fast, slow, share] => share
                .parse()
                .map_err(|_| format!("{share:?} is not a share from 0 to 1"))
                .and_then(|share| Self::bimodal(duration(fast)?, duration(slow)?, share)),
            _ => Err("not a distribution".to_owned()),
        };
        parsed.map_err(|e| format!("{s:?}: {e}; {FORMS}"))
    }
}

impl fmt::Display for Distribution {
    /// As it is written on the command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = humantime::format_duration;
        match *self {
            Self::Uniform => write!(f, "uniform"),
            Self::LogNormal { median, p99, .. } => write!(f, "lognormal:{}:{}", d(median), d(p99)),
            Self::Bimodal {
                fast,
                slow,
                slow_share,
            } => write!(f, "bimodal:{}:{}:{slow_share}", d(fast), d(slow)),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const WIDE: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(5);

    /// `n` draws, sorted.
    fn draws(distribution: &str, range: &RangeInclusive<Duration>, seed: u64) -> Vec<f64> {
        let distribution: Distribution = distribution.parse().unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut draws: Vec<f64> = (0..5000)
            .map(|_| distribution.draw(range, &mut rng).as_secs_f64())
            .collect();
        draws.sort_by(f64::total_cmp);
        draws
    }

    fn quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1)]
    }

    #[test]
    fn a_lognormal_has_the_median_and_p99_it_names() {
        // Over 5,000 draws, whatever the seed: p50 within 10 %, p99 within 20 %.
        for seed in 0..20 {
            let sorted = draws("lognormal:250ms:3s", &WIDE, seed);
            let (p50, p99) = (quantile(&sorted, 0.5), quantile(&sorted, 0.99));
            assert!((p50 / 0.25 - 1.0).abs() <= 0.10, "seed {seed}: p50 {p50}");
            assert!((p99 / 3.0 - 1.0).abs() <= 0.20, "seed {seed}: p99 {p99}");
        }
    }

    #[test]
    fn a_bimodal_has_its_share_of_slow_draws() {
        let sorted = draws("bimodal:20ms:2s:0.1", &WIDE, 7);
        // Between the modes there is next to nothing: a tenth of the draws are slow.
        let slow = sorted.iter().filter(|&&d| d > 0.2).count() as f64 / 5000.0;
        assert!((slow - 0.1).abs() <= 0.02, "slow share {slow}");
        assert!((quantile(&sorted, 0.5) / 0.02 - 1.0).abs() <= 0.10);
    }

    #[test]
    fn every_draw_stays_in_its_range() {
        let range = Duration::from_millis(100)..=Duration::from_secs(1);
        for form in ["uniform", "lognormal:250ms:3s", "bimodal:20ms:2s:0.5"] {
            let sorted = draws(form, &range, 3);
            assert!(
                sorted[0] >= 0.1 && sorted[4999] <= 1.0,
                "{form}: {sorted:?}"
            );
        }
        let one = Duration::from_secs(2)..=Duration::from_secs(2);
        assert_eq!(draws("lognormal:250ms:3s", &one, 1)[0], 2.0);
    }

    #[test]
    fn the_uniform_one_is_the_seeds() {
        let sorted = draws("uniform", &WIDE, 11);
        assert!((quantile(&sorted, 0.9) - 4.5).abs() <= 0.1);
    }

    #[test]
    fn it_is_written_as_it_is_read() {
        for form in ["uniform", "lognormal:250ms:3s", "bimodal:20ms:2s:0.1"] {
            let parsed: Distribution = form.parse().unwrap();
            assert_eq!(parsed.to_string(), form);
        }
    }

    #[test]
    fn bad_forms_name_the_accepted_ones() {
        for (text, says) in [
            ("gaussian", "\"gaussian\": not a distribution"),
            ("lognormal:250ms", "not a distribution"),
            ("lognormal:3s:250ms", "the p99 above the median"),
            ("lognormal:0s:1s", "the median must be above 0"),
            ("lognormal:soon:3s", "\"soon\""),
            ("bimodal:2s:20ms:0.1", "SLOW above FAST"),
            ("bimodal:20ms:2s:1.5", "1.5, is outside [0, 1]"),
            ("bimodal:20ms:2s:often", "\"often\" is not a share"),
        ] {
            let e = text.parse::<Distribution>().unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.ends_with(FORMS), "{text}: {e}");
            assert_eq!(e.lines().count(), 1, "{text}: {e}");
        }
    }
}
