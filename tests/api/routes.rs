//! In-process tests of both routers: every route, and what each does to the metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use demo_service::behaviour::knobs::Knobs;
use demo_service::metrics::{Metrics, TextFormat};
use demo_service::routes;
use demo_service::state::{AppState, Settings};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower::util::BoxCloneService;

use crate::helpers::{Listener, sample, samples};

fn state(delay: Duration, error_rate: f64) -> AppState {
    let knobs = Knobs {
        delay: delay..=delay,
        error_rate,
        ..Knobs::default()
    };
    AppState::new(Arc::new(Metrics::new()), knobs, Settings::default())
}

async fn call(
    router: &impl Listener,
    method: &str,
    uri: &str,
    accept: Option<&str>,
) -> (StatusCode, String, String) {
    call_accepting(router, method, uri, accept.as_slice()).await
}

/// [`call`], with an `Accept` header line for each of `accept`.
async fn call_accepting(
    router: &impl Listener,
    method: &str,
    uri: &str,
    accept: &[&str],
) -> (StatusCode, String, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for accept in accept {
        request = request.header(header::ACCEPT, *accept);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn exposition(state: &AppState) -> std::collections::BTreeMap<String, f64> {
    samples(&state.metrics.text(TextFormat::Prometheus))
}

#[tokio::test]
async fn root_counts_waits_and_records_the_drawn_time() {
    let state = state(Duration::from_millis(20), 0.2);
    let app = routes::app(state.clone());

    let (status, _, body) = call(&app, "GET", "/", None).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "Success response with status code OK");
    let m = exposition(&state);
    assert_eq!(sample(&m, "request_count_total"), 1.0);
    assert_eq!(sample(&m, "request_processing_seconds_count"), 1.0);
    assert!(
        sample(&m, "request_processing_seconds_sum") >= 0.020,
        "waited at least the drawn 20ms"
    );
    assert_eq!(sample(&m, "request_duration_seconds_count"), 1.0);
    assert_eq!(sample(&m, "request_duration_seconds_sum"), 0.02);
    assert_eq!(
        sample(&m, r#"request_duration_seconds_bucket{le="0.1"}"#),
        1.0
    );
    assert_eq!(
        sample(&m, r#"response_code_count_total{status_code="200"}"#),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"http_requests_total{method="GET",route="/",status="200"}"#
        ),
        1.0
    );
    assert_eq!(sample(&m, "http_requests_in_flight"), 0.0);
    assert_eq!(sample(&m, "error_count_total"), 0.0);
}

#[tokio::test]
async fn root_draws_within_the_delay_range() {
    let knobs = Knobs {
        delay: Duration::from_millis(300)..=Duration::from_millis(600),
        error_rate: 0.0,
        ..Knobs::default()
    };
    let state = AppState::new(Arc::new(Metrics::new()), knobs, Settings::default());
    let app = routes::app(state.clone());

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let app = app.clone();
        calls.spawn(async move { call(&app, "GET", "/", None).await.0 });
    }
    for status in calls.join_all().await {
        assert_eq!(status, StatusCode::OK);
    }

    let m = exposition(&state);
    // Every draw lies in (0.3, 0.7]: none in the buckets up to 0.3, all by 0.7.
    assert_eq!(
        sample(&m, r#"request_duration_seconds_bucket{le="0.3"}"#),
        0.0
    );
    assert_eq!(
        sample(&m, r#"request_duration_seconds_bucket{le="0.7"}"#),
        20.0
    );
    let sum = sample(&m, "request_duration_seconds_sum");
    assert!(
        (6.0..=12.0).contains(&sum),
        "20 draws from [0.3, 0.6] sum to {sum}"
    );
}

#[tokio::test]
async fn simulate_error_fails_as_often_as_configured() {
    for (rate, code, text) in [
        (
            1.0,
            500,
            "Simulated error response with status code 500 internal server error",
        ),
        (0.0, 200, "No error occurred - statuscode: OK"),
    ] {
        let state = state(Duration::ZERO, rate);
        let app = routes::app(state.clone());

        for _ in 0..3 {
            let (status, _, body) = call(&app, "GET", "/simulate_error", None).await;
            assert_eq!((status.as_u16(), body.as_str()), (code, text));
        }

        let m = exposition(&state);
        assert_eq!(sample(&m, "request_count_total"), 3.0);
        assert_eq!(
            sample(&m, "error_count_total"),
            if code == 500 { 3.0 } else { 0.0 }
        );
        assert_eq!(
            sample(
                &m,
                &format!(r#"response_code_count_total{{status_code="{code}"}}"#)
            ),
            3.0
        );
        assert_eq!(
            m.keys()
                .filter(|k| k.starts_with("response_code_count_total"))
                .count(),
            1
        );
        let red = format!(
            r#"http_requests_total{{method="GET",route="/simulate_error",status="{code}"}}"#
        );
        assert_eq!(sample(&m, &red), 3.0);
        // The summary and the histogram time `/` only.
        assert_eq!(sample(&m, "request_processing_seconds_count"), 0.0);
        assert_eq!(sample(&m, "request_duration_seconds_count"), 0.0);
    }
}

#[tokio::test]
async fn metrics_speaks_both_formats_with_their_content_types() {
    let app = routes::app(state(Duration::ZERO, 0.2));

    let (status, content_type, body) = call(&app, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE request_count_total counter\n"));
    assert!(!body.contains("# EOF"));

    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let (status, content_type, body) = call(&app, "GET", "/metrics", Some(accept)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.contains("# TYPE request_count counter\n"));
    assert!(body.ends_with("# EOF\n"));

    // Several Accept lines are one list, on both listeners.
    let metrics = routes::metrics(state(Duration::ZERO, 0.2));
    for router in [
        BoxCloneService::new(app.clone()),
        BoxCloneService::new(metrics),
    ] {
        let router = &router;
        let lines = ["text/plain;q=0.1", "application/openmetrics-text;q=0.5"];
        let (status, content_type, _) = call_accepting(router, "GET", "/metrics", &lines).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        // Every format refused: 406, and the formats there are.
        let (status, _, body) = call(router, "GET", "/metrics", Some("text/plain;q=0, */*")).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        assert!(
            body.starts_with("the Accept header refuses every format"),
            "{body}"
        );
        assert!(
            body.contains("application/openmetrics-text; version=1.0.0"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let state = state(Duration::ZERO, 0.2);
    let app = routes::app(state.clone());

    assert_eq!(call(&app, "GET", "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/readyz", None).await.0, StatusCode::OK);
    state.set_draining();
    let (status, _, body) = call(&app, "GET", "/readyz", None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    );
    assert_eq!(
        call(&app, "GET", "/healthz", None).await.0,
        StatusCode::OK,
        "alive while draining"
    );
}

#[tokio::test]
async fn unmatched_paths_and_methods_add_no_series() {
    let state = state(Duration::ZERO, 0.2);
    let app = routes::app(state.clone());

    for i in 0..100 {
        let (status, _, _) = call(&app, "GET", &format!("/scan/{i}?x={i}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _, _) = call(&app, "POST", "/", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, _) = call(&app, "BREW", "/", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let m = exposition(&state);
    let series: Vec<_> = m
        .keys()
        .filter(|k| k.starts_with("http_requests_total"))
        .collect();
    assert_eq!(
        series,
        [
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#,
            r#"http_requests_total{method="OTHER",route="/",status="405"}"#,
            r#"http_requests_total{method="POST",route="/",status="405"}"#,
        ]
    );
    assert_eq!(sample(&m, series[0]), 100.0);
    // Neither counts as a request of the seed's.
    assert_eq!(sample(&m, "request_count_total"), 0.0);
}

#[tokio::test]
async fn the_metrics_listener_serves_the_exposition_and_is_not_measured() {
    let state = state(Duration::ZERO, 0.2);
    let metrics = routes::metrics(state.clone());

    // As the Python client's start_http_server, on every path.
    for path in ["/metrics", "/", "/anything"] {
        let (status, content_type, body) = call(&metrics, "GET", path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{path}"
        );
        assert!(body.contains("request_count_total 0\n"), "{path}");
    }
    assert_eq!(
        call(&metrics, "GET", "/readyz", None).await.0,
        StatusCode::OK
    );

    let m = exposition(&state);
    assert!(
        !m.keys().any(|k| k.starts_with("http_requests_total")),
        "scrapes are not traffic"
    );
}

#[tokio::test]
async fn every_request_is_timed_by_route_and_the_build_is_exposed() {
    let state = state(Duration::ZERO, 0.0);
    let app = routes::app(state.clone());

    call(&app, "GET", "/", None).await;
    call(&app, "GET", "/healthz", None).await;

    let m = exposition(&state);
    for route in ["/", "/healthz"] {
        let labels = format!(r#"method="GET",route="{route}",status="200""#);
        assert_eq!(
            sample(
                &m,
                &format!("http_request_duration_seconds_count{{{labels}}}")
            ),
            1.0
        );
        assert_eq!(
            sample(
                &m,
                &format!(r#"http_request_duration_seconds_bucket{{{labels},le="+Inf"}}"#)
            ),
            1.0
        );
        assert!(
            sample(
                &m,
                &format!("http_request_duration_seconds_sum{{{labels}}}")
            ) < 1.0
        );
    }
    let build = format!(
        r#"demo_service_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&m, &build), 1.0);
}

#[tokio::test]
async fn a_client_that_leaves_is_recorded_as_499_and_its_work_still_counts() {
    let state = state(Duration::from_millis(300), 0.0);
    let app = routes::app(state.clone());

    // The client gives up after 50 ms; the handler's future is dropped.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(50), call(&app, "GET", "/", None)).await;
    assert!(gave_up.is_err());

    let m = exposition(&state);
    assert_eq!(
        sample(
            &m,
            r#"http_requests_total{method="GET",route="/",status="499"}"#
        ),
        1.0
    );
    assert_eq!(sample(&m, "http_requests_in_flight"), 0.0);
    assert_eq!(sample(&m, "request_count_total"), 1.0);
    // The simulated work goes on, as the seed's thread does, and is recorded when it ends.
    assert!(!m.contains_key(r#"response_code_count_total{status_code="200"}"#));
    state.work.close();
    state.work.wait().await;
    let m = exposition(&state);
    assert_eq!(
        sample(&m, r#"response_code_count_total{status_code="200"}"#),
        1.0
    );
    assert_eq!(sample(&m, "request_processing_seconds_count"), 1.0);
    assert_eq!(sample(&m, "request_duration_seconds_count"), 1.0);
}
