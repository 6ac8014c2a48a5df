//! What a scenario's run found: a table for people, the same as JSON, and the exit line.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Expect, Scenario, StackKind, short};

/// One expected alert: when it went pending, fired and was notified (from when the fault
/// began), and when it resolved (from when the fault was cleared), each beside its bound.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub alert: String,
    #[serde(with = "seconds")]
    pub pending: Option<Duration>,
    #[serde(with = "seconds")]
    pub pending_bound: Option<Duration>,
    #[serde(with = "seconds")]
    pub firing: Option<Duration>,
    #[serde(serialize_with = "seconds::one")]
    pub firing_bound: Duration,
    #[serde(with = "seconds")]
    pub notified: Option<Duration>,
    #[serde(with = "seconds")]
    pub notified_bound: Option<Duration>,
    #[serde(with = "seconds")]
    pub resolved: Option<Duration>,
    #[serde(serialize_with = "seconds::one")]
    pub resolved_bound: Duration,
    /// How many firing notifications of it reached the receiver since the fault began: one,
    /// unless something made Alertmanager send it again.
    pub notifications: u32,
    /// The most there may be.
    pub notifications_bound: Option<u32>,
}

impl Row {
    pub fn new(e: &Expect) -> Self {
        Self {
            alert: e.alert.clone(),
            pending: None,
            pending_bound: e.pending,
            firing: None,
            firing_bound: e.firing,
            notified: None,
            notified_bound: e.notified,
            resolved: None,
            resolved_bound: e.resolved,
            notifications: 0,
            notifications_bound: e.notifications,
        }
    }

    /// Whether every time it has is within its bound, and every time it needs is there.
    pub fn passed(&self) -> bool {
        let within = |value: Option<Duration>, bound: Option<Duration>| match (value, bound) {
            (Some(v), Some(b)) => v <= b,
            (None, Some(_)) => false,
            (_, None) => true,
        };
        within(self.pending, self.pending_bound)
            && within(self.firing, Some(self.firing_bound))
            && within(self.notified, self.notified_bound)
            && within(self.resolved, Some(self.resolved_bound))
            && self
                .notifications_bound
                .is_none_or(|most| self.notifications <= most)
    }
}

/// A run's result.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub description: String,
    pub stack: StackKind,
    /// When the fault began, RFC 3339.
    #[serde(serialize_with = "rfc3339")]
    pub began: SystemTime,
    /// When it was cleared, if the run got that far.
    #[serde(serialize_with = "rfc3339_option")]
    pub cleared: Option<SystemTime>,
    #[serde(rename = "expectations")]
    pub rows: Vec<Row>,
    /// Alerts active before the run, which it ignored.
    pub ignored: BTreeSet<String>,
    /// Why the run failed, on one line; `None` when every expectation held.
    pub failure: Option<String>,
    /// Why the stack could not be put back as it was, if it could not.
    pub restored: Option<String>,
    pub passed: bool,
}

impl Outcome {
    pub fn new(
        scenario: &Scenario,
        stack: StackKind,
        began: SystemTime,
        ignored: BTreeSet<String>,
    ) -> Self {
        Self {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            stack,
            began,
            cleared: None,
            rows: Vec::new(),
            ignored,
            failure: None,
            restored: None,
            passed: false,
        }
    }

    /// Settles `passed`: no failure, every row within its bounds, the stack put back.
    pub fn settle(mut self) -> Self {
        self.passed =
            self.failure.is_none() && self.restored.is_none() && self.rows.iter().all(Row::passed);
        self
    }

    /// The one line that says why the run failed.
    pub fn reason(&self) -> Option<String> {
        if self.passed {
            return None;
        }
        let mut reasons: Vec<String> = self.failure.iter().cloned().collect();
        if let Some(e) = &self.restored {
            reasons.push(format!("the stack was not put back as it was: {e}"));
        }
        if reasons.is_empty() {
            reasons.push("an expectation was not met".to_owned());
        }
        Some(reasons.join("; "))
    }

    /// The table: a row per expected alert, each time beside its bound.
    pub fn to_text(&self) -> String {
        let cell = |value: Option<Duration>, bound: Option<Duration>| {
            let value = value.map_or_else(|| "-".to_owned(), short);
            match bound {
                Some(b) => format!("{value} ≤ {}", short(b)),
                None => value,
            }
        };
        let width = self
            .rows
            .iter()
            .map(|r| r.alert.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = String::new();
        let began = humantime::format_rfc3339_seconds(self.began);
        let _ = writeln!(
            out,
            "scenario {} on the {} stack: {}",
            self.scenario, self.stack, self.description
        );
        let _ = match self.cleared {
            Some(c) => writeln!(
                out,
                "the fault began at {began} and was cleared {} later",
                short(c.duration_since(self.began).unwrap_or_default())
            ),
            None => writeln!(out, "the fault began at {began}"),
        };
        let _ = writeln!(
            out,
            "\n{:<width$}  {:<17} {:<17} {:<17} {:<17} result",
            "alert", "pending", "firing", "notified", "resolved*"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<width$}  {:<17} {:<17} {:<17} {:<17} {}",
                r.alert,
                cell(r.pending, r.pending_bound),
                cell(r.firing, Some(r.firing_bound)),
                cell(r.notified, r.notified_bound),
                cell(r.resolved, Some(r.resolved_bound)),
                if r.passed() { "pass" } else { "FAIL" }
            );
        }
        let _ = writeln!(
            out,
            "\npending, firing, notified: from when the fault began; *resolved: from when it was cleared"
        );
        for r in self
            .rows
            .iter()
            .filter(|r| r.notifications > 1 || r.notifications_bound.is_some())
        {
            if r.notifications <= 1 {
                let _ = writeln!(
                    out,
                    "{} reached the receiver {} time(s) firing (at most {} expected)",
                    r.alert,
                    r.notifications,
                    r.notifications_bound.unwrap_or(1)
                );
                continue;
            }
            let _ = writeln!(
                out,
                "{} reached the receiver {} times firing: Alertmanager sent it again",
                r.alert, r.notifications
            );
        }
        if !self.ignored.is_empty() {
            let names: Vec<&str> = self.ignored.iter().map(String::as_str).collect();
            let _ = writeln!(out, "ignored (active before the run): {}", names.join(", "));
        }
        let _ = match self.reason() {
            None => writeln!(out, "PASS: every expectation held"),
            Some(reason) => writeln!(out, "FAIL: {reason}"),
        };
        out
    }
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

fn rfc3339_option<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Durations as seconds in JSON.
mod seconds {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn one<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row::new(&Expect {
            alert: "DemoServiceErrorRatioHigh".to_owned(),
            pending: Some(Duration::from_secs(120)),
            firing: Duration::from_secs(240),
            notified: Some(Duration::from_secs(285)),
            resolved: Duration::from_secs(330),
            notifications: None,
            stack: None,
        })
    }

    #[test]
    fn a_row_passes_only_with_every_time_within_its_bound() {
        let mut r = row();
        assert!(!r.passed(), "nothing seen yet");
        r.pending = Some(Duration::from_secs(65));
        r.firing = Some(Duration::from_secs(185));
        r.notified = Some(Duration::from_secs(217));
        r.resolved = Some(Duration::from_secs(250));
        assert!(r.passed());
        r.notified = Some(Duration::from_secs(286));
        assert!(!r.passed(), "notified past its bound");
    }

    #[test]
    fn the_table_and_the_json_say_the_same() {
        let scenario = Scenario::parse(
            "error-ratio",
            "description = \"d\"\n[[step]]\nat = \"0s\"\nfor = \"4m\"\nset = { error_rate = 1.0 }\n[[expect]]\nalert = \"A\"\nfiring = \"4m\"\nresolved = \"5m\"\n",
        )
        .unwrap();
        let began = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut outcome = Outcome::new(&scenario, StackKind::Native, began, BTreeSet::new());
        let mut r = row();
        r.pending = Some(Duration::from_secs(65));
        r.firing = Some(Duration::from_secs(250));
        outcome.rows.push(r);
        outcome.failure = Some(
            "DemoServiceErrorRatioHigh firing 4m10s after the fault, past its bound of 4m00s"
                .to_owned(),
        );
        let outcome = outcome.settle();
        let text = outcome.to_text();
        assert!(text.contains("1m05s ≤ 2m00s"), "{text}");
        assert!(text.contains("4m10s ≤ 4m00s"), "{text}");
        assert!(
            text.contains("FAIL: DemoServiceErrorRatioHigh firing 4m10s"),
            "{text}"
        );
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json["passed"], false);
        assert_eq!(json["expectations"][0]["pending"], 65.0);
        assert_eq!(json["expectations"][0]["notified"], serde_json::Value::Null);
        assert_eq!(json["began"], "2027-01-15T08:00:00.000Z");
    }
}
