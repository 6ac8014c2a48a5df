//! Liveness and readiness, for container healthchecks and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

/// `GET /healthz`: the process is up and answering.
pub(crate) async fn alive() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 while the service takes requests; 503 once shutdown has begun, or while
/// the not_ready fault is on.
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if !state.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !state.behaviour.is_ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the not_ready fault is on",
        )
    } else {
        (StatusCode::OK, "ready")
    }
}
