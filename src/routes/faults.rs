//! Fault endpoints on the app listener, in the style of httpbin and podinfo: a status chosen by
//! the client, or a delay it chose. The RED middleware records them under their route
//! templates (`/status/{codes}`, `/delay/{duration}`); the seed's counters do not count them.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::weighted::Weighted;

/// Parses a status (`503`) or a weighted choice of them (`200:0.9,500:0.1`): codes from 200
/// to 599, as a final answer needs.
pub fn statuses(text: &str) -> Result<Weighted<StatusCode>, String> {
    Weighted::parse(text, ':', |code| {
        let code: u16 = code
            .parse()
            .map_err(|_| format!("{code:?} is not a status code"))?;
        if !(200..=599).contains(&code) {
            return Err(format!("{code} is not a status from 200 to 599"));
        }
        StatusCode::from_u16(code).map_err(|e| e.to_string())
    })
}

/// `GET /status/{codes}`: answers with the status, or one drawn from the weighted list.
pub(crate) async fn status(Path(codes): Path<String>) -> Response {
    match statuses(&codes) {
        Ok(choice) => {
            let status = *choice.item(choice.pick(&mut rand::rng()));
            (status, format!("{status}\n")).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// `GET /delay/{duration}`: answers 200 after `duration` (`250ms`, `1.5s`), up to
/// `--max-fault-delay`.
pub(crate) async fn delay(State(state): State<AppState>, Path(text): Path<String>) -> Response {
    let delay = match crate::config::duration(&text) {
        Ok(delay) => delay,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{text}: {e}\n")).into_response(),
    };
    let most = state.settings.max_fault_delay;
    if delay > most {
        let message = format!(
            "{} is above the longest delay, {} (--max-fault-delay)\n",
            human(delay),
            human(most)
        );
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    tokio::time::sleep(delay).await;
    (StatusCode::OK, format!("waited {}\n", human(delay))).into_response()
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_codes_or_weighted_choices() {
        let one = statuses("503").unwrap();
        assert_eq!(
            one.items().copied().collect::<Vec<_>>(),
            [StatusCode::SERVICE_UNAVAILABLE]
        );
        let two = statuses("200:0.9,500:0.1").unwrap();
        assert_eq!(two.shares(), [0.9, 0.1]);
        for (text, error) in [
            ("99", "99 is not a status from 200 to 599"),
            ("100", "100 is not a status from 200 to 599"),
            ("600", "600 is not a status from 200 to 599"),
            ("ok", "\"ok\" is not a status code"),
            ("200:x", "is not a number"),
            ("200:0", "every weight is 0"),
        ] {
            let e = statuses(text).map(|_| ()).unwrap_err();
            assert!(e.contains(error), "{text}: {e}");
        }
    }
}
