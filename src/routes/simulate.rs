//! The seed's two endpoints: `/`, which takes a random while, and `/simulate_error`, which fails
//! at random. Bodies, counters and log lines are the seed's; the log lines also name the
//! request's trace (`trace_id`), as its exemplars do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use tracing::{error, info};

use crate::metrics::Metrics;
use crate::state::AppState;
use crate::trace::TraceId;

/// The request's trace, which the RED middleware gives every request of the app listener.
fn trace_of(trace: Option<Extension<TraceId>>) -> TraceId {
    trace.map_or_else(TraceId::random, |Extension(trace)| trace)
}

/// `GET /`: counts the request, waits a processing time drawn from the delay range, records it.
pub(crate) async fn process(
    State(state): State<AppState>,
    trace: Option<Extension<TraceId>>,
) -> (StatusCode, &'static str) {
    let trace = trace_of(trace);
    let count = state.metrics.count_request();
    let drawn = state.behaviour.draw_delay();
    if drawn.is_zero() {
        work(&state.metrics, count, drawn, trace).await;
    } else {
        // In the seed the work runs on the request's thread, which finishes it even when the
        // client has gone. Running it as a task of its own does the same here (a dropped
        // handler would abandon it), so every request counted is also timed and answered;
        // the shutdown drain waits for these tasks as well.
        let metrics = state.metrics.clone();
        let task = state
            .work
            .spawn(async move { work(&metrics, count, drawn, trace).await });
        if task.await.is_err() {
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    }
    (StatusCode::OK, "Success response with status code OK")
}

async fn work(metrics: &Arc<Metrics>, count: u64, drawn: Duration, trace: TraceId) {
    let started = Instant::now();
    if !drawn.is_zero() {
        tokio::time::sleep(drawn).await;
    }
    metrics.observe_processing(drawn, started, trace);
    metrics.count_response(StatusCode::OK.as_u16());
    info!(
        request_count = count,
        processing_time = drawn.as_secs_f64(),
        trace_id = %trace,
        "request processed"
    );
}

/// `GET /simulate_error`: counts the request and fails with the configured probability.
pub(crate) async fn simulate_error(
    State(state): State<AppState>,
    trace: Option<Extension<TraceId>>,
) -> (StatusCode, &'static str) {
    let metrics = &state.metrics;
    metrics.count_request();
    if state.behaviour.draw_error() {
        let errors = metrics.count_error();
        metrics.count_response(500);
        error!(
            total_errors = errors,
            trace_id = %trace_of(trace),
            "simulated error occurred"
        );
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Simulated error response with status code 500 internal server error",
        )
    } else {
        metrics.count_response(200);
        (StatusCode::OK, "No error occurred - statuscode: OK")
    }
}
