//! The service's objectives (`slo/objectives.yaml`), read and checked, and the Prometheus rules
//! generated from them: `demo-service slo generate`.
//!
//! An objective is a share of good requests over 30 days: availability (not a 5xx), or latency
//! (under a threshold that is one of a histogram's bounds). Its rules are the ones sloth and
//! pyrra generate: the share of bad requests over each window of the SRE workbook's
//! multiwindow, multi-burn-rate alerts, those alerts, and the error budget left over 30 days
//! with the time until it is spent ([`rules`]).

mod rules;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::SloArgs;

/// The objectives' file, from the project's root.
pub const OBJECTIVES: &str = "slo/objectives.yaml";

/// The rules generated from it, from the project's root.
pub const RULES: &str = "prometheus/rules/slo.yml";

/// The objectives of one job.
#[derive(Debug)]
pub struct Objectives {
    /// The job every selector reads.
    pub job: String,
    pub objectives: Vec<Objective>,
}

#[derive(Debug)]
pub struct Objective {
    /// Its name: the `slo` label of its series.
    pub name: String,
    /// The good requests, in words.
    pub description: String,
    /// The bad requests, in words that complete "12 % of ...".
    pub bad: String,
    /// The target, in percent.
    pub target: f64,
    /// The error budget: the share of requests allowed to be bad (0.005 for 99.5 %).
    pub budget: f64,
    pub sli: Sli,
    pub alerts: Alerts,
}

/// What makes a request bad.
#[derive(Debug)]
pub enum Sli {
    /// Counted by one counter's series, the bad ones and all of them.
    Ratio { errors: Selector, total: Selector },
    /// Slower than `threshold`, one of `histogram`'s bounds, among the series that `matchers`
    /// pick.
    Latency {
        histogram: String,
        matchers: Vec<String>,
        threshold: String,
    },
}

/// A series selector: a metric and its label matchers, each written `label op "value"`.
#[derive(Debug)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// The fast burns' alert: critical.
    pub page: String,
    /// The slow burns' alert: a warning.
    pub ticket: String,
}

/// The file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    job: String,
    period: String,
    objectives: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    description: String,
    bad: String,
    target: f64,
    sli: SliEntry,
    alerts: Alerts,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SliEntry {
    Ratio {
        errors: String,
        total: String,
    },
    Latency {
        histogram: String,
        matchers: String,
        threshold: String,
    },
}

impl Objectives {
    /// Reads and checks the objectives at `path`: one line naming the file and what is wrong.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the objectives {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks objectives written as `slo/objectives.yaml` is.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = serde_saphyr::from_str(text)
            .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())?;
        if !is_label_value(&file.job) {
            return Err(format!("job {:?}: not a label value", file.job));
        }
        if file.period != "30d" {
            return Err(format!(
                "period {:?}: only 30d, the period the alerts' windows and factors are made for",
                file.period
            ));
        }
        if file.objectives.is_empty() {
            return Err("no objectives".to_owned());
        }
        let mut names = BTreeSet::new();
        let mut alerts = BTreeSet::new();
        let mut objectives = Vec::new();
        for entry in file.objectives {
            let name = entry.name.clone();
            let objective =
                Objective::check(entry).map_err(|e| format!("objective {name:?}: {e}"))?;
            if !names.insert(objective.name.clone()) {
                return Err(format!("objective {name:?}: named twice"));
            }
            for alert in [&objective.alerts.page, &objective.alerts.ticket] {
                if !alerts.insert(alert.clone()) {
                    return Err(format!(
                        "objective {name:?}: the alert {alert} is named twice"
                    ));
                }
            }
            objectives.push(objective);
        }
        Ok(Self {
            job: file.job,
            objectives,
        })
    }
}

impl Objective {
    fn check(entry: Entry) -> Result<Self, String> {
        let Entry {
            name,
            description,
            bad,
            target,
            sli,
            alerts,
        } = entry;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err("a name is lower-case letters, digits, - and _".to_owned());
        }
        for text in [&description, &bad] {
            if text.is_empty() || text.contains(['"', '\\', '\n', '{', '}']) {
                return Err(format!(
                    "{text:?}: description and bad are one line of words, without quotes or braces"
                ));
            }
        }
        // In hundredths of a percent, so that the budget is written as the target is: 99.9
        // leaves 0.001, not 0.0010000000000000009.
        let hundredths = target * 100.0;
        if !(target > 0.0 && target < 100.0) || (hundredths - hundredths.round()).abs() > 1e-6 {
            return Err(format!(
                "target {target}: a percentage above 0 and below 100, to two decimals at most"
            ));
        }
        let budget = (10_000.0 - hundredths.round()) / 10_000.0;
        for alert in [&alerts.page, &alerts.ticket] {
            if !is_alert_name(alert) {
                return Err(format!(
                    "alert {alert:?}: a letter, then letters, digits and _"
                ));
            }
        }
        let sli = match sli {
            SliEntry::Ratio { errors, total } => Sli::Ratio {
                errors: Selector::parse(&errors)?,
                total: Selector::parse(&total)?,
            },
            SliEntry::Latency {
                histogram,
                matchers,
                threshold,
            } => {
                let Some(spelled) = crate::metrics::duration_buckets(&histogram) else {
                    return Err(format!(
                        "histogram {histogram:?}: not one of the app's: request_duration_seconds or http_request_duration_seconds"
                    ));
                };
                if !spelled.contains(&threshold) {
                    return Err(format!(
                        "threshold {threshold:?}: not a bucket of {histogram}, whose le labels are {}",
                        spelled.join(", ")
                    ));
                }
                let matchers = split_matchers(&matchers)?;
                if matchers.iter().any(|m| label_of(m) == "le") {
                    return Err("matchers: le is the threshold's, not a matcher".to_owned());
                }
                Sli::Latency {
                    histogram,
                    matchers,
                    threshold,
                }
            }
        };
        Ok(Self {
            name,
            description,
            bad,
            target,
            budget,
            sli,
            alerts,
        })
    }
}

impl Objective {
    /// The budget in percent, as written: 0.5 for 99.5, 0.9 for 99.1 (not 0.8999999999999999).
    pub fn budget_percent(&self) -> f64 {
        (10_000.0 - (self.target * 100.0).round()) / 100.0
    }
}

impl Selector {
    /// `metric{label op "value", ...}`, or the metric alone, without the job.
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (metric, rest) = match text.find('{') {
            Some(i) => (&text[..i], Some(&text[i..])),
            None => (text, None),
        };
        if !is_metric_name(metric.trim_end()) {
            return Err(format!(
                "{text:?}: a selector is a metric name, then its matchers in braces"
            ));
        }
        let matchers = match rest {
            None => Vec::new(),
            Some(rest) => {
                let inner = rest
                    .strip_prefix('{')
                    .and_then(|r| r.strip_suffix('}'))
                    .ok_or_else(|| format!("{text:?}: the matchers end with the selector's }}"))?;
                split_matchers(inner)?
            }
        };
        Ok(Self {
            metric: metric.trim_end().to_owned(),
            matchers,
        })
    }
}

/// Splits label matchers (`route!="/x", status=~"5.."`) at their commas, checks each, and
/// refuses one on the job: the generator names the job itself, in every selector.
fn split_matchers(text: &str) -> Result<Vec<String>, String> {
    let mut matchers = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let label_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let label = &rest[..label_end];
        let after = rest[label_end..].trim_start();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| after.starts_with(op));
        let label_ok = label
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let (Some(op), true) = (op, label_ok) else {
            return Err(format!(
                "matchers {text:?}: each is label=\"value\" (or !=, =~, !~)"
            ));
        };
        let value = after[op.len()..].trim_start();
        let Some(value_len) = quoted_len(value) else {
            return Err(format!("matchers {text:?}: a value is in double quotes"));
        };
        if label == "job" {
            return Err(format!(
                "matchers {text:?}: no job: the generator adds the file's job to every selector"
            ));
        }
        matchers.push(format!("{label}{op}{}", &value[..value_len]));
        rest = value[value_len..].trim_start();
        rest = match rest.strip_prefix(',') {
            Some(next) => next.trim_start(),
            None if rest.is_empty() => rest,
            None => return Err(format!("matchers {text:?}: matchers are parted by commas")),
        };
    }
    Ok(matchers)
}

/// The length of the double-quoted string `text` starts with, quotes included.
fn quoted_len(text: &str) -> Option<usize> {
    let mut chars = text.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut escaped = false;
    for (i, c) in chars {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn label_of(matcher: &str) -> &str {
    matcher.split(['=', '!']).next().unwrap_or_default().trim()
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_alert_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_label_value(value: &str) -> bool {
    !value.is_empty() && !value.contains(['"', '\\', '\n'])
}

/// `demo-service slo generate`: writes the rules, or with `--check` says whether the written
/// ones are those the objectives give.
pub fn generate(args: &SloArgs) -> anyhow::Result<String> {
    let objectives = Objectives::read(&args.objectives).map_err(anyhow::Error::msg)?;
    let rules = rules::generate(&objectives);
    if args.check {
        let written = std::fs::read_to_string(&args.out).unwrap_or_default();
        if written != rules {
            anyhow::bail!(
                "{} is not what {} gives: run `demo-service slo generate` (cargo run -- slo generate), then scripts/kubernetes-generate",
                args.out.display(),
                args.objectives.display()
            );
        }
        return Ok(format!(
            "{} is what {} gives",
            args.out.display(),
            args.objectives.display()
        ));
    }
    write(&args.out, &rules)?;
    Ok(format!(
        "wrote {} from {}: {} objectives; now run scripts/kubernetes-generate for the PrometheusRule",
        args.out.display(),
        args.objectives.display(),
        objectives.objectives.len()
    ))
}

/// Writes through a temporary file beside `path`, so that a Prometheus reloading its rules
/// never reads half of them.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    let partial: PathBuf = path.with_extension("yml.partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
job: flask_app
period: 30d
objectives:
  - name: availability
    description: requests answered without a 5xx
    bad: requests answered with a 5xx
    target: 99.5
    sli:
      ratio:
        errors: http_requests_total{route!="/simulate_error", status=~"5.."}
        total: http_requests_total{route!="/simulate_error"}
    alerts: { page: A, ticket: B }
  - name: latency
    description: requests to / within 5 s
    bad: requests to / over 5 s
    target: 99.9
    sli:
      latency: { histogram: http_request_duration_seconds, matchers: 'route="/"', threshold: "5.0" }
    alerts: { page: C, ticket: D }
"#;

    fn with(from: &str, to: &str) -> Result<Objectives, String> {
        assert!(FILE.contains(from), "{from}");
        Objectives::parse(&FILE.replacen(from, to, 1))
    }

    #[test]
    fn the_file_is_read_with_budgets_written_as_the_targets() {
        let o = Objectives::parse(FILE).unwrap();
        assert_eq!(o.job, "flask_app");
        assert_eq!(o.objectives[0].budget.to_string(), "0.005");
        assert_eq!(o.objectives[1].budget.to_string(), "0.001");
        assert_eq!(o.objectives[1].budget_percent().to_string(), "0.1");
        let o = with("target: 99.5", "target: 99.1").unwrap();
        assert_eq!(o.objectives[0].budget_percent().to_string(), "0.9");
        let Sli::Ratio { errors, .. } = &o.objectives[0].sli else {
            panic!("a ratio")
        };
        assert_eq!(errors.metric, "http_requests_total");
        assert_eq!(
            errors.matchers,
            ["route!=\"/simulate_error\"", "status=~\"5..\""]
        );
    }

    #[test]
    fn the_shipped_objectives_are_read() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(OBJECTIVES);
        let o = Objectives::read(&path).unwrap();
        assert_eq!(o.objectives.len(), 2);
    }

    #[test]
    fn a_threshold_must_be_a_bucket_as_prometheus_spells_it() {
        let e = with("threshold: \"5.0\"", "threshold: \"5\"").unwrap_err();
        assert!(
            e.starts_with("objective \"latency\": threshold \"5\": not a bucket of http_request_duration_seconds, whose le labels are 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0"),
            "{e}"
        );
        let e = with("threshold: \"5.0\"", "threshold: \"3.0\"").unwrap_err();
        assert!(e.contains("not a bucket"), "{e}");
        // The seed's histogram has its own bounds.
        let seed = with(
            "histogram: http_request_duration_seconds",
            "histogram: request_duration_seconds",
        );
        assert!(seed.is_ok());
        let e = with(
            "histogram: http_request_duration_seconds, matchers: 'route=\"/\"', threshold: \"5.0\"",
            "histogram: request_duration_seconds, matchers: '', threshold: \"2.5\"",
        )
        .unwrap_err();
        assert!(
            e.contains("whose le labels are 0.1, 0.3, 0.5, 0.7, 1.0, 2.0, 5.0, 10.0"),
            "{e}"
        );
        let e = with(
            "histogram: http_request_duration_seconds",
            "histogram: nope",
        )
        .unwrap_err();
        assert!(e.contains("not one of the app's"), "{e}");
    }

    #[test]
    fn bad_objectives_get_one_line_that_says_what() {
        for (from, to, says) in [
            ("period: 30d", "period: 28d", "only 30d"),
            ("target: 99.5", "target: 100", "below 100"),
            ("target: 99.5", "target: 0", "above 0"),
            ("target: 99.5", "target: 99.555", "two decimals"),
            ("name: latency", "name: availability", "named twice"),
            ("page: C", "page: A", "the alert A is named twice"),
            ("page: C", "page: 9x", "a letter, then"),
            ("name: latency", "name: Latency!", "lower-case"),
            ("job: flask_app", "job: \"a\\\"b\"", "not a label value"),
            (
                "errors: http_requests_total{",
                "errors: http_requests_total{job=\"x\", ",
                "no job",
            ),
            ("status=~\"5..\"}", "status=~5..}", "double quotes"),
            ("status=~\"5..\"}", "9status=~\"5..\"}", "each is label"),
            (
                "status=~\"5..\"}",
                "status=~\"5..\"",
                "end with the selector's }",
            ),
            (
                "route!=\"/simulate_error\", status",
                "route!=\"/simulate_error\" status",
                "commas",
            ),
            (
                "errors: http_requests_total",
                "errors: 9http",
                "a metric name",
            ),
            (
                "matchers: 'route=\"/\"'",
                "matchers: 'le=\"1.0\"'",
                "le is the threshold's",
            ),
            (
                "bad: requests answered",
                "bad: requests {answered}",
                "without quotes or braces",
            ),
            (
                "    target: 99.5\n",
                "    target: 99.5\n    extra: 1\n",
                "unknown field",
            ),
        ] {
            let e = with(from, to).unwrap_err();
            assert!(e.contains(says), "{from} -> {to}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = Objectives::read(Path::new("/nonexistent/objectives.yaml")).unwrap_err();
        assert!(
            e.starts_with("cannot read the objectives /nonexistent/objectives.yaml:"),
            "{e}"
        );
    }
}
