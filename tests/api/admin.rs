//! The admin API and the fault endpoints: the knobs change at run time, behind a token, and the
//! very next requests show it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use demo_service::behaviour::knobs::Knobs;
use demo_service::metrics::{Metrics, TextFormat};
use demo_service::routes;
use demo_service::state::{AppState, Settings};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::helpers::{Listener, Service, sample, samples, scrape};

const TOKEN: &str = "0123456789abcdef-test";

/// Both routers over one state, as the server runs them.
fn service(token: Option<&str>) -> (routes::App, axum::Router, AppState) {
    let knobs = Knobs {
        delay: Duration::ZERO..=Duration::ZERO,
        error_rate: 0.2,
        ..Knobs::default()
    };
    let settings = Settings {
        admin_token: token.map(str::to_owned),
        ..Settings::default()
    };
    let state = AppState::new(Arc::new(Metrics::new()), knobs, settings);
    (
        routes::app(state.clone()),
        routes::metrics(state.clone()),
        state,
    )
}

async fn send(
    router: &impl Listener,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn without_a_token_the_api_is_off() {
    let (app, metrics, _) = service(None);
    for method in ["GET", "PUT"] {
        let (status, body) = send(&metrics, method, "/admin/knobs", Some(TOKEN), "{}").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert!(body.contains("the admin API is off"), "{body}");
    }
    // And it never is on the public app listener.
    let (app_with_token, _, _) = service(Some(TOKEN));
    for router in [&app, &app_with_token] {
        let (status, body) = send(router, "GET", "/admin/knobs", Some(TOKEN), "").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::NOT_FOUND, "not found")
        );
    }
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let (_, metrics, _) = service(Some(TOKEN));
    for token in [None, Some("wrong-token-of-some-length"), Some("")] {
        for method in ["GET", "PUT"] {
            let request = Request::builder().method(method).uri("/admin/knobs");
            let request = match token {
                Some(token) => request.header(header::AUTHORIZATION, format!("Bearer {token}")),
                None => request,
            };
            let response = metrics
                .clone()
                .oneshot(request.body(Body::from(r#"{"error_rate": 1}"#)).unwrap())
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {token:?}"
            );
            assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }
    let (status, body) = send(&metrics, "GET", "/admin/knobs", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    let knobs: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        knobs,
        serde_json::json!({"error_rate": 0.2, "min_delay": "0s", "max_delay": "0s",
            "delay_distribution": "uniform", "users_min": 10, "users_max": 50,
            "not_ready": false, "memory_leak": "0", "cpu_burn": "0s",
            "dependency_latency": "0s", "dependency_error_rate": 0.0,
            "dependency_down": false, "metrics_delay": "0s", "hide_family": null,
            "cardinality": 0})
    );
}

#[tokio::test]
async fn bad_changes_are_400_with_the_reason_and_change_nothing() {
    let (_, metrics, state) = service(Some(TOKEN));
    let before = state.behaviour.knobs.load_full();
    for (body, reason) in [
        (r#"{"error_rate": 1.5}"#, "error_rate 1.5 is outside [0, 1]"),
        (
            r#"{"min_delay": "2s"}"#,
            "min_delay (2s) is above max_delay (0s)",
        ),
        (r#"{"max_delay": "soon"}"#, "max_delay: "),
        (
            r#"{"users_min": 60}"#,
            "users_min (60) is above users_max (50)",
        ),
        (r#"{"error_ratio": 0.5}"#, "unknown field `error_ratio`"),
        (r#"{"error_rate": "high"}"#, "invalid type"),
        ("error_rate=1", "not a change of the knobs"),
        ("", "not a change of the knobs"),
    ] {
        let (status, answer) = send(&metrics, "PUT", "/admin/knobs", Some(TOKEN), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer.contains(reason),
            "{body}: {answer:?} lacks {reason:?}"
        );
    }
    let huge = format!(r#"{{"min_delay": "{}"}}"#, "1".repeat(32 * 1024));
    let (status, _) = send(&metrics, "PUT", "/admin/knobs", Some(TOKEN), &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        *state.behaviour.knobs.load_full(),
        *before,
        "a bad change changed the knobs"
    );
}

#[tokio::test]
async fn a_change_shows_in_the_very_next_responses() {
    let (app, metrics, _) = service(Some(TOKEN));

    let (status, body) = send(
        &metrics,
        "PUT",
        "/admin/knobs",
        Some(TOKEN),
        r#"{"error_rate": 1}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""error_rate":1.0"#), "{body}");
    for _ in 0..20 {
        assert_eq!(
            send(&app, "GET", "/simulate_error", None, "").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    send(
        &metrics,
        "PUT",
        "/admin/knobs",
        Some(TOKEN),
        r#"{"error_rate": 0, "min_delay": "200ms", "max_delay": "200ms"}"#,
    )
    .await;
    for _ in 0..20 {
        assert_eq!(
            send(&app, "GET", "/simulate_error", None, "").await.0,
            StatusCode::OK
        );
    }
    let started = Instant::now();
    assert_eq!(send(&app, "GET", "/", None, "").await.0, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "/ took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn fault_endpoints_answer_as_asked_and_are_measured_by_route() {
    let (app, _, state) = service(None);

    assert_eq!(
        send(&app, "GET", "/status/503", None, "").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable\n".into()
        )
    );
    for _ in 0..10 {
        assert_eq!(
            send(&app, "GET", "/status/200:0,500:1", None, "").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let (status, body) = send(&app, "GET", "/status/700", None, "").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "700: 700 is not a status from 200 to 599\n"
        )
    );

    let started = Instant::now();
    assert_eq!(
        send(&app, "GET", "/delay/150ms", None, "").await,
        (StatusCode::OK, "waited 150ms\n".into())
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    let (status, body) = send(&app, "GET", "/delay/1h", None, "").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "1h is above the longest delay, 30s (--max-fault-delay)\n"
        )
    );
    assert_eq!(
        send(&app, "GET", "/delay/soon", None, "").await.0,
        StatusCode::BAD_REQUEST
    );

    let m = samples(&state.metrics.text(TextFormat::Prometheus));
    assert_eq!(
        sample(
            &m,
            r#"http_requests_total{method="GET",route="/status/{codes}",status="500"}"#
        ),
        10.0
    );
    assert_eq!(
        sample(
            &m,
            r#"http_requests_total{method="GET",route="/status/{codes}",status="503"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"http_requests_total{method="GET",route="/delay/{duration}",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&m, "request_count_total"),
        0.0,
        "faults are not the seed's requests"
    );
}

#[tokio::test]
async fn the_running_service_logs_every_change_and_never_the_token() {
    let service = Service::start(&["--users-interval", "100ms", "--admin-token", TOKEN]);
    let client = reqwest::Client::new();

    let response = client
        .put(service.metrics_url("/admin/knobs"))
        .bearer_auth(TOKEN)
        .body(r#"{"users_min": 7, "users_max": 7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let changed = service.wait_for_log(|e| e["message"] == "knobs changed", Duration::from_secs(2));
    assert_eq!(changed["changes"], "users_min 10 -> 7, users_max 50 -> 7");
    // The users gauge follows at its next update.
    let deadline = Instant::now() + Duration::from_secs(3);
    while sample(
        &scrape(&service.metrics_url("/metrics")).await,
        "current_users",
    ) != 7.0
    {
        assert!(Instant::now() < deadline, "current_users never became 7");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wrong = client
        .get(service.metrics_url("/admin/knobs"))
        .bearer_auth("x".repeat(20))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    service.wait_for_log(
        |e| e["message"] == "admin request without the right token",
        Duration::from_secs(2),
    );
    let logs = serde_json::to_string(&service.logs()).unwrap();
    assert!(!logs.contains(TOKEN), "the token is in the logs");
}
