//! The series of the faults ([`crate::behaviour::faults`]): what each fault does shows here.
//!
//! The dependency's calls, the CPU burned and the memory leaked are counted as they happen.
//! Which faults are on, readiness and the cardinality fault's series follow the knobs, so they
//! are written at each scrape from the knobs of the moment. The hidden family is taken out of
//! the exposition last.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{help, register};

use super::TextFormat;
use super::protobuf::{self, MetricFamily};
use crate::behaviour::faults::dependency::{self, Outcome};
use crate::behaviour::faults::{Faults, NAMES};
use crate::trace::TraceId;

/// The dependency's latency buckets: the RED ones.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    dependency: &'static str,
    outcome: &'static str,
}

/// The counted side of the faults, registered with the rest.
#[derive(Debug)]
pub(crate) struct FaultMetrics {
    /// `dependency_requests_total{dependency, outcome}`, a child per outcome, made at start so
    /// that every series exists from the first scrape and a call looks nothing up.
    calls: [Counter; 3],
    /// `dependency_request_duration_seconds{dependency}`: lock-free, as the seed's histogram
    /// is (the crate's takes a mutex at each observation, on every request to `/`), with the
    /// call's request as the exemplar of its bucket.
    call_duration: super::seed::Histogram,
    /// `demo_service_cpu_burn_seconds_total`.
    cpu_burned: Counter<f64, AtomicU64>,
    /// `demo_service_leaked_bytes`.
    pub(crate) leaked_bytes: Gauge,
    /// `demo_service_counters_reset_timestamp_seconds`: when the reset_counters action last
    /// ran; 0: never.
    counters_reset: Gauge<f64, AtomicU64>,
}

impl FaultMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let calls = Family::<CallLabels, Counter>::default();
        let child = |outcome: Outcome| {
            calls
                .get_or_create(&CallLabels {
                    dependency: dependency::NAME,
                    outcome: outcome.label(),
                })
                .clone()
        };
        let children = [
            child(Outcome::Ok),
            child(Outcome::Error),
            child(Outcome::Down),
        ];
        register(
            registry,
            "dependency_requests",
            help!("Calls of / to its simulated dependency, by how they ended"),
            calls,
        );
        let cpu_burned = Counter::<f64, AtomicU64>::default();
        register(
            registry,
            "demo_service_cpu_burn_seconds",
            help!("CPU time spent by the cpu_burn fault"),
            cpu_burned.clone(),
        );
        let leaked_bytes = Gauge::default();
        register(
            registry,
            "demo_service_leaked_bytes",
            help!("Memory held by the memory_leak fault"),
            leaked_bytes.clone(),
        );
        let counters_reset = Gauge::<f64, AtomicU64>::default();
        register(
            registry,
            "demo_service_counters_reset_timestamp_seconds",
            help!("When the reset_counters action last set every counter back to zero; 0: never"),
            counters_reset.clone(),
        );
        Self {
            calls: children,
            call_duration: super::seed::Histogram::new(&BUCKETS),
            cpu_burned,
            leaked_bytes,
            counters_reset,
        }
    }

    pub(crate) fn observe_call(
        &self,
        outcome: Outcome,
        took: Duration,
        trace: TraceId,
        at: Instant,
    ) {
        let index = match outcome {
            Outcome::Ok => 0,
            Outcome::Error => 1,
            Outcome::Down => 2,
        };
        self.calls[index].inc();
        self.call_duration.observe(took, trace, at);
    }

    /// Writes `dependency_request_duration_seconds`, which the registry does not hold.
    pub(crate) fn encode(&self, out: &mut String, format: TextFormat) {
        self.call_duration.encode_labelled(
            out,
            format,
            "dependency_request_duration_seconds",
            CALL_DURATION_HELP,
            Some(("dependency", dependency::NAME)),
        );
    }

    /// As [`FaultMetrics::encode`], for the protobuf exposition.
    pub(crate) fn proto(&self) -> Vec<MetricFamily> {
        self.call_duration.proto_labelled(
            "dependency_request_duration_seconds",
            CALL_DURATION_HELP,
            Some(("dependency", dependency::NAME)),
        )
    }

    /// The counters and histograms back to zero; the moment noted.
    pub(crate) fn reset(&self) {
        for calls in &self.calls {
            calls.inner().store(0, Ordering::Relaxed);
        }
        self.call_duration.reset();
        self.cpu_burned.inner().store(0, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.counters_reset.set(now);
    }

    pub(crate) fn count_burned(&self, cpu: Duration) {
        self.cpu_burned.inc_by(cpu.as_secs_f64());
    }
}

const CALL_DURATION_HELP: &str = "How long the calls of / to its simulated dependency took";
const FAULT_ACTIVE_HELP: &str = "Whether each fault of the catalogue is on (1) or off (0).";
const READY_HELP: &str = "Whether the service takes requests: what /readyz says (1: 200, 0: 503).";
const SESSIONS_HELP: &str = "Open sessions per user: the cardinality fault, a series per user.";

/// Writes the series that follow the knobs: which faults are on, readiness, and the
/// cardinality fault's series. The same samples in both formats: they are gauges.
pub(crate) fn encode_state(out: &mut String, format: TextFormat, faults: &Faults, ready: bool) {
    // Writing to a String cannot fail.
    format.header(out, "demo_service_fault_active", FAULT_ACTIVE_HELP, "gauge");
    for (name, on) in NAMES.iter().zip(faults.active()) {
        let _ = writeln!(
            out,
            "demo_service_fault_active{{fault=\"{name}\"}} {}",
            u8::from(on)
        );
    }
    format.header(out, "demo_service_ready", READY_HELP, "gauge");
    let _ = writeln!(out, "demo_service_ready {}", u8::from(ready));
    if faults.cardinality > 0 {
        format.header(out, "demo_service_user_sessions", SESSIONS_HELP, "gauge");
        for user in 1..=faults.cardinality {
            let _ = writeln!(
                out,
                "demo_service_user_sessions{{user=\"user-{user:05}\"}} 1"
            );
        }
    }
}

/// As [`encode_state`], for the protobuf exposition.
pub(crate) fn proto_state(faults: &Faults, ready: bool) -> Vec<MetricFamily> {
    let active = NAMES
        .iter()
        .zip(faults.active())
        .map(|(name, on)| {
            protobuf::gauge(
                protobuf::labels([("fault", *name)]),
                f64::from(u8::from(on)),
            )
        })
        .collect();
    let mut families = vec![
        protobuf::family(
            "demo_service_fault_active",
            FAULT_ACTIVE_HELP,
            protobuf::Type::Gauge,
            active,
        ),
        protobuf::family(
            "demo_service_ready",
            READY_HELP,
            protobuf::Type::Gauge,
            vec![protobuf::gauge(vec![], f64::from(u8::from(ready)))],
        ),
    ];
    if faults.cardinality > 0 {
        let sessions = (1..=faults.cardinality)
            .map(|user| {
                let user = format!("user-{user:05}");
                protobuf::gauge(protobuf::labels([("user", user.as_str())]), 1.0)
            })
            .collect();
        families.push(protobuf::family(
            "demo_service_user_sessions",
            SESSIONS_HELP,
            protobuf::Type::Gauge,
            sessions,
        ));
    }
    families
}

/// Whether a sample or family name is one of `family`'s: the family's own, or it under any of
/// the suffixes a family's samples take.
fn belongs(name: &str, family: &str) -> bool {
    name.strip_prefix(family).is_some_and(|rest| {
        [
            "", "_total", "_created", "_count", "_sum", "_bucket", "_info",
        ]
        .contains(&rest)
    })
}

/// `exposition` without the lines of `family`: its comments, and its samples under any of the
/// suffixes a family's samples take.
pub(crate) fn hide(exposition: &str, family: &str) -> String {
    let mut out = String::with_capacity(exposition.len());
    for line in exposition.lines() {
        let name = match line.strip_prefix("# ") {
            Some(comment) => comment.split_whitespace().nth(1).unwrap_or(""),
            None => line.split(['{', ' ']).next().unwrap_or(""),
        };
        if !belongs(name, family) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The protobuf families without those of `family` (its `_total` and `_created` among them).
pub(crate) fn hide_proto(families: &mut Vec<MetricFamily>, family: &str) {
    families.retain(|f| !belongs(&f.name, family));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_family_goes_whole_and_alone() {
        let exposition = "# HELP http_requests Requests.\n# TYPE http_requests counter\n\
            http_requests_total{route=\"/\"} 3\nhttp_requests_created{route=\"/\"} 1.0\n\
            # HELP http_requests_in_flight In flight.\n# TYPE http_requests_in_flight gauge\n\
            http_requests_in_flight 1\n# EOF\n";
        assert_eq!(
            hide(exposition, "http_requests"),
            "# HELP http_requests_in_flight In flight.\n# TYPE http_requests_in_flight gauge\n\
             http_requests_in_flight 1\n# EOF\n"
        );
    }

    #[test]
    fn the_state_follows_the_knobs() {
        let mut out = String::new();
        let faults = Faults {
            not_ready: true,
            cardinality: 3,
            ..Faults::default()
        };
        encode_state(&mut out, TextFormat::OpenMetrics, &faults, false);
        assert!(out.contains("demo_service_fault_active{fault=\"not_ready\"} 1\n"));
        assert!(out.contains("demo_service_fault_active{fault=\"cpu_burn\"} 0\n"));
        assert!(out.contains("demo_service_ready 0\n"));
        assert_eq!(out.matches("demo_service_user_sessions{").count(), 3);
        assert!(out.contains("demo_service_user_sessions{user=\"user-00003\"} 1\n"));
    }
}
