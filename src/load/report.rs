//! What a load run counts, and how it tells: a progress line while it runs, a summary at the end
//! (text for people, JSON for machines).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::metrics::LoadMetrics;
use super::threshold::{Checked, Measure, Measured, Threshold};
use crate::trace::TraceId;

/// Latencies are recorded in microseconds, from 1 µs to an hour, to 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Why a request got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No connection: refused, unreachable, or the connect timed out.
    Connect,
    /// No answer within `--timeout`.
    Timeout,
    /// The connection broke while sending or receiving.
    Io,
}

impl ErrorKind {
    /// Every kind, in the order of the summary.
    pub(super) const ALL: [ErrorKind; 3] = [ErrorKind::Connect, ErrorKind::Timeout, ErrorKind::Io];

    pub(super) fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub sent: u64,
    pub status: BTreeMap<u16, u64>,
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl Counts {
    fn answered(&self) -> u64 {
        self.status.values().sum()
    }

    fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// How long a request took: from when it was due (corrected for coordinated omission: a request
/// that waited for a connection, or a generator that fell behind, shows in it), and from when
/// it was actually sent (what the request itself took, as a closed loop or a naive tool sees
/// it). In a closed loop the two are the same: each request is due when it is sent.
#[derive(Clone, Copy, Debug)]
pub struct Took {
    pub since_due: Duration,
    pub since_sent: Duration,
}

#[derive(Debug)]
struct Stats {
    all: Counts,
    paths: Vec<Counts>,
    /// From when each request was due.
    latency: Histogram<u64>,
    /// From when each request was sent.
    uncorrected: Histogram<u64>,
    /// Latencies since the last progress line.
    recent: Histogram<u64>,
    /// The slowest requests so far, slowest first, at most `keep`: path, status, latency in
    /// seconds, trace.
    slowest: Vec<(usize, Option<u16>, f64, Option<TraceId>)>,
    keep: usize,
}

/// One of the slowest requests of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Slow {
    pub path: String,
    /// Its answer's status; none when it timed out.
    pub status: Option<u16>,
    pub latency_seconds: f64,
    /// The trace it named in its `traceparent` (none with --no-trace): the service's
    /// exemplars and log lines name it too.
    pub trace_id: Option<String>,
}

/// The value of `h` (in microseconds) at quantile `q`, in seconds.
fn seconds_at(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1e6
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Stats {
    fn record_latency(&mut self, took: Took) {
        let micros = micros(took.since_due);
        self.latency.saturating_record(micros);
        self.recent.saturating_record(micros);
        self.uncorrected
            .saturating_record(self::micros(took.since_sent));
    }

    /// Keeps the request if it is among the `keep` slowest so far.
    fn record_slow(
        &mut self,
        path: usize,
        status: Option<u16>,
        latency: Duration,
        trace: Option<TraceId>,
    ) {
        let seconds = latency.as_secs_f64();
        let at = self.slowest.partition_point(|slow| slow.2 >= seconds);
        if at < self.keep {
            self.slowest.insert(at, (path, status, seconds, trace));
            self.slowest.truncate(self.keep);
        }
    }
}

/// Counts of a run, shared by its tasks.
#[derive(Debug)]
pub struct Recorder {
    stats: Mutex<Stats>,
    /// The same counts for Prometheus, with --metrics-addr.
    metrics: Option<Arc<LoadMetrics>>,
}

impl Recorder {
    /// Counts of requests to `paths` paths, kept in `metrics` too when given; the summary
    /// lists the `slowest` slowest.
    pub fn new(paths: usize, slowest: usize, metrics: Option<Arc<LoadMetrics>>) -> Self {
        Self {
            metrics,
            stats: Mutex::new(Stats {
                all: Counts::default(),
                paths: vec![Counts::default(); paths],
                latency: histogram(),
                uncorrected: histogram(),
                recent: histogram(),
                slowest: Vec::with_capacity(slowest + 1),
                keep: slowest,
            }),
        }
    }

    /// How many requests were sent so far.
    pub fn sent_so_far(&self) -> u64 {
        self.stats().all.sent
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn sent(&self, path: usize) {
        if let Some(metrics) = &self.metrics {
            metrics.sent(path);
        }
        let mut stats = self.stats();
        stats.all.sent += 1;
        stats.paths[path].sent += 1;
    }

    pub fn answered(&self, path: usize, status: u16, took: Took, trace: Option<TraceId>) {
        if let Some(metrics) = &self.metrics {
            metrics.answered(path, status, took);
        }
        let mut stats = self.stats();
        *stats.all.status.entry(status).or_default() += 1;
        *stats.paths[path].status.entry(status).or_default() += 1;
        stats.record_latency(took);
        stats.record_slow(path, Some(status), took.since_due, trace);
    }

    pub fn failed(&self, path: usize, kind: ErrorKind) {
        if let Some(metrics) = &self.metrics {
            metrics.failed(path, kind, None);
        }
        self.count_failed(path, kind);
    }

    fn count_failed(&self, path: usize, kind: ErrorKind) {
        let mut stats = self.stats();
        *stats.all.errors.entry(kind).or_default() += 1;
        *stats.paths[path].errors.entry(kind).or_default() += 1;
    }

    /// A request given up after `latency`: an error, and a latency too, or the slowest
    /// requests would vanish from the quantiles exactly when the service is overloaded.
    pub fn timed_out(&self, path: usize, took: Took, trace: Option<TraceId>) {
        if let Some(metrics) = &self.metrics {
            metrics.failed(path, ErrorKind::Timeout, Some(took));
        }
        self.count_failed(path, ErrorKind::Timeout);
        let mut stats = self.stats();
        stats.record_latency(took);
        stats.record_slow(path, None, took.since_due, trace);
    }

    /// The progress line: elapsed, sent, achieved rate, status codes, p99 since the last line.
    pub fn progress(&self, elapsed: Duration) -> String {
        let mut stats = self.stats();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut line = format!(
            "{:>5.0}s  sent {}  {:.1}/s ",
            elapsed.as_secs_f64(),
            stats.all.sent,
            stats.all.sent as f64 / secs
        );
        for (status, n) in &stats.all.status {
            let _ = write!(line, " {status}: {n}");
        }
        for (kind, n) in &stats.all.errors {
            let _ = write!(line, " {}: {n}", kind.name());
        }
        if !stats.recent.is_empty() {
            let p99 = Duration::from_micros(stats.recent.value_at_quantile(0.99));
            let _ = write!(line, "  p99 {}", seconds(p99));
        }
        stats.recent.reset();
        line
    }

    /// The summary of a run that sent for `sending`, and left `unsent` requests that were due,
    /// with its `thresholds` checked.
    pub fn summary(&self, run: Run, ended: Ended, thresholds: &[Threshold]) -> Summary {
        let stats = self.stats();
        let duration = ended.sending.as_secs_f64();
        let (answered, failed) = (stats.all.answered(), stats.all.failed());
        let rate = if duration > 0.0 {
            stats.all.sent as f64 / duration
        } else {
            0.0
        };
        let measured = RunMeasures {
            stats: &stats,
            rate,
        };
        Summary {
            sent: stats.all.sent,
            answered,
            failed,
            unanswered: stats.all.sent - answered - failed,
            unsent: ended.unsent,
            rate,
            duration_seconds: duration,
            status: stats.all.status.clone(),
            errors: stats.all.errors.clone(),
            latency_seconds: Latency::of(&stats.latency),
            uncorrected_latency_seconds: Latency::of(&stats.uncorrected),
            thresholds: thresholds.iter().map(|t| t.check(&measured)).collect(),
            paths: run
                .paths
                .iter()
                .cloned()
                .zip(stats.paths.iter().cloned())
                .collect(),
            slowest: stats
                .slowest
                .iter()
                .map(|&(path, status, latency_seconds, trace)| Slow {
                    path: run.paths[path].clone(),
                    status,
                    latency_seconds,
                    trace_id: trace.map(|t| t.to_string()),
                })
                .collect(),
            interrupted: ended.interrupted,
            run,
        }
    }
}

/// How the sending of a run ended.
#[derive(Debug)]
pub struct Ended {
    /// How long it sent.
    pub sending: Duration,
    /// Requests due before the end that were never sent (open loop).
    pub unsent: u64,
    /// Whether a signal ended it.
    pub interrupted: bool,
}

/// A run's measures, for its thresholds.
struct RunMeasures<'a> {
    stats: &'a Stats,
    rate: f64,
}

impl Measured for RunMeasures<'_> {
    fn value(&self, measure: Measure) -> Option<f64> {
        let latency = &self.stats.latency;
        let ended = self.stats.all.answered() + self.stats.all.failed();
        match measure {
            Measure::Errors => (ended > 0).then(|| {
                let server_errors: u64 =
                    self.stats.all.status.range(500..600).map(|(_, n)| n).sum();
                (self.stats.all.failed() + server_errors) as f64 / ended as f64
            }),
            Measure::Rate => Some(self.rate),
            _ if latency.is_empty() => None,
            Measure::Quantile(q) => Some(seconds_at(latency, q)),
            Measure::Max => Some(latency.max() as f64 / 1e6),
            Measure::Mean => Some(latency.mean() / 1e6),
        }
    }
}

/// How the run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub target: String,
    /// `open` (a rate) or `closed` (a concurrency).
    #[serde(rename = "loop")]
    pub kind: &'static str,
    /// The shape and its rate, for an open loop.
    pub shape: Option<String>,
    pub concurrency: Option<u32>,
    pub mix: String,
    #[serde(skip)]
    pub paths: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// The quantiles of `h` (in microseconds), in seconds; none when it is empty.
    fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            p50: seconds_at(h, 0.5),
            p90: seconds_at(h, 0.9),
            p99: seconds_at(h, 0.99),
            max: h.max() as f64 / 1e6,
            mean: h.mean() / 1e6,
        })
    }

    fn line(&self) -> String {
        format!(
            "p50 {:<8} p90 {:<8} p99 {:<8} max {}",
            seconds(Duration::from_secs_f64(self.p50)),
            seconds(Duration::from_secs_f64(self.p90)),
            seconds(Duration::from_secs_f64(self.p99)),
            seconds(Duration::from_secs_f64(self.max)),
        )
    }
}

/// The outcome of a run.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub run: Run,
    /// How long requests were sent for.
    pub duration_seconds: f64,
    pub sent: u64,
    /// Requests that got an HTTP answer, whatever its status.
    pub answered: u64,
    /// Requests that got none (see `errors`).
    pub failed: u64,
    /// Requests still in flight when a second signal ended the run.
    pub unanswered: u64,
    /// Requests of an open loop that were due before the end but never sent, because every
    /// connection was busy: the service was slower than the rate allows at `--connections`.
    pub unsent: u64,
    /// Requests sent per second.
    pub rate: f64,
    pub status: BTreeMap<u16, u64>,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Of the answered and the timed-out requests, from the moment each was due (corrected
    /// for coordinated omission; in a closed loop, when it was sent).
    pub latency_seconds: Option<Latency>,
    /// The same requests, from the moment each was actually sent: what the request itself
    /// took, without the wait for a connection or for a generator that fell behind.
    pub uncorrected_latency_seconds: Option<Latency>,
    /// The `--threshold`s, each with what the run measured and whether it passed.
    pub thresholds: Vec<Checked>,
    pub paths: BTreeMap<String, Counts>,
    /// The slowest requests, slowest first (`--slowest`), with their trace ids.
    pub slowest: Vec<Slow>,
    /// Ended by Ctrl-C or SIGTERM.
    pub interrupted: bool,
}

impl Summary {
    /// The thresholds that failed.
    pub fn failed_thresholds(&self) -> impl Iterator<Item = &Checked> {
        self.thresholds.iter().filter(|t| !t.passed)
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let run = &self.run;
        let how = match (&run.shape, run.concurrency) {
            (Some(shape), _) => format!("open loop, {shape}"),
            (None, Some(c)) => format!("closed loop, {c} at a time"),
            (None, None) => String::new(),
        };
        let _ = writeln!(out, "load: {} against {}, mix {}", how, run.target, run.mix);
        if self.interrupted {
            let _ = writeln!(out, "interrupted");
        }
        let _ = writeln!(out, "duration   {:.2} s", self.duration_seconds);
        let _ = writeln!(
            out,
            "requests   {} sent, {} answered, {} without answer",
            self.sent, self.answered, self.failed
        );
        if self.unanswered > 0 {
            let _ = writeln!(
                out,
                "           {} still in flight when stopped",
                self.unanswered
            );
        }
        if self.unsent > 0 {
            let _ = writeln!(
                out,
                "           {} due but never sent: every connection was busy (see --connections)",
                self.unsent
            );
        }
        let _ = writeln!(out, "rate       {:.2} requests/s", self.rate);
        let status: Vec<String> = self
            .status
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        let _ = writeln!(out, "status     {}", or_none(&status));
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, n)| format!("{}: {n}", k.name()))
            .collect();
        let _ = writeln!(out, "errors     {}", or_none(&errors));
        if let (Some(corrected), Some(uncorrected)) =
            (&self.latency_seconds, &self.uncorrected_latency_seconds)
        {
            let _ = writeln!(out, "latency    {}  from when due", corrected.line());
            let _ = writeln!(out, "           {}  from when sent", uncorrected.line());
        }
        for (path, counts) in &self.paths {
            let status: Vec<String> = counts
                .status
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect();
            let _ = writeln!(
                out,
                "  {path:<20} {} sent  {}",
                counts.sent,
                or_none(&status)
            );
        }
        for (i, slow) in self.slowest.iter().enumerate() {
            let label = if i == 0 { "slowest" } else { "" };
            let status = slow.status.map_or("timeout".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "{label:<10} {:>8}  {status:<7} {:<20} trace {}",
                seconds(Duration::from_secs_f64(slow.latency_seconds)),
                slow.path,
                slow.trace_id.as_deref().unwrap_or("none (--no-trace)")
            );
        }
        for (i, checked) in self.thresholds.iter().enumerate() {
            let label = if i == 0 { "thresholds" } else { "" };
            let verdict = if checked.passed { "pass" } else { "FAIL" };
            let _ = writeln!(
                out,
                "{label:<10} {verdict}  {:<16} {}",
                checked.threshold,
                checked.shown()
            );
        }
        out
    }
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join("  ")
    }
}

/// A duration as people read it: `850µs`, `12.3ms`, `4.87s`.
pub(super) fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2}s")
    } else if s >= 0.001 {
        format!("{:.1}ms", s * 1e3)
    } else {
        format!("{:.0}µs", s * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Run {
        Run {
            target: "http://127.0.0.1:5000".into(),
            kind: "open",
            shape: Some("constant 10/s".into()),
            concurrency: None,
            mix: "/=1,/simulate_error=1".into(),
            paths: vec!["/".into(), "/simulate_error".into()],
        }
    }

    /// A request due `due` ms and sent `sent` ms before its answer.
    fn took(due: u64, sent: u64) -> Took {
        Took {
            since_due: Duration::from_millis(due),
            since_sent: Duration::from_millis(sent),
        }
    }

    fn ended(secs: u64, unsent: u64) -> Ended {
        Ended {
            sending: Duration::from_secs(secs),
            unsent,
            interrupted: false,
        }
    }

    #[test]
    fn the_summary_counts_what_was_recorded() {
        let recorder = Recorder::new(2, 3, None);
        let traces: Vec<TraceId> = (0..=100).map(|_| TraceId::random()).collect();
        for i in 1..=100u64 {
            recorder.sent(0);
            recorder.answered(0, 200, took(i, i / 2), Some(traces[i as usize]));
        }
        recorder.sent(1);
        recorder.answered(1, 500, took(1, 1), None);
        recorder.sent(1);
        recorder.timed_out(1, took(10_000, 10_000), Some(traces[0]));
        recorder.sent(1);

        let s = recorder.summary(run(), ended(2, 7), &[]);

        assert_eq!((s.sent, s.answered, s.failed), (103, 101, 1));
        assert_eq!((s.unanswered, s.unsent), (1, 7));
        assert_eq!(s.rate, 51.5);
        assert_eq!(s.status, BTreeMap::from([(200, 100), (500, 1)]));
        assert_eq!(s.errors, BTreeMap::from([(ErrorKind::Timeout, 1)]));
        let latency = s.latency_seconds.as_ref().unwrap();
        assert!((latency.p50 - 0.050).abs() < 0.001, "{}", latency.p50);
        assert!((latency.p99 - 0.100).abs() < 0.001, "{}", latency.p99);
        // The timeout counts as the slowest latency.
        assert!((latency.max - 10.0).abs() < 0.01, "{}", latency.max);
        // From when each was sent: half as long.
        let uncorrected = s.uncorrected_latency_seconds.as_ref().unwrap();
        assert!(
            (uncorrected.p50 - 0.025).abs() < 0.001,
            "{}",
            uncorrected.p50
        );
        assert!((uncorrected.max - 10.0).abs() < 0.01, "{}", uncorrected.max);
        assert_eq!(s.paths["/simulate_error"].sent, 3);

        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(json["status"]["500"], 1);
        assert_eq!(json["errors"]["timeout"], 1);
        assert_eq!(json["run"]["loop"], "open");
        let text = s.to_text();
        assert!(
            text.contains("requests   103 sent, 101 answered, 1 without answer"),
            "{text}"
        );
        assert!(text.contains("1 still in flight when stopped"), "{text}");
        assert!(text.contains("7 due but never sent"), "{text}");
        assert!(text.contains("status     200: 100  500: 1"), "{text}");
        assert!(
            text.contains(
                "latency    p50 50.0ms   p90 91.0ms   p99 100.0ms  max 10.00s  from when due"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "           p50 25.0ms   p90 45.0ms   p99 50.0ms   max 10.00s  from when sent"
            ),
            "{text}"
        );
        let p50 = json["uncorrected_latency_seconds"]["p50"].as_f64().unwrap();
        assert!((p50 - 0.025).abs() < 0.0001, "{p50}");
        assert!(!text.contains("thresholds"), "{text}");

        // The three slowest: the timeout, then the 100 ms and 99 ms requests, with their traces.
        let slowest: Vec<_> = s
            .slowest
            .iter()
            .map(|slow| {
                (
                    slow.path.as_str(),
                    slow.status,
                    slow.latency_seconds,
                    slow.trace_id.clone(),
                )
            })
            .collect();
        assert_eq!(
            slowest,
            [
                ("/simulate_error", None, 10.0, Some(traces[0].to_string())),
                ("/", Some(200), 0.1, Some(traces[100].to_string())),
                ("/", Some(200), 0.099, Some(traces[99].to_string())),
            ]
        );
        assert_eq!(json["slowest"][1]["trace_id"], traces[100].to_string());
        assert_eq!(json["slowest"][0]["status"], serde_json::Value::Null);
        assert!(
            text.contains(&format!(
                "100.0ms  200     /                    trace {}",
                traces[100]
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "10.00s  timeout /simulate_error      trace {}",
                traces[0]
            )),
            "{text}"
        );
    }

    #[test]
    fn thresholds_are_checked_against_the_run() {
        let recorder = Recorder::new(1, 0, None);
        for i in 1..=100 {
            recorder.sent(0);
            if i <= 2 {
                recorder.failed(0, ErrorKind::Connect);
            } else {
                let status = if i <= 5 { 503 } else { 200 };
                // Due long before it was sent: the thresholds use the corrected latency.
                recorder.answered(0, status, took(i * 10, 1), None);
            }
        }
        let thresholds: Vec<Threshold> = [
            "p99<1s",
            "p50<=520ms",
            "errors<5%",
            "rate>=50",
            "max<2s",
            "mean<500ms",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let s = recorder.summary(run(), ended(2, 0), &thresholds);
        let verdicts: Vec<_> = s
            .thresholds
            .iter()
            .map(|c| (c.threshold.as_str(), c.passed, c.shown()))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("p99<1s", false, "1.00s".to_owned()),
                // 98 answered, from 30 ms to 1 s.
                ("p50<=520ms", true, "510.2ms".to_owned()),
                // 2 without answer and 3 answered 503, of 100.
                ("errors<5%", false, "5.00%".to_owned()),
                ("rate>=50", true, "50.00/s".to_owned()),
                ("max<2s", true, "1.00s".to_owned()),
                // (30 + 40 + ... + 1000 ms) / 98 = 515 ms.
                ("mean<500ms", false, "515.0ms".to_owned()),
            ]
        );
        assert_eq!(s.failed_thresholds().count(), 3);
        let text = s.to_text();
        assert!(
            text.contains("thresholds FAIL  p99<1s           1.00s\n"),
            "{text}"
        );
        assert!(
            text.contains("           pass  p50<=520ms       510.2ms\n"),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["thresholds"][2]["value"], 0.05);
        assert_eq!(json["thresholds"][2]["unit"], "ratio");
        assert_eq!(json["thresholds"][0]["passed"], false);

        // No answer at all: the latency thresholds have nothing to measure, and fail.
        let recorder = Recorder::new(1, 0, None);
        recorder.sent(0);
        recorder.failed(0, ErrorKind::Connect);
        let s = recorder.summary(run(), ended(1, 0), &thresholds[..1]);
        assert_eq!(s.thresholds[0].value, None);
        assert!(!s.thresholds[0].passed);
    }

    #[test]
    fn progress_reports_the_recent_p99_then_forgets_it() {
        let recorder = Recorder::new(1, 0, None);
        recorder.sent(0);
        recorder.answered(0, 200, took(250, 250), None);
        let line = recorder.progress(Duration::from_secs(2));
        // The histogram keeps three significant digits.
        assert!(
            line.starts_with("    2s  sent 1  0.5/s  200: 1  p99 250."),
            "{line}"
        );
        assert!(!recorder.progress(Duration::from_secs(3)).contains("p99"));
    }
}
