//! The simulation's knobs: how long `/` takes, how often `/simulate_error` fails, how many users
//! there are. Set at start from the command line; changed at run time through the admin API,
//! so that alerts can be made to fire without a restart.

use std::fmt::Write;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::delay::Distribution;
use crate::config::ServeArgs;

/// The knobs' values. Every `Knobs` there is has passed [`Knobs::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct Knobs {
    /// The range `/` draws its processing time from: no draw is outside it.
    pub delay: RangeInclusive<Duration>,
    /// The distribution `/` draws its processing time from.
    pub distribution: Distribution,
    /// The probability that `/simulate_error` fails.
    pub error_rate: f64,
    /// The range `current_users` is drawn from.
    pub users: RangeInclusive<u32>,
}

impl Knobs {
    /// The knobs as the command line set them (which validated them already).
    pub fn from_args(args: &ServeArgs) -> Self {
        Self {
            delay: args.min_delay..=args.max_delay,
            distribution: args.delay_distribution,
            error_rate: args.error_rate,
            users: args.users_min..=args.users_max,
        }
    }

    /// What the admin API accepts: a probability, and ranges whose start is not past their end.
    fn check(self) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!("error_rate {} is outside [0, 1]", self.error_rate));
        }
        if self.delay.start() > self.delay.end() {
            return Err(format!(
                "min_delay ({}) is above max_delay ({})",
                humantime::format_duration(*self.delay.start()),
                humantime::format_duration(*self.delay.end())
            ));
        }
        if self.users.start() > self.users.end() {
            return Err(format!(
                "users_min ({}) is above users_max ({})",
                self.users.start(),
                self.users.end()
            ));
        }
        Ok(self)
    }

    /// These knobs with `change` applied, or why that cannot be.
    pub fn changed(&self, change: &Change) -> Result<Self, String> {
        let duration = |name: &str, text: &Option<String>, current: Duration| match text {
            None => Ok(current),
            Some(text) => crate::config::duration(text).map_err(|e| format!("{name}: {e}")),
        };
        let distribution = match &change.delay_distribution {
            None => self.distribution,
            Some(text) => text
                .parse()
                .map_err(|e| format!("delay_distribution: {e}"))?,
        };
        Knobs {
            delay: duration("min_delay", &change.min_delay, *self.delay.start())?
                ..=duration("max_delay", &change.max_delay, *self.delay.end())?,
            distribution,
            error_rate: change.error_rate.unwrap_or(self.error_rate),
            users: change.users_min.unwrap_or(*self.users.start())
                ..=change.users_max.unwrap_or(*self.users.end()),
        }
        .check()
    }

    /// What differs from `before`, for the log: `error_rate 0.2 -> 0.9, max_delay 5s -> 10s`.
    pub fn differences(&self, before: &Knobs) -> String {
        let (old, new) = (View::from(before), View::from(self));
        let mut out = String::new();
        let mut note = |name: &str, old: String, new: String| {
            if old != new {
                let sep = if out.is_empty() { "" } else { ", " };
                let _ = write!(out, "{sep}{name} {old} -> {new}");
            }
        };
        note(
            "error_rate",
            old.error_rate.to_string(),
            new.error_rate.to_string(),
        );
        note("min_delay", old.min_delay, new.min_delay);
        note("max_delay", old.max_delay, new.max_delay);
        note(
            "delay_distribution",
            old.delay_distribution,
            new.delay_distribution,
        );
        note(
            "users_min",
            old.users_min.to_string(),
            new.users_min.to_string(),
        );
        note(
            "users_max",
            old.users_max.to_string(),
            new.users_max.to_string(),
        );
        if out.is_empty() {
            "nothing".to_owned()
        } else {
            out
        }
    }
}

/// The knobs as the admin API shows them.
#[derive(Debug, PartialEq, Serialize)]
pub struct View {
    pub error_rate: f64,
    pub min_delay: String,
    pub max_delay: String,
    pub delay_distribution: String,
    pub users_min: u32,
    pub users_max: u32,
}

impl From<&Knobs> for View {
    fn from(k: &Knobs) -> Self {
        Self {
            error_rate: k.error_rate,
            min_delay: humantime::format_duration(*k.delay.start()).to_string(),
            max_delay: humantime::format_duration(*k.delay.end()).to_string(),
            delay_distribution: k.distribution.to_string(),
            users_min: *k.users.start(),
            users_max: *k.users.end(),
        }
    }
}

/// A change through the admin API: any of the knobs; the others keep their values.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub error_rate: Option<f64>,
    pub min_delay: Option<String>,
    pub max_delay: Option<String>,
    pub delay_distribution: Option<String>,
    pub users_min: Option<u32>,
    pub users_max: Option<u32>,
}

/// The seed's: 0 to 5 s, uniformly; one request in five to `/simulate_error` fails; 10 to 50
/// users.
impl Default for Knobs {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO..=Duration::from_secs(5),
            distribution: Distribution::Uniform,
            error_rate: 0.2,
            users: 10..=50,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs() -> Knobs {
        Knobs::default()
    }

    fn change(json: &str) -> Result<Knobs, String> {
        let change: Change = serde_json::from_str(json).map_err(|e| e.to_string())?;
        knobs().changed(&change)
    }

    #[test]
    fn a_change_sets_what_it_names_and_keeps_the_rest() {
        let k = change(r#"{"error_rate": 0.9, "max_delay": "1.5s"}"#).unwrap();
        assert_eq!(k.error_rate, 0.9);
        assert_eq!(k.delay, Duration::ZERO..=Duration::from_millis(1500));
        assert_eq!(k.users, 10..=50);
        assert_eq!(
            k.differences(&knobs()),
            "error_rate 0.2 -> 0.9, max_delay 5s -> 1s 500ms"
        );
        assert_eq!(knobs().differences(&knobs()), "nothing");
    }

    #[test]
    fn bad_changes_say_why() {
        for (json, error) in [
            (r#"{"error_rate": 1.5}"#, "error_rate 1.5 is outside [0, 1]"),
            (
                r#"{"error_rate": -0.1}"#,
                "error_rate -0.1 is outside [0, 1]",
            ),
            (
                r#"{"min_delay": "6s"}"#,
                "min_delay (6s) is above max_delay (5s)",
            ),
            (r#"{"max_delay": "soon"}"#, "max_delay: "),
            (
                r#"{"users_min": 60}"#,
                "users_min (60) is above users_max (50)",
            ),
            (r#"{"users_max": -1}"#, "invalid value"),
            (r#"{"error_rate": "high"}"#, "invalid type"),
            (r#"{"error_ratio": 0.5}"#, "unknown field `error_ratio`"),
            (r#"{"error_rate": 0.5"#, "EOF"),
            (
                r#"{"delay_distribution": "lognormal:3s:1s"}"#,
                "delay_distribution: \"lognormal:3s:1s\": the median must be above 0 and the p99 above the median; expected uniform",
            ),
        ] {
            let e = change(json).unwrap_err();
            assert!(e.contains(error), "{json}: {e}");
        }
    }

    #[test]
    fn the_view_writes_durations_as_the_command_line_takes_them() {
        let view = View::from(&knobs());
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            serde_json::json!({"error_rate": 0.2, "min_delay": "0s", "max_delay": "5s", "delay_distribution": "uniform", "users_min": 10, "users_max": 50})
        );
    }
}
