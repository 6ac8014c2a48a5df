//! Incidents on a timeline: a file of steps, each turning knobs at a time, for a while, maybe
//! again and again, which the service plays by itself (`--incidents FILE`), so that its
//! dashboards are never flat and its alerts have something to find. The same file is what a
//! game day plays and checks, and what a history of the service repeats.
//!
//! The format is TOML (`incidents/*.toml`, checked against `incidents/timeline.schema.json`):
//!
//! ```toml
//! description = "Every 10 minutes, 2 minutes of an outage"
//! repeat = "10m"          # the whole timeline again, this long after it began (optional)
//!
//! [[step]]
//! at = "0s"               # when, from the start of the timeline (of each repetition)
//! for = "2m"              # how long; then the knobs go back (optional: they stay)
//! jitter = "30s"          # `at` moves later by a random time up to this (optional)
//! set = { max_delay = "15s", dependency_error_rate = 0.2 }
//! ```
//!
//! `set` takes the knobs of the admin API, by the same names. A step's knobs are checked when
//! the file is read, against the knobs at start: a timeline that cannot play is one line at
//! start, not a surprise ten minutes in.
//!
//! Knobs changed by hand while a step plays: when the step ends, it puts back only the knobs
//! that still have the values it set. A knob changed by hand meanwhile keeps the value it was
//! given.

use std::time::Duration;

use serde::Deserialize;

use super::faults::Limits;
use super::knobs::{Change, Knobs, View};

/// A timeline as its file says it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: Option<String>,
    repeat: Option<String>,
    #[serde(rename = "step", default)]
    steps: Vec<StepFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    at: String,
    #[serde(rename = "for")]
    lasts: Option<String>,
    jitter: Option<String>,
    set: toml::Table,
}

/// One step: at `at` (plus up to `jitter`), the knobs of `set`, for `lasts`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub lasts: Option<Duration>,
    pub jitter: Duration,
    /// The knobs it sets, as the admin API takes them.
    pub set: serde_json::Map<String, serde_json::Value>,
}

/// A timeline, read and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// The file's name without `.toml`: what `/admin/incidents` calls it.
    pub name: String,
    pub description: String,
    pub repeat: Option<Duration>,
    pub steps: Vec<Step>,
}

/// What a timeline does at a time: a step begins, or ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Begin(usize),
    End(usize),
}

impl Timeline {
    /// Reads the timeline at `path`, and checks each step against `start` and `limits`.
    pub fn read(path: &std::path::Path, start: &Knobs, limits: &Limits) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the timeline {}: {e}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::parse(&name, &text, start, limits)
            .map_err(|e| format!("the timeline {}: {e}", path.display()))
    }

    /// Parses a timeline's text; `name` is what it is called.
    pub fn parse(name: &str, text: &str, start: &Knobs, limits: &Limits) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| one_line(&e))?;
        Self::from_file(name, file, start, limits)
    }

    /// A timeline from the fields of a TOML table (a scenario's file has a timeline's fields
    /// among its own), checked as [`Timeline::parse`] does.
    pub fn from_table(
        name: &str,
        table: toml::Table,
        start: &Knobs,
        limits: &Limits,
    ) -> Result<Self, String> {
        let file: File = table.try_into().map_err(|e| one_line(&e))?;
        Self::from_file(name, file, start, limits)
    }

    fn from_file(name: &str, file: File, start: &Knobs, limits: &Limits) -> Result<Self, String> {
        let duration = |what: String, text: &str| {
            crate::config::duration(text).map_err(|e| format!("{what}: {e}"))
        };
        let repeat = file
            .repeat
            .as_deref()
            .map(|r| duration("repeat".to_owned(), r))
            .transpose()?;
        if file.steps.is_empty() {
            return Err("no [[step]]: a timeline plays at least one".to_owned());
        }
        let mut steps = Vec::new();
        for (i, step) in file.steps.into_iter().enumerate() {
            let what = |field: &str| format!("step {}: {field}", i + 1);
            let at = duration(what("at"), &step.at)?;
            let lasts = step
                .lasts
                .as_deref()
                .map(|l| duration(what("for"), l))
                .transpose()?;
            let jitter = step
                .jitter
                .as_deref()
                .map_or(Ok(Duration::ZERO), |j| duration(what("jitter"), j))?;
            let set = match serde_json::to_value(&step.set) {
                Ok(serde_json::Value::Object(set)) => set,
                _ => return Err(format!("{}: not a table of knobs", what("set"))),
            };
            let change: Change = serde_json::from_value(serde_json::Value::Object(set.clone()))
                .map_err(|e| format!("{}: {e}", what("set")))?;
            start
                .changed(&change, limits)
                .map_err(|e| format!("{}: {e}", what("set")))?;
            if let Some(repeat) = repeat {
                let end = at + jitter + lasts.unwrap_or_default();
                if end > repeat {
                    return Err(format!(
                        "step {} ends {} after the start, past repeat ({}): the next round would begin while it plays",
                        i + 1,
                        humantime::format_duration(end),
                        humantime::format_duration(repeat)
                    ));
                }
            }
            steps.push(Step {
                at,
                lasts,
                jitter,
                set,
            });
        }
        Ok(Self {
            name: name.to_owned(),
            description: file.description.unwrap_or_default(),
            repeat,
            steps,
        })
    }

    /// The events of round `round` (from 0), each at its time from the timeline's start, in
    /// order: a step's jitter comes from `jitter`, given the step's bound. At the same time an
    /// end comes before a begin, so that a step that ends as the next begins hands over.
    pub fn round(
        &self,
        round: u64,
        mut jitter: impl FnMut(Duration) -> Duration,
    ) -> Vec<(Duration, Event)> {
        let offset = self.repeat.map_or(Duration::ZERO, |r| {
            r * u32::try_from(round).unwrap_or(u32::MAX)
        });
        let mut events = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let jitter = if step.jitter.is_zero() {
                Duration::ZERO
            } else {
                jitter(step.jitter)
            };
            let begins = offset + step.at + jitter;
            events.push((begins, Event::Begin(i)));
            if let Some(lasts) = step.lasts {
                events.push((begins + lasts, Event::End(i)));
            }
        }
        events.sort_by_key(|(at, e)| (*at, matches!(e, Event::Begin(_))));
        events
    }
}

/// A TOML error on one line: toml's message spans lines (a snippet of the file).
pub(crate) fn one_line(e: &toml::de::Error) -> String {
    e.message().to_owned()
        + &e.span()
            .map(|s| format!(" (at byte {})", s.start))
            .unwrap_or_default()
}

/// Applies a step's knobs to `knobs`: the knobs after, and the values they had before (to
/// put back when the step ends).
pub fn begin(
    knobs: &Knobs,
    step: &Step,
    limits: &Limits,
) -> Result<(Knobs, serde_json::Map<String, serde_json::Value>), String> {
    let before = View::from(knobs);
    let previous = step
        .set
        .keys()
        .filter_map(|name| before.get(name).map(|v| (name.clone(), v.clone())))
        .collect();
    let change: Change = serde_json::from_value(serde_json::Value::Object(step.set.clone()))
        .map_err(|e| e.to_string())?;
    Ok((knobs.changed(&change, limits)?, previous))
}

/// Ends a step: each knob it set that still has the value it set goes back to `previous`;
/// a knob changed meanwhile keeps its value.
pub fn end(
    knobs: &Knobs,
    step: &Step,
    previous: &serde_json::Map<String, serde_json::Value>,
    limits: &Limits,
) -> Result<Knobs, String> {
    let now = View::from(knobs);
    let set_by_step = |name: &String| {
        let set: Option<Change> =
            serde_json::from_value(serde_json::json!({ name.clone(): step.set[name].clone() }))
                .ok();
        // Compare as the view writes them: "1MiB/s" and "1024KiB/s" are the same knob value.
        let written = set.and_then(|c| knobs.changed(&c, limits).ok());
        written.is_some_and(|k| View::from(&k).get(name) == now.get(name))
    };
    let back = previous
        .iter()
        .filter(|(name, _)| set_by_step(name))
        .map(|(name, value)| (name.clone(), value.clone()));
    knobs.changed(&super::knobs::change_to(back), limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Timeline, String> {
        Timeline::parse("test", text, &Knobs::default(), &Limits::default())
    }

    #[test]
    fn a_timeline_reads_its_steps() {
        let t = parse(
            r#"description = "an outage"
               repeat = "10m"
               [[step]]
               at = "1m"
               for = "2m"
               jitter = "30s"
               set = { max_delay = "15s", dependency_error_rate = 0.2 }"#,
        )
        .unwrap();
        assert_eq!(t.repeat, Some(Duration::from_secs(600)));
        assert_eq!(t.steps[0].at, Duration::from_secs(60));
        assert_eq!(t.steps[0].lasts, Some(Duration::from_secs(120)));
        assert_eq!(t.steps[0].set["dependency_error_rate"], 0.2);
    }

    #[test]
    fn a_bad_timeline_says_where() {
        for (text, says) in [
            ("", "no [[step]]"),
            ("[[step]]\nat = \"soon\"\nset = {}", "step 1: at: "),
            (
                "[[step]]\nat = \"0s\"\nset = { cpu_burn = \"5s\" }",
                "step 1: set: cpu_burn 5s is above --max-cpu-burn (1s)",
            ),
            (
                "[[step]]\nat = \"0s\"\nset = { cpu = \"5s\" }",
                "step 1: set: unknown field `cpu`",
            ),
            (
                "[[step]]\nat = \"0s\"\nwhen = 1\nset = {}",
                "unknown field `when`",
            ),
            (
                "repeat = \"1m\"\n[[step]]\nat = \"30s\"\nfor = \"1m\"\nset = {}",
                "step 1 ends 1m 30s after the start, past repeat (1m)",
            ),
            ("[[step]\n", "(at byte"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn a_step_puts_back_what_it_set_unless_it_was_changed_meanwhile() {
        let limits = Limits::default();
        let start = Knobs::default();
        let step = parse(
            "[[step]]\nat = \"0s\"\nfor = \"1m\"\nset = { error_rate = 0.9, cpu_burn = \"20ms\" }",
        )
        .unwrap()
        .steps
        .remove(0);
        let (during, previous) = begin(&start, &step, &limits).unwrap();
        assert_eq!(
            (during.error_rate, during.faults.cpu_burn),
            (0.9, Duration::from_millis(20))
        );
        // By hand, meanwhile: error_rate to 0.5.
        let by_hand = during
            .changed(
                &serde_json::from_str(r#"{"error_rate": 0.5}"#).unwrap(),
                &limits,
            )
            .unwrap();
        let after = end(&by_hand, &step, &previous, &limits).unwrap();
        assert_eq!(after.error_rate, 0.5, "changed by hand: it stays");
        assert_eq!(
            after.faults.cpu_burn,
            Duration::ZERO,
            "as the step set it: back"
        );
    }
}
