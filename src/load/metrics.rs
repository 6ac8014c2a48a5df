//! The generator's own metrics (`--metrics-addr`): what it sent and what came back, and latency
//! as the client saw it, both from when each request was due and from when it was sent, in the
//! buckets of the service's RED histogram, so that client and server latency can be drawn side
//! by side and their gap read as queueing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use axum::http::header::CONTENT_TYPE;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::{help, register, register_with_unit};

use super::report::{ErrorKind, Took};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnsweredLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailedLabels {
    route: String,
    error: &'static str,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(crate::metrics::RED_BUCKETS.iter().copied())
}

/// The families, and the registry that writes them.
#[derive(Debug)]
pub struct LoadMetrics {
    registry: Registry,
    /// The route label of each path of the mix, by index.
    routes: Vec<RouteLabels>,
    sent: Family<RouteLabels, Counter>,
    answered: Family<AnsweredLabels, Counter>,
    failed: Family<FailedLabels, Counter>,
    in_flight: Gauge,
    latency: Latency,
    uncorrected: Latency,
    target_rate: Option<Gauge<f64, AtomicU64>>,
    achieved_rate: Gauge<f64, AtomicU64>,
}

impl LoadMetrics {
    /// Metrics of a run over `paths`; an open loop has a target rate, a closed one none.
    pub fn new(paths: &[String], open: bool) -> Self {
        let mut registry = Registry::with_prefix("loadgen");
        let sent = Family::<RouteLabels, Counter>::default();
        register(
            &mut registry,
            "requests_sent",
            help!("Requests sent, by route (the path of the mix)"),
            sent.clone(),
        );
        let answered = Family::<AnsweredLabels, Counter>::default();
        register(
            &mut registry,
            "requests_answered",
            help!("Requests answered, by route and HTTP status"),
            answered.clone(),
        );
        let failed = Family::<FailedLabels, Counter>::default();
        register(
            &mut registry,
            "requests_failed",
            help!("Requests without an answer, by route and error (connect, timeout, io)"),
            failed.clone(),
        );
        let in_flight = Gauge::default();
        register(
            &mut registry,
            "requests_in_flight",
            help!("Requests sent and not yet answered"),
            in_flight.clone(),
        );
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        register_with_unit(
            &mut registry,
            "request_duration",
            help!(
                "Latency as the client saw it, from when each request was due (corrected for \
                 coordinated omission): the wait to be sent included"
            ),
            Unit::Seconds,
            latency.clone(),
        );
        let uncorrected: Latency = Family::new_with_constructor(latency_histogram);
        register_with_unit(
            &mut registry,
            "request_duration_uncorrected",
            help!(
                "Latency as the client saw it, from when each request was sent: what the request \
                 alone took"
            ),
            Unit::Seconds,
            uncorrected.clone(),
        );
        let target_rate = open.then(Gauge::<f64, AtomicU64>::default);
        if let Some(target) = &target_rate {
            register(
                &mut registry,
                "target_rate",
                help!("Requests per second the open loop's schedule asks for now"),
                target.clone(),
            );
        }
        let achieved_rate = Gauge::<f64, AtomicU64>::default();
        register(
            &mut registry,
            "achieved_rate",
            help!("Requests per second sent over the last second"),
            achieved_rate.clone(),
        );
        // Every route's errors from zero, so that their rate is 0 rather than nothing before
        // the first failure.
        for route in paths {
            for kind in ErrorKind::ALL {
                let zero = FailedLabels {
                    route: route.clone(),
                    error: kind.name(),
                };
                drop(failed.get_or_create(&zero));
            }
        }
        LoadMetrics {
            registry,
            routes: paths
                .iter()
                .map(|path| RouteLabels {
                    route: path.clone(),
                })
                .collect(),
            sent,
            answered,
            failed,
            in_flight,
            latency,
            uncorrected,
            target_rate,
            achieved_rate,
        }
    }

    pub fn sent(&self, path: usize) {
        self.sent.get_or_create(&self.routes[path]).inc();
        self.in_flight.inc();
    }

    pub fn answered(&self, path: usize, status: u16, took: Took) {
        let route = &self.routes[path];
        let labels = AnsweredLabels {
            route: route.route.clone(),
            status,
        };
        self.answered.get_or_create(&labels).inc();
        self.observe(path, took);
    }

    pub fn failed(&self, path: usize, kind: ErrorKind, took: Option<Took>) {
        let labels = FailedLabels {
            route: self.routes[path].route.clone(),
            error: kind.name(),
        };
        self.failed.get_or_create(&labels).inc();
        match took {
            Some(took) => self.observe(path, took),
            None => {
                self.in_flight.dec();
            }
        }
    }

    fn observe(&self, path: usize, took: Took) {
        let route = &self.routes[path];
        self.in_flight.dec();
        self.latency
            .get_or_create(route)
            .observe(took.since_due.as_secs_f64());
        self.uncorrected
            .get_or_create(route)
            .observe(took.since_sent.as_secs_f64());
    }

    /// The rates now: what the schedule asks for (open loop), and what was sent.
    pub fn rates(&self, target: Option<f64>, achieved: f64) {
        if let (Some(gauge), Some(rate)) = (&self.target_rate, target) {
            gauge.set(rate);
        }
        self.achieved_rate.set(achieved);
    }

    /// The exposition, in OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The content type of [`LoadMetrics::encode`].
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Listens on `addr` (before any request is sent, so that a port in use is an error at once) and
/// serves `metrics` on `/metrics` (and every other path) until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<LoadMetrics>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--metrics-addr)"))?;
    let app = axum::Router::new().fallback(move || {
        let metrics = metrics.clone();
        async move { ([(CONTENT_TYPE, OPENMETRICS)], metrics.encode()) }
    });
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}

/// How often the rate gauges are updated.
pub const RATE_EVERY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn took(due: u64, sent: u64) -> Took {
        Took {
            since_due: Duration::from_millis(due),
            since_sent: Duration::from_millis(sent),
        }
    }

    #[test]
    fn every_outcome_is_counted_once_and_leaves_nothing_in_flight() {
        let metrics = LoadMetrics::new(&["/".into(), "/simulate_error".into()], true);
        for _ in 0..4 {
            metrics.sent(0);
        }
        metrics.sent(1);
        metrics.answered(0, 200, took(300, 20));
        metrics.answered(0, 200, took(30, 20));
        metrics.answered(1, 500, took(1, 1));
        metrics.failed(0, ErrorKind::Connect, None);
        metrics.failed(0, ErrorKind::Timeout, Some(took(12_000, 10_000)));
        metrics.rates(Some(12.5), 11.0);
        let text = metrics.encode();
        for line in [
            r#"loadgen_requests_sent_total{route="/"} 4"#,
            r#"loadgen_requests_sent_total{route="/simulate_error"} 1"#,
            r#"loadgen_requests_answered_total{route="/",status="200"} 2"#,
            r#"loadgen_requests_answered_total{route="/simulate_error",status="500"} 1"#,
            r#"loadgen_requests_failed_total{route="/",error="connect"} 1"#,
            r#"loadgen_requests_failed_total{route="/",error="timeout"} 1"#,
            r#"loadgen_requests_failed_total{route="/",error="io"} 0"#,
            r#"loadgen_requests_failed_total{route="/simulate_error",error="connect"} 0"#,
            "loadgen_requests_in_flight 0",
            // From when due: 30 ms, 300 ms, and the timeout's 12 s.
            r#"loadgen_request_duration_seconds_bucket{le="0.05",route="/"} 1"#,
            r#"loadgen_request_duration_seconds_bucket{le="0.5",route="/"} 2"#,
            r#"loadgen_request_duration_seconds_bucket{le="10.0",route="/"} 2"#,
            r#"loadgen_request_duration_seconds_count{route="/"} 3"#,
            // From when sent: 20 ms twice, and 10 s.
            r#"loadgen_request_duration_uncorrected_seconds_bucket{le="0.025",route="/"} 2"#,
            r#"loadgen_request_duration_uncorrected_seconds_bucket{le="10.0",route="/"} 3"#,
            "loadgen_target_rate 12.5",
            "loadgen_achieved_rate 11.0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        // A closed loop has no target rate.
        let closed = LoadMetrics::new(&["/".into()], false);
        closed.rates(Some(1.0), 1.0);
        assert!(!closed.encode().contains("target_rate"));
    }
}
