//! The rules of the objectives, written as the YAML file Prometheus reads.
//!
//! Written by hand rather than serialized: the file is read by people, in review and in the
//! docs, so its order, its comments and its block scalars are chosen, and it is the same bytes
//! at every run (the tests compare it with the committed one).

use std::fmt::Write;

use super::{Objective, Objectives, Selector, Sli};

/// The windows of the burn-rate alerts, each a recorded ratio.
const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// The SRE workbook's multiwindow, multi-burn-rate alerts for 30 days (chapter "Alerting on
/// SLOs"): the long window, the short one, and the burn rate both must pass. A burn rate of 1
/// spends the budget in exactly 30 days; 14.4 spends 2 % of it in an hour.
const PAGE: [(&str, &str, &str); 2] = [("1h", "5m", "14.4"), ("6h", "30m", "6")];
const TICKET: [(&str, &str, &str); 2] = [("1d", "2h", "3"), ("3d", "6h", "1")];

/// The period, in seconds and as a window.
const PERIOD_SECONDS: u32 = 30 * 86_400;
const PERIOD: &str = "30d";

/// The tiles that the period's sums add up: a group evaluated every `TILE` records each
/// objective's requests over the last `TILE`, so that 30 days are 8640 samples to add, not the
/// 172800 scrapes of a counter (which a backfill of 30 days, evaluating at every 30 s, could not
/// afford).
const TILE: &str = "5m";

/// The ratio's record, for every objective (the label `slo` tells them apart).
const RATIO: &str = "job:slo_errors_per_request:ratio_rate";

pub(super) fn generate(o: &Objectives) -> String {
    let mut out = String::new();
    header(&mut out, o);
    out.push_str("groups:\n");

    out.push_str("  - name: demo-service-slo\n    rules:\n");
    for objective in &o.objectives {
        let _ = writeln!(
            out,
            "      # {}: {} % over 30 days.",
            objective.name, objective.target
        );
        for window in WINDOWS {
            let (bad, total) = objective.parts(&o.job, "rate", window);
            let expr = format!("(\n{bad}\n)\n/ {total}\n");
            record(&mut out, &format!("{RATIO}{window}"), &expr, objective);
        }
        let selector = |record: &str| recorded(record, &o.job, objective);
        record(
            &mut out,
            &format!("{RATIO}{PERIOD}"),
            &format!(
                "sum by (job) (sum_over_time({}[{PERIOD}]))\n/\nsum by (job) (sum_over_time({}[{PERIOD}]))\n",
                selector(&format!("job:slo_bad_requests:increase{TILE}")),
                selector(&format!("job:slo_requests:increase{TILE}")),
            ),
            objective,
        );
        record(
            &mut out,
            "job:slo_error_budget:ratio",
            &format!("vector({})\n", objective.budget),
            objective,
        );
        // vector() has no labels: the job is given too, quoted, as it may be any label value.
        let _ = writeln!(out, "          job: \"{}\"", o.job);
        record(
            &mut out,
            "job:slo_error_budget_remaining:ratio",
            &format!(
                "1 - {} / {}\n",
                selector(&format!("{RATIO}{PERIOD}")),
                objective.budget
            ),
            objective,
        );
        // The budget left as above, written again rather than read from its record: a rule
        // that reads another is backfilled a level later, and a level of its own that holds
        // nothing while nothing burns would look like a failed one.
        record(
            &mut out,
            "job:slo_error_budget_time_left:seconds",
            &format!(
                "clamp_min(1 - {} / {}, 0) * {PERIOD_SECONDS}\n/ on (job, slo)\n({} / {} > 0)\n",
                selector(&format!("{RATIO}{PERIOD}")),
                objective.budget,
                selector(&format!("{RATIO}1h")),
                objective.budget
            ),
            objective,
        );
    }

    let _ = write!(
        out,
        "\n  - name: demo-service-slo-budget\n    interval: {TILE}\n    rules:\n"
    );
    for objective in &o.objectives {
        let (bad, total) = objective.parts(&o.job, "increase", TILE);
        record(
            &mut out,
            &format!("job:slo_requests:increase{TILE}"),
            &format!("{total}\n"),
            objective,
        );
        // Outside the parentheses of a ratio its lines start at the left: a block scalar takes
        // its indentation from the first.
        let bad: String = bad
            .lines()
            .map(|line| format!("{}\n", line.trim_start()))
            .collect();
        record(
            &mut out,
            &format!("job:slo_bad_requests:increase{TILE}"),
            &bad,
            objective,
        );
    }

    out.push_str("\n  - name: demo-service-slo-alerts\n    rules:\n");
    for objective in &o.objectives {
        alert(&mut out, o, objective, true);
        alert(&mut out, o, objective, false);
    }
    out
}

fn header(out: &mut String, o: &Objectives) {
    let _ = writeln!(
        out,
        "# Generated from {} by `demo-service slo generate`. Do not edit this file: edit that one,\n\
         # generate again, then run scripts/kubernetes-generate. The tests fail when it is stale.\n\
         # docs/objectives.md explains the rules and their arithmetic.\n#\n# The objectives, over 30 days:",
        super::OBJECTIVES
    );
    for objective in &o.objectives {
        let _ = writeln!(
            out,
            "#   {:<13} {:>5} %  {}",
            objective.name, objective.target, objective.description
        );
    }
    out.push_str(
        "#\n\
         # The records, one series per objective (its label slo):\n\
         #   job:slo_errors_per_request:ratio_rate<W>  the share of bad requests over W: each window\n\
         #                                             of the alerts, and 30d\n\
         #   job:slo_error_budget:ratio                the error budget, 1 - the objective\n\
         #   job:slo_error_budget_remaining:ratio      the budget left over 30 days: 1 untouched,\n\
         #                                             0 spent, below 0 overspent\n\
         #   job:slo_error_budget_time_left:seconds    until the rest is spent at the last hour's\n\
         #                                             burn rate (none while nothing burns)\n\
         #   job:slo_requests:increase5m               the requests of each 5 minutes, and the bad\n\
         #   job:slo_bad_requests:increase5m           ones, which the 30 days add up\n\
         # A burn rate is the share of bad requests over the budget: at 1 the budget lasts exactly\n\
         # 30 days. The alerts are the SRE workbook's, for 30 days: a page when 2 % of the budget\n\
         # goes in an hour (14.4x) or 5 % in six hours (6x); a ticket when 10 % goes in a day (3x)\n\
         # or in three days (1x). Each needs its long window (the budget really goes) and its short\n\
         # one (it still goes, so the alert resolves soon after the cause stops).\n\n",
    );
}

/// A recording rule, labelled with its objective.
fn record(out: &mut String, name: &str, expr: &str, objective: &Objective) {
    let _ = write!(
        out,
        "      - record: {name}\n        expr: |\n{}        labels:\n          slo: {}\n",
        indent(expr, 10),
        objective.name
    );
}

fn alert(out: &mut String, o: &Objectives, objective: &Objective, page: bool) {
    let (name, pairs, hold, severity) = if page {
        (&objective.alerts.page, PAGE, "2m", "critical")
    } else {
        (&objective.alerts.ticket, TICKET, "1h", "warning")
    };
    let budget = objective.budget;
    let ratio = |window: &str| recorded(&format!("{RATIO}{window}"), &o.job, objective);
    let expr = pairs
        .iter()
        .map(|(long, short, factor)| {
            format!(
                "(\n    {} > ({factor} * {budget})\n  and\n    {} > ({factor} * {budget})\n)\n",
                ratio(long),
                ratio(short)
            )
        })
        .collect::<Vec<_>>()
        .join("or\n");
    let (comment, summary, pace) = if page {
        (
            "2 % of the month's budget in an hour (14.4x), or 5 % in six hours (6x): page.",
            "burns its {name} error budget fast",
            "At this pace the 30-day budget is gone within days: 2 % of it in an hour (14.4x), or 5 % in six hours (6x).",
        )
    } else {
        (
            "10 % of the month's budget in a day (3x), or in three days (1x): a ticket, not a page.",
            "spends its {name} error budget too fast",
            "At this pace the 30-day budget is gone before the month is: 10 % of it in a day (3x), or in three days (1x).",
        )
    };
    let summary = summary.replace("{name}", &objective.name);
    let description = format!(
        "{{{{ $value | humanizePercentage }}}} of {}. The {} objective, {} % of {} over 30 days, allows {} %. {pace}",
        objective.bad,
        objective.name,
        objective.target,
        objective.description,
        objective.budget_percent()
    );
    let _ = write!(
        out,
        "      - alert: {name}\n        # {comment}\n        expr: |\n{}        for: {hold}\n        labels:\n          severity: {severity}\n        annotations:\n          summary: \"{{{{ $labels.job }}}} {summary}: {{{{ $value | humanizePercentage }}}} of {}\"\n          description: >-\n{}",
        indent(&expr, 10),
        objective.bad,
        wrap(&description, 12, 96),
    );
}

impl Objective {
    /// The bad requests and all of them, each summed by job, through `function` (rate or
    /// increase) over `window`.
    fn parts(&self, job: &str, function: &str, window: &str) -> (String, String) {
        let over = |selector: String| format!("sum by (job) ({function}({selector}[{window}]))");
        match &self.sli {
            Sli::Ratio { errors, total } => {
                let total = over(selector_text(total, job, &[]));
                let bad = over(selector_text(errors, job, &[]));
                // A window without a single error holds no error series: 0, not nothing.
                (format!("    {bad}\n  or\n    0 * {total}"), total)
            }
            Sli::Latency {
                histogram,
                matchers,
                threshold,
            } => {
                let count = Selector {
                    metric: format!("{histogram}_count"),
                    matchers: matchers.clone(),
                };
                let bucket = Selector {
                    metric: format!("{histogram}_bucket"),
                    matchers: matchers.clone(),
                };
                let le = format!("le=\"{threshold}\"");
                let total = over(selector_text(&count, job, &[]));
                let good = over(selector_text(&bucket, job, &[le]));
                (format!("    {total}\n  -\n    {good}"), total)
            }
        }
    }
}

/// A series that these rules record for `objective`: `record{job="...", slo="..."}`.
fn recorded(record: &str, job: &str, objective: &Objective) -> String {
    format!("{record}{{job=\"{job}\", slo=\"{}\"}}", objective.name)
}

/// `metric{job="...", matchers..., extra...}`.
fn selector_text(selector: &Selector, job: &str, extra: &[String]) -> String {
    let mut matchers = vec![format!("job=\"{job}\"")];
    matchers.extend(selector.matchers.iter().cloned());
    matchers.extend(extra.iter().cloned());
    format!("{}{{{}}}", selector.metric, matchers.join(", "))
}

/// Each line of `text` indented by `by` spaces.
fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|line| format!("{:by$}{line}\n", ""))
        .collect()
}

/// `text` folded into lines of `width` at most (a word longer stays whole), indented by `by`.
fn wrap(text: &str, by: usize, width: usize) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && by + line.len() + 1 + word.len() > width {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.iter().map(|l| format!("{:by$}{l}\n", "")).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::slo::{OBJECTIVES, RULES};

    fn shipped() -> Objectives {
        Objectives::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(OBJECTIVES)).unwrap()
    }

    #[test]
    fn the_committed_rules_are_those_the_objectives_give() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES);
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = generate(&shipped());
        if written != generated {
            let first = written
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| written.lines().count().min(generated.lines().count()));
            panic!(
                "{RULES} is stale (line {}: {:?}, generated {:?}): run `cargo run -- slo generate`, then scripts/kubernetes-generate",
                first + 1,
                written.lines().nth(first),
                generated.lines().nth(first)
            );
        }
    }

    #[test]
    fn the_rules_parse_and_read_each_objective_with_its_job() {
        let text = generate(&shipped());
        let file: crate::history::rules::RuleFile = serde_saphyr::from_str(&text).unwrap();
        let names: Vec<&str> = file.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "demo-service-slo",
                "demo-service-slo-budget",
                "demo-service-slo-alerts"
            ]
        );
        let rules: Vec<_> = file.groups.iter().flat_map(|g| &g.rules).collect();
        for slo in ["availability", "latency"] {
            let mine: Vec<_> = rules
                .iter()
                .filter(|r| {
                    r.labels
                        .as_ref()
                        .is_some_and(|l| l.get("slo").map(String::as_str) == Some(slo))
                })
                .collect();
            // Seven windows and 30 days, the budget, what is left and when it ends, two tiles.
            assert_eq!(mine.len(), 13, "{slo}");
        }
        assert!(
            rules
                .iter()
                .all(|r| r.expr.contains("job=\"flask_app\"") || r.expr.starts_with("vector("))
        );
        // The latency objective reads its bucket as Prometheus stores it.
        assert!(text.contains(
            r#"http_request_duration_seconds_bucket{job="flask_app", route="/", le="5.0"}[5m]"#
        ));
        // The factors times the budget, as written, with no float noise.
        assert!(text.contains("> (14.4 * 0.005)"));
        assert!(text.contains("> (1 * 0.01)"));
    }

    #[test]
    fn a_description_is_folded_at_the_width() {
        assert_eq!(wrap("a bb ccc", 2, 7), "  a bb\n  ccc\n");
        assert_eq!(
            wrap("averyveryverylongword x", 2, 7),
            "  averyveryverylongword\n  x\n"
        );
    }
}
