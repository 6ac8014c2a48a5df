//! The seed's two endpoints: `/`, which takes a random while, and `/simulate_error`, which fails
//! at random. Bodies, counters and log lines are the seed's; the log lines also name the
//! request's trace (`trace_id`), as its exemplars do.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use tracing::error;

use crate::behaviour::RootPlan;
use crate::behaviour::faults::dependency;
use crate::state::AppState;
use crate::telemetry;
use crate::trace::TraceId;

/// The request's trace, which the RED middleware makes current while the handler runs.
fn trace() -> TraceId {
    TraceId::current().unwrap_or_else(TraceId::random)
}

/// `GET /`: counts the request, calls the dependency (which answers at once and never fails,
/// unless a fault says otherwise: then `/` answers 503), burns the CPU the cpu_burn fault asks
/// for, waits a processing time drawn from the knobs, records it.
pub(crate) async fn process(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let trace = trace();
    let count = state.metrics.count_request();
    let plan = state.behaviour.plan_root();
    if plan.is_instant() {
        // Nothing to wait for: answered at once, by plain functions. Awaiting `work` here
        // would make this future carry the state of its waits (432 bytes instead of 88),
        // copied on every request.
        let now = Instant::now();
        return called(&state, &plan, trace, now)
            .unwrap_or_else(|| processed(&state, count, &plan, now, trace));
    }
    // In the seed the work runs on the request's thread, which finishes it even when the
    // client has gone. Running it as a task of its own does the same here (a dropped handler
    // would abandon it), so every request counted is also timed and answered; the shutdown
    // drain waits for these tasks as well.
    let task = state.work.spawn({
        let state = state.clone();
        async move { work(&state, count, plan, trace).await }
    });
    task.await
        .unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
}

/// The waits of `plan`, in order, each recorded as it ends.
async fn work(
    state: &AppState,
    count: u64,
    plan: RootPlan,
    trace: TraceId,
) -> (StatusCode, &'static str) {
    // The clock is read again only after a wait: a step that took no time ended when it began
    // (each read costs as much as a counter's increment, several times over).
    let mut now = Instant::now();
    if !plan.dependency.0.is_zero() {
        tokio::time::sleep(plan.dependency.0).await;
        now = Instant::now();
    }
    if let Some(failed) = called(state, &plan, trace, now) {
        return failed;
    }
    if !plan.cpu_burn.is_zero() {
        let burned = state.behaviour.burner.burn(plan.cpu_burn).await;
        state.metrics.count_cpu_burned(burned);
        now = Instant::now();
    }
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    processed(state, count, &plan, now, trace)
}

/// The call to the dependency ended `at`: records it, and when it failed, answers 503.
fn called(
    state: &AppState,
    plan: &RootPlan,
    trace: TraceId,
    at: Instant,
) -> Option<(StatusCode, &'static str)> {
    let (latency, outcome) = plan.dependency;
    state
        .metrics
        .observe_dependency(outcome, latency, trace, at);
    let body = outcome.failure()?;
    state
        .metrics
        .count_response(StatusCode::SERVICE_UNAVAILABLE.as_u16());
    error!(
        dependency = dependency::NAME,
        outcome = outcome.label(),
        trace_id = %trace,
        "dependency failed"
    );
    Some((StatusCode::SERVICE_UNAVAILABLE, body))
}

/// The processing that began at `started` has ended: records it, logs the seed's line, answers.
fn processed(
    state: &AppState,
    count: u64,
    plan: &RootPlan,
    started: Instant,
    trace: TraceId,
) -> (StatusCode, &'static str) {
    let metrics = &state.metrics;
    metrics.observe_processing(plan.delay, started, trace);
    metrics.count_response(StatusCode::OK.as_u16());
    telemetry::request_processed(count, plan.delay.as_secs_f64(), trace);
    (StatusCode::OK, "Success response with status code OK")
}

/// `GET /simulate_error`: counts the request and fails with the configured probability.
pub(crate) async fn simulate_error(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let metrics = &state.metrics;
    metrics.count_request();
    if state.behaviour.plan_simulate_error() {
        let errors = metrics.count_error();
        metrics.count_response(500);
        error!(
            total_errors = errors,
            trace_id = %trace(),
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
