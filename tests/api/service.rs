//! Black-box tests: the real binary, over real sockets, as a user or Prometheus sees it.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::compose::poll;
use crate::helpers::{
    BIN, Lines, Service, get, get_openmetrics, pipe, promtool, sample, scrape, signal,
};

#[tokio::test]
async fn serves_the_seeds_endpoints_on_both_listeners() {
    let service = Service::start(&["--max-delay", "50ms"]);

    assert_eq!(
        get(&service.app_url("/")).await,
        (200, "Success response with status code OK".into())
    );
    let (status, _) = get(&service.app_url("/simulate_error")).await;
    assert!(status == 200 || status == 500);

    for url in [service.metrics_url("/metrics"), service.app_url("/metrics")] {
        let m = scrape(&url).await;
        assert_eq!(sample(&m, "request_count_total"), 2.0, "{url}");
        assert_eq!(sample(&m, "request_duration_seconds_count"), 1.0, "{url}");
    }
    let (content_type, body) = get_openmetrics(&service.metrics_url("/metrics")).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn logs_what_the_seed_logs() {
    let service = Service::start(&[
        "--max-delay",
        "10ms",
        "--error-rate",
        "1",
        "--users-interval",
        "50ms",
    ]);

    get(&service.app_url("/")).await;
    get(&service.app_url("/simulate_error")).await;

    let wait = Duration::from_secs(5);
    let processed = service.wait_for_log(|e| e["message"] == "request processed", wait);
    assert_eq!(processed["request_count"], 1);
    assert!(processed["processing_time"].as_f64().unwrap() <= 0.010);
    let error = service.wait_for_log(|e| e["message"] == "simulated error occurred", wait);
    assert_eq!(
        (error["level"].as_str(), &error["total_errors"]),
        (Some("ERROR"), &1.into())
    );
    // The users gauge moves, and says so, at every interval.
    let deadline = Instant::now() + wait;
    while service
        .logs()
        .iter()
        .filter(|e| e["message"] == "current active users")
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "fewer than 3 user updates logged in {wait:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let users = scrape(&service.metrics_url("/metrics")).await;
    assert!((10.0..=50.0).contains(&sample(&users, "current_users")));
}

#[tokio::test]
async fn the_request_line_in_text_reads_as_the_event_and_follows_rust_log() {
    // Off a terminal, the text format writes the line of a request to `/` straight to the log
    // writer (telemetry::request_processed); it must read as the event does, and `RUST_LOG`
    // must turn it off as it would the event.
    let traces = [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00000000000000000000000000000001",
        "fedcba98765432100123456789abcdef",
    ];
    for rust_log in ["info", "info,demo_service::routes::simulate=warn"] {
        let mut service = Lines::spawn(
            Command::new(BIN)
                .args([
                    "serve",
                    "--app-addr",
                    "127.0.0.1:0",
                    "--metrics-addr",
                    "127.0.0.1:0",
                ])
                .args(["--max-delay", "0s"])
                .env("RUST_LOG", rust_log),
        );
        let app = poll(
            "the service logs `listening app=...`",
            Duration::from_secs(10),
            || {
                let app = service.lines().iter().find_map(|l| {
                    let app = l.split(" listening app=").nth(1)?.split(' ').next()?;
                    app.parse::<std::net::SocketAddr>().ok()
                });
                async move { app }
            },
        )
        .await;
        let client = reqwest::Client::new();
        for trace in traces {
            let response = client
                .get(format!("http://{app}/"))
                .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        signal(service.child.id(), "TERM");
        let (status, lines) = service.finish();
        assert!(status.success(), "{status}");

        let processed: Vec<&str> = lines
            .iter()
            .filter(|l| l.contains("request processed"))
            .map(|l| {
                let (stamp, rest) = l.split_once(' ').unwrap();
                assert!(humantime::parse_rfc3339(stamp).is_ok(), "{l}");
                rest
            })
            .collect();
        let expected: Vec<String> = match rust_log {
            "info" => (1..)
                .zip(traces)
                .map(|(count, trace)| {
                    format!(
                        " INFO demo_service::routes::simulate: request processed \
                         request_count={count} processing_time=0.0 trace_id={trace}"
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        assert_eq!(processed, expected, "RUST_LOG={rust_log}: {lines:#?}");
        // The rest of the log is as it was: the service said it was listening, and it drained.
        assert!(lines.iter().any(|l| l.contains("drained")), "{lines:#?}");
    }
}

#[tokio::test]
async fn promtool_finds_nothing_to_criticise() {
    let service = Service::start(&["--max-delay", "10ms"]);
    for path in ["/", "/simulate_error", "/nope"] {
        get(&service.app_url(path)).await;
    }
    let (_, exposition) = get(&service.metrics_url("/metrics")).await;

    let out = pipe(
        Command::new(promtool()).args(["check", "metrics"]),
        &exposition,
    );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.is_empty(),
        "promtool check metrics:\n{report}"
    );
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight_and_exits_zero() {
    let mut service = Service::start(&["--min-delay", "4s", "--max-delay", "4s"]);
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..50)
        .map(|_| tokio::spawn(client.get(service.app_url("/")).send()))
        .collect();
    in_flight_reaches(&service, 50).await;

    service.signal("TERM");
    let begun = shutdown_begins(&service);
    assert_eq!(
        begun["in_flight"], 50,
        "the drain began with every request in flight"
    );

    // Draining: not ready, no new connections on the app listener, metrics still served.
    assert_eq!(get(&service.metrics_url("/readyz")).await.0, 503);
    refuses_connections(service.app);
    let during = scrape(&service.metrics_url("/metrics")).await;
    assert_eq!(sample(&during, "request_count_total"), 50.0);

    for request in requests {
        let response = request
            .await
            .unwrap()
            .expect("an in-flight request was dropped");
        assert_eq!(response.status(), 200);
    }
    let status = service.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    service.wait_for_log(
        |e| e["message"] == "drained: every request answered",
        Duration::from_secs(1),
    );
}

#[tokio::test]
async fn the_drain_waits_for_the_work_of_a_client_that_left() {
    let mut service = Service::start(&["--min-delay", "2s", "--max-delay", "2s"]);
    let mut client = TcpStream::connect(service.app).unwrap();
    std::io::Write::write_all(&mut client, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    in_flight_reaches(&service, 1).await;

    drop(client);
    service.signal("TERM");
    let status = service.wait(Duration::from_secs(10));

    assert_eq!(status.code(), Some(0));
    let messages: Vec<_> = service
        .logs()
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .filter(|m| m == "request processed" || m.starts_with("drained"))
        .collect();
    assert_eq!(
        messages,
        ["request processed", "drained: every request answered"]
    );
}

#[tokio::test]
async fn a_second_signal_stops_at_once() {
    let mut service = Service::start(&["--min-delay", "30s", "--max-delay", "30s"]);
    let pending = tokio::spawn(reqwest::get(service.app_url("/")));
    in_flight_reaches(&service, 1).await;

    let started = Instant::now();
    service.signal("INT");
    shutdown_begins(&service);
    service.signal("INT");
    let status = service.wait(Duration::from_secs(5));

    assert_eq!(status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not wait for the 30s request"
    );
    pending.abort();
}

#[tokio::test]
async fn the_drain_is_bounded_by_the_shutdown_timeout() {
    let mut service = Service::start(&[
        "--min-delay",
        "30s",
        "--max-delay",
        "30s",
        "--shutdown-timeout",
        "300ms",
    ]);
    let pending = tokio::spawn(reqwest::get(service.app_url("/")));
    in_flight_reaches(&service, 1).await;

    service.signal("TERM");
    let status = service.wait(Duration::from_secs(5));

    assert_eq!(
        status.code(),
        Some(1),
        "a drain that times out is a failure"
    );
    service.wait_for_log(
        |e| e["message"] == "shutdown timed out" && e["in_flight"] == 1,
        Duration::from_secs(1),
    );
    pending.abort();
}

/// Waits until the service has `n` requests in flight, as its own gauge says.
async fn in_flight_reaches(service: &Service, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = scrape(&service.metrics_url("/metrics")).await;
        if sample(&m, "http_requests_in_flight") == f64::from(n) {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} requests in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the service logs that its shutdown has begun; returns that log event.
fn shutdown_begins(service: &Service) -> serde_json::Value {
    let begun = |e: &serde_json::Value| e["message"].as_str().unwrap().starts_with("shutting down");
    service.wait_for_log(begun, Duration::from_secs(2))
}

/// Waits until `addr` refuses connections; panics after two seconds.
fn refuses_connections(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_configuration_is_one_line_and_a_nonzero_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    /// Arguments, environment, exit code, and a part of the one line on stderr.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (&["--error-rate", "1.5"], &[], 2, "invalid value '1.5' for '--error-rate <ERROR_RATE>': 1.5 is outside [0, 1]"),
        (&["--error-rate", "often"], &[], 2, "\"often\" is not a number"),
        (&[], &[("DEMO_SERVICE_ERROR_RATE", "-1")], 2, "-1 is outside [0, 1]"),
        (&["--min-delay", "6s"], &[], 2, "error: --min-delay (6s) is above --max-delay (5s)"),
        (&["--max-delay", "1.5"], &[], 2, "'--max-delay <MAX_DELAY>': time unit needed"),
        (&["--max-delay", "soon"], &[], 2, "'--max-delay <MAX_DELAY>'"),
        (&["--users-min", "60"], &[], 2, "error: --users-min (60) is above --users-max (50)"),
        (&["--users-max=-1"], &[], 2, "'--users-max <USERS_MAX>'"),
        (&["--users-interval", "0s"], &[], 2, "must be above zero"),
        (&["--app-addr", "localhost"], &[], 2, "'--app-addr <APP_ADDR>': \"localhost\" is not an address and a port: give IP:PORT, e.g. 0.0.0.0:5000"),
        (&["--app-addr", "nowhere.invalid:5000"], &[], 2, "cannot resolve \"nowhere.invalid\""),
        (&[], &[("DEMO_SERVICE_METRICS_ADDR", ":8000")], 2, "\":8000\" is not an address and a port"),
        (&["--log-format", "xml"], &[], 2, "invalid value 'xml' for '--log-format <LOG_FORMAT>' (one of: text, json)"),
        (&["--nope"], &[], 2, "unexpected argument '--nope' found; see 'demo-service --help'"),
        (&["--error-rat", "0.5"], &[], 2, "(did you mean '--error-rate'?); see 'demo-service --help'"),
        (&["--error-rate", "-0.5"], &[], 2, "-0.5 is outside [0, 1]"),
        (&["healthcheck", "--nope"], &[], 2, "see 'demo-service healthcheck --help'"),
        (&["--header-timeout", "0s"], &[], 2, "must be above zero"),
        (&["--admin-token", "short"], &[], 2, "must be at least 16 characters"),
        (&[], &[("DEMO_SERVICE_ADMIN_TOKEN", "has spaces in it, sadly")], 2, "must not contain spaces"),
        (&["--max-fault-delay", "forever"], &[], 2, "'--max-fault-delay <MAX_FAULT_DELAY>'"),
        (&["--delay-distribution", "gaussian"], &[], 2, "\"gaussian\": not a distribution; expected uniform, lognormal:MEDIAN:P99 (e.g. lognormal:250ms:3s) or bimodal:FAST:SLOW:SLOW_SHARE (e.g. bimodal:20ms:2s:0.1)"),
        (&[], &[("DEMO_SERVICE_DELAY_DISTRIBUTION", "lognormal:3s:1s")], 2, "the p99 above the median; expected uniform"),
        (&["--seed", "soon"], &[], 2, "'--seed <SEED>': \"soon\" is not a seed: give a whole number from 0 to 18446744073709551615"),
        (&[], &[("RUST_LOG", "info,[")], 2, "error: RUST_LOG:"),
        (&["--app-addr", &taken], &[], 1, "(--app-addr): Address already in use"),
    ];
    for (args, env, code, message) in cases {
        let out = Command::new(BIN)
            .env("DEMO_SERVICE_APP_ADDR", "127.0.0.1:0")
            .env("DEMO_SERVICE_METRICS_ADDR", "127.0.0.1:0")
            .args(*args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?} {env:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?} {env:?}: not one line:\n{stderr}"
        );
        assert!(
            stderr.contains(message),
            "{args:?} {env:?}: {stderr:?} lacks {message:?}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn help_lists_every_knob_with_its_environment_variable() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for knob in [
        "app-addr",
        "metrics-addr",
        "min-delay",
        "max-delay",
        "error-rate",
        "users-min",
        "users-max",
        "users-interval",
        "shutdown-timeout",
        "log-format",
        "header-timeout",
        "admin-token",
        "max-fault-delay",
    ] {
        let env = format!("DEMO_SERVICE_{}", knob.to_uppercase().replace('-', "_"));
        assert!(
            help.contains(&format!("--{knob}")),
            "--{knob} missing from --help"
        );
        assert!(
            help.contains(&format!("[env: {env}")),
            "{env} missing from --help"
        );
    }
}

#[tokio::test]
async fn healthcheck_says_whether_the_service_is_ready() {
    let healthcheck_of = |metrics_addr: &str, path: &str| {
        let out = Command::new(BIN)
            .args([
                "healthcheck",
                "--metrics-addr",
                metrics_addr,
                "--path",
                path,
                "--timeout",
                "1s",
            ])
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), printed)
    };
    let healthcheck = |metrics_addr: &str| healthcheck_of(metrics_addr, "/readyz");
    let service = Service::start(&["--min-delay", "30s", "--max-delay", "30s"]);
    let addr = service.metrics.to_string();

    let (code, printed) = healthcheck(&addr);
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(
        printed,
        format!("ok: http://{addr}/readyz answered 200 OK\n")
    );
    // Liveness is asked, and said, as such.
    let (code, printed) = healthcheck_of(&addr, "/healthz");
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(
        printed,
        format!("ok: http://{addr}/healthz answered 200 OK\n")
    );

    // Draining: not ready. A request in flight keeps the drain going.
    let app = service.app;
    std::thread::spawn(move || {
        use std::io::Write;
        let mut stream = TcpStream::connect(app).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_secs(60));
    });
    in_flight_reaches(&service, 1).await;
    service.signal("TERM");
    shutdown_begins(&service);
    let (code, printed) = healthcheck(&addr);
    assert_eq!(code, Some(1));
    assert_eq!(
        printed,
        format!("error: http://{addr}/readyz: 503 Service Unavailable\n")
    );
    drop(service);

    // Nothing there at all.
    let (code, printed) = healthcheck(&addr);
    assert_eq!(code, Some(1));
    assert_eq!(printed.lines().count(), 1, "{printed}");
    assert!(
        printed.starts_with(&format!("error: http://{addr}/readyz: ")),
        "{printed}"
    );
}
