//! The catalogue of faults, knob by knob, against the running service: set it, see it in its
//! metric, clear it. Also their bounds, and bad input to any of them.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::{BIN, Service, get, sample, scrape};

const TOKEN: &str = "faults-test-token-0123";

/// A running service with the admin API on, and a client for it.
pub struct Admin {
    pub service: Service,
    client: reqwest::Client,
}

impl Admin {
    /// `demo-service serve` with the admin API on, `/` answering at once, and `args`.
    pub fn start(args: &[&str]) -> Admin {
        let mut all = vec!["--admin-token", TOKEN, "--max-delay", "0s"];
        all.extend_from_slice(args);
        Admin {
            service: Service::start(&all),
            client: reqwest::Client::new(),
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: &str) -> (u16, String) {
        let response = self
            .client
            .request(method, self.service.metrics_url(path))
            .bearer_auth(TOKEN)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// GET of an admin path, as JSON; fails the test unless it answers 200.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.send(Method::GET, path, "").await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// PUT /admin/knobs; fails the test unless it is taken.
    pub async fn set(&self, json: &str) -> serde_json::Value {
        let (status, body) = self.send(Method::PUT, "/admin/knobs", json).await;
        assert_eq!(status, 200, "{json}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// DELETE /admin/knobs/NAME; fails the test unless it is taken.
    async fn clear(&self, name: &str) -> serde_json::Value {
        let (status, body) = self
            .send(Method::DELETE, &format!("/admin/knobs/{name}"), "")
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        scrape(&self.service.metrics_url("/metrics")).await
    }

    async fn active(&self, fault: &str) -> f64 {
        sample(
            &self.metrics().await,
            &format!(r#"demo_service_fault_active{{fault="{fault}"}}"#),
        )
    }
}

/// Polls `check` every 100 ms until it holds; fails with `what` after `within`.
async fn until<F: Future<Output = bool>>(what: &str, within: Duration, check: impl Fn() -> F) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn not_ready_turns_readyz_to_503_and_leaves_healthz_alone() {
    let admin = Admin::start(&[]);
    assert_eq!(sample(&admin.metrics().await, "demo_service_ready"), 1.0);

    admin.set(r#"{"not_ready": true}"#).await;

    assert_eq!(
        get(&admin.service.metrics_url("/readyz")).await,
        (503, "not ready: the not_ready fault is on".to_owned())
    );
    assert_eq!(get(&admin.service.app_url("/readyz")).await.0, 503);
    assert_eq!(get(&admin.service.metrics_url("/healthz")).await.0, 200);
    assert_eq!(sample(&admin.metrics().await, "demo_service_ready"), 0.0);
    assert_eq!(admin.active("not_ready").await, 1.0);
    // Still scraped, still serving: not ready is not down.
    assert_eq!(get(&admin.service.app_url("/")).await.0, 200);

    assert_eq!(admin.clear("not_ready").await["not_ready"], false);
    assert_eq!(get(&admin.service.metrics_url("/readyz")).await.0, 200);
    assert_eq!(sample(&admin.metrics().await, "demo_service_ready"), 1.0);
    assert_eq!(admin.active("not_ready").await, 0.0);
}

#[tokio::test]
async fn the_memory_leak_grows_to_its_cap_and_no_further_and_lets_go() {
    let admin = Admin::start(&["--memory-leak-cap", "24MiB"]);
    let rss =
        |m: &std::collections::BTreeMap<String, f64>| sample(m, "process_resident_memory_bytes");
    let before = rss(&admin.metrics().await);

    admin.set(r#"{"memory_leak": "16MiB/s"}"#).await;
    let cap = 24.0 * 1024.0 * 1024.0;
    until("the leak at its cap", Duration::from_secs(10), || async {
        sample(&admin.metrics().await, "demo_service_leaked_bytes") == cap
    })
    .await;
    let m = admin.metrics().await;
    assert!(
        rss(&m) - before >= 0.9 * cap,
        "resident memory grew from {before} to {}",
        rss(&m)
    );
    assert_eq!(admin.active("memory_leak").await, 1.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sample(&admin.metrics().await, "demo_service_leaked_bytes"),
        cap,
        "past the cap"
    );

    admin.clear("memory_leak").await;
    until("the leak let go", Duration::from_secs(5), || async {
        sample(&admin.metrics().await, "demo_service_leaked_bytes") == 0.0
    })
    .await;
    // The allocator gives it back to the system within its decay time (10 s).
    until(
        "resident memory back down",
        Duration::from_secs(30),
        || async { rss(&admin.metrics().await) < before + 0.5 * cap },
    )
    .await;
}

#[tokio::test]
async fn the_cpu_burn_spends_cpu_on_each_request() {
    let admin = Admin::start(&[]);
    let cpu = |m: &std::collections::BTreeMap<String, f64>| sample(m, "process_cpu_seconds_total");
    let before = admin.metrics().await;

    admin.set(r#"{"cpu_burn": "50ms"}"#).await;
    for _ in 0..8 {
        assert_eq!(get(&admin.service.app_url("/")).await.0, 200);
    }

    let after = admin.metrics().await;
    let burned = sample(&after, "demo_service_cpu_burn_seconds_total");
    assert!(
        (0.4..0.6).contains(&burned),
        "burned {burned} s for 8 × 50 ms"
    );
    assert!(
        cpu(&after) - cpu(&before) >= 0.4,
        "{} -> {}",
        cpu(&before),
        cpu(&after)
    );
    assert_eq!(admin.active("cpu_burn").await, 1.0);
    admin.clear("cpu_burn").await;
    get(&admin.service.app_url("/")).await;
    assert_eq!(
        sample(
            &admin.metrics().await,
            "demo_service_cpu_burn_seconds_total"
        ),
        burned
    );
}

#[tokio::test]
async fn a_failing_dependency_makes_root_answer_503_and_shows_in_its_own_series() {
    let admin = Admin::start(&[]);
    let calls = |m: &std::collections::BTreeMap<String, f64>, outcome: &str| {
        sample(
            m,
            &format!(r#"dependency_requests_total{{dependency="database",outcome="{outcome}"}}"#),
        )
    };
    // By default: called, at once, fine.
    assert_eq!(get(&admin.service.app_url("/")).await.0, 200);
    let m = admin.metrics().await;
    assert_eq!(calls(&m, "ok"), 1.0);
    assert_eq!(
        calls(&m, "down"),
        0.0,
        "every outcome's series from the start"
    );

    admin.set(r#"{"dependency_down": true}"#).await;
    assert_eq!(
        get(&admin.service.app_url("/")).await,
        (
            503,
            "Service unavailable: the dependency database is down".to_owned()
        )
    );
    admin
        .set(r#"{"dependency_down": false, "dependency_error_rate": 1, "dependency_latency": "100ms"}"#)
        .await;
    let started = Instant::now();
    assert_eq!(
        get(&admin.service.app_url("/")).await,
        (
            503,
            "Service unavailable: the dependency database answered with an error".to_owned()
        )
    );
    assert!(started.elapsed() >= Duration::from_millis(100));

    let m = admin.metrics().await;
    assert_eq!((calls(&m, "down"), calls(&m, "error")), (1.0, 1.0));
    assert_eq!(
        sample(&m, r#"response_code_count_total{status_code="503"}"#),
        2.0
    );
    assert_eq!(sample(&m, "request_count_total"), 3.0);
    assert_eq!(
        sample(
            &m,
            r#"dependency_request_duration_seconds_sum{dependency="database"}"#
        ),
        0.1
    );
    assert_eq!(admin.active("dependency").await, 1.0);
    // DELETE /admin/knobs: every knob as at start.
    let (status, body) = admin.send(Method::DELETE, "/admin/knobs", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&admin.service.app_url("/")).await.0, 200);
    assert_eq!(admin.active("dependency").await, 0.0);
}

#[tokio::test]
async fn faults_in_the_scrape_path_delay_and_hide_and_add_series() {
    let admin = Admin::start(&[]);
    let exposition = || async { get(&admin.service.metrics_url("/metrics")).await.1 };

    admin.set(r#"{"metrics_delay": "400ms"}"#).await;
    let started = Instant::now();
    exposition().await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(admin.active("metrics_delay").await, 1.0);
    admin.clear("metrics_delay").await;

    admin
        .set(r#"{"hide_family": "request_duration_seconds"}"#)
        .await;
    let text = exposition().await;
    let lines_of = |text: &str, family: &str| {
        text.lines()
            .filter(|l| l.starts_with(family) || l.starts_with(&format!("# HELP {family} ")))
            .count()
    };
    assert_eq!(lines_of(&text, "request_duration_seconds"), 0, "{text}");
    assert!(text.contains("request_processing_seconds_count"));
    admin.clear("hide_family").await;
    assert!(
        exposition()
            .await
            .contains("request_duration_seconds_bucket")
    );

    admin.set(r#"{"cardinality": 250}"#).await;
    assert_eq!(
        exposition()
            .await
            .matches("demo_service_user_sessions{")
            .count(),
        250
    );
    assert_eq!(admin.active("cardinality").await, 1.0);
    admin.clear("cardinality").await;
    assert!(!exposition().await.contains("demo_service_user_sessions{"));
}

#[tokio::test]
async fn reset_counters_is_a_restart_without_one_which_rate_takes_and_delta_does_not() {
    let admin = Admin::start(&[]);
    let targets = crate::helpers::targets_file(&[admin.service.metrics]);
    let prometheus = crate::helpers::Prometheus::start(|addr| {
        crate::helpers::prometheus_config(targets.path(), addr, None, None)
    })
    .await;
    for _ in 0..40 {
        get(&admin.service.app_url("/simulate_error")).await;
    }
    // Prometheus has the 40.
    let query = |expr: &'static str| {
        let prometheus = &prometheus;
        async move {
            prometheus
                .query(expr)
                .await
                .first()
                .map(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        }
    };
    until(
        "the 40 requests scraped",
        Duration::from_secs(10),
        || async { query(r#"request_count_total{job="flask_app"}"#).await == Some(40.0) },
    )
    .await;
    // The window read below starts here: its first samples, two or more, are all 40.
    let mark = Instant::now();
    until("two scrapes of the 40", Duration::from_secs(10), || async {
        let window = mark.elapsed().as_millis().max(1);
        let samples = prometheus
            .query(&format!(
                r#"count_over_time(request_count_total{{job="flask_app"}}[{window}ms])"#
            ))
            .await;
        samples
            .first()
            .is_some_and(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap() >= 2.0)
    })
    .await;
    let before = admin.metrics().await;

    let (status, body) = admin.send(Method::POST, "/admin/reset-counters", "").await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "every counter of the service is back at zero, as after a restart\n"
        )
    );

    let after = admin.metrics().await;
    assert_eq!(sample(&after, "request_count_total"), 0.0);
    assert_eq!(sample(&after, "request_duration_seconds_count"), 0.0);
    assert!(
        !after
            .keys()
            .any(|k| k.starts_with("response_code_count_total{")),
        "{after:?}"
    );
    assert!(
        !after.keys().any(|k| k.starts_with("http_requests_total{")),
        "{after:?}"
    );
    assert!(sample(&after, "demo_service_counters_reset_timestamp_seconds") > 0.0);
    assert!(
        sample(&after, "request_count_created") > sample(&before, "request_count_created"),
        "created anew"
    );
    assert_eq!(
        sample(&after, "process_start_time_seconds"),
        sample(&before, "process_start_time_seconds"),
        "no restart"
    );
    for _ in 0..10 {
        get(&admin.service.app_url("/simulate_error")).await;
    }
    until(
        "the 10 after the reset scraped",
        Duration::from_secs(10),
        || async { query(r#"request_count_total{job="flask_app"}"#).await == Some(10.0) },
    )
    .await;
    // Over the reset, from 40 (its first sample: the 40 came before it) to 0, then 10:
    // increase() takes the drop for a reset and counts the 10 after it (extrapolated to the
    // window's edges, so somewhat more); delta() takes the drop at face value and falls by 30,
    // which no number of requests can do.
    let window = mark.elapsed().as_millis();
    let over = |function: &str| {
        format!(r#"{function}(request_count_total{{job="flask_app"}}[{window}ms])"#)
    };
    let value = |expr: String| {
        let prometheus = &prometheus;
        async move {
            prometheus.query(&expr).await[0]["value"][1]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        }
    };
    let (increase, delta) = (value(over("increase")).await, value(over("delta")).await);
    assert!(increase >= 10.0, "increase {increase}");
    assert!(delta < 0.0, "delta {delta}");
}

#[tokio::test]
async fn bad_input_to_a_knob_is_one_line_and_changes_nothing() {
    let admin = Admin::start(&["--cardinality", "10", "--error-rate", "0.3"]);
    let before = admin.send(Method::GET, "/admin/knobs", "").await.1;
    for (json, says) in [
        (
            r#"{"memory_leak": "1GiB/s"}"#,
            "memory_leak 1GiB/s is above the cap of 256MiB (--memory-leak-cap)",
        ),
        (
            r#"{"memory_leak": "-1MiB/s"}"#,
            "memory_leak: \"-1MiB/s\" is not a rate of bytes: give e.g. 1MiB/s, or 0",
        ),
        (
            r#"{"cpu_burn": "2s"}"#,
            "cpu_burn 2s is above --max-cpu-burn (1s)",
        ),
        (
            r#"{"dependency_error_rate": -0.5}"#,
            "dependency_error_rate -0.5 is outside [0, 1]",
        ),
        (
            r#"{"metrics_delay": "1h"}"#,
            "metrics_delay 1h is above --max-fault-delay (30s)",
        ),
        (
            r#"{"hide_family": "up"}"#,
            "hide_family: the exposition has no family \"up\"",
        ),
        (
            r#"{"cardinality": 10001, "error_rate": 0.9}"#,
            "cardinality 10001 is above --max-cardinality (10000)",
        ),
        (
            r#"{"cardinality": -1}"#,
            "not a change of the knobs: invalid value",
        ),
        (
            r#"{"dependency_down": "yes"}"#,
            "not a change of the knobs: invalid type",
        ),
        (
            r#"{"leak": "1MiB/s"}"#,
            "not a change of the knobs: unknown field `leak`",
        ),
    ] {
        let (status, body) = admin.send(Method::PUT, "/admin/knobs", json).await;
        assert_eq!(status, 400, "{json}: {body}");
        assert!(body.starts_with(says), "{json}: {body}");
        assert_eq!(body.lines().count(), 1, "{json}: {body}");
    }
    let (status, body) = admin.send(Method::DELETE, "/admin/knobs/leak", "").await;
    assert_eq!((status, body.lines().count()), (400, 1), "{body}");
    assert!(
        body.starts_with("no knob is called \"leak\"; the knobs: error_rate,"),
        "{body}"
    );
    assert_eq!(admin.send(Method::GET, "/admin/knobs", "").await.1, before);
    // Cleared, a fault is off, even one turned on at start; another knob goes back to its
    // value at start.
    admin.set(r#"{"cardinality": 20, "error_rate": 0.9}"#).await;
    assert_eq!(admin.clear("cardinality").await["cardinality"], 0);
    assert_eq!(admin.clear("error_rate").await["error_rate"], 0.3);
}

#[test]
fn faults_at_start_are_flags_within_their_bounds() {
    #[rustfmt::skip]
    let cases: &[(&[&str], &str)] = &[
        (&["--memory-leak", "1GiB/s"], "--memory-leak 1GiB/s is above the cap of 256MiB (--memory-leak-cap): it would reach it within a second"),
        (&["--memory-leak", "lots"], "'--memory-leak <MEMORY_LEAK>': \"lots\" is not a rate of bytes: give e.g. 1MiB/s, or 0"),
        (&["--cpu-burn", "5s"], "--cpu-burn 5s is above --max-cpu-burn (1s)"),
        (&["--hide-family", "nope"], "--hide-family: the exposition has no family \"nope\""),
        (&["--cardinality", "20000"], "--cardinality 20000 is above --max-cardinality (10000)"),
        (&["--dependency-error-rate", "2"], "2 is outside [0, 1]"),
        (&["--metrics-delay", "1m"], "--metrics-delay 1m is above --max-fault-delay (30s)"),
    ];
    for (args, message) in cases {
        let out = std::process::Command::new(BIN)
            .args(["--app-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_fault_set_by_flag_is_on_from_the_start() {
    let service = Service::start(&["--dependency-down", "--not-ready"]);
    assert_eq!(get(&service.app_url("/")).await.0, 503);
    assert_eq!(get(&service.metrics_url("/readyz")).await.0, 503);
    let m = scrape(&service.metrics_url("/metrics")).await;
    assert_eq!(
        sample(&m, r#"demo_service_fault_active{fault="dependency"}"#),
        1.0
    );
}
