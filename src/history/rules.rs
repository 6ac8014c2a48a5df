//! The recording rules, sorted into the levels that backfilling them needs.
//!
//! `promtool tsdb create-blocks-from rules` evaluates rules against a running Prometheus, and
//! a rule that reads another rule's series finds nothing until that series' blocks are loaded:
//! silently, no block and no warning. So the rules go in levels: level 1 reads only scraped
//! series, level N reads a series of level N-1 at most. Each level is a file of its own, with
//! the groups' names and intervals kept, loaded after the one before. Alerting rules are left
//! out: promtool backfills none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Group {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    pub rules: Vec<Rule>,
}

/// A rule; only recording rules are kept, so an alert's other fields are not read.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing)]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// The rule files that `rule_files` names in Prometheus' configuration at `config`: each a
/// path relative to it, with `*` in its last part at most.
pub fn files(config: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let base = config.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for pattern in patterns {
        let path = base.join(pattern);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((prefix, suffix)) = name.split_once('*') else {
            files.push(path);
            continue;
        };
        let dir = path.parent().unwrap_or(base);
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the rules' folder {}: {e}", dir.display()))?;
        let mut matched: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
            })
            .collect();
        matched.sort();
        files.extend(matched);
    }
    Ok(files)
}

/// Reads the rule files, and sorts their recording rules into levels: the first holds those
/// that read scraped series only.
pub fn levels(files: &[PathBuf]) -> Result<Vec<RuleFile>, String> {
    let mut groups = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the rules {}: {e}", path.display()))?;
        let file: RuleFile = serde_saphyr::from_str(&text).map_err(|e| {
            format!(
                "the rules {}: {}",
                path.display(),
                e.to_string().lines().next().unwrap_or_default()
            )
        })?;
        groups.extend(file.groups);
    }
    split(groups)
}

/// The groups' recording rules by level.
fn split(groups: Vec<Group>) -> Result<Vec<RuleFile>, String> {
    let records: Vec<(String, String)> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| Some((r.record.clone()?, r.expr.clone())))
        .collect();
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    // A rule's level is one more than the highest of the records it reads; as many passes as
    // there are records settle them all, unless records read each other in a circle.
    for _ in 0..=records.len() {
        let mut changed = false;
        for (name, expr) in &records {
            let reads = names(expr)
                .filter(|n| *n != name && records.iter().any(|(r, _)| r == n))
                .map(|n| level.get(n).copied().unwrap_or(1))
                .max()
                .unwrap_or(0);
            let new = reads + 1;
            if level.get(name.as_str()) != Some(&new) {
                level.insert(name, new);
                changed = true;
            }
        }
        if !changed {
            break;
        }
        if level.values().any(|&l| l > records.len()) {
            return Err("recording rules read each other in a circle".to_owned());
        }
    }
    let deepest = level.values().copied().max().unwrap_or(0);
    Ok((1..=deepest)
        .map(|n| RuleFile {
            groups: groups
                .iter()
                .filter_map(|g| {
                    let rules: Vec<Rule> = g
                        .rules
                        .iter()
                        .filter(|r| {
                            r.record
                                .as_deref()
                                .is_some_and(|name| level.get(name) == Some(&n))
                        })
                        .cloned()
                        .collect();
                    (!rules.is_empty()).then(|| Group { rules, ..g.clone() })
                })
                .collect(),
        })
        .collect())
}

/// The metric names an expression reads (and some words that are not: functions, labels;
/// none of them is a record's name, which has a colon).
fn names(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.contains(':'))
}

impl RuleFile {
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("rules serialise")
    }

    /// The names it records.
    pub fn records(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter_map(|r| r.record.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(record: &str, expr: &str) -> Rule {
        Rule {
            record: Some(record.to_owned()),
            alert: None,
            expr: expr.to_owned(),
            labels: None,
        }
    }

    #[test]
    fn rules_that_read_rules_come_a_level_later() {
        let groups = vec![
            Group {
                name: "a".to_owned(),
                interval: None,
                rules: vec![
                    rule("job:r:rate5m", "sum by (job) (rate(r_total[5m]))"),
                    rule("job:b:ratio", "1 - job:r:rate30d / 0.005"),
                    Rule {
                        alert: Some("X".to_owned()),
                        record: None,
                        ..rule("", "job:b:ratio < 0")
                    },
                ],
            },
            Group {
                name: "b".to_owned(),
                interval: Some("1m".to_owned()),
                rules: vec![rule("job:r:rate30d", "avg_over_time(job:r:rate5m[30d])")],
            },
        ];
        let levels = split(groups).unwrap();
        let names: Vec<Vec<&str>> = levels.iter().map(|l| l.records().collect()).collect();
        assert_eq!(
            names,
            [
                vec!["job:r:rate5m"],
                vec!["job:r:rate30d"],
                vec!["job:b:ratio"]
            ]
        );
        assert_eq!(levels[1].groups[0].interval.as_deref(), Some("1m"));
        let yaml = levels[0].to_yaml();
        let again: RuleFile = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(
            again.groups[0].rules[0].expr,
            "sum by (job) (rate(r_total[5m]))"
        );
        assert!(!yaml.contains("alert"), "{yaml}");
    }

    #[test]
    fn a_circle_is_refused() {
        let groups = vec![Group {
            name: "a".to_owned(),
            interval: None,
            rules: vec![rule("a:x", "b:x + 1"), rule("b:x", "a:x + 1")],
        }];
        assert!(split(groups).unwrap_err().contains("circle"));
    }
}
