//! `GET /metrics`: the exposition, in the format the scraper asked for, as the faults of the
//! moment make it (a delay, a family hidden, series added).

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
    let knobs = state.behaviour.knobs.load_full();
    // The metrics_delay fault: a scrape that takes this long.
    if !knobs.faults.metrics_delay.is_zero() {
        tokio::time::sleep(knobs.faults.metrics_delay).await;
    }
    let ready = state.is_ready() && state.behaviour.is_ready();
    (
        [(CONTENT_TYPE, format.content_type()), (VARY, "Accept")],
        state.metrics.encode_with(format, &knobs.faults, ready),
    )
}
