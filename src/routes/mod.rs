//! The two routers: the app listener's and the metrics listener's.

mod admin;
mod exposition;
pub mod faults;
mod health;
mod simulate;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::state::AppState;

/// The app listener: the seed's endpoints, the exposition, health, all measured by the RED
/// middleware.
pub fn app(state: AppState) -> Router {
    let red = state.metrics.red_layer();
    Router::new()
        .route("/", get(simulate::process))
        .route("/simulate_error", get(simulate::simulate_error))
        .route("/metrics", get(exposition::metrics))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/status/{codes}", get(faults::status))
        .route("/delay/{duration}", get(faults::delay))
        // `route_layer` sees the matched route; the fallback gets the same middleware itself.
        .route_layer(red.clone())
        .fallback(not_found.layer(red))
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(state)
}

/// The metrics listener, as the seed's `start_http_server(8000)`: the exposition, on every path
/// as the Python client answers it (Prometheus asks for `/metrics`), health, and the admin API
/// (which never goes on the public app listener). Not measured: scrapes are not traffic.
pub fn metrics(state: AppState) -> Router {
    let admin = Router::new()
        .route(
            "/admin/knobs",
            get(admin::knobs)
                .put(admin::change)
                .delete(admin::reset_all),
        )
        .route("/admin/knobs/{name}", delete(admin::reset))
        .route("/admin/incidents", get(admin::incidents))
        .route("/admin/reset-counters", post(admin::reset_counters))
        .route_layer(from_fn_with_state(state.clone(), admin::authorize))
        .layer(DefaultBodyLimit::max(admin::BODY_LIMIT));
    Router::new()
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .merge(admin)
        .fallback(exposition::metrics)
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(state)
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found")
}

/// A panic in a handler is a bug: the client gets a plain 500, the log gets the message.
fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = message, "handler panicked");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}
