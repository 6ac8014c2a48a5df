//! `GET /metrics`: the exposition, in the format the scraper asked for.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE, VARY};
use axum::response::IntoResponse;

use crate::metrics::Format;
use crate::state::AppState;

pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let format = Format::negotiate(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    (
        [(CONTENT_TYPE, format.content_type()), (VARY, "Accept")],
        state.metrics.encode(format),
    )
}
