//! Weighted choices written as text: `ITEM<sep>WEIGHT` entries, comma-separated, such as the
//! load generator's mix (`/=3,/simulate_error=1`) and the fault endpoint's status codes
//! (`200:0.9,500:0.1`).
//!
//! The weight follows the *last* separator, so an item may contain the separator itself
//! (`/delay/1s?x=1=2` is the path `/delay/1s?x=1` with weight 2); an entry without one weighs 1.
//! Weights are numbers of 0 or more, not all 0; an item may appear once.

use rand::distr::Distribution;
use rand::distr::weighted::{Error as WeightedError, WeightedIndex};

/// Items with weights, and a sampler that draws them in proportion.
#[derive(Clone, Debug)]
pub struct Weighted<T> {
    entries: Vec<(T, f64)>,
    index: WeightedIndex<f64>,
}

impl<T: PartialEq + std::fmt::Display> Weighted<T> {
    /// Parses `text`, with `separator` between an item and its weight and `item` to parse the
    /// items. Errors say which entry is wrong and why.
    pub fn parse(
        text: &str,
        separator: char,
        item: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Self, String> {
        let mut entries: Vec<(T, f64)> = Vec::new();
        for entry in text.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(format!(
                    "an empty entry (expected ITEM{separator}WEIGHT, comma-separated)"
                ));
            }
            let (raw, weight) = match entry.rsplit_once(separator) {
                Some((raw, weight)) => {
                    let weight: f64 = weight
                        .trim()
                        .parse()
                        .map_err(|_| format!("{entry}: the weight {weight:?} is not a number"))?;
                    (raw.trim(), weight)
                }
                None => (entry, 1.0),
            };
            let parsed = item(raw).map_err(|e| format!("{entry}: {e}"))?;
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(format!("{entry}: a weight is a number of 0 or more"));
            }
            if entries.iter().any(|(t, _)| *t == parsed) {
                return Err(format!("{parsed} appears twice: give it one weight"));
            }
            entries.push((parsed, weight));
        }
        let index = WeightedIndex::new(entries.iter().map(|(_, w)| *w)).map_err(|e| match e {
            WeightedError::InsufficientNonZero => "every weight is 0: nothing to choose".to_owned(),
            _ => "the weights are too large to add up".to_owned(),
        })?;
        Ok(Self { entries, index })
    }
}

impl<T> Weighted<T> {
    /// The items, in the order given.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(item, _)| item)
    }

    /// Draws the index of an item, with probability proportional to its weight.
    pub fn pick(&self, rng: &mut impl rand::Rng) -> usize {
        self.index.sample(rng)
    }

    /// The item at `index`.
    pub fn item(&self, index: usize) -> &T {
        &self.entries[index].0
    }

    /// The share each item should get.
    pub fn shares(&self) -> Vec<f64> {
        let total: f64 = self.entries.iter().map(|(_, w)| w).sum();
        self.entries.iter().map(|(_, w)| w / total).collect()
    }

    /// The entries written back as text, with `separator`.
    pub fn to_text(&self, separator: char) -> String
    where
        T: std::fmt::Display,
    {
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|(item, w)| format!("{item}{separator}{w}"))
            .collect();
        entries.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(text: &str) -> Result<Weighted<u32>, String> {
        Weighted::parse(text, ':', |s| {
            s.parse::<u32>().map_err(|_| "not a number".to_owned())
        })
    }

    #[test]
    fn entries_are_items_with_weights() {
        let w = numbers("200:3, 500:1,404").unwrap();
        assert_eq!(w.items().copied().collect::<Vec<_>>(), [200, 500, 404]);
        assert_eq!(w.shares(), [0.6, 0.2, 0.2]);
        assert_eq!(w.to_text(':'), "200:3,500:1,404:1");
    }

    #[test]
    fn the_weight_follows_the_last_separator() {
        let w = Weighted::parse("/a?x=1=2", '=', |s| Ok::<_, String>(s.to_owned())).unwrap();
        assert_eq!(w.items().collect::<Vec<_>>(), ["/a?x=1"]);
        assert_eq!(w.to_text('='), "/a?x=1=2");
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        for (text, error) in [
            ("", "an empty entry"),
            ("200,", "an empty entry"),
            ("200:often", "the weight \"often\" is not a number"),
            ("200:-1", "a weight is a number of 0 or more"),
            ("200:inf", "a weight is a number of 0 or more"),
            ("200:NaN", "a weight is a number of 0 or more"),
            ("200:0,500:0", "every weight is 0"),
            ("abc:1", "abc:1: not a number"),
            ("200:1,200:2", "200 appears twice"),
            ("200:1e308,500:1e308", "too large to add up"),
        ] {
            let e = numbers(text).unwrap_err();
            assert!(e.contains(error), "{text:?}: {e}");
        }
    }

    #[test]
    fn picks_follow_the_weights() {
        let w = numbers("1:3,2:1,3:0").unwrap();
        let mut rng = rand::rng();
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[w.pick(&mut rng)] += 1;
        }
        assert_eq!(counts[2], 0);
        // 30,000 expected; the standard deviation is about 87.
        assert!((29_500..=30_500).contains(&counts[0]), "{counts:?}");
    }
}
