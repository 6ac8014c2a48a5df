//! The history's files: scrapes of the service's exposition, stamped with their times and the
//! target's labels, regrouped as OpenMetrics wants a file of many scrapes to be.
//!
//! An exposition is one scrape: each family once, each child (a label set) once in it. A file
//! of many scrapes keeps each family once too, and within it each child's points in time order,
//! one point being the child's lines at one scrape (a histogram's buckets, count, sum and
//! created together). promtool needs no more than each series in time order; the layout is
//! the one the OpenMetrics specification gives, so that a stricter parser takes it too.
//!
//! Exemplars are left out: promtool drops them, and a history's requests have no traces.

use std::fmt::Write as _;

/// The scrapes of one block's window, regrouped, until they are written.
#[derive(Debug, Default)]
pub struct Window {
    families: Vec<Family>,
    /// Index into `families` by name.
    by_name: rustc_hash::FxHashMap<String, usize>,
    samples: u64,
}

#[derive(Debug)]
struct Family {
    /// Its `# HELP`, `# TYPE` and `# UNIT` lines.
    metadata: String,
    children: Vec<(String, String)>,
    /// Index into `children` by the child's labels.
    by_labels: rustc_hash::FxHashMap<String, usize>,
}

/// The target labels a scrape adds to every sample, as Prometheus does.
#[derive(Clone, Debug)]
pub struct Target {
    /// `job="...",instance="..."`, ready to go into a label list.
    labels: String,
}

impl Target {
    pub fn new(job: &str, instance: &str) -> Self {
        Self {
            labels: format!("job=\"{}\",instance=\"{}\"", escape(job), escape(instance)),
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Window {
    /// Adds one scrape at `at` (seconds since the epoch) of `exposition` (OpenMetrics, as the
    /// service renders it), and its `up`. `created` replaces every `_created` value: the
    /// simulated start of the service, not the time the history was written.
    pub fn scrape(&mut self, exposition: &str, target: &Target, at: i64, created: i64) {
        self.up(target, at, 1);
        let mut family = None;
        // The family this scrape is the first of the window to show: its metadata is kept.
        let mut fresh = None;
        for line in exposition.lines() {
            if let Some(meta) = line.strip_prefix("# ") {
                let mut words = meta.splitn(3, ' ');
                let (Some(kind), Some(name)) = (words.next(), words.next()) else {
                    continue;
                };
                if kind == "EOF" {
                    break;
                }
                let (index, created) = self.family(name);
                if created {
                    fresh = Some(index);
                }
                // The first scrape of the window says it; the others say the same.
                if fresh == Some(index) && matches!(kind, "TYPE" | "HELP" | "UNIT") {
                    let metadata = &mut self.families[index].metadata;
                    metadata.push_str(line);
                    metadata.push('\n');
                }
                family = Some(index);
                continue;
            }
            let Some(index) = family else { continue };
            // The exemplar, if any, goes: what is left is `name{labels} value`.
            let sample = line.split_once(" # ").map_or(line, |(sample, _)| sample);
            let Some((series, value)) = sample.rsplit_once(' ') else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.strip_suffix('}').unwrap_or(labels)),
                None => (series, ""),
            };
            let value = if name.ends_with("_created") {
                created.to_string()
            } else {
                value.to_owned()
            };
            let child = child_of(labels);
            let out = self.child(index, child);
            out.push_str(name);
            out.push('{');
            if !labels.is_empty() {
                out.push_str(labels);
                out.push(',');
            }
            out.push_str(&target.labels);
            let _ = writeln!(out, "}} {value} {at}");
            self.samples += 1;
        }
    }

    /// Adds a scrape at `at` that failed (`up` 0, nothing else), as a scrape that timed out.
    pub fn failed_scrape(&mut self, target: &Target, at: i64) {
        self.up(target, at, 0);
    }

    fn up(&mut self, target: &Target, at: i64, value: u8) {
        let (index, created) = self.family("up");
        if created {
            self.families[index].metadata = "# HELP up Whether the last scrape of the target succeeded (added by Prometheus).\n# TYPE up gauge\n".to_owned();
        }
        let out = self.child(index, "");
        let _ = writeln!(out, "up{{{}}} {value} {at}", target.labels);
        self.samples += 1;
    }

    /// The family called `name`, and whether it was created now.
    fn family(&mut self, name: &str) -> (usize, bool) {
        if let Some(&index) = self.by_name.get(name) {
            return (index, false);
        }
        self.families.push(Family {
            metadata: String::new(),
            children: Vec::new(),
            by_labels: Default::default(),
        });
        self.by_name
            .insert(name.to_owned(), self.families.len() - 1);
        (self.families.len() - 1, true)
    }

    fn child(&mut self, family: usize, labels: &str) -> &mut String {
        let family = &mut self.families[family];
        let index = match family.by_labels.get(labels) {
            Some(&index) => index,
            None => {
                family.children.push((labels.to_owned(), String::new()));
                family
                    .by_labels
                    .insert(labels.to_owned(), family.children.len() - 1);
                family.children.len() - 1
            }
        };
        &mut family.children[index].1
    }

    /// Samples added so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Writes the window as one OpenMetrics file, `# EOF` last.
    pub fn write(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        for family in &self.families {
            out.write_all(family.metadata.as_bytes())?;
            for (_, lines) in &family.children {
                out.write_all(lines.as_bytes())?;
            }
        }
        out.write_all(b"# EOF\n")?;
        out.flush()
    }
}

/// The labels that name a child of a family: a sample's, without `le` or `quantile`, which
/// tell the samples of one child apart. The service writes those last.
fn child_of(labels: &str) -> &str {
    for key in [",le=\"", ",quantile=\""] {
        if let Some(at) = labels.find(key) {
            return &labels[..at];
        }
    }
    for key in ["le=\"", "quantile=\""] {
        if labels.starts_with(key) {
            return "";
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP req Requests.\n# TYPE req counter\nreq_total 3 # {trace_id=\"ab\"} 1.0 1.5\nreq_created 1.7e9\n\
        # HELP dur Durations.\n# TYPE dur histogram\n# UNIT dur seconds\n\
        dur_bucket{route=\"/\",le=\"0.1\"} 1\ndur_bucket{route=\"/\",le=\"+Inf\"} 2\ndur_count{route=\"/\"} 2\ndur_sum{route=\"/\"} 0.5\n\
        dur_bucket{route=\"/x\",le=\"0.1\"} 0\ndur_bucket{route=\"/x\",le=\"+Inf\"} 1\ndur_count{route=\"/x\"} 1\ndur_sum{route=\"/x\"} 0.2\n# EOF\n";

    fn written(window: &Window) -> String {
        let mut out = Vec::new();
        window.write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scrapes_are_regrouped_by_family_then_child_then_time() {
        let target = Target::new("flask_app", "history:8000");
        let mut window = Window::default();
        window.scrape(SCRAPE, &target, 100, 90);
        window.failed_scrape(&target, 115);
        window.scrape(SCRAPE, &target, 130, 90);
        let text = written(&window);
        let t = "job=\"flask_app\",instance=\"history:8000\"";
        let expected = format!(
            "# HELP up Whether the last scrape of the target succeeded (added by Prometheus).\n# TYPE up gauge\n\
             up{{{t}}} 1 100\nup{{{t}}} 0 115\nup{{{t}}} 1 130\n\
             # HELP req Requests.\n# TYPE req counter\n\
             req_total{{{t}}} 3 100\nreq_created{{{t}}} 90 100\nreq_total{{{t}}} 3 130\nreq_created{{{t}}} 90 130\n\
             # HELP dur Durations.\n# TYPE dur histogram\n# UNIT dur seconds\n\
             dur_bucket{{route=\"/\",le=\"0.1\",{t}}} 1 100\ndur_bucket{{route=\"/\",le=\"+Inf\",{t}}} 2 100\n\
             dur_count{{route=\"/\",{t}}} 2 100\ndur_sum{{route=\"/\",{t}}} 0.5 100\n\
             dur_bucket{{route=\"/\",le=\"0.1\",{t}}} 1 130\ndur_bucket{{route=\"/\",le=\"+Inf\",{t}}} 2 130\n\
             dur_count{{route=\"/\",{t}}} 2 130\ndur_sum{{route=\"/\",{t}}} 0.5 130\n\
             dur_bucket{{route=\"/x\",le=\"0.1\",{t}}} 0 100\ndur_bucket{{route=\"/x\",le=\"+Inf\",{t}}} 1 100\n\
             dur_count{{route=\"/x\",{t}}} 1 100\ndur_sum{{route=\"/x\",{t}}} 0.2 100\n\
             dur_bucket{{route=\"/x\",le=\"0.1\",{t}}} 0 130\ndur_bucket{{route=\"/x\",le=\"+Inf\",{t}}} 1 130\n\
             dur_count{{route=\"/x\",{t}}} 1 130\ndur_sum{{route=\"/x\",{t}}} 0.2 130\n# EOF\n"
        );
        assert_eq!(text, expected);
        assert_eq!(window.samples(), 3 + 4 + 16);
    }

    #[test]
    fn a_child_is_its_labels_without_le_or_quantile() {
        assert_eq!(child_of("route=\"/\",le=\"0.1\""), "route=\"/\"");
        assert_eq!(child_of("le=\"0.1\""), "");
        assert_eq!(child_of("quantile=\"0.5\""), "");
        assert_eq!(child_of("status=\"200\""), "status=\"200\"");
        assert_eq!(
            Target::new("a\"b", "c").labels,
            "job=\"a\\\"b\",instance=\"c\""
        );
    }
}
