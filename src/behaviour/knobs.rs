//! The simulation's knobs: how long `/` takes, how often `/simulate_error` fails, how many users
//! there are, and the catalogue of faults ([`super::faults`]). Set at start from the command
//! line; changed at run time through the admin API (and by an incident timeline), so that
//! alerts can be made to fire without a restart.
//!
//! Every knob has one name, the same everywhere: the admin API's JSON field, the field of a
//! timeline's step, and (with dashes) the command-line flag.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::delay::Distribution;
use super::faults::{self, Faults, Limits, dependency::Dependency};
use crate::config::BehaviourArgs;

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
    /// The faults, each off by default.
    pub faults: Faults,
}

/// The seed's: 0 to 5 s, uniformly; one request in five to `/simulate_error` fails; 10 to 50
/// users; no fault.
impl Default for Knobs {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO..=Duration::from_secs(5),
            distribution: Distribution::Uniform,
            error_rate: 0.2,
            users: 10..=50,
            faults: Faults::default(),
        }
    }
}

impl Knobs {
    /// The knobs as the command line set them (which validated them already).
    pub fn from_args(args: &BehaviourArgs) -> Self {
        Self {
            delay: args.min_delay..=args.max_delay,
            distribution: args.delay_distribution,
            error_rate: args.error_rate,
            users: args.users_min..=args.users_max,
            faults: Faults {
                not_ready: args.not_ready,
                memory_leak: args.memory_leak,
                cpu_burn: args.cpu_burn,
                dependency: Dependency {
                    latency: args.dependency_latency,
                    error_rate: args.dependency_error_rate,
                    down: args.dependency_down,
                },
                metrics_delay: args.metrics_delay,
                hide_family: args.hide_family.clone().filter(|f| !f.is_empty()),
                cardinality: args.cardinality,
            },
        }
    }

    /// What the knobs may be: a probability, ranges whose start is not past their end, faults
    /// within `limits`.
    pub fn check(self, limits: &Limits) -> Result<Self, String> {
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
        self.faults.check(limits)?;
        Ok(self)
    }

    /// These knobs with `change` applied, or why that cannot be: nothing is half applied.
    pub fn changed(&self, change: &Change, limits: &Limits) -> Result<Self, String> {
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
        let memory_leak = match &change.memory_leak {
            None => self.faults.memory_leak,
            Some(text) => faults::byte_rate(text).map_err(|e| format!("memory_leak: {e}"))?,
        };
        let number = |name: &str, value: Option<f64>, current: f64| match value {
            Some(v) if !v.is_finite() => Err(format!("{name}: {v} is not a number")),
            Some(v) => Ok(v),
            None => Ok(current),
        };
        let was = &self.faults;
        Knobs {
            delay: duration("min_delay", &change.min_delay, *self.delay.start())?
                ..=duration("max_delay", &change.max_delay, *self.delay.end())?,
            distribution,
            error_rate: number("error_rate", change.error_rate, self.error_rate)?,
            users: change.users_min.unwrap_or(*self.users.start())
                ..=change.users_max.unwrap_or(*self.users.end()),
            faults: Faults {
                not_ready: change.not_ready.unwrap_or(was.not_ready),
                memory_leak,
                cpu_burn: duration("cpu_burn", &change.cpu_burn, was.cpu_burn)?,
                dependency: Dependency {
                    latency: duration(
                        "dependency_latency",
                        &change.dependency_latency,
                        was.dependency.latency,
                    )?,
                    error_rate: number(
                        "dependency_error_rate",
                        change.dependency_error_rate,
                        was.dependency.error_rate,
                    )?,
                    down: change.dependency_down.unwrap_or(was.dependency.down),
                },
                metrics_delay: duration("metrics_delay", &change.metrics_delay, was.metrics_delay)?,
                hide_family: match &change.hide_family {
                    None => was.hide_family.clone(),
                    Some(f) if f.is_empty() => None,
                    Some(f) => Some(f.clone()),
                },
                cardinality: change.cardinality.unwrap_or(was.cardinality),
            },
        }
        .check(limits)
    }

    /// The knobs that `DELETE /admin/knobs` puts back: the seed's as `start` set them, every
    /// fault off (its default), even one that `start` turned on.
    pub fn cleared(start: &Knobs) -> Knobs {
        Knobs {
            faults: Faults::default(),
            ..start.clone()
        }
    }

    /// These knobs with the one named `name` cleared: a fault's knob off, another knob back at
    /// its value in `start`.
    pub fn reset(&self, name: &str, start: &Knobs, limits: &Limits) -> Result<Self, String> {
        let start = View::from(&Self::cleared(start));
        if start.get(name).is_none() {
            return Err(format!(
                "no knob is called {name:?}; the knobs: {}",
                start.names().collect::<Vec<_>>().join(", ")
            ));
        }
        // A bound goes back with the other one, so that the two cannot cross (min_delay back
        // to 1s under a max_delay of 500ms).
        let names: &[&str] = match name {
            "min_delay" | "max_delay" => &["min_delay", "max_delay"],
            "users_min" | "users_max" => &["users_min", "users_max"],
            _ => &[name],
        };
        self.changed(&start.change_of(names), limits)
    }

    /// What differs from `before`, for the log: `error_rate 0.2 -> 0.9, max_delay 5s -> 10s`.
    pub fn differences(&self, before: &Knobs) -> String {
        let (old, View(new)) = (View::from(before), View::from(self));
        let changes: Vec<String> = new
            .iter()
            .filter(|(name, value)| old.get(name) != Some(value))
            .map(|(name, value)| {
                let was = old.get(name).map(text).unwrap_or_default();
                format!("{name} {was} -> {}", text(value))
            })
            .collect();
        if changes.is_empty() {
            "nothing".to_owned()
        } else {
            changes.join(", ")
        }
    }
}

/// A knob's value in the log: strings without their quotes.
fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The knobs as the admin API shows them: a JSON object, a field per knob in this order, each
/// written as a change takes it back.
#[derive(Debug, PartialEq)]
pub struct View(pub Vec<(&'static str, serde_json::Value)>);

impl View {
    /// The value of the knob called `name`.
    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The knobs' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|(n, _)| *n)
    }

    /// The change that sets the knobs called `names` to their values here.
    pub fn change_of(&self, names: &[&str]) -> Change {
        change_to(
            names
                .iter()
                .filter_map(|n| Some(((*n).to_owned(), self.get(n)?.clone()))),
        )
    }
}

/// The change that sets each knob to its value as a view writes it. (The one difference: a
/// view shows no hidden family as null, a change says it with "".)
pub fn change_to(values: impl IntoIterator<Item = (String, serde_json::Value)>) -> Change {
    let values = values
        .into_iter()
        .map(|(name, value)| {
            let value = if value.is_null() { "".into() } else { value };
            (name, value)
        })
        .collect();
    serde_json::from_value(serde_json::Value::Object(values))
        .expect("a view's values are a valid change of its knobs")
}

impl Serialize for View {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(n, v)| (n, v)))
    }
}

impl From<&Knobs> for View {
    fn from(k: &Knobs) -> Self {
        use serde_json::json;
        let d = |d: Duration| json!(humantime::format_duration(d).to_string());
        let f = &k.faults;
        Self(vec![
            ("error_rate", json!(k.error_rate)),
            ("min_delay", d(*k.delay.start())),
            ("max_delay", d(*k.delay.end())),
            ("delay_distribution", json!(k.distribution.to_string())),
            ("users_min", json!(k.users.start())),
            ("users_max", json!(k.users.end())),
            ("not_ready", json!(f.not_ready)),
            (
                "memory_leak",
                json!(faults::format_byte_rate(f.memory_leak)),
            ),
            ("cpu_burn", d(f.cpu_burn)),
            ("dependency_latency", d(f.dependency.latency)),
            ("dependency_error_rate", json!(f.dependency.error_rate)),
            ("dependency_down", json!(f.dependency.down)),
            ("metrics_delay", d(f.metrics_delay)),
            ("hide_family", json!(f.hide_family)),
            ("cardinality", json!(f.cardinality)),
        ])
    }
}

/// A change through the admin API (or a timeline's step): any of the knobs; the others keep
/// their values.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub error_rate: Option<f64>,
    pub min_delay: Option<String>,
    pub max_delay: Option<String>,
    pub delay_distribution: Option<String>,
    pub users_min: Option<u32>,
    pub users_max: Option<u32>,
    pub not_ready: Option<bool>,
    pub memory_leak: Option<String>,
    pub cpu_burn: Option<String>,
    pub dependency_latency: Option<String>,
    pub dependency_error_rate: Option<f64>,
    pub dependency_down: Option<bool>,
    pub metrics_delay: Option<String>,
    /// A family's name; "" for none.
    pub hide_family: Option<String>,
    pub cardinality: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs() -> Knobs {
        Knobs::default()
    }

    fn change(json: &str) -> Result<Knobs, String> {
        let change: Change = serde_json::from_str(json).map_err(|e| e.to_string())?;
        knobs().changed(&change, &Limits::default())
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
    fn every_fault_is_a_knob_and_reads_back_as_written() {
        let k = change(
            r#"{"not_ready": true, "memory_leak": "1MiB/s", "cpu_burn": "20ms",
                "dependency_latency": "150ms", "dependency_error_rate": 0.25,
                "dependency_down": true, "metrics_delay": "12s",
                "hide_family": "request_duration_seconds", "cardinality": 500}"#,
        )
        .unwrap();
        assert_eq!(k.faults.active(), [true; faults::NAMES.len()]);
        // The view of a knob is a change that sets it again.
        let view = serde_json::to_value(View::from(&k)).unwrap();
        let again: Change = serde_json::from_value(view).unwrap();
        assert_eq!(knobs().changed(&again, &Limits::default()).unwrap(), k);
    }

    #[test]
    fn a_knob_goes_back_to_its_start() {
        let start = knobs();
        let limits = Limits::default();
        let k = change(r#"{"cpu_burn": "20ms", "hide_family": "current_users", "max_delay": "1s", "min_delay": "500ms"}"#)
            .unwrap();
        // A fault turned on at start is still cleared to off.
        let start = Knobs {
            faults: Faults {
                cardinality: 10,
                ..Faults::default()
            },
            ..start
        };
        assert_eq!(
            k.reset("cardinality", &start, &limits)
                .unwrap()
                .faults
                .cardinality,
            0
        );
        let k = k.reset("cpu_burn", &start, &limits).unwrap();
        assert_eq!(k.faults.cpu_burn, Duration::ZERO);
        let k = k.reset("hide_family", &start, &limits).unwrap();
        assert_eq!(k.faults.hide_family, None);
        let k = k.reset("min_delay", &start, &limits).unwrap();
        assert_eq!(k.delay, start.delay, "the pair goes back together");
        assert_eq!(
            k.reset("nope", &start, &limits).unwrap_err(),
            "no knob is called \"nope\"; the knobs: error_rate, min_delay, max_delay, \
             delay_distribution, users_min, users_max, not_ready, memory_leak, cpu_burn, \
             dependency_latency, dependency_error_rate, dependency_down, metrics_delay, \
             hide_family, cardinality"
        );
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
            (
                r#"{"memory_leak": "lots"}"#,
                "memory_leak: \"lots\" is not a rate of bytes",
            ),
            (r#"{"cpu_burn": "-1s"}"#, "cpu_burn: "),
            (
                r#"{"cpu_burn": "5s"}"#,
                "cpu_burn 5s is above --max-cpu-burn (1s)",
            ),
            (
                r#"{"dependency_error_rate": 2}"#,
                "dependency_error_rate 2 is outside [0, 1]",
            ),
            (
                r#"{"cardinality": 20000}"#,
                "cardinality 20000 is above --max-cardinality",
            ),
            (
                r#"{"hide_family": "up"}"#,
                "hide_family: the exposition has no family \"up\"",
            ),
            (r#"{"not_ready": "yes"}"#, "invalid type"),
        ] {
            let e = change(json).unwrap_err();
            assert!(e.contains(error), "{json}: {e}");
        }
        // Nothing half applied: a bad knob beside good ones changes none of them.
        assert!(change(r#"{"error_rate": 0.9, "cardinality": 20000}"#).is_err());
    }

    #[test]
    fn the_view_writes_durations_as_the_command_line_takes_them() {
        assert_eq!(
            serde_json::to_value(View::from(&knobs())).unwrap(),
            serde_json::json!({"error_rate": 0.2, "min_delay": "0s", "max_delay": "5s",
                "delay_distribution": "uniform", "users_min": 10, "users_max": 50,
                "not_ready": false, "memory_leak": "0", "cpu_burn": "0s",
                "dependency_latency": "0s", "dependency_error_rate": 0.0,
                "dependency_down": false, "metrics_delay": "0s", "hide_family": null,
                "cardinality": 0})
        );
    }
}
