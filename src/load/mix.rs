//! The mix of paths the load generator asks for: `PATH=WEIGHT` entries, comma-separated (see
//! [`crate::weighted`]); a path without `=` weighs 1.

use std::fmt;
use std::str::FromStr;

use crate::weighted::Weighted;

/// Paths with their weights.
#[derive(Clone, Debug)]
pub struct Mix(Weighted<String>);

impl Mix {
    /// The paths, in the order given.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.items().map(String::as_str)
    }

    /// Draws the index of a path, with probability proportional to its weight.
    pub fn pick(&self, rng: &mut impl rand::Rng) -> usize {
        self.0.pick(rng)
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Weighted::parse(s, '=', |path| {
            if !path.starts_with('/') {
                return Err("a path starts with /".to_owned());
            }
            match path.parse::<hyper::http::uri::PathAndQuery>() {
                Ok(_) => Ok(path.to_owned()),
                Err(e) => Err(format!("not a valid path ({e})")),
            }
        })
        .map(Mix)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_text('='))
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
        assert_eq!(mix.to_string(), "/=3,/simulate_error=1,/healthz=1");
        let mix: Mix = "/delay/1s?x=1=2".parse().unwrap();
        assert_eq!(mix.paths().collect::<Vec<_>>(), ["/delay/1s?x=1"]);
    }

    #[test]
    fn bad_paths_say_what_is_wrong() {
        for (mix, error) in [
            ("simulate_error=1", "a path starts with /"),
            ("/a b=1", "not a valid path"),
            ("/=1,/simulate_error,/=2", "/ appears twice"),
            ("/=often", "is not a number"),
        ] {
            let e = mix.parse::<Mix>().unwrap_err();
            assert!(e.contains(error), "{mix:?}: {e}");
        }
    }
}
