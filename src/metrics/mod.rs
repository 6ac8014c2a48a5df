//! Every metric the service exposes, and the exposition that renders them.
//!
//! The seed's families come first, name for name (see [`seed`]); then the service's own: RED
//! metrics per route ([`red`]), the process ([`process`]) and its build. The same families in
//! each of the three formats ([`Format`]); protobuf, the only one that can, adds a native
//! histogram of the seed's request durations ([`native`]). The values are atomics
//! updated on the request path (the exemplars, a cell per bucket taken with `try_lock`, never
//! wait); the registry itself is read-only once built.

mod exemplar;
mod exposition;
mod faults;
mod native;
pub(crate) mod process;
mod protobuf;
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

pub use exposition::{Format, TextFormat};
pub(crate) use exposition::{Help, help, register, register_with_unit};
pub(crate) use exposition::{media_ranges, quality, specificity};

/// Every family of the exposition, by its OpenMetrics name (a counter's without `_total`): what
/// the `hide_family` fault may hide. A test checks that each is there (the native histogram in
/// protobuf only).
pub const FAMILIES: &[&str] = &[
    "request_processing_seconds",
    "request_count",
    "request_duration_seconds",
    "request_duration_native_seconds",
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

/// The RED histogram's upper bounds, in seconds: for histograms to compare with it.
pub(crate) use red::BUCKETS as RED_BUCKETS;

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

/// The seed's five families, by name and help, in its order.
const PROCESSING: (&str, &str) = (
    "request_processing_seconds",
    "Time spent processing request",
);
const COUNT: (&str, &str) = ("request_count", "Total number of requests received");
const DURATION: (&str, &str) = (
    "request_duration_seconds",
    "Histogram of request durations in seconds",
);
const ERRORS: (&str, &str) = ("error_count", "Total number of errors encountered");
const CODES: (&str, &str) = ("response_code_count", "Count of HTTP response status codes");

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
    /// `request_duration_native_seconds`: the same, in a native histogram.
    native_duration: native::Native,
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
        register(
            &mut registry,
            "current_users",
            help!("Current number of active users"),
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
        register(
            &mut registry,
            "demo_service_build_info",
            help!("The running build of demo-service; always 1"),
            build_info,
        );
        registry.register_collector(Box::new(process));
        Self {
            request_processing: seed::Summary::default(),
            request_count: seed::Counter::default(),
            request_duration: seed::Histogram::new(DURATION_BUCKETS),
            native_duration: native::Native::default(),
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
        self.native_duration.observe(drawn);
    }

    /// Records the work of one simulated request to `/`: `drawn`, as it was waited for.
    pub(crate) fn observe_simulated_processing(&self, drawn: Duration) {
        self.request_processing.observe(drawn);
        self.request_duration
            .observe(drawn, TraceId::SIMULATED, Instant::now());
        self.native_duration.observe(drawn);
    }

    /// The RED middleware, recording into these metrics, each request labelled with the
    /// template of `templates` that its path matches; a handler's panic is answered with
    /// `on_panic`'s response.
    pub fn red_layer(&self, templates: red::Templates, on_panic: red::OnPanic) -> red::RedLayer {
        red::RedLayer::new(self.red.clone(), templates, on_panic)
    }

    /// Records a call of `/` to its dependency, which ended `at`.
    pub fn observe_dependency(
        &self,
        outcome: crate::behaviour::faults::dependency::Outcome,
        took: Duration,
        trace: TraceId,
        at: Instant,
    ) {
        self.faults.observe_call(outcome, took, trace, at);
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
        self.native_duration.reset();
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
    pub fn encode(&self, format: Format) -> Vec<u8> {
        self.encode_with(format, &crate::behaviour::faults::Faults::default(), true)
    }

    /// Renders the whole exposition as the knobs' `faults` make it, with readiness as given.
    pub fn encode_with(
        &self,
        format: Format,
        faults: &crate::behaviour::faults::Faults,
        ready: bool,
    ) -> Vec<u8> {
        match format.text() {
            Some(text) => self.text_with(text, faults, ready).into_bytes(),
            None => self.protobuf_with(faults, ready),
        }
    }

    /// Renders the exposition in a text format with every fault off and the service ready.
    pub fn text(&self, format: TextFormat) -> String {
        self.text_with(format, &crate::behaviour::faults::Faults::default(), true)
    }

    /// Renders the exposition in a text format as the knobs' `faults` make it: every family
    /// but the native histogram, which only protobuf carries.
    pub fn text_with(
        &self,
        format: TextFormat,
        faults: &crate::behaviour::faults::Faults,
        ready: bool,
    ) -> String {
        // Sized after the last exposition, so that the string grows once at most.
        let mut out = String::with_capacity(self.last_size.load(Ordering::Relaxed) + 1024);
        // The seed's help texts and order.
        let (name, help) = PROCESSING;
        self.request_processing.encode(&mut out, format, name, help);
        let (name, help) = COUNT;
        self.request_count.encode(&mut out, format, name, help);
        let (name, help) = DURATION;
        self.request_duration.encode(&mut out, format, name, help);
        let (name, help) = ERRORS;
        self.error_count.encode(&mut out, format, name, help);
        let (name, help) = CODES;
        self.response_codes.encode(&mut out, format, name, help);
        // Writing to a String cannot fail. The RED families are written here, with their
        // exemplars; in OpenMetrics before the `# EOF` that ends the exposition.
        use prometheus_client::encoding::{prometheus_text, text};
        match format {
            TextFormat::Prometheus => {
                let _ = prometheus_text::encode(&mut out, &self.registry);
                self.red.encode(&mut out, format);
                self.faults.encode(&mut out, format);
                faults::encode_state(&mut out, format, faults, ready);
            }
            TextFormat::OpenMetrics => {
                let _ = text::encode_registry(&mut out, &self.registry);
                self.red.encode(&mut out, format);
                self.faults.encode(&mut out, format);
                faults::encode_state(&mut out, format, faults, ready);
                let _ = text::encode_eof(&mut out);
            }
        }
        self.last_size.store(out.len(), Ordering::Relaxed);
        match &faults.hide_family {
            Some(family) => faults::hide(&out, family),
            None => out,
        }
    }

    /// Renders the exposition in protobuf as the knobs' `faults` make it: the families of the
    /// text formats, in their order, with the native histogram after the seed's classic one.
    fn protobuf_with(&self, faults: &crate::behaviour::faults::Faults, ready: bool) -> Vec<u8> {
        let mut families = Vec::with_capacity(64);
        let (name, help) = PROCESSING;
        families.extend(self.request_processing.proto(name, help));
        let (name, help) = COUNT;
        families.extend(self.request_count.proto(name, help));
        let (name, help) = DURATION;
        families.extend(self.request_duration.proto_labelled(name, help, None));
        families.extend(
            self.native_duration
                .proto(self.request_duration.exemplars()),
        );
        let (name, help) = ERRORS;
        families.extend(self.error_count.proto(name, help));
        let (name, help) = CODES;
        families.extend(self.response_codes.proto(name, help));
        // The crate's own families fail to encode only for a native-only histogram, which its
        // registry does not hold.
        families.extend(
            prometheus_client::encoding::prometheus_protobuf::encode(&self.registry)
                .unwrap_or_default(),
        );
        families.extend(self.red.proto());
        families.extend(self.faults.proto());
        families.extend(faults::proto_state(faults, ready));
        if let Some(family) = &faults.hide_family {
            faults::hide_proto(&mut families, family);
        }
        protobuf::write(&families)
    }

    /// Requests counted by `request_count_total` so far.
    pub fn request_count(&self) -> u64 {
        self.request_count.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A help text as written in `format`, unescaped; a panic for what the format does not
    /// allow.
    fn unescaped(help: &str, format: TextFormat) -> String {
        let mut out = String::new();
        let mut chars = help.chars();
        while let Some(c) = chars.next() {
            match (c, format) {
                ('\\', _) => match chars.next() {
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('"') if format == TextFormat::OpenMetrics => out.push('"'),
                    other => panic!("{help:?}: \\{other:?} is no escape of {format:?}"),
                },
                ('"', TextFormat::OpenMetrics) => panic!("{help:?}: a bare quote in OpenMetrics"),
                (c, _) => out.push(c),
            }
        }
        out
    }

    /// The families of a protobuf exposition, read back with the `.proto`'s own types.
    pub(crate) fn decoded(body: &[u8]) -> Vec<protobuf::MetricFamily> {
        use prost::Message;
        let mut rest = body;
        let mut families = Vec::new();
        while !rest.is_empty() {
            families.push(protobuf::MetricFamily::decode_length_delimited(&mut rest).unwrap());
        }
        families
    }

    #[test]
    fn protobuf_has_every_family_of_the_text_format_name_for_name() {
        let metrics = Metrics::new();
        metrics.red.record_one();
        metrics.count_request();
        metrics.count_response(200);
        metrics.observe_processing(
            Duration::from_millis(300),
            Instant::now(),
            TraceId::random(),
        );
        let text = metrics.text(TextFormat::Prometheus);
        let families = decoded(&metrics.encode(Format::Protobuf));
        // The 0.0.4 text format names families as protobuf does: a counter by its `_total`,
        // `_created` a gauge family of its own.
        let helps: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .map(|l| l.split_once(' ').unwrap())
            .collect();
        let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
        let mut expected: Vec<&str> = helps.iter().map(|(name, _)| *name).collect();
        // The native histogram, after the seed's classic one and its `_created`.
        let at = expected
            .iter()
            .position(|n| *n == "request_duration_seconds_created")
            .unwrap();
        expected.insert(at + 1, native::NAME);
        assert_eq!(names, expected);
        // Every help text, registered or written here, survives both text formats: read back
        // as each format escapes it, it is the text itself (which protobuf carries as it is).
        for (name, help) in helps {
            let family = families.iter().find(|f| f.name == name).unwrap();
            assert_eq!(
                unescaped(help, TextFormat::Prometheus),
                family.help,
                "{name}"
            );
        }
        let openmetrics = metrics.text(TextFormat::OpenMetrics);
        for line in openmetrics
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
        {
            let (name, help) = line.split_once(' ').unwrap();
            let family = families
                .iter()
                .find(|f| f.name == name || f.name == format!("{name}_total"))
                .unwrap_or_else(|| panic!("{name} not in protobuf"));
            assert_eq!(
                unescaped(help, TextFormat::OpenMetrics),
                family.help,
                "{name}"
            );
        }
        // Every sample of the text format has its value in protobuf: the seed's counter.
        let count = families
            .iter()
            .find(|f| f.name == "request_count_total")
            .unwrap();
        assert_eq!(count.metric[0].counter.as_ref().unwrap().value, 1.0);
        assert_eq!(count.r#type, protobuf::Type::Counter as i32);
    }

    #[test]
    fn a_bucket_has_one_le_in_both_text_formats() {
        // Prometheus 2 would store le="1" and le="1.0" as two series of one bucket.
        let metrics = Metrics::new();
        metrics.red.record_one();
        metrics.observe_processing(
            Duration::from_millis(300),
            Instant::now(),
            TraceId::random(),
        );
        let buckets = |format| {
            metrics
                .text(format)
                .lines()
                .filter(|l| l.contains("_bucket{"))
                .map(|l| l.split_once('}').unwrap().0.to_owned())
                .collect::<Vec<_>>()
        };
        let text = buckets(TextFormat::Prometheus);
        assert!(text.iter().any(|l| l.contains("le=\"1.0\"")), "{text:?}");
        assert_eq!(text, buckets(TextFormat::OpenMetrics));
    }

    #[test]
    fn every_family_that_can_be_hidden_is_there_and_can_be_hidden() {
        let metrics = Metrics::new();
        // The RED families have no lines before the first request.
        metrics.red.record_one();
        let faults = crate::behaviour::faults::Faults::default();
        let exposition = metrics.text_with(TextFormat::OpenMetrics, &faults, true);
        let families = decoded(&metrics.encode_with(Format::Protobuf, &faults, true));
        let in_proto = |families: &[protobuf::MetricFamily], family: &str| {
            families
                .iter()
                .any(|f| f.name == family || f.name == format!("{family}_total"))
        };
        for family in FAMILIES {
            let typed = format!("# TYPE {family} ");
            // The native histogram only in protobuf.
            assert_eq!(
                exposition.contains(&typed),
                *family != native::NAME,
                "{typed:?} in:\n{exposition}"
            );
            assert!(in_proto(&families, family), "{family} not in protobuf");
            let hidden = crate::behaviour::faults::Faults {
                hide_family: Some((*family).to_owned()),
                ..Default::default()
            };
            let without = metrics.text_with(TextFormat::OpenMetrics, &hidden, true);
            assert!(!without.contains(&typed), "{family} still there");
            assert!(without.ends_with("# EOF\n"));
            let without = decoded(&metrics.encode_with(Format::Protobuf, &hidden, true));
            assert!(!in_proto(&without, family), "{family} still in protobuf");
            let created = format!("{family}_created");
            assert!(!without.iter().any(|f| f.name == created), "{created}");
            // And nothing else went.
            let gone = families
                .iter()
                .filter(|f| !without.iter().any(|w| w.name == f.name));
            assert!(gone.count() <= 2, "{family} took others with it");
        }
    }
}
