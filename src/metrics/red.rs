//! RED metrics (rate, errors, duration) for every route of the app listener, from one middleware.
//!
//! Requests are labelled by the route *template* that matched (`/`, `/simulate_error`), never by
//! the raw path, and every unmatched path shares the label `route="unmatched"`; methods outside
//! the standard ones share `method="OTHER"`. No client can add a series, however many paths or
//! methods it makes up.
//!
//! Each request also gets its trace id here ([`crate::trace`]): from its `traceparent`, or a
//! fresh one. It is the current trace while the request's handler runs, for its log lines and
//! exemplars ([`TraceId::current`]), and goes into the exemplars of the request's bucket and
//! counter (OpenMetrics only).

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{help, register};

use super::TextFormat;
use super::exemplar::{self, Cell};
use super::protobuf::{self, MetricFamily};
use crate::snapshot::{Local, Snapshot};
use crate::trace::{TRACEPARENT, TraceId};

/// The status recorded for a request whose client went away before it was answered
/// (nginx's convention).
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Upper bounds of the duration histogram: Prometheus' defaults, which span the service's
/// 0–5 s simulated work as well as sub-millisecond answers.
pub(crate) const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// The route templates of the app listener, which label its requests: `/status/{codes}` for a
/// request to `/status/503`, and [`UNMATCHED`] for a path that matches none of them.
///
/// The middleware matches each request's path itself, once, in front of the router, rather than
/// reading axum's `MatchedPath` from inside it: that would take `route_layer`, which wraps every
/// route in a boxed service of its own that axum clones for each request.
///
/// Most templates are plain paths (`/`, `/simulate_error`), and most requests ask for one of
/// them: those are compared first, before the router's tree is walked (its lookup, and the
/// parameters it collects and drops, cost about 110 instructions more on `/`). A path equal to
/// a plain template is the one the tree would give it too: matchit prefers a static route to a
/// parameter.
#[derive(Debug, Default)]
pub struct Templates {
    router: matchit::Router<&'static str>,
    /// The templates without parameters, in the order they were added.
    plain: Vec<&'static str>,
}

impl Templates {
    /// Adds `template`, in axum's (and matchit's) syntax. Panics on a template that conflicts
    /// with one added before, as axum's router does: the route list is the program's.
    pub fn add(&mut self, template: &'static str) {
        if let Err(e) = self.router.insert(template, template) {
            panic!("route {template}: {e}");
        }
        if !template.contains(['{', '}']) {
            self.plain.push(template);
        }
    }

    /// The template that `path` matches, or [`UNMATCHED`].
    fn of(&self, path: &str) -> &'static str {
        if let Some(plain) = self.plain.iter().find(|plain| **plain == path) {
            return plain;
        }
        self.router
            .at(path)
            .map_or(UNMATCHED, |matched| *matched.value)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct Labels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

/// The standard methods keep their names; anything else is `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// The series of one label set: a histogram whose buckets also count the requests, and the
/// latest request of each bucket and of the whole, as exemplars. The counts are atomics.
#[derive(Debug)]
struct Series {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    /// The latest request of each bucket: the histogram's exemplars; the latest of them all
    /// is the counter's.
    exemplars: [Cell; BUCKETS.len() + 1],
}

impl Series {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            exemplars: std::array::from_fn(|_| Cell::default()),
        }
    }

    fn observe(&self, elapsed: Duration, trace: TraceId, at: Instant) {
        let seconds = elapsed.as_secs_f64();
        let index = BUCKETS.partition_point(|&bound| bound < seconds);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.exemplars[index].record(trace, seconds, at);
    }

    /// The latest request of all: the counter's exemplar.
    fn latest(&self) -> Option<exemplar::Exemplar> {
        self.exemplars
            .iter()
            .filter_map(Cell::get)
            .max_by_key(|e| e.at)
    }

    /// The count of each bucket (not cumulative), and their total.
    fn counts(&self) -> ([u64; BUCKETS.len() + 1], u64) {
        let counts = std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        (counts, counts.iter().sum())
    }
}

/// The `le` label of each bucket, `+Inf` last: in both text formats as OpenMetrics writes it,
/// with a decimal point (`1.0`), as the seed's histogram does. Prometheus 2 stores `le="1"` and
/// `le="1.0"` as two series, so a scrape that changed formats would split the bucket in two.
fn le(bucket: usize) -> String {
    match BUCKETS.get(bucket) {
        None => "+Inf".to_owned(),
        Some(bound) => super::seed::float(*bound),
    }
}

type SeriesMap = HashMap<Labels, Arc<Series>, rustc_hash::FxBuildHasher>;

/// The RED metrics of the app listener.
///
/// The crate's `Family<_, Counter>` plus `Family<_, Histogram>` cost two hash lookups and a
/// write lock per request (its histogram locks to observe); measured at 240 ns of middleware
/// per request, over the 200 ns budget of all of a request's metrics. Here one lookup, in a map
/// that requests only read (a new label set copies it, which happens a few dozen times in the
/// life of the service), finds one series, and the request count is the histogram's count.
/// The two families are written here ([`Red::encode`]), with their exemplars, which the
/// crate's encoder takes only from its own metric types.
#[derive(Debug)]
pub struct Red {
    series: Snapshot<SeriesMap>,
    in_flight: Gauge,
}

impl Red {
    pub(crate) fn register(registry: &mut Registry) -> Arc<Self> {
        let red = Arc::new(Self {
            series: Snapshot::new(SeriesMap::default()),
            in_flight: Gauge::default(),
        });
        register(
            registry,
            "http_requests_in_flight",
            help!("HTTP requests being served now"),
            red.in_flight.clone(),
        );
        red
    }

    pub(crate) fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// No series, as after a restart: each comes back with its first request. (The requests
    /// in flight stay counted in flight: they are.)
    pub(crate) fn reset(&self) {
        self.series.store(Arc::new(SeriesMap::default()));
    }

    /// Records a request that ended at `at`, `elapsed` after it began.
    fn observe(&self, labels: Labels, elapsed: Duration, trace: TraceId, at: Instant) {
        thread_local! {
            /// The map as this thread read it last.
            static SERIES: Local<SeriesMap> = const { std::cell::RefCell::new(None) };
        }
        self.series
            .with_entry(&SERIES, &labels, Series::new, |series| {
                series.observe(elapsed, trace, at);
            });
    }

    /// Records a GET of `route` (a template of the app listener's) that a simulation answered
    /// with `status` after `elapsed`, as the middleware records a real one.
    pub(crate) fn observe_simulated(&self, route: &'static str, status: u16, elapsed: Duration) {
        let labels = Labels {
            method: "GET",
            route,
            status,
        };
        self.observe(labels, elapsed, TraceId::SIMULATED, Instant::now());
    }

    /// Sets the requests in flight, as a simulation reckons them.
    pub(crate) fn set_in_flight(&self, requests: i64) {
        self.in_flight.set(requests);
    }

    /// Records one unmatched GET, for the tests of the exposition.
    #[cfg(test)]
    pub(crate) fn record_one(&self) {
        let labels = Labels {
            method: "GET",
            route: UNMATCHED,
            status: 404,
        };
        self.observe(
            labels,
            Duration::from_millis(1),
            TraceId::random(),
            Instant::now(),
        );
    }

    #[cfg(test)]
    pub(crate) fn requests(&self, method: &'static str, route: &'static str, status: u16) -> u64 {
        let labels = Labels {
            method,
            route,
            status,
        };
        self.series.load().get(&labels).map_or(0, |s| s.counts().1)
    }

    /// Writes `http_requests_total` and `http_request_duration_seconds`, nothing before the
    /// first request; in OpenMetrics, with their exemplars.
    pub(crate) fn encode(&self, out: &mut String, format: TextFormat) {
        let map = self.series.load();
        if map.is_empty() {
            return;
        }
        let series = sorted(&map);
        let exemplars = format == TextFormat::OpenMetrics;
        let clock = exemplar::Clock::anchored();
        let le: Vec<String> = (0..=BUCKETS.len()).map(le).collect();

        // OpenMetrics names a counter family without its `_total`; the text format with it.
        let family = match format {
            TextFormat::OpenMetrics => "http_requests",
            TextFormat::Prometheus => "http_requests_total",
        };
        format.header(out, family, REQUESTS_HELP, "counter");
        for (labels, s, _, total) in &series {
            let exemplar = if exemplars { s.latest() } else { None };
            sample(
                out,
                "http_requests_total",
                labels,
                None,
                *total,
                exemplar.as_ref().map(|e| (e, &clock)),
            );
        }

        let family = "http_request_duration_seconds";
        format.header(out, family, DURATION_HELP, "histogram");
        if exemplars {
            let _ = writeln!(out, "# UNIT {family} seconds");
        }
        for (labels, s, counts, total) in &series {
            let mut cumulative = 0;
            for (i, count) in counts.iter().enumerate() {
                cumulative += count;
                let exemplar = s.exemplars[i].get().filter(|_| exemplars);
                let le = Some(le[i].as_str());
                sample(
                    out,
                    "http_request_duration_seconds_bucket",
                    labels,
                    le,
                    cumulative,
                    exemplar.as_ref().map(|e| (e, &clock)),
                );
            }
            // `_count` is the sum of the buckets read above, so that the two agree while
            // requests are being observed.
            sample(
                out,
                "http_request_duration_seconds_count",
                labels,
                None,
                *total,
                None,
            );
            let sum = Duration::from_nanos(s.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{}}} {}",
                LabelList(labels),
                ryu::Buffer::new().format(sum)
            );
        }
    }

    /// The two families for the protobuf exposition, with their exemplars; none before the
    /// first request.
    pub(crate) fn proto(&self) -> Vec<MetricFamily> {
        let map = self.series.load();
        if map.is_empty() {
            return Vec::new();
        }
        let clock = exemplar::Clock::anchored();
        let mut requests = Vec::with_capacity(map.len());
        let mut durations = Vec::with_capacity(map.len());
        for (labels, s, counts, total) in sorted(&map) {
            let label = || {
                protobuf::labels([
                    ("method", labels.method),
                    ("route", labels.route),
                    ("status", itoa::Buffer::new().format(labels.status)),
                ])
            };
            let latest = s.latest().map(|e| exemplar::proto(&e, &clock));
            requests.push(protobuf::counter(label(), total as f64, latest, None));
            let mut cumulative = counts;
            for i in 1..cumulative.len() {
                cumulative[i] += cumulative[i - 1];
            }
            durations.push(
                protobuf::Classic {
                    bounds: &BUCKETS,
                    cumulative: &cumulative,
                    exemplars: exemplar::proto_each(&s.exemplars, &clock),
                    sum: Duration::from_nanos(s.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
                    created: None,
                }
                .metric(label()),
            );
        }
        let mut durations = protobuf::family(
            "http_request_duration_seconds",
            DURATION_HELP,
            protobuf::Type::Histogram,
            durations,
        );
        durations.unit = "seconds".to_owned();
        vec![
            protobuf::family(
                "http_requests_total",
                REQUESTS_HELP,
                protobuf::Type::Counter,
                requests,
            ),
            durations,
        ]
    }
}

/// The help of `http_requests_total`.
const REQUESTS_HELP: &str = "HTTP requests answered, by method, route template and status code.";
/// The help of `http_request_duration_seconds`.
const DURATION_HELP: &str = "Time from a request's arrival to its response's headers, by method, \
                             route template and status code.";

/// Every series of `map` with its bucket counts (not cumulative) and their total, in the order
/// of the exposition: by route, method and status.
fn sorted(map: &SeriesMap) -> Vec<(&Labels, &Arc<Series>, [u64; BUCKETS.len() + 1], u64)> {
    let mut series: Vec<_> = map
        .iter()
        .map(|(labels, s)| {
            let (counts, total) = s.counts();
            (labels, s, counts, total)
        })
        .collect();
    series.sort_by(|a, b| {
        (a.0.route, a.0.method, a.0.status).cmp(&(b.0.route, b.0.method, b.0.status))
    });
    series
}

/// `method="GET",route="/",status="200"`. Route templates and method names need no escaping.
struct LabelList<'a>(&'a Labels);

impl std::fmt::Display for LabelList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Labels {
            method,
            route,
            status,
        } = self.0;
        write!(
            f,
            "method=\"{method}\",route=\"{}\",status=\"{status}\"",
            route
        )
    }
}

/// One sample line of the two families: `name{labels[,le]} value[ exemplar]`.
fn sample(
    out: &mut String,
    name: &str,
    labels: &Labels,
    le: Option<&str>,
    value: u64,
    exemplar: Option<(&exemplar::Exemplar, &exemplar::Clock)>,
) {
    let _ = write!(out, "{name}{{{}", LabelList(labels));
    if let Some(le) = le {
        let _ = write!(out, ",le=\"{le}\"");
    }
    let _ = write!(out, "}} {value}");
    if let Some((exemplar, clock)) = exemplar {
        exemplar::push(out, exemplar, clock);
    }
    out.push('\n');
}

/// One request in flight: counted in the gauge while it lives, and recorded when it ends, also
/// when it ends because its client went away and the handler's future was dropped.
struct InFlight {
    red: Arc<Red>,
    started: Instant,
    method: &'static str,
    route: Option<&'static str>,
    trace: TraceId,
}

impl InFlight {
    fn start(red: Arc<Red>, method: &'static str, route: &'static str, trace: TraceId) -> Self {
        red.in_flight.inc();
        Self {
            red,
            started: Instant::now(),
            method,
            route: Some(route),
            trace,
        }
    }

    fn finish(mut self, status: StatusCode) {
        self.record(status.as_u16());
    }

    fn record(&mut self, status: u16) {
        let Some(route) = self.route.take() else {
            return;
        };
        let labels = Labels {
            method: self.method,
            route,
            status,
        };
        let now = Instant::now();
        self.red
            .observe(labels, now - self.started, self.trace, now);
        self.red.in_flight.dec();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Dropped unfinished: the client went away, or a panic is unwinding that the future
        // did not catch (one in a service's `call`).
        let status = if std::thread::panicking() {
            StatusCode::INTERNAL_SERVER_ERROR.as_u16()
        } else {
            CLIENT_CLOSED_REQUEST
        };
        self.record(status);
    }
}

/// What a request whose handler panicked is answered with; it gets the panic's payload.
pub type OnPanic = fn(Box<dyn Any + Send + 'static>) -> Response;

/// The middleware, in front of the app listener's whole router: it labels each request with the
/// template its path matches ([`Templates`]), and answers a request whose handler panicked with
/// [`OnPanic`]'s response, recorded as that response's status. A layer of its own rather than
/// `axum::middleware::from_fn`, which boxes a future and clones a service for every request,
/// and rather than tower-http's `CatchPanic`, which boxes every response's body.
#[derive(Clone, Debug)]
pub struct RedLayer {
    red: Arc<Red>,
    templates: Arc<Templates>,
    on_panic: OnPanic,
}

impl RedLayer {
    pub(crate) fn new(red: Arc<Red>, templates: Templates, on_panic: OnPanic) -> Self {
        Self {
            red,
            templates: Arc::new(templates),
            on_panic,
        }
    }
}

impl<S> tower_layer::Layer<S> for RedLayer {
    type Service = RedService<S>;

    fn layer(&self, inner: S) -> RedService<S> {
        RedService {
            layer: self.clone(),
            inner,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RedService<S> {
    layer: RedLayer,
    inner: S,
}

impl<S, B> tower_service::Service<Request<B>> for RedService<S>
where
    S: tower_service::Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RedFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = self.layer.templates.of(request.uri().path());
        let trace = trace_of(&request);
        let in_flight = InFlight::start(
            self.layer.red.clone(),
            method_label(request.method()),
            route,
            trace,
        );
        RedFuture {
            inner: self.inner.call(request),
            in_flight: Some(in_flight),
            trace,
            on_panic: self.layer.on_panic,
        }
    }
}

/// The request's trace: the one its `traceparent` names, when it sends exactly one that is
/// valid; else a new one (a malformed header never fails the request).
///
/// The headers are scanned rather than looked up: a request has a handful, and comparing
/// their names costs less than hashing this one for the map.
fn trace_of<B>(request: &Request<B>) -> TraceId {
    let mut values = request
        .headers()
        .iter()
        .filter_map(|(name, value)| (name == TRACEPARENT).then_some(value));
    match (values.next(), values.next()) {
        (Some(value), None) => TraceId::from_traceparent(value.as_bytes()),
        _ => None,
    }
    .unwrap_or_else(TraceId::random)
}

pin_project_lite::pin_project! {
    /// The inner service's future, and the request it records when it ends (or is dropped).
    pub struct RedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
        trace: TraceId,
        on_panic: OnPanic,
    }
}

impl<F, E> std::future::Future for RedFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        // The handler runs in the request's trace. A panic ends the request here (its future
        // is not polled again).
        let polled = this
            .trace
            .in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))));
        let result = match polled {
            Ok(std::task::Poll::Pending) => return std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(result)) => result,
            Err(panic) => Ok((this.on_panic)(panic)),
        };
        if let (Ok(response), Some(in_flight)) = (&result, this.in_flight.take()) {
            in_flight.finish(response.status());
        }
        std::task::Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "OTHER");
    }

    #[test]
    fn a_dropped_request_is_recorded_as_499_and_leaves_the_gauge() {
        let red = Red::register(&mut Registry::default());
        let in_flight = InFlight::start(red.clone(), "GET", UNMATCHED, TraceId::random());
        assert_eq!(red.in_flight(), 1);
        drop(in_flight);
        assert_eq!(red.in_flight(), 0);
        assert_eq!(red.requests("GET", UNMATCHED, 499), 1);
    }

    #[test]
    fn a_request_whose_handler_panics_is_recorded_as_500() {
        let red = Red::register(&mut Registry::default());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _in_flight = InFlight::start(red.clone(), "GET", UNMATCHED, TraceId::random());
            panic!("handler bug");
        }));
        assert!(panicked.is_err());
        assert_eq!(red.in_flight(), 0);
        assert_eq!(red.requests("GET", UNMATCHED, 500), 1);
        assert_eq!(red.requests("GET", UNMATCHED, 499), 0);
    }

    #[test]
    fn requests_are_labelled_by_the_template_their_path_matches() {
        let mut templates = Templates::default();
        for template in ["/", "/simulate_error", "/status/{codes}"] {
            templates.add(template);
        }
        assert_eq!(templates.of("/"), "/");
        assert_eq!(templates.of("/simulate_error"), "/simulate_error");
        assert_eq!(templates.of("/status/503"), "/status/{codes}");
        assert_eq!(templates.of("/status/200:1,500:1"), "/status/{codes}");
        for unmatched in ["/nope", "/simulate_error/", "/status", "/status/1/2", ""] {
            assert_eq!(templates.of(unmatched), UNMATCHED, "{unmatched:?}");
        }
    }

    #[test]
    fn a_plain_template_is_found_as_the_tree_would_find_it() {
        let mut templates = Templates::default();
        let all = [
            "/status/{codes}",
            "/status/ok",
            "/",
            "/files/{*rest}",
            "/{{braces}}",
            "/simulate_error",
        ];
        for template in all {
            templates.add(template);
        }
        assert_eq!(templates.plain, ["/status/ok", "/", "/simulate_error"]);
        let paths = [
            "/",
            "/status/ok",
            "/status/okay",
            "/status/503",
            "/files/a/b",
            "/{braces}",
            "/{{braces}}",
            "/simulate_error",
            "/simulate_error/",
            "/SIMULATE_ERROR",
            "",
            "//",
            "/status/ok/",
        ];
        for path in paths {
            let tree = templates.router.at(path).map_or(UNMATCHED, |m| *m.value);
            assert_eq!(templates.of(path), tree, "{path:?}");
        }
        assert_eq!(templates.of("/status/ok"), "/status/ok");
        assert_eq!(templates.of("/status/okay"), "/status/{codes}");
        assert_eq!(templates.of("/{braces}"), "/{{braces}}");
    }

    #[tokio::test]
    async fn a_handler_that_panics_gets_the_panic_answer_recorded_with_its_status() {
        use tower::{Layer, ServiceExt};
        let red = Red::register(&mut Registry::default());
        let mut templates = Templates::default();
        templates.add("/boom");
        let on_panic: OnPanic = |_| {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        };
        let panics = tower::service_fn(|_: Request| async {
            if always() {
                panic!("handler bug");
            }
            Ok::<_, std::convert::Infallible>(Response::new(axum::body::Body::empty()))
        });
        let service = RedLayer::new(red.clone(), templates, on_panic).layer(panics);

        let request = Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(red.in_flight(), 0);
        assert_eq!(red.requests("GET", "/boom", 500), 1);
        assert_eq!(red.requests("GET", "/boom", 499), 0);
    }

    /// True, in a way the compiler does not see through (so the handler's `Ok` is reachable).
    fn always() -> bool {
        std::hint::black_box(true)
    }

    #[test]
    fn a_finished_request_is_recorded_once() {
        let red = Red::register(&mut Registry::default());
        InFlight::start(red.clone(), "GET", UNMATCHED, TraceId::random())
            .finish(StatusCode::NOT_FOUND);
        assert_eq!(red.in_flight(), 0);
        assert_eq!(red.requests("GET", UNMATCHED, 404), 1);
        assert_eq!(red.requests("GET", UNMATCHED, 499), 0);
    }
}
