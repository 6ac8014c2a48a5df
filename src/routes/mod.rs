//! The two routers: the app listener's and the metrics listener's.

mod admin;
mod exposition;
pub mod faults;
mod health;
mod simulate;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_layer::Layer;

use crate::metrics::red::{RedService, Templates};
use crate::state::AppState;

/// The app listener's service: its router behind the RED middleware.
pub type App = RedService<Router>;

/// The app listener: the seed's endpoints, the exposition, health, all measured by the RED
/// middleware, which labels each request with the template of the route it matched.
///
/// The middleware wraps the router once, not each route (`route_layer`), so that a request
/// passes through one boxed route, not two; it also answers a handler's panic, which
/// `CatchPanicLayer` would have wrapped each route again for.
pub fn app(state: AppState) -> App {
    let routes = Routes::default()
        .route("/", get(simulate::process))
        .route("/simulate_error", get(simulate::simulate_error))
        .route("/metrics", get(exposition::metrics))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/status/{codes}", get(faults::status))
        .route("/delay/{duration}", get(faults::delay));
    let red = state.metrics.red_layer(routes.templates, panicked);
    let router = routes.router.fallback(not_found).with_state(state);
    red.layer(router)
}

/// Routes, each added both to the router and to the templates that label its requests.
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    templates: Templates,
}

impl Routes {
    fn route(mut self, template: &'static str, handler: MethodRouter<AppState>) -> Self {
        self.templates.add(template);
        self.router = self.router.route(template, handler);
        self
    }
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
