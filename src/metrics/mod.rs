//! Every metric the service exposes, and the exposition that renders them.
//!
//! The seed's families come first, name for name (see [`seed`]); then the service's own: RED
//! metrics per route ([`red`]), the process ([`process`]) and its build. The values are atomics
//! updated on the request path (the exemplars, a cell per bucket taken with `try_lock`, never
//! wait); the registry itself is read-only once built.

mod exemplar;
mod exposition;
mod faults;
pub(crate) mod process;
pub mod red;
mod seed;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::trace::TraceId;

pub use exposition::Format;
pub(crate) use exposition::media_ranges;

/// Every family of the exposition, by its OpenMetrics name (a counter's without `_total`): what
/// the `hide_family` fault may hide. A test checks that each is there.
pub const FAMILIES: &[&str] = &[
    "request_processing_seconds",
    "request_count",
    "request_duration_seconds",
    "error_count",
    "response_code_count",
    "current_users",
    "http_requests",
    "http_request_duration_seconds",
    "http_requests_in_flight",
    "demo_service_build_info",
    "dependency_requests",
    "dependency_request_duration_seconds",
    "demo_service_cpu_burn_seconds",
    "demo_service_leaked_bytes",
    "demo_service_counters_reset_timestamp_seconds",
    "demo_service_fault_active",
    "demo_service_ready",
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// The seed's histogram buckets, in seconds.
const DURATION_BUCKETS: &[f64] = &[0.1, 0.3, 0.5, 0.7, 1.0, 2.0, 5.0, 10.0];

/// The `le` labels of the request-duration histogram `name` (the seed's or the RED one), `+Inf`
/// aside, as its OpenMetrics exposition writes them (`5.0`, not `5`): for whatever must name one
/// of its buckets, as a latency objective's threshold does.
pub fn duration_buckets(name: &str) -> Option<Vec<String>> {
    let bounds: &[f64] = match name {
        "request_duration_seconds" => DURATION_BUCKETS,
        "http_request_duration_seconds" => &red::BUCKETS,
        _ => return None,
    };
    Some(bounds.iter().map(|&bound| seed::float(bound)).collect())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The service's metrics. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    /// `request_processing_seconds`: the measured wait of `/`.
    pub(crate) request_processing: seed::Summary,
    /// `request_count_total`: requests to `/` and `/simulate_error`.
    pub(crate) request_count: seed::Counter,
    /// `request_duration_seconds`: the drawn processing time of `/`.
    pub(crate) request_duration: seed::Histogram,
    /// `error_count_total`: simulated errors.
    pub(crate) error_count: seed::Counter,
    /// `response_code_count_total{status_code}`: answers of `/` and `/simulate_error`.
    pub(crate) response_codes: seed::StatusCounter,
    /// `current_users`: the simulated number of active users.
    pub(crate) current_users: Gauge,
    pub(crate) red: Arc<red::Red>,
    /// What the faults do.
    pub(crate) faults: faults::FaultMetrics,
    /// Everything the prometheus-client crate encodes itself.
    registry: Registry,
    /// The length of the last exposition.
    last_size: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_process(process::ProcessCollector::new())
    }

    /// The metrics of a simulated service: its `process_*` families show what `process`
    /// is set to, not this process.
    pub(crate) fn simulated(process: process::Simulated) -> Self {
        Self::with_process(process::ProcessCollector::simulated(process))
    }

    fn with_process(process: process::ProcessCollector) -> Self {
        let mut registry = Registry::default();
        let current_users = Gauge::default();
        registry.register(
            "current_users",
            "Current number of active users",
            current_users.clone(),
        );
        let red = red::Red::register(&mut registry);
        let faults = faults::FaultMetrics::register(&mut registry);
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "demo_service_build_info",
            "The running build of demo-service; always 1",
            build_info,
        );
        registry.register_collector(Box::new(process));
        Self {
            request_processing: seed::Summary::default(),
            request_count: seed::Counter::default(),
            request_duration: seed::Histogram::new(DURATION_BUCKETS),
            error_count: seed::Counter::default(),
            response_codes: seed::StatusCounter::default(),
            current_users,
            red,
            faults,
            registry,
            last_size: AtomicUsize::new(0),
        }
    }

    /// Counts a request to `/` or `/simulate_error`; returns the count.
    pub fn count_request(&self) -> u64 {
        self.request_count.inc()
    }

    /// Counts an answer of `/` or `/simulate_error` by its status code.
    pub fn count_response(&self, status: u16) {
        self.response_codes.inc(status);
    }

    /// Counts a simulated error; returns the count.
    pub fn count_error(&self) -> u64 {
        self.error_count.inc()
    }

    /// Records the work of one request to `/`, begun at `started` and ended now: its drawn
    /// processing time and the time it really waited; the request's trace is the exemplar of
    /// the histogram's bucket. Reads the clock once, for both.
    pub fn observe_processing(&self, drawn: Duration, started: Instant, trace: TraceId) {
        let now = Instant::now();
        self.request_processing.observe(now - started);
        self.request_duration.observe(drawn, trace, now);
    }

    /// Records the work of one simulated request to `/`: `drawn`, as it was waited for.
    pub(crate) fn observe_simulated_processing(&self, drawn: Duration) {
        self.request_processing.observe(drawn);
        self.request_duration
            .observe(drawn, TraceId::SIMULATED, Instant::now());
    }

    /// The RED middleware, recording into these metrics.
    pub fn red_layer(&self) -> red::RedLayer {
        red::RedLayer(self.red.clone())
    }

    /// Records a call of `/` to its dependency.
    pub fn observe_dependency(
        &self,
        outcome: crate::behaviour::faults::dependency::Outcome,
        took: Duration,
        trace: TraceId,
    ) {
        self.faults.observe_call(outcome, took, trace);
    }

    /// Counts the CPU time that the cpu_burn fault spent.
    pub fn count_cpu_burned(&self, cpu: Duration) {
        self.faults.count_burned(cpu);
    }

    /// The reset_counters action: every counter, histogram and summary of the service back to
    /// zero, as after a restart but without one (the process's own, from the kernel, go on).
    pub fn reset_counters(&self) {
        self.request_processing.reset();
        self.request_count.reset();
        self.request_duration.reset();
        self.error_count.reset();
        self.response_codes.reset();
        self.red.reset();
        self.faults.reset();
    }

    /// Sets the memory the memory_leak fault holds.
    pub fn set_leaked(&self, bytes: u64) {
        self.faults
            .leaked_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Renders the whole exposition with every fault off and the service ready.
    pub fn encode(&self, format: Format) -> String {
        self.encode_with(format, &crate::behaviour::faults::Faults::default(), true)
    }

    /// Renders the whole exposition as the knobs' `faults` make it, with readiness as given.
    pub fn encode_with(
        &self,
        format: Format,
        faults: &crate::behaviour::faults::Faults,
        ready: bool,
    ) -> String {
        // Sized after the last exposition, so that the string grows once at most.
        let mut out = String::with_capacity(self.last_size.load(Ordering::Relaxed) + 1024);
        // The seed's help texts and order.
        self.request_processing.encode(
            &mut out,
            format,
            "request_processing_seconds",
            "Time spent processing request",
        );
        self.request_count.encode(
            &mut out,
            format,
            "request_count",
            "Total number of requests received",
        );
        self.request_duration.encode(
            &mut out,
            format,
            "request_duration_seconds",
            "Histogram of request durations in seconds",
        );
        self.error_count.encode(
            &mut out,
            format,
            "error_count",
            "Total number of errors encountered",
        );
        self.response_codes.encode(
            &mut out,
            format,
            "response_code_count",
            "Count of HTTP response status codes",
        );
        // Writing to a String cannot fail. The RED families are written here, with their
        // exemplars; in OpenMetrics before the `# EOF` that ends the exposition.
        use prometheus_client::encoding::{prometheus_text, text};
        match format {
            Format::Text => {
                let _ = prometheus_text::encode(&mut out, &self.registry);
                self.red.encode(&mut out, format);
                self.faults.encode(&mut out, format);
                faults::encode_state(&mut out, faults, ready);
            }
            Format::OpenMetrics => {
                let _ = text::encode_registry(&mut out, &self.registry);
                self.red.encode(&mut out, format);
                self.faults.encode(&mut out, format);
                faults::encode_state(&mut out, faults, ready);
                let _ = text::encode_eof(&mut out);
            }
        }
        self.last_size.store(out.len(), Ordering::Relaxed);
        match &faults.hide_family {
            Some(family) => faults::hide(&out, family),
            None => out,
        }
    }

    /// Requests counted by `request_count_total` so far.
    pub fn request_count(&self) -> u64 {
        self.request_count.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_that_can_be_hidden_is_there_and_can_be_hidden() {
        let metrics = Metrics::new();
        // The RED families have no lines before the first request.
        metrics.red.record_one();
        let faults = crate::behaviour::faults::Faults::default();
        let exposition = metrics.encode_with(Format::OpenMetrics, &faults, true);
        for family in FAMILIES {
            let typed = format!("# TYPE {family} ");
            assert!(
                exposition.contains(&typed),
                "no {typed:?} in:\n{exposition}"
            );
            let hidden = crate::behaviour::faults::Faults {
                hide_family: Some((*family).to_owned()),
                ..Default::default()
            };
            let without = metrics.encode_with(Format::OpenMetrics, &hidden, true);
            assert!(!without.contains(&typed), "{family} still there");
            assert!(without.ends_with("# EOF\n"));
        }
    }
}
