//! RED metrics (rate, errors, duration) for every route of the app listener, from one middleware.
//!
//! Requests are labelled by the route *template* that matched (`/`, `/simulate_error`), never by
//! the raw path, and every unmatched path shares the label `route="unmatched"`; methods outside
//! the standard ones share `method="OTHER"`. No client can add a series, however many paths or
//! methods it makes up.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// The status recorded for a request whose client went away before it was answered
/// (nginx's convention).
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Upper bounds of the duration histogram: Prometheus' defaults, which span the service's
/// 0–5 s simulated work as well as sub-millisecond answers.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route a request matched, or none.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    Matched(MatchedPath),
    Unmatched,
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Route::Matched(path) => path.as_str(),
            Route::Unmatched => "unmatched",
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Labels {
    method: &'static str,
    route: Route,
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

/// The series of one label set: a histogram whose buckets also count the requests. Updated
/// with atomics only.
#[derive(Debug)]
struct Series {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Series {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = BUCKETS.partition_point(|&bound| bound < seconds);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The buckets with their upper bounds, as the encoder takes them, and their total.
    fn buckets(&self) -> (Vec<(f64, u64)>, u64) {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let bounds = BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY));
        (
            bounds.zip(counts.iter().copied()).collect(),
            counts.iter().sum(),
        )
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
/// The exposition is still written by the crate's encoder (see [`RedCollector`]).
#[derive(Debug)]
pub struct Red {
    series: ArcSwap<SeriesMap>,
    in_flight: Gauge,
}

impl Red {
    pub(crate) fn register(registry: &mut Registry) -> Arc<Self> {
        let red = Arc::new(Self {
            series: ArcSwap::from_pointee(SeriesMap::default()),
            in_flight: Gauge::default(),
        });
        registry.register_collector(Box::new(RedCollector(red.clone())));
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served now",
            red.in_flight.clone(),
        );
        red
    }

    pub(crate) fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    fn observe(&self, labels: Labels, elapsed: Duration) {
        if let Some(series) = self.series.load().get(&labels) {
            series.observe(elapsed);
            return;
        }
        // A label set seen for the first time: copy the map with it added, unless another
        // request added it meanwhile.
        let mut added = None;
        self.series.rcu(|map| {
            let mut map = SeriesMap::clone(map);
            added = Some(
                map.entry(labels.clone())
                    .or_insert_with(|| Arc::new(Series::new()))
                    .clone(),
            );
            map
        });
        added.expect("rcu runs its closure").observe(elapsed);
    }

    #[cfg(test)]
    pub(crate) fn requests(&self, method: &'static str, route: Route, status: u16) -> u64 {
        let labels = Labels {
            method,
            route,
            status,
        };
        self.series.load().get(&labels).map_or(0, |s| s.buckets().1)
    }
}

/// Writes `http_requests_total` and `http_request_duration_seconds` from [`Red`]'s series, with
/// the crate's encoder, as its `Family` types would (nothing before the first request).
#[derive(Debug)]
struct RedCollector(Arc<Red>);

impl Collector for RedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let map = self.0.series.load();
        if map.is_empty() {
            return Ok(());
        }
        let mut series: Vec<_> = map
            .iter()
            .map(|(labels, s)| {
                let (buckets, count) = s.buckets();
                let sum = Duration::from_nanos(s.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
                (labels, buckets, count, sum)
            })
            .collect();
        series.sort_by(|a, b| {
            (a.0.route.as_str(), a.0.method, a.0.status).cmp(&(
                b.0.route.as_str(),
                b.0.method,
                b.0.status,
            ))
        });

        let help = "HTTP requests answered, by method, route template and status code.";
        let mut requests =
            encoder.encode_descriptor("http_requests", help, None, MetricType::Counter)?;
        for (labels, _, count, _) in &series {
            requests
                .encode_family(*labels)?
                .encode_counter::<NoLabelSet, _, u64>(count, None)?;
        }
        let help = "Time from a request's arrival to its response's headers, by method, route \
                    template and status code.";
        let mut durations = encoder.encode_descriptor(
            "http_request_duration",
            help,
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (labels, buckets, count, sum) in &series {
            durations
                .encode_family(*labels)?
                .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        }
        Ok(())
    }
}

/// One request in flight: counted in the gauge while it lives, and recorded when it ends, also
/// when it ends because its client went away and the handler's future was dropped.
struct InFlight {
    red: Arc<Red>,
    started: Instant,
    method: &'static str,
    route: Option<Route>,
}

impl InFlight {
    fn start(red: Arc<Red>, method: &'static str, route: Route) -> Self {
        red.in_flight.inc();
        Self {
            red,
            started: Instant::now(),
            method,
            route: Some(route),
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
        self.red.observe(labels, self.started.elapsed());
        self.red.in_flight.dec();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Dropped unfinished: the handler panicked (the client gets a 500 from the panic
        // layer outside), or the client went away.
        let status = if std::thread::panicking() {
            StatusCode::INTERNAL_SERVER_ERROR.as_u16()
        } else {
            CLIENT_CLOSED_REQUEST
        };
        self.record(status);
    }
}

/// The middleware: `route_layer` it onto the routes, `layer` it onto the fallback. A layer of
/// its own rather than `axum::middleware::from_fn`, which boxes a future and clones a service
/// for every request: on the hot path that was most of the middleware's cost.
#[derive(Clone, Debug)]
pub struct RedLayer(pub(crate) Arc<Red>);

impl<S> tower_layer::Layer<S> for RedLayer {
    type Service = RedService<S>;

    fn layer(&self, inner: S) -> RedService<S> {
        RedService {
            red: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RedService<S> {
    red: Arc<Red>,
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
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .cloned()
            .map_or(Route::Unmatched, Route::Matched);
        let in_flight = InFlight::start(self.red.clone(), method_label(request.method()), route);
        RedFuture {
            inner: self.inner.call(request),
            in_flight: Some(in_flight),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, and the request it records when it ends (or is dropped).
    pub struct RedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
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
        let result = std::task::ready!(this.inner.poll(cx));
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
        let in_flight = InFlight::start(red.clone(), "GET", Route::Unmatched);
        assert_eq!(red.in_flight(), 1);
        drop(in_flight);
        assert_eq!(red.in_flight(), 0);
        assert_eq!(red.requests("GET", Route::Unmatched, 499), 1);
    }

    #[test]
    fn a_request_whose_handler_panics_is_recorded_as_500() {
        let red = Red::register(&mut Registry::default());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _in_flight = InFlight::start(red.clone(), "GET", Route::Unmatched);
            panic!("handler bug");
        }));
        assert!(panicked.is_err());
        assert_eq!(red.in_flight(), 0);
        assert_eq!(red.requests("GET", Route::Unmatched, 500), 1);
        assert_eq!(red.requests("GET", Route::Unmatched, 499), 0);
    }

    #[test]
    fn a_finished_request_is_recorded_once() {
        let red = Red::register(&mut Registry::default());
        InFlight::start(red.clone(), "GET", Route::Unmatched).finish(StatusCode::NOT_FOUND);
        assert_eq!(red.in_flight(), 0);
        assert_eq!(red.requests("GET", Route::Unmatched, 404), 1);
        assert_eq!(red.requests("GET", Route::Unmatched, 499), 0);
    }
}
