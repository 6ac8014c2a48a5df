//! The admin API, on the metrics listener only: read and change the knobs at run time.
//!
//! `GET /admin/knobs` shows them; `PUT /admin/knobs` with a JSON object of any of them
//! (`{"error_rate": 0.9}`) changes those and answers with all of them; `DELETE
//! /admin/knobs/{name}` clears one (a fault's knob off, another back as it was at start),
//! `DELETE /admin/knobs` all of them. `POST /admin/reset-counters` sets every counter back to
//! zero; `GET /admin/incidents` says what the incident timeline plays. Off unless a token is
//! configured; every request must carry it (`Authorization: Bearer TOKEN`). Every change is
//! logged, with what it changed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use crate::behaviour::knobs::{Change, Knobs, View};
use crate::state::AppState;

/// The largest request body the admin API reads.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;

/// Lets a request through only with the configured token.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = state.settings.admin_token.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "the admin API is off: start the service with --admin-token (DEMO_SERVICE_ADMIN_TOKEN)\n",
        )
            .into_response();
    };
    if bearer(request.headers())
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
    {
        return next.run(request).await;
    }
    warn!(method = %request.method(), path = request.uri().path(), "admin request without the right token");
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, "Bearer realm=\"demo-service admin\"")],
        "a valid bearer token is needed: Authorization: Bearer TOKEN\n",
    )
        .into_response()
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `GET /admin/knobs`.
pub(crate) async fn knobs(State(state): State<AppState>) -> Json<View> {
    Json(View::from(&**state.behaviour.knobs.load()))
}

/// `PUT /admin/knobs`: 200 with the knobs now, or 400 with the reason.
pub(crate) async fn change(State(state): State<AppState>, body: Bytes) -> Response {
    let change: Change = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a change of the knobs: {e}\n"),
            )
                .into_response();
        }
    };
    let limits = state.behaviour.limits;
    apply(&state, |current| current.changed(&change, &limits))
}

/// `POST /admin/reset-counters`: the reset_counters action. Every counter, histogram and
/// summary of the service back to zero, as after a restart, but without one.
pub(crate) async fn reset_counters(State(state): State<AppState>) -> &'static str {
    state.metrics.reset_counters();
    info!("counters reset");
    "every counter of the service is back at zero, as after a restart\n"
}

/// `GET /admin/incidents`: the timeline playing, its steps playing now and the next one.
pub(crate) async fn incidents(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.incidents.get().map_or_else(
        || serde_json::json!({"timeline": null, "playing": [], "next": null}),
        |player| player.status(),
    ))
}

/// `DELETE /admin/knobs/{name}`: that knob cleared: a fault's off, another back at its value
/// at start.
pub(crate) async fn reset(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let (start, limits) = (&state.behaviour.start, state.behaviour.limits);
    apply(&state, |current| current.reset(&name, start, &limits))
}

/// `DELETE /admin/knobs`: every fault off, every other knob back at its value at start.
pub(crate) async fn reset_all(State(state): State<AppState>) -> Response {
    let cleared = Knobs::cleared(&state.behaviour.start);
    apply(&state, |_| Ok(cleared.clone()))
}

/// Applies `new` to the knobs of the moment ([`crate::behaviour::Behaviour::change_knobs`]):
/// 200 with the knobs now, or 400 with the reason, and nothing changed.
fn apply(state: &AppState, new: impl Fn(&Knobs) -> Result<Knobs, String>) -> Response {
    match state
        .behaviour
        .change_knobs(|current| Ok((new(current)?, ())))
    {
        Ok((before, after, ())) => {
            info!(changes = %after.differences(&before), "knobs changed");
            Json(View::from(&after)).into_response()
        }
        Err(reason) => (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_from_its_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(bearer(&headers), Some("s3cret"));
        headers.insert(AUTHORIZATION, "bearer  s3cret ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("s3cret"));
        headers.insert(AUTHORIZATION, "Basic czNjcmV0".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
