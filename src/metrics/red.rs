//! RED metrics (rate, errors, duration) for every route of the app listener, from one middleware.
//!
//! Requests are labelled by the route *template* that matched (`/`, `/simulate_error`), never by
//! the raw path, and every unmatched path shares the label `route="unmatched"`; methods outside
//! the standard ones share `method="OTHER"`. No client can add a series, however many paths or
//! methods it makes up.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
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

#[derive(Debug)]
pub(crate) struct Red {
    requests: Family<Labels, Counter>,
    durations: Family<Labels, Histogram>,
    in_flight: Gauge,
}

impl Red {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let red = Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            in_flight: Gauge::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status code",
            red.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response's headers, by method, route template and status code",
            Unit::Seconds,
            red.durations.clone(),
        );
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

    #[cfg(test)]
    pub(crate) fn requests(&self, method: &'static str, route: Route, status: u16) -> u64 {
        let labels = Labels {
            method,
            route,
            status,
        };
        self.requests.get(&labels).map_or(0, |c| c.get())
    }
}

/// One request in flight: counted in the gauge while it lives, and recorded when it ends, also
/// when it ends because its client went away and the handler's future was dropped.
struct InFlight<'a> {
    red: &'a Red,
    started: Instant,
    method: &'static str,
    route: Option<Route>,
}

impl<'a> InFlight<'a> {
    fn start(red: &'a Red, method: &'static str, route: Route) -> Self {
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
        let elapsed = self.started.elapsed().as_secs_f64();
        let labels = Labels {
            method: self.method,
            route,
            status,
        };
        self.red.durations.get_or_create(&labels).observe(elapsed);
        self.red.requests.get_or_create(&labels).inc();
        self.red.in_flight.dec();
    }
}

impl Drop for InFlight<'_> {
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

/// The middleware: `route_layer` it onto the routes, `layer` it onto the fallback.
pub(crate) async fn record(State(red): State<Arc<Red>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .cloned()
        .map_or(Route::Unmatched, Route::Matched);
    let in_flight = InFlight::start(&red, method_label(request.method()), route);
    let response = next.run(request).await;
    in_flight.finish(response.status());
    response
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
        let in_flight = InFlight::start(&red, "GET", Route::Unmatched);
        assert_eq!(red.in_flight(), 1);
        drop(in_flight);
        assert_eq!(red.in_flight(), 0);
        assert_eq!(red.requests("GET", Route::Unmatched, 499), 1);
    }

    #[test]
    fn a_request_whose_handler_panics_is_recorded_as_500() {
        let red = Red::register(&mut Registry::default());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _in_flight = InFlight::start(&red, "GET", Route::Unmatched);
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
        InFlight::start(&red, "GET", Route::Unmatched).finish(StatusCode::NOT_FOUND);
        assert_eq!(red.in_flight(), 0);
        assert_eq!(red.requests("GET", Route::Unmatched, 404), 1);
        assert_eq!(red.requests("GET", Route::Unmatched, 499), 0);
    }
}
