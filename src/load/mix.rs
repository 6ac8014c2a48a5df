//! The mix of paths the load generator asks for: `PATH=WEIGHT` entries, comma-separated.
//!
//! The weight follows the *last* `=`, so paths with query strings work
//! (`/delay/1s?x=1=2` is `/delay/1s?x=1` with weight 2); a path without `=` weighs 1.

use std::fmt;
use std::str::FromStr;

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;

/// Paths with their weights.
#[derive(Clone, Debug)]
pub struct Mix {
    entries: Vec<(String, f64)>,
    index: WeightedIndex<f64>,
}

impl Mix {
    /// The paths, in the order given.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(path, _)| path.as_str())
    }

    /// Draws the index of a path, with probability proportional to its weight.
    pub fn pick(&self, rng: &mut impl rand::Rng) -> usize {
        self.index.sample(rng)
    }

    /// The share of requests each path should get.
    pub fn shares(&self) -> Vec<f64> {
        let total: f64 = self.entries.iter().map(|(_, w)| w).sum();
        self.entries.iter().map(|(_, w)| w / total).collect()
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for entry in s.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(
                    "an empty entry (expected PATH=WEIGHT, e.g. /=1,/simulate_error=3)".to_owned(),
                );
            }
            let (path, weight) = match entry.rsplit_once('=') {
                Some((path, weight)) => {
                    let weight: f64 = weight
                        .parse()
                        .map_err(|_| format!("{entry}: the weight {weight:?} is not a number"))?;
                    (path, weight)
                }
                None => (entry, 1.0),
            };
            if !path.starts_with('/') {
                return Err(format!("{entry}: a path starts with /"));
            }
            if let Err(e) = path.parse::<hyper::http::uri::PathAndQuery>() {
                return Err(format!("{entry}: not a valid path ({e})"));
            }
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(format!("{entry}: a weight is a number of 0 or more"));
            }
            if entries.iter().any(|(p, _)| p == path) {
                return Err(format!("{path} is in the mix twice: give it one weight"));
            }
            entries.push((path.to_owned(), weight));
        }
        let index = WeightedIndex::new(entries.iter().map(|(_, w)| *w))
            .map_err(|_| "every weight is 0: nothing to send".to_owned())?;
        Ok(Mix { entries, index })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|(p, w)| format!("{p}={w}"))
            .collect();
        f.write_str(&entries.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_paths_with_weights() {
        let mix: Mix = "/=3, /simulate_error=1,/healthz".parse().unwrap();
        assert_eq!(
            mix.paths().collect::<Vec<_>>(),
            ["/", "/simulate_error", "/healthz"]
        );
        assert_eq!(mix.shares(), [0.6, 0.2, 0.2]);
        assert_eq!(mix.to_string(), "/=3,/simulate_error=1,/healthz=1");
    }

    #[test]
    fn the_weight_follows_the_last_equals_sign() {
        let mix: Mix = "/delay/1s?x=1=2".parse().unwrap();
        assert_eq!(mix.paths().collect::<Vec<_>>(), ["/delay/1s?x=1"]);
    }

    #[test]
    fn bad_mixes_say_what_is_wrong() {
        for (mix, error) in [
            ("", "an empty entry"),
            ("/,", "an empty entry"),
            ("simulate_error=1", "a path starts with /"),
            ("/=often", "the weight \"often\" is not a number"),
            ("/=-1", "a weight is a number of 0 or more"),
            ("/=inf", "a weight is a number of 0 or more"),
            ("/=0,/simulate_error=0", "every weight is 0"),
            ("/a b=1", "not a valid path"),
            ("/=1,/simulate_error,/=2", "/ is in the mix twice"),
        ] {
            let e = mix.parse::<Mix>().unwrap_err();
            assert!(e.contains(error), "{mix:?}: {e}");
        }
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix: Mix = "/=3,/simulate_error=1,/never=0".parse().unwrap();
        let mut rng = rand::rng();
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[mix.pick(&mut rng)] += 1;
        }
        assert_eq!(counts[2], 0);
        // 30,000 expected; the standard deviation is about 87.
        assert!((29_500..=30_500).contains(&counts[0]), "{counts:?}");
    }
}
