//! Game days as code: break the service on purpose, on a timeline, and check that the whole
//! pipeline noticed: which alert went pending and firing in Prometheus, when its notification
//! reached the receiver, and when it resolved after the fault was cleared, each against a
//! bound.
//!
//! A scenario is an incident timeline ([`crate::behaviour::timeline`], the same format and the
//! same knobs) plus what it expects (`scenarios/*.toml`, checked against
//! `scenarios/scenario.schema.json`):
//!
//! ```toml
//! description = "/simulate_error fails every request"
//! traffic = 1.0                   # requests/s the service must be getting before it starts
//! allow = []                      # other alerts that may fire meanwhile
//!
//! [[require]]                     # a query that must have a result before it starts
//! query = 'scrape_samples_scraped{job="flask_app"} offset 15m'
//! otherwise = "the stack has run for less than 15 minutes"
//!
//! [[step]]                        # knobs, as in a timeline; every step has its `for`
//! at = "0s"
//! for = "4m"
//! set = { error_rate = 1.0 }
//!
//! [[stop]]                        # or a part of the stack stopped: "app", "load", and
//! service = "load"                # under compose "receiver", "alertmanager", "prometheus"
//! at = "0s"
//! for = "12m"
//!
//! [[kill]]                        # a part's process killed (SIGKILL), brought back by its
//! service = "prometheus"          # restart policy (compose only); [[restart]]: restarted
//! at = "1m30s"
//!
//! [[expect]]
//! alert = "DemoServiceErrorRatioHigh"
//! pending = "2m"                  # bounds from when the fault began (optional)
//! firing = "4m"                   # (required)
//! notified = "4m45s"              # (optional)
//! resolved = "5m30s"              # from when the fault was cleared (required)
//! stack = "compose"               # only on this stack (optional)
//! ```

pub mod drill;
pub mod report;
pub mod run;
pub mod stack;

use std::time::Duration;

use serde::Deserialize;

use crate::behaviour::faults::Limits;
use crate::behaviour::knobs::Knobs;
use crate::behaviour::timeline::{Timeline, one_line};

/// The scenarios shipped in `scenarios/`, by name, in the binary so that `scenario list` and
/// `run NAME` work wherever it runs (a test checks the list against the directory).
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "alertmanager-restart",
        include_str!("../../scenarios/alertmanager-restart.toml"),
    ),
    (
        "app-stopped",
        include_str!("../../scenarios/app-stopped.toml"),
    ),
    (
        "budget-burn",
        include_str!("../../scenarios/budget-burn.toml"),
    ),
    (
        "budget-burn-slow",
        include_str!("../../scenarios/budget-burn-slow.toml"),
    ),
    (
        "cardinality",
        include_str!("../../scenarios/cardinality.toml"),
    ),
    (
        "dependency-failing",
        include_str!("../../scenarios/dependency-failing.toml"),
    ),
    (
        "error-ratio",
        include_str!("../../scenarios/error-ratio.toml"),
    ),
    (
        "family-gone",
        include_str!("../../scenarios/family-gone.toml"),
    ),
    ("latency", include_str!("../../scenarios/latency.toml")),
    (
        "latency-budget-burn",
        include_str!("../../scenarios/latency-budget-burn.toml"),
    ),
    (
        "latency-budget-burn-slow",
        include_str!("../../scenarios/latency-budget-burn-slow.toml"),
    ),
    (
        "memory-leak",
        include_str!("../../scenarios/memory-leak.toml"),
    ),
    (
        "no-traffic",
        include_str!("../../scenarios/no-traffic.toml"),
    ),
    ("not-ready", include_str!("../../scenarios/not-ready.toml")),
    (
        "prometheus-killed",
        include_str!("../../scenarios/prometheus-killed.toml"),
    ),
    (
        "receiver-down",
        include_str!("../../scenarios/receiver-down.toml"),
    ),
    (
        "slow-scrape",
        include_str!("../../scenarios/slow-scrape.toml"),
    ),
    (
        "target-down",
        include_str!("../../scenarios/target-down.toml"),
    ),
];

/// Which stack a scenario runs against: they differ in how a stopped app is seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StackKind {
    /// `docker compose up -d` in this directory.
    Compose,
    /// `scripts/stack`.
    Native,
}

impl std::fmt::Display for StackKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Compose => "compose",
            Self::Native => "native",
        })
    }
}

/// A part of the stack a scenario can break: the service's side, or the monitoring's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The app (under compose, the `app` service; natively, replica 1).
    App,
    /// The load generator.
    Load,
    /// The alert receiver (compose only).
    Receiver,
    /// Alertmanager (compose only).
    Alertmanager,
    /// Prometheus (compose only).
    Prometheus,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Load => "load",
            Self::Receiver => "receiver",
            Self::Alertmanager => "alertmanager",
            Self::Prometheus => "prometheus",
        }
    }

    /// Whether it is a part of the monitoring rather than of the service.
    pub fn is_monitoring(self) -> bool {
        matches!(self, Self::Receiver | Self::Alertmanager | Self::Prometheus)
    }

    /// Its service in docker-compose.yml.
    pub fn compose_service(self) -> &'static str {
        match self {
            Self::Load => "loadgen",
            part => part.name(),
        }
    }
}

/// How a part of the stack is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Stopped (`docker compose stop`, `scripts/stack stop`), started again this long after.
    Stop(Duration),
    /// Its process killed with SIGKILL, as a crash or the OOM killer would: the container's
    /// restart policy brings it back.
    Kill,
    /// Restarted (`docker compose restart`): stopped cleanly and started at once.
    Restart,
}

/// A part of the stack broken at `at`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stop {
    pub part: Part,
    pub at: Duration,
    pub how: How,
}

impl Stop {
    /// How long it lasts: until the part is started again, or not at all.
    pub fn lasts(&self) -> Duration {
        match self.how {
            How::Stop(lasts) => lasts,
            How::Kill | How::Restart => Duration::ZERO,
        }
    }

    /// In a few words.
    pub fn describe(&self) -> String {
        match self.how {
            How::Stop(lasts) => format!("stop {} for {}", self.part.name(), short(lasts)),
            How::Kill => format!("SIGKILL {} at {}", self.part.name(), short(self.at)),
            How::Restart => format!("restart {} at {}", self.part.name(), short(self.at)),
        }
    }
}

/// What a scenario expects of one alert: bounds on when it goes pending, fires and is
/// notified (from when the fault began) and resolves (from when it was cleared).
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    pub alert: String,
    pub pending: Option<Duration>,
    pub firing: Duration,
    pub notified: Option<Duration>,
    pub resolved: Duration,
    /// The most firing notifications of it that may reach the receiver (optional).
    pub notifications: Option<u32>,
    /// Only on this stack; both when `None`.
    pub stack: Option<StackKind>,
}

/// A scenario, read and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// The knobs it turns; `None` when it only breaks parts of the stack.
    pub timeline: Option<Timeline>,
    /// The parts of the stack it stops, kills or restarts.
    pub stops: Vec<Stop>,
    pub expect: Vec<Expect>,
    /// Alerts of the service that may fire meanwhile, besides the expected ones.
    pub allow: Vec<String>,
    /// The requests a second the service must be getting before the fault begins.
    pub traffic: f64,
    /// Queries that must have a result before the fault begins, each with what it means when
    /// it has none.
    pub require: Vec<Require>,
}

/// A condition on the stack before a scenario begins: a query that must have a result.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Require {
    pub query: String,
    /// What is missing when the query has no result, and what to do.
    pub otherwise: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopFile {
    service: Part,
    at: String,
    #[serde(rename = "for")]
    lasts: String,
}

/// A `[[kill]]` or a `[[restart]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoltFile {
    service: Part,
    at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    alert: String,
    pending: Option<String>,
    firing: String,
    notified: Option<String>,
    resolved: String,
    notifications: Option<u32>,
    stack: Option<StackKind>,
}

/// What a scenario's file has besides a timeline's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Own {
    #[serde(default)]
    traffic: f64,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(rename = "stop", default)]
    stops: Vec<StopFile>,
    #[serde(rename = "kill", default)]
    kills: Vec<JoltFile>,
    #[serde(rename = "restart", default)]
    restarts: Vec<JoltFile>,
    #[serde(rename = "expect", default)]
    expect: Vec<ExpectFile>,
    #[serde(default)]
    require: Vec<Require>,
}

impl Scenario {
    /// A shipped scenario by name, or a scenario's file.
    pub fn find(name_or_file: &str) -> Result<Self, String> {
        if let Some((name, text)) = SHIPPED.iter().find(|(n, _)| *n == name_or_file) {
            return Self::parse(name, text);
        }
        let path = std::path::Path::new(name_or_file);
        if !path.exists() {
            return Err(format!(
                "{name_or_file}: no such scenario (`demo-service scenario list` names them) and no such file"
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the scenario {}: {e}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::parse(&name, &text).map_err(|e| format!("the scenario {}: {e}", path.display()))
    }

    /// Every shipped scenario.
    pub fn shipped() -> Vec<Self> {
        SHIPPED
            .iter()
            .map(|(name, text)| {
                Self::parse(name, text).expect("a shipped scenario parses (tested)")
            })
            .collect()
    }

    /// Parses a scenario's text, its knobs checked against the default ones.
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| one_line(&e))?;
        let mut own = toml::Table::new();
        for key in [
            "traffic", "allow", "stop", "kill", "restart", "expect", "require",
        ] {
            if let Some(value) = table.remove(key) {
                own.insert(key.to_owned(), value);
            }
        }
        let own: Own = own.try_into().map_err(|e| one_line(&e))?;
        let description = table
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_owned();
        let timeline = if table.contains_key("step") {
            let timeline =
                Timeline::from_table(name, table, &Knobs::default(), &Limits::default())?;
            if timeline.repeat.is_some() {
                return Err("repeat: a scenario plays once".to_owned());
            }
            for (i, step) in timeline.steps.iter().enumerate() {
                if !step.jitter.is_zero() {
                    return Err(format!(
                        "step {}: jitter: a scenario plays at fixed times, since its timing is what it checks",
                        i + 1
                    ));
                }
                if step.lasts.is_none() {
                    return Err(format!(
                        "step {}: no `for`: a scenario clears every fault it makes",
                        i + 1
                    ));
                }
            }
            Some(timeline)
        } else {
            table.remove("description");
            if let Some(key) = table.keys().next() {
                return Err(format!("unknown field `{key}`"));
            }
            None
        };
        let duration = |what: String, text: &str| {
            crate::config::duration(text).map_err(|e| format!("{what}: {e}"))
        };
        let mut stops = Vec::new();
        for (i, s) in own.stops.iter().enumerate() {
            stops.push(Stop {
                part: s.service,
                at: duration(format!("stop {}: at", i + 1), &s.at)?,
                how: How::Stop(duration(format!("stop {}: for", i + 1), &s.lasts)?),
            });
        }
        for (table, jolts, how) in [
            ("kill", &own.kills, How::Kill),
            ("restart", &own.restarts, How::Restart),
        ] {
            for (i, j) in jolts.iter().enumerate() {
                stops.push(Stop {
                    part: j.service,
                    at: duration(format!("{table} {}: at", i + 1), &j.at)?,
                    how,
                });
            }
        }
        check_overlaps(timeline.as_ref(), &stops)?;
        if timeline.is_none() && stops.is_empty() {
            return Err(
                "no [[step]], [[stop]], [[kill]] or [[restart]]: a scenario breaks something"
                    .to_owned(),
            );
        }
        if own.expect.is_empty() {
            return Err("no [[expect]]: a scenario expects at least one alert".to_owned());
        }
        let expect = own
            .expect
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let what = |field: &str| format!("expect {} ({}): {field}", i + 1, e.alert);
                let expect = Expect {
                    alert: e.alert.clone(),
                    pending: e
                        .pending
                        .as_deref()
                        .map(|p| duration(what("pending"), p))
                        .transpose()?,
                    firing: duration(what("firing"), &e.firing)?,
                    notified: e
                        .notified
                        .as_deref()
                        .map(|n| duration(what("notified"), n))
                        .transpose()?,
                    resolved: duration(what("resolved"), &e.resolved)?,
                    notifications: e.notifications,
                    stack: e.stack,
                };
                if expect.pending.is_some_and(|p| p > expect.firing) {
                    return Err(what(
                        "pending is after firing: an alert is pending before it fires",
                    ));
                }
                if expect.notified.is_some_and(|n| n < expect.firing) {
                    return Err(what(
                        "notified is before firing: only a firing alert is sent",
                    ));
                }
                Ok(expect)
            })
            .collect::<Result<Vec<_>, String>>()?;
        if !(own.traffic.is_finite() && own.traffic >= 0.0) {
            return Err(format!(
                "traffic: {} is not a rate of requests",
                own.traffic
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            description,
            timeline,
            stops,
            expect,
            allow: own.allow,
            traffic: own.traffic,
            require: own.require,
        })
    }

    /// When the fault begins, from the start of the run: its first step or stop.
    pub fn begins(&self) -> Duration {
        self.events().map(|(at, _)| at).min().unwrap_or_default()
    }

    /// When the fault is cleared: the end of its last step or stop.
    pub fn clears(&self) -> Duration {
        self.events()
            .map(|(at, lasts)| at + lasts)
            .max()
            .unwrap_or_default()
    }

    fn events(&self) -> impl Iterator<Item = (Duration, Duration)> + '_ {
        let steps = self.timeline.iter().flat_map(|t| &t.steps);
        steps
            .map(|s| (s.at, s.lasts.unwrap_or_default()))
            .chain(self.stops.iter().map(|s| (s.at, s.lasts())))
    }

    /// The expectations that hold on `stack`.
    pub fn expected_on(&self, stack: StackKind) -> impl Iterator<Item = &Expect> {
        self.expect
            .iter()
            .filter(move |e| e.stack.is_none_or(|s| s == stack))
    }

    /// The fault, in a few words: the knobs it sets and the parts it stops.
    pub fn fault(&self) -> String {
        let steps = self.timeline.iter().flat_map(|t| &t.steps).map(|s| {
            let set: Vec<String> = s
                .set
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    v => format!("{k}={v}"),
                })
                .collect();
            format!(
                "{} for {}",
                set.join(" "),
                short(s.lasts.unwrap_or_default())
            )
        });
        let stops = self.stops.iter().map(Stop::describe);
        steps.chain(stops).collect::<Vec<_>>().join("; ")
    }

    /// `scenario list`'s line: name, fault, the alerts it expects.
    pub fn line(&self) -> String {
        let mut alerts: Vec<String> = Vec::new();
        for e in &self.expect {
            let name = match e.stack {
                Some(stack) => format!("{} ({stack})", e.alert),
                None => e.alert.clone(),
            };
            alerts.push(name);
        }
        format!(
            "{:<20} {:<44} expects {}",
            self.name,
            self.fault(),
            alerts.join(", ")
        )
    }
}

/// A scenario's steps and stops must each last, and two that overlap must not turn the same
/// knob or stop the same part: the first one's end would put back what the second one set.
fn check_overlaps(timeline: Option<&Timeline>, stops: &[Stop]) -> Result<(), String> {
    let steps = timeline.map(|t| &t.steps[..]).unwrap_or_default();
    for (i, step) in steps.iter().enumerate() {
        if step.lasts.is_some_and(|l| l.is_zero()) {
            return Err(format!("step {}: `for` is 0s: a step lasts", i + 1));
        }
    }
    for (i, stop) in stops.iter().enumerate() {
        if stop.how == How::Stop(Duration::ZERO) {
            return Err(format!("stop {}: `for` is 0s: a stop lasts", i + 1));
        }
    }
    let span = |at: Duration, lasts: Duration| at..at + lasts;
    let overlap = |a: &std::ops::Range<Duration>, b: &std::ops::Range<Duration>| {
        a.start < b.end && b.start < a.end
    };
    for (i, a) in steps.iter().enumerate() {
        for (j, b) in steps.iter().enumerate().skip(i + 1) {
            let (ra, rb) = (
                span(a.at, a.lasts.unwrap_or_default()),
                span(b.at, b.lasts.unwrap_or_default()),
            );
            if let Some(knob) = a.set.keys().find(|k| b.set.contains_key(*k))
                && overlap(&ra, &rb)
            {
                return Err(format!(
                    "steps {} and {} both turn {knob} at once: make one end before the other begins",
                    i + 1,
                    j + 1
                ));
            }
        }
    }
    for (i, a) in stops.iter().enumerate() {
        for (j, b) in stops.iter().enumerate().skip(i + 1) {
            if a.part == b.part && overlap(&span(a.at, a.lasts()), &span(b.at, b.lasts())) {
                return Err(format!(
                    "the {} is broken twice at once (by the {} and the {} of its kind): make one end before the other begins",
                    a.part.name(),
                    i + 1,
                    j + 1
                ));
            }
        }
    }
    Ok(())
}

/// A duration as the tables write it: `2m05s`, `45s`, `1h02m`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERROR_RATIO: &str = r#"
description = "d"
traffic = 1.0
[[step]]
at = "30s"
for = "4m"
set = { error_rate = 1.0 }
[[stop]]
service = "load"
at = "0s"
for = "1m"
[[expect]]
alert = "A"
firing = "4m"
notified = "4m30s"
resolved = "5m"
stack = "compose"
"#;

    #[test]
    fn a_scenario_is_a_timeline_with_expectations() {
        let s = Scenario::parse("e", ERROR_RATIO).unwrap();
        assert_eq!(s.description, "d");
        assert_eq!(s.timeline.as_ref().unwrap().steps.len(), 1);
        assert_eq!(s.begins(), Duration::ZERO);
        assert_eq!(s.clears(), Duration::from_secs(270));
        assert_eq!(s.expect[0].notified, Some(Duration::from_secs(270)));
        assert_eq!(s.expected_on(StackKind::Compose).count(), 1);
        assert_eq!(s.expected_on(StackKind::Native).count(), 0);
        assert_eq!(s.fault(), "error_rate=1.0 for 4m00s; stop load for 1m00s");
    }

    #[test]
    fn what_cannot_be_checked_is_refused_with_its_reason() {
        let cases = [
            ("repeat = \"10m\"\n", "a scenario plays once"),
            (
                "[[step]]\nat = \"0s\"\nset = { error_rate = 1.0 }\n",
                "no `for`",
            ),
            (
                "[[step]]\nat = \"0s\"\nfor = \"1m\"\njitter = \"1s\"\nset = { error_rate = 1.0 }\n",
                "fixed times",
            ),
            (
                "[[step]]\nat = \"0s\"\nfor = \"1m\"\nset = { error_rate = 2.0 }\n",
                "outside [0, 1]",
            ),
            (
                "[[stop]]\nservice = \"grafana\"\nat = \"0s\"\nfor = \"1m\"\n",
                "unknown variant",
            ),
            (
                "colour = 1\n[[stop]]\nservice = \"app\"\nat = \"0s\"\nfor = \"1m\"\n",
                "unknown field `colour`",
            ),
            ("description = \"x\"\n", "no [[step]], [[stop]]"),
            (
                "[[step]]\nat = \"0s\"\nfor = \"0s\"\nset = { error_rate = 1.0 }\n",
                "`for` is 0s",
            ),
            (
                "[[step]]\nat = \"0s\"\nfor = \"2m\"\nset = { error_rate = 1.0 }\n[[step]]\nat = \"1m\"\nfor = \"2m\"\nset = { error_rate = 0.5 }\n",
                "steps 1 and 2 both turn error_rate at once",
            ),
            (
                "[[stop]]\nservice = \"app\"\nat = \"0s\"\nfor = \"2m\"\n[[stop]]\nservice = \"app\"\nat = \"1m\"\nfor = \"2m\"\n",
                "the app is broken twice at once",
            ),
        ];
        let expect = "[[expect]]\nalert = \"A\"\nfiring = \"1m\"\nresolved = \"1m\"\n";
        for (text, reason) in cases {
            let text = if text.contains("repeat") {
                format!(
                    "{text}[[step]]\nat = \"0s\"\nfor = \"1m\"\nset = {{ error_rate = 1.0 }}\n{expect}"
                )
            } else {
                format!("{text}{expect}")
            };
            let e = Scenario::parse("x", &text).unwrap_err();
            assert!(e.contains(reason), "{text}: {e}");
        }
        let no_expect = "[[stop]]\nservice = \"app\"\nat = \"0s\"\nfor = \"1m\"\n";
        assert!(
            Scenario::parse("x", no_expect)
                .unwrap_err()
                .contains("no [[expect]]")
        );
        let backwards = format!(
            "{no_expect}[[expect]]\nalert = \"A\"\npending = \"2m\"\nfiring = \"1m\"\nresolved = \"1m\"\n"
        );
        assert!(
            Scenario::parse("x", &backwards)
                .unwrap_err()
                .contains("pending is after firing")
        );
    }

    #[test]
    fn every_shipped_scenario_parses_and_is_in_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".toml").map(str::to_owned)
            })
            .collect();
        files.sort();
        let shipped: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, shipped, "SHIPPED lists scenarios/*.toml, in order");
        for scenario in Scenario::shipped() {
            assert!(!scenario.description.is_empty(), "{}", scenario.name);
        }
    }

    /// The alerts of `prometheus/rules/`, by name.
    fn alerts_in_rules() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prometheus/rules");
        let mut alerts = Vec::new();
        for file in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            for line in text.lines() {
                if let Some(name) = line.trim().strip_prefix("- alert:") {
                    alerts.push(name.trim().to_owned());
                }
            }
        }
        alerts
    }

    #[test]
    fn every_alert_has_a_game_day() {
        let alerts = alerts_in_rules();
        assert!(
            alerts.len() >= 13,
            "the rules' alerts are found: {alerts:?}"
        );
        let expected: std::collections::BTreeSet<String> = Scenario::shipped()
            .iter()
            .flat_map(|s| s.expect.iter().map(|e| e.alert.clone()))
            .collect();
        let missing: Vec<&String> = alerts.iter().filter(|a| !expected.contains(*a)).collect();
        assert!(
            missing.is_empty(),
            "no scenario in scenarios/ expects {missing:?}: add one, from the fault that should fire it (docs/game-days.md)"
        );
        let unknown: Vec<&String> = expected.iter().filter(|e| !alerts.contains(e)).collect();
        assert!(
            unknown.is_empty(),
            "scenarios expect alerts the rules do not have: {unknown:?}"
        );
    }

    #[test]
    fn durations_are_short_in_tables() {
        assert_eq!(short(Duration::from_secs(45)), "45s");
        assert_eq!(short(Duration::from_secs(125)), "2m05s");
        assert_eq!(short(Duration::from_secs(3720)), "1h02m");
    }
}
