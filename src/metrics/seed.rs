//! The seed's own families, encoded exactly as its Python client (prometheus_client 0.11) does.
//!
//! Three things that queries and dashboards written for the seed rely on are out of reach of the
//! prometheus-client crate: a `_created` sample beside every counter, histogram and summary; the
//! summary type itself; and `le="1.0"` (not `le="1"`) in the 0.0.4 text format. So the seed's five
//! families that need them are kept and encoded here, in both text formats and in protobuf
//! (where `_created` is a gauge family of its own, as in the 0.0.4 text format), and nothing else
//! is.
//!
//! Every value is a lock-free atomic; durations are summed in whole nanoseconds, so sums are
//! exact and an update is one `fetch_add`. The histogram's exemplars are cells that a request
//! takes with `try_lock` or leaves ([`super::exemplar`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::TextFormat;
use super::exemplar::{self, Cell, Clock, Exemplar};
use super::protobuf::{self, MetricFamily};
use crate::snapshot::{Local, Snapshot};
use crate::trace::TraceId;

/// Seconds since the Unix epoch, as a `_created` sample carries them.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// When a family (or a child) was created, as `_created` says: at start, and again when its
/// counters are reset.
#[derive(Debug)]
pub(crate) struct Created(AtomicU64);

impl Default for Created {
    fn default() -> Self {
        Self(AtomicU64::new(now().to_bits()))
    }
}

impl Created {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn renew(&self) {
        self.0.store(now().to_bits(), Ordering::Relaxed);
    }
}

fn seconds(nanos: u64) -> f64 {
    Duration::from_nanos(nanos).as_secs_f64()
}

/// A counter without labels.
#[derive(Debug)]
pub(crate) struct Counter {
    value: AtomicU64,
    created: Created,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            value: AtomicU64::new(0),
            created: Created::default(),
        }
    }
}

impl Counter {
    /// Adds one and returns the new value.
    pub(crate) fn inc(&self) -> u64 {
        self.value.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Back to zero, as after a restart: created now.
    pub(crate) fn reset(&self) {
        self.value.store(0, Ordering::Relaxed);
        self.created.renew();
    }

    pub(crate) fn encode(&self, out: &mut String, format: TextFormat, name: &str, help: &str) {
        let child = Child {
            label: None,
            samples: vec![("_total", None, Value::Int(self.get()), None)],
            created: self.created.get(),
        };
        encode_family(out, format, name, help, Kind::Counter, &[child]);
    }

    pub(crate) fn proto(&self, name: &str, help: &str) -> Vec<MetricFamily> {
        let created = self.created.get();
        let metric = protobuf::counter(vec![], self.get() as f64, None, Some(created));
        proto_families(name, help, Kind::Counter, vec![(metric, created)])
    }
}

/// A counter with one label, `status_code`, whose children appear when first counted (as the
/// seed's do). Status codes are three digits, so the family stays small whatever clients send.
/// A request reads the map of children without a lock (see [`Snapshot::with_entry`]).
#[derive(Debug)]
pub(crate) struct StatusCounter {
    children: Snapshot<Children>,
}

type Children = HashMap<u16, Arc<Counter>, rustc_hash::FxBuildHasher>;

impl Default for StatusCounter {
    fn default() -> Self {
        Self {
            children: Snapshot::new(Children::default()),
        }
    }
}

impl StatusCounter {
    pub(crate) fn inc(&self, status: u16) {
        thread_local! {
            /// The children as this thread read them last.
            static CHILDREN: Local<Children> = const { std::cell::RefCell::new(None) };
        }
        self.children
            .with_entry(&CHILDREN, &status, Counter::default, |child| {
                child.inc();
            });
    }

    /// No child, as after a restart: each comes back with the first answer of its code.
    pub(crate) fn reset(&self) {
        self.children.store(Arc::new(Children::default()));
    }

    #[cfg(test)]
    pub(crate) fn get(&self, status: u16) -> u64 {
        self.children.load().get(&status).map_or(0, |c| c.get())
    }

    /// The children, in the order of their codes.
    fn sorted(&self) -> Vec<(u16, Arc<Counter>)> {
        let mut children: Vec<_> = self
            .children
            .load()
            .iter()
            .map(|(status, counter)| (*status, Arc::clone(counter)))
            .collect();
        children.sort_unstable_by_key(|(status, _)| *status);
        children
    }

    pub(crate) fn encode(&self, out: &mut String, format: TextFormat, name: &str, help: &str) {
        let children: Vec<Child> = self
            .sorted()
            .into_iter()
            .map(|(status, counter)| Child {
                label: Some(("status_code", status.to_string())),
                samples: vec![("_total", None, Value::Int(counter.get()), None)],
                created: counter.created.get(),
            })
            .collect();
        encode_family(out, format, name, help, Kind::Counter, &children);
    }

    pub(crate) fn proto(&self, name: &str, help: &str) -> Vec<MetricFamily> {
        let children = self
            .sorted()
            .into_iter()
            .map(|(status, counter)| {
                let created = counter.created.get();
                let label = protobuf::labels([("status_code", status.to_string().as_str())]);
                let metric = protobuf::counter(label, counter.get() as f64, None, Some(created));
                (metric, created)
            })
            .collect();
        proto_families(name, help, Kind::Counter, children)
    }
}

/// A histogram of durations with fixed upper bounds; `+Inf` is implied.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// The `le` label of each bucket, `+Inf` last: written once, not at every scrape.
    le: Box<[String]>,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    /// The latest request of each bucket, for OpenMetrics' exemplars.
    exemplars: Box<[Cell]>,
    /// The count is the buckets' sum, read at the scrape: one atomic add per observation
    /// fewer, and `_count` always equals the `+Inf` bucket.
    sum_nanos: AtomicU64,
    created: Created,
}

impl Histogram {
    /// `bounds` must be sorted ascending and finite.
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Self {
            bounds,
            le: bounds
                .iter()
                .map(|b| float(*b))
                .chain(["+Inf".to_owned()])
                .collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            exemplars: (0..=bounds.len()).map(|_| Cell::default()).collect(),
            sum_nanos: AtomicU64::new(0),
            created: Created::default(),
        }
    }

    /// Records `value`, measured at `at`, of the request of `trace`.
    pub(crate) fn observe(&self, value: Duration, trace: TraceId, at: Instant) {
        let secs = value.as_secs_f64();
        let index = self.bounds.partition_point(|&bound| bound < secs);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.exemplars[index].record(trace, secs, at);
        self.sum_nanos
            .fetch_add(value.as_nanos() as u64, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Every bucket and the sum back to zero, no exemplar: as after a restart.
    pub(crate) fn reset(&self) {
        for (bucket, exemplar) in self.buckets.iter().zip(self.exemplars.iter()) {
            bucket.store(0, Ordering::Relaxed);
            exemplar.clear();
        }
        self.sum_nanos.store(0, Ordering::Relaxed);
        self.created.renew();
    }

    pub(crate) fn encode(&self, out: &mut String, format: TextFormat, name: &str, help: &str) {
        self.encode_labelled(out, format, name, help, None);
    }

    /// As [`Histogram::encode`], with one label of a constant value on every sample
    /// (`dependency="database"`).
    pub(crate) fn encode_labelled(
        &self,
        out: &mut String,
        format: TextFormat,
        name: &str,
        help: &str,
        label: Option<(&'static str, &str)>,
    ) {
        let mut samples = Vec::with_capacity(self.buckets.len() + 2);
        let clock = Clock::anchored();
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = self.le[i].as_str();
            let exemplar = match format {
                TextFormat::OpenMetrics => self.exemplars[i].get().map(|e| (e, clock)),
                TextFormat::Prometheus => None,
            };
            samples.push((
                "_bucket",
                Some(("le", le)),
                Value::Int(cumulative),
                exemplar,
            ));
        }
        // `_count` is the sum of the buckets read above, so that the exposition is consistent
        // even while requests are being observed.
        samples.push(("_count", None, Value::Int(cumulative), None));
        samples.push((
            "_sum",
            None,
            Value::Float(seconds(self.sum_nanos.load(Ordering::Relaxed))),
            None,
        ));
        let child = Child {
            label: label.map(|(name, value)| (name, value.to_owned())),
            samples,
            created: self.created.get(),
        };
        encode_family(out, format, name, help, Kind::Histogram, &[child]);
    }

    /// As [`Histogram::encode_labelled`], for the protobuf exposition.
    pub(crate) fn proto_labelled(
        &self,
        name: &str,
        help: &str,
        label: Option<(&'static str, &str)>,
    ) -> Vec<MetricFamily> {
        let clock = Clock::anchored();
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        let mut total = 0;
        for bucket in &self.buckets {
            total += bucket.load(Ordering::Relaxed);
            cumulative.push(total);
        }
        let created = self.created.get();
        let metric = protobuf::Classic {
            bounds: self.bounds,
            cumulative: &cumulative,
            exemplars: exemplar::proto_each(&self.exemplars, &clock),
            sum: seconds(self.sum_nanos.load(Ordering::Relaxed)),
            created: Some(created),
        }
        .metric(protobuf::labels(label));
        proto_families(name, help, Kind::Histogram, vec![(metric, created)])
    }

    /// The latest request of each bucket that has one.
    pub(crate) fn exemplars(&self) -> impl Iterator<Item = Exemplar> + '_ {
        self.exemplars.iter().filter_map(Cell::get)
    }
}

/// A summary of durations without quantiles: `_count` and `_sum`, as the Python client's.
#[derive(Debug)]
pub(crate) struct Summary {
    count: AtomicU64,
    sum_nanos: AtomicU64,
    created: Created,
}

impl Default for Summary {
    fn default() -> Self {
        Self {
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            created: Created::default(),
        }
    }
}

impl Summary {
    pub(crate) fn observe(&self, value: Duration) {
        self.sum_nanos
            .fetch_add(value.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed))
    }

    /// The count and the sum back to zero, as after a restart.
    pub(crate) fn reset(&self) {
        self.sum_nanos.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.created.renew();
    }

    pub(crate) fn encode(&self, out: &mut String, format: TextFormat, name: &str, help: &str) {
        let child = Child {
            label: None,
            samples: vec![
                ("_count", None, Value::Int(self.count()), None),
                ("_sum", None, Value::Float(self.sum().as_secs_f64()), None),
            ],
            created: self.created.get(),
        };
        encode_family(out, format, name, help, Kind::Summary, &[child]);
    }

    pub(crate) fn proto(&self, name: &str, help: &str) -> Vec<MetricFamily> {
        let created = self.created.get();
        let metric = protobuf::Metric {
            summary: Some(protobuf::Summary {
                sample_count: self.count(),
                sample_sum: self.sum().as_secs_f64(),
                quantile: vec![],
                start_timestamp: Some(protobuf::timestamp(created)),
            }),
            ..Default::default()
        };
        proto_families(name, help, Kind::Summary, vec![(metric, created)])
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Histogram,
    Summary,
}

enum Value {
    Int(u64),
    Float(f64),
}

/// A sample: the suffix of its name, an extra label (`le`), its value, its exemplar (with the
/// clock that dates it).
type Sample<'a> = (
    &'static str,
    Option<(&'static str, &'a str)>,
    Value,
    Option<(Exemplar, Clock)>,
);

/// One labelled child of a family (or the only one, unlabelled).
struct Child<'a> {
    label: Option<(&'static str, String)>,
    samples: Vec<Sample<'a>>,
    created: f64,
}

impl Child<'_> {
    fn label(&self) -> Option<(&str, &str)> {
        self.label
            .as_ref()
            .map(|(key, value)| (*key, value.as_str()))
    }

    fn write_samples(&self, out: &mut String, name: &str) {
        for (suffix, extra, value, exemplar) in &self.samples {
            sample(out, name, suffix, self.label(), *extra, value);
            if let Some((exemplar, clock)) = exemplar {
                out.pop(); // the line's end, which the exemplar goes before
                exemplar::push(out, exemplar, clock);
                out.push('\n');
            }
        }
    }

    fn write_created(&self, out: &mut String, name: &str) {
        let created = Value::Float(self.created);
        sample(out, name, "_created", self.label(), None, &created);
    }
}

/// Writes one family. OpenMetrics keeps `_created` inside the family, after each child's
/// samples; the 0.0.4 text format has no such sample, so the Python client writes it as a
/// gauge family of its own, `<name>_created`, right after, with the same help.
fn encode_family(
    out: &mut String,
    format: TextFormat,
    name: &str,
    help: &str,
    kind: Kind,
    children: &[Child],
) {
    let kind_name = match kind {
        Kind::Counter => "counter",
        Kind::Histogram => "histogram",
        Kind::Summary => "summary",
    };
    match format {
        TextFormat::OpenMetrics => {
            format.header(out, name, help, kind_name);
            for child in children {
                child.write_samples(out, name);
                child.write_created(out, name);
            }
        }
        TextFormat::Prometheus => {
            // The text format names a counter family by its sample, `<name>_total`.
            let family = match kind {
                Kind::Counter => format!("{name}_total"),
                Kind::Histogram | Kind::Summary => name.to_owned(),
            };
            format.header(out, &family, help, kind_name);
            for child in children {
                child.write_samples(out, name);
            }
            // The Python client writes this family only once it has samples.
            if !children.is_empty() {
                format.header(out, &format!("{name}_created"), help, "gauge");
            }
            for child in children {
                child.write_created(out, name);
            }
        }
    }
}

/// A family for the protobuf exposition, and its `_created` gauges after it, as the 0.0.4 text
/// format has them: protobuf carries when a child was created as a start timestamp, of which
/// Prometheus makes no series, and queries written for the seed may read `<name>_created`.
/// A counter family is named by its sample, `<name>_total`, as in the 0.0.4 text format.
fn proto_families(
    name: &str,
    help: &str,
    kind: Kind,
    children: Vec<(protobuf::Metric, f64)>,
) -> Vec<MetricFamily> {
    let (family, kind) = match kind {
        Kind::Counter => (format!("{name}_total"), protobuf::Type::Counter),
        Kind::Histogram => (name.to_owned(), protobuf::Type::Histogram),
        Kind::Summary => (name.to_owned(), protobuf::Type::Summary),
    };
    let created: Vec<_> = children
        .iter()
        .map(|(metric, created)| protobuf::gauge(metric.label.clone(), *created))
        .collect();
    let metrics = children.into_iter().map(|(metric, _)| metric).collect();
    let mut families = vec![protobuf::family(&family, help, kind, metrics)];
    // As in the text format, the Python client's `_created` family comes with its first child.
    if !created.is_empty() {
        families.push(protobuf::family(
            &format!("{name}_created"),
            help,
            protobuf::Type::Gauge,
            created,
        ));
    }
    families
}

/// Label values here are digits and float literals, which need no escaping.
fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    label: Option<(&str, &str)>,
    extra: Option<(&str, &str)>,
    value: &Value,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut labels = label.into_iter().chain(extra);
    if let Some((key, value)) = labels.next() {
        out.push('{');
        push_label(out, key, value);
        for (key, value) in labels {
            out.push(',');
            push_label(out, key, value);
        }
        out.push('}');
    }
    out.push(' ');
    match value {
        Value::Int(v) => out.push_str(itoa::Buffer::new().format(*v)),
        Value::Float(v) => push_float(out, *v),
    }
    out.push('\n');
}

fn push_label(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str("=\"");
    out.push_str(value);
    out.push('"');
}

/// Writes a float as [`float`] formats it, without allocating.
fn push_float(out: &mut String, v: f64) {
    if v.is_finite() {
        out.push_str(ryu::Buffer::new().format_finite(v));
    } else {
        out.push_str(&float(v));
    }
}

/// Formats a float as Python's `repr` does for the values here (`1.0`, `0.1`, `4.89`), which is
/// also what the `le` label values of the seed's buckets look like.
pub(crate) fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.1, 1.0, 10.0];

    fn encoded(format: TextFormat, f: impl Fn(&mut String, TextFormat)) -> String {
        let mut out = String::new();
        f(&mut out, format);
        out
    }

    /// Replaces every `_created` value with `T`, which is the clock's business, not ours.
    fn without_time(s: &str) -> String {
        s.lines()
            .map(|l| match l.split_once("_created") {
                Some((head, rest)) if !l.starts_with('#') => {
                    let labels = rest.rsplit_once(' ').map_or("", |(labels, _)| labels);
                    format!("{head}_created{labels} T")
                }
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn counter_is_encoded_as_the_python_client_does() {
        let c = Counter::default();
        c.inc();
        assert_eq!(c.inc(), 2);
        let text = encoded(TextFormat::Prometheus, |o, f| c.encode(o, f, "req", "Help"));
        assert_eq!(
            without_time(&text),
            "# HELP req_total Help\n# TYPE req_total counter\nreq_total 2\n\
             # HELP req_created Help\n# TYPE req_created gauge\nreq_created T"
        );
        let om = encoded(TextFormat::OpenMetrics, |o, f| {
            c.encode(o, f, "req", "Help")
        });
        assert_eq!(
            without_time(&om),
            "# HELP req Help\n# TYPE req counter\nreq_total 2\nreq_created T"
        );
    }

    #[test]
    fn status_counter_adds_a_child_per_code_seen() {
        let c = StatusCounter::default();
        let empty = encoded(TextFormat::Prometheus, |o, f| c.encode(o, f, "codes", "H"));
        assert_eq!(empty, "# HELP codes_total H\n# TYPE codes_total counter\n");
        c.inc(500);
        c.inc(200);
        c.inc(200);
        assert_eq!((c.get(200), c.get(500), c.get(404)), (2, 1, 0));
        let om = encoded(TextFormat::OpenMetrics, |o, f| c.encode(o, f, "codes", "H"));
        assert_eq!(
            without_time(&om),
            "# HELP codes H\n# TYPE codes counter\n\
             codes_total{status_code=\"200\"} 2\ncodes_created{status_code=\"200\"} T\n\
             codes_total{status_code=\"500\"} 1\ncodes_created{status_code=\"500\"} T"
        );
        // In the order of their codes, whatever order they came in (and the map keeps).
        for code in [503, 101, 302, 404, 201, 429, 599, 100] {
            c.inc(code);
        }
        let text = encoded(TextFormat::Prometheus, |o, f| c.encode(o, f, "codes", "H"));
        let codes: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("codes_total"))
            .filter_map(|line| line.split('"').nth(1))
            .collect();
        assert_eq!(
            codes,
            [
                "100", "101", "200", "201", "302", "404", "429", "500", "503", "599"
            ]
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::new(BOUNDS);
        for ms in [50, 100, 101, 1000, 20_000] {
            h.observe(Duration::from_millis(ms), TraceId::random(), Instant::now());
        }
        assert_eq!(h.count(), 5);
        let text = encoded(TextFormat::Prometheus, |o, f| h.encode(o, f, "dur", "H"));
        assert_eq!(
            without_time(&text),
            "# HELP dur H\n# TYPE dur histogram\n\
             dur_bucket{le=\"0.1\"} 2\ndur_bucket{le=\"1.0\"} 4\ndur_bucket{le=\"10.0\"} 4\n\
             dur_bucket{le=\"+Inf\"} 5\ndur_count 5\ndur_sum 21.251\n\
             # HELP dur_created H\n# TYPE dur_created gauge\ndur_created T"
        );
    }

    #[test]
    fn summary_sums_exactly() {
        let s = Summary::default();
        for _ in 0..10 {
            s.observe(Duration::from_millis(100));
        }
        assert_eq!((s.count(), s.sum()), (10, Duration::from_secs(1)));
        let om = encoded(TextFormat::OpenMetrics, |o, f| s.encode(o, f, "proc", "H"));
        assert_eq!(
            without_time(&om),
            "# HELP proc H\n# TYPE proc summary\nproc_count 10\nproc_sum 1.0\nproc_created T"
        );
    }

    #[test]
    fn floats_look_like_python_reprs() {
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
    }
}
