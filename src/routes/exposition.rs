//! `GET /metrics`: the exposition, in the format the scraper asked for, as the faults of the
//! moment make it (a delay, a family hidden, series added).

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use crate::metrics::Format;
use crate::state::AppState;

pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let accept = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let Some(format) = Format::negotiate(accept) else {
        return (
            StatusCode::NOT_ACCEPTABLE,
            [
                (CONTENT_TYPE, "text/plain; charset=utf-8"),
                (VARY, "Accept"),
            ],
            NOT_ACCEPTABLE.as_bytes().to_vec(),
        );
    };
    let knobs = state.behaviour.knobs.load_full();
    // The metrics_delay fault: a scrape that takes this long.
    if !knobs.faults.metrics_delay.is_zero() {
        tokio::time::sleep(knobs.faults.metrics_delay).await;
    }
    let ready = state.is_ready() && state.behaviour.is_ready();
    (
        StatusCode::OK,
        [(CONTENT_TYPE, format.content_type()), (VARY, "Accept")],
        state.metrics.encode_with(format, &knobs.faults, ready),
    )
}

/// The answer to an Accept header that refuses every format.
const NOT_ACCEPTABLE: &str = "the Accept header refuses every format of this exposition: \
    text/plain; version=0.0.4, application/openmetrics-text; version=1.0.0 (or 0.0.1), \
    application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; \
    encoding=delimited\n";
