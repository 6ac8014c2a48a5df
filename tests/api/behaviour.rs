//! The behaviour's knobs as a user meets them: the latency distributions and the seed.

use crate::helpers::{Service, get, sample, scrape};

/// Sends the same sequence of requests to `service`, one at a time: the statuses of twenty
/// to /simulate_error, then the drawn processing time of ten to / (the histogram's sum, which
/// adds up the draws, where the summary adds up the measured waits).
async fn the_same_requests(service: &Service) -> (Vec<u16>, f64) {
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&service.app_url("/simulate_error")).await.0);
    }
    for _ in 0..10 {
        assert_eq!(get(&service.app_url("/")).await.0, 200);
    }
    let m = scrape(&service.metrics_url("/metrics")).await;
    (statuses, sample(&m, "request_duration_seconds_sum"))
}

#[tokio::test]
async fn the_same_seed_gives_the_same_delays_and_errors() {
    let args = |seed| {
        vec![
            "--seed".to_owned(),
            seed,
            "--max-delay".to_owned(),
            "50ms".to_owned(),
            "--delay-distribution".to_owned(),
            "lognormal:5ms:40ms".to_owned(),
            "--error-rate".to_owned(),
            "0.5".to_owned(),
            // Its own draws at its own times: they must not shift the requests'.
            "--users-interval".to_owned(),
            "10ms".to_owned(),
        ]
    };
    let start = |seed: &str| {
        let args = args(seed.to_owned());
        Service::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (a, b, other) = (start("42"), start("42"), start("43"));

    let (a, b, other) = (
        the_same_requests(&a).await,
        the_same_requests(&b).await,
        the_same_requests(&other).await,
    );

    assert_eq!(a, b, "the same seed, the same requests");
    assert!(a.0.contains(&500) && a.0.contains(&200), "{a:?}");
    assert_ne!(a, other, "another seed, other draws");
}

#[tokio::test]
async fn the_distribution_is_a_knob() {
    let token = "behaviour-test-token";
    let service = Service::start(&["--admin-token", token, "--max-delay", "10ms"]);
    let client = reqwest::Client::new();
    let put = |body: &'static str| {
        client
            .put(service.metrics_url("/admin/knobs"))
            .bearer_auth(token)
            .body(body)
            .send()
    };

    let bad = put(r#"{"delay_distribution": "bimodal:20ms:2s"}"#)
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let reason = bad.text().await.unwrap();
    assert!(
        reason.starts_with(
            "delay_distribution: \"bimodal:20ms:2s\": not a distribution; expected uniform"
        ),
        "{reason}"
    );
    assert_eq!(reason.lines().count(), 1, "{reason}");

    let good = put(r#"{"delay_distribution": "bimodal:1ms:8ms:0.5"}"#)
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    let knobs: serde_json::Value = good.json().await.unwrap();
    assert_eq!(knobs["delay_distribution"], "bimodal:1ms:8ms:0.5");
    assert_eq!(get(&service.app_url("/")).await.0, 200);
    let logged = service.wait_for_log(
        |line| line["message"] == "knobs changed",
        std::time::Duration::from_secs(5),
    );
    assert_eq!(
        logged["changes"],
        "delay_distribution uniform -> bimodal:1ms:8ms:0.5"
    );
}
