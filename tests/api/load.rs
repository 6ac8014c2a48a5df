//! The load generator against the real service: what it says it sent and received is what the
//! service counted, at the rate and in the mix it was asked for.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::compose::poll;
use crate::helpers::{
    BIN, Daemon, Generator, Service, count, free_port, load, prometheus_config, query, sample,
    scrape, targets_file,
};

/// Checks a run's account of its `due` requests: each was sent or counted as unsent, at most
/// `max_unsent` of them unsent (those due while the generator was held back at the very end,
/// on a contended machine), and each one sent was answered. How many were sent.
fn all_sent_or_unsent(summary: &Value, due: f64, max_unsent: f64) -> f64 {
    let (sent, unsent) = (count(&summary["sent"]), count(&summary["unsent"]));
    assert_eq!(sent + unsent, due, "{due} due: sent or unsent; {summary}");
    assert!(
        unsent <= max_unsent,
        "{unsent} requests due and not sent; {summary}"
    );
    assert_eq!(summary["answered"], summary["sent"], "{summary}");
    sent
}

#[tokio::test]
async fn what_it_reports_is_what_the_service_counted() {
    let service = Service::start(&["--max-delay", "0s"]);

    let summary = load(&service, &["--rate", "300", "--duration", "3s"]);

    // 900 due in 3 s at 300/s; on a contended machine, 6 of them were left unsent.
    let sent = all_sent_or_unsent(&summary, 900.0, 30.0);
    assert_eq!(
        (&summary["failed"], &summary["unanswered"]),
        (&0.into(), &0.into())
    );
    let m = scrape(&service.metrics_url("/metrics")).await;
    assert_eq!(sample(&m, "request_count_total"), sent);
    for code in ["200", "500"] {
        let counted = sample(
            &m,
            &format!(r#"response_code_count_total{{status_code="{code}"}}"#),
        );
        assert_eq!(
            counted,
            count(&summary["status"][code]),
            "responses with {code}"
        );
    }
    assert_eq!(
        sample(&m, "error_count_total"),
        count(&summary["status"]["500"])
    );
}

#[test]
fn an_open_loop_keeps_its_rate_and_its_duration() {
    let service = Service::start(&["--max-delay", "0s"]);

    let started = Instant::now();
    let summary = load(&service, &["--rate", "100", "--duration", "4s"]);
    let took = started.elapsed();

    // Every request due is sent, or counted as due and not sent. The requests left unsent are
    // those due while the generator was held back at the very end: on a shared machine, beside
    // the compose tests, that has been 30 ms (3 of 1,000 at 250/s) and 110 ms (28 of 1,000).
    // At 100/s, 20 requests is 200 ms of the generator not running, and the rate stays within
    // 6 %: a generator that drifts from its schedule is still caught.
    let sent = count(&summary["sent"]);
    let unsent = count(&summary["unsent"]);
    assert!(
        (sent + unsent - 400.0).abs() <= 8.0,
        "sent {sent} and left {unsent} in 4 s at 100/s"
    );
    assert!(unsent <= 20.0, "{unsent} requests due and not sent");
    let rate = summary["rate"].as_f64().unwrap();
    assert!((rate - 100.0).abs() <= 6.0, "achieved {rate}/s, not 100/s");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(7),
        "the run took {took:?}"
    );
}

#[test]
fn an_overloaded_open_loop_ends_on_time_and_shows_the_wait() {
    // Two connections, 100 ms a request: room for 20 requests/s, not 200.
    let service = Service::start(&["--min-delay", "100ms", "--max-delay", "100ms"]);

    let started = Instant::now();
    let summary = load(
        &service,
        &[
            "--rate",
            "200",
            "--connections",
            "2",
            "--duration",
            "2s",
            "--mix",
            "/",
        ],
    );
    let took = started.elapsed();

    assert!(
        took < Duration::from_secs(4),
        "the run took {took:?} for --duration 2s"
    );
    let (sent, unsent) = (count(&summary["sent"]), count(&summary["unsent"]));
    assert!(
        (30.0..=50.0).contains(&sent),
        "sent {sent}: about 20/s for 2 s"
    );
    assert_eq!(sent + unsent, 400.0, "due in 2 s at 200/s: sent or unsent");
    // Latency counts from when each request was due: the queue shows, not just the 100 ms.
    let p99 = summary["latency_seconds"]["p99"].as_f64().unwrap();
    assert!(p99 > 1.0, "p99 {p99} s hides the wait for a connection");
    // From when each was sent, the wait is gone: what a closed loop would have seen.
    let uncorrected = summary["uncorrected_latency_seconds"]["p99"]
        .as_f64()
        .unwrap();
    assert!(
        (0.1..0.5).contains(&uncorrected),
        "uncorrected p99 {uncorrected} s, not the service's 100 ms"
    );
}

/// Runs 20 requests at 50/s against `service`, with `args` (split at spaces); its exit code,
/// its stdout and its stderr.
fn gate(service: &Service, args: &str) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(["load", "--target", &service.app_url("")])
        .args([
            "--rate",
            "50",
            "--requests",
            "20",
            "--progress-interval",
            "1h",
        ])
        .args(args.split(' '))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn thresholds_pass_or_fail_the_run_with_exit_99() {
    // Every / takes 100 ms; /simulate_error always answers 500.
    let service = Service::start(&[
        "--min-delay",
        "100ms",
        "--max-delay",
        "100ms",
        "--error-rate",
        "1",
    ]);

    let (code, stdout, stderr) = gate(&service, "--mix / --threshold p99<2s --threshold errors<1%");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("thresholds pass  p99<2s"), "{stdout}");
    assert!(
        stdout.contains("           pass  errors<1%        0.00%"),
        "{stdout}"
    );

    let (code, stdout, stderr) = gate(
        &service,
        "--mix / --threshold p99<2s,p50<50ms --output json",
    );
    assert_eq!(code, Some(99), "{stdout}{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["thresholds"][0]["passed"], true);
    assert_eq!(summary["thresholds"][1]["threshold"], "p50<50ms");
    assert_eq!(summary["thresholds"][1]["passed"], false);
    let p50 = summary["thresholds"][1]["value"].as_f64().unwrap();
    assert!(p50 >= 0.1, "p50 {p50} s, below the service's 100 ms");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: 1 of 2 thresholds failed: p50<50ms (1"),
        "{stderr}"
    );

    // Half the default mix answers 500 (20 requests all to / would be 1 run in a million).
    let (code, stdout, stderr) = gate(&service, "--threshold errors<5%");
    assert_eq!(code, Some(99), "{stdout}{stderr}");
    assert!(stdout.contains("thresholds FAIL  errors<5%"), "{stdout}");
}

#[test]
fn stages_ramp_up_and_down_and_end_with_the_last() {
    let service = Service::start(&["--max-delay", "0s"]);

    let started = Instant::now();
    // 50 requests up the ramp, 100 at 100/s, 50 down it.
    let summary = load(&service, &["--stages", "1s:100,1s:100,1s:0"]);
    let took = started.elapsed();

    assert_eq!(summary["run"]["shape"], "stages 1s:100,1s:100,1s:0");
    let (sent, unsent) = (count(&summary["sent"]), count(&summary["unsent"]));
    assert!(
        (sent + unsent - 200.0).abs() <= 3.0 && unsent <= 10.0,
        "sent {sent} and left {unsent}, not 200"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "the run took {took:?} for 3 s of stages"
    );
}

#[tokio::test]
async fn the_mix_holds_its_proportions() {
    let service = Service::start(&["--max-delay", "0s"]);

    let summary = load(
        &service,
        &[
            "--concurrency",
            "4",
            "--requests",
            "4000",
            "--mix",
            "/=3,/simulate_error=1",
        ],
    );

    let m = scrape(&service.metrics_url("/metrics")).await;
    let by_route = |route: &str| {
        m.iter()
            .filter(|(series, _)| {
                series.starts_with(&format!(
                    r#"http_requests_total{{method="GET",route="{route}","#
                ))
            })
            .map(|(_, n)| n)
            .sum::<f64>()
    };
    let (root, errors) = (by_route("/"), by_route("/simulate_error"));
    assert_eq!(root + errors, 4000.0);
    assert_eq!(root, count(&summary["paths"]["/"]["sent"]));
    // 3,000 expected; the standard deviation is about 27: four of them either way.
    assert!(
        (root - 3000.0).abs() <= 110.0,
        "/ got {root} of 4000, not about 3000"
    );
}

#[tokio::test]
async fn a_signal_ends_the_run_with_its_summary() {
    let service = Service::start(&["--max-delay", "0s"]);
    let run = Command::new(BIN)
        .args([
            "load",
            "--target",
            &service.app_url(""),
            "--mix",
            "/=1",
            "--rate",
            "50",
            "--output",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Signalled once it is well under way (its handler is in place before its first request),
    // not after a fixed time, which a slow start would eat into.
    let counted = poll(
        "the generator under way",
        Duration::from_secs(30),
        || async {
            let counted = sample(
                &scrape(&service.metrics_url("/metrics")).await,
                "request_count_total",
            );
            (counted >= 25.0).then_some(counted as u64)
        },
    )
    .await;
    let status = Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let out = run.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["interrupted"], true);
    // It stopped at the signal: not a second (50 requests) later, and not before what the
    // service had already counted; and every request it sent was answered.
    let sent = summary["sent"].as_u64().unwrap();
    assert!(
        (counted..counted + 50).contains(&sent),
        "sent {sent}, where the service had counted {counted} when the signal went"
    );
    assert_eq!(summary["answered"], sent);
}

/// What [`connection_counter`] saw of one connection: when it was accepted, and when each
/// request on it arrived.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Instant, Vec<Instant>)>>>;

/// A bare HTTP/1 server on a port of its own that answers every request 200 at once and notes
/// when it accepted each connection and when each request on it arrived.
async fn connection_counter() -> (std::net::SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let connection = {
                let mut log = log.lock().unwrap();
                log.push((Instant::now(), Vec::new()));
                log.len() - 1
            };
            let log = log.clone();
            tokio::spawn(async move {
                let answer = hyper::service::service_fn(move |_| {
                    log.lock().unwrap()[connection].1.push(Instant::now());
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Empty::<hyper::body::Bytes>::new(),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), answer)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_renewed_after_their_lifetime() {
    // Fifty requests a second for four seconds, to a server that answers at once: one
    // connection would carry them all, were it kept.
    let (addr, seen) = connection_counter().await;

    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args([
                "load",
                "--target",
                &format!("http://{addr}"),
                "--mix",
                "/=1",
            ])
            .args(["--rate", "50", "--duration", "4s", "--output", "json"])
            .args(["--connection-lifetime", "1s"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sent = all_sent_or_unsent(&summary, 200.0, 10.0);
    // No connection carries a request after its lifetime of 1 s. The generator checks a
    // connection's age before each request, counted from when its connect finished; the server
    // notes its own times, a little earlier for the accept and later for each request, and
    // later still on a loaded machine. So the bound here has slack, and is still far from the
    // 4 s that a kept connection would span.
    let seen = seen.lock().unwrap();
    let spans: Vec<Duration> = seen
        .iter()
        .map(|(accepted, requests)| {
            requests
                .last()
                .map_or(Duration::ZERO, |last| last.duration_since(*accepted))
        })
        .collect();
    assert!(
        spans.iter().all(|span| *span < Duration::from_millis(1500)),
        "a connection carried requests for longer than its lifetime of 1 s: {spans:?}"
    );
    // Yet connections are kept within their lifetime, not opened one per request.
    let requests: usize = seen.iter().map(|(_, requests)| requests.len()).sum();
    assert_eq!(requests as f64, sent, "the server saw what was sent");
    assert!(
        seen.len() <= 40,
        "{} connections for {sent} requests: they are not kept alive",
        seen.len()
    );
}

#[test]
fn bad_arguments_and_no_service_are_one_line_and_a_nonzero_exit() {
    let nobody = format!("http://127.0.0.1:{}", free_port());
    #[rustfmt::skip]
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--rate", "0"], 2, "a rate of 0 sends nothing"),
        (&["--rate", "-5"], 2, "-5 is not a rate: must be a positive number of requests per second"),
        (&["--shape", "square"], 2, "invalid value 'square' for '--shape <SHAPE>' (one of: constant, sine, bursts, ramp)"),
        (&["--rat", "5"], 2, "(did you mean '--rate'?); see 'demo-service load --help'"),
        (&["--rate", "5", "--concurrency", "2"], 2, "cannot be used with '--concurrency <CONCURRENCY>'; see 'demo-service load --help'"),
        (&["--target", "ftp://example.org"], 2, "expected http://HOST:PORT"),
        (&["--target", "not a url"], 2, "is not a URL"),
        (&["--mix", "/=1,"], 2, "an empty entry"),
        (&["--mix", "nope"], 2, "a path starts with /"),
        (&["--concurrency", "2", "--shape", "ramp"], 2, "--shape ramp needs an open loop"),
        (&["--duration", "soon"], 2, "'--duration <DURATION>'"),
        (&["--connection-lifetime", "soon"], 2, "'--connection-lifetime <CONNECTION_LIFETIME>'"),
        (&["--stages", "1m:10", "--shape", "sine"], 2, "'--stages <STAGES>' cannot be used with '--shape <SHAPE>'"),
        (&["--stages", "1m"], 2, "\"1m\": expected LENGTH:RATE, e.g. 30s:10,2m:50,30s:0"),
        // Before any request is sent: the target does not answer, yet the exit is 2.
        (&["--target", &nobody, "--threshold", "p99<2"], 2, "\"p99<2\": \"2\" has no unit: give e.g. 2s or 300ms"),
        (&["--target", &nobody, "--threshold", "p99"], 2, "no comparison; expected MEASURE<LIMIT"),
        (&["--target", &nobody, "--requests", "3"], 1, "no request got an answer from"),
    ];
    for (args, code, message) in cases {
        let out = Command::new(BIN).arg("load").args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: not one line:\n{stderr}"
        );
        assert!(
            stderr.contains(message),
            "{args:?}: {stderr:?} lacks {message:?}"
        );
    }
}

/// The first sample of an instant query's result, or none.
fn value(result: &[Value]) -> Option<f64> {
    result.first()?["value"][1].as_str()?.parse().ok()
}

#[tokio::test]
async fn its_own_metrics_are_scraped_by_a_real_prometheus() {
    // / takes 50 ms; /simulate_error always answers 500.
    let service = Service::start(&[
        "--min-delay",
        "50ms",
        "--max-delay",
        "50ms",
        "--error-rate",
        "1",
    ]);
    let targets = targets_file(&[service.metrics]);
    let prometheus =
        Daemon::start(|addr| prometheus_config(targets.path(), addr, None, None)).await;
    let base = format!("http://{}", prometheus.addr);
    let generator = Generator::start(
        &service,
        targets.path(),
        &["--rate", "20", "--duration", "60s"],
    );
    let metrics = generator.metrics;

    // The exposition itself, while it runs: OpenMetrics, with both latencies by route.
    let exposition = poll(
        "the generator's /metrics",
        Duration::from_secs(10),
        || async {
            let response = reqwest::get(format!("http://{metrics}/metrics"))
                .await
                .ok()?;
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            let body = response.text().await.ok()?;
            body.contains("loadgen_requests_answered_total{route=\"/\",status=\"200\"}")
                .then_some((kind, body))
        },
    )
    .await;
    assert!(
        exposition.0.starts_with("application/openmetrics-text"),
        "{}",
        exposition.0
    );
    for family in [
        "# TYPE loadgen_requests_sent counter",
        "# TYPE loadgen_requests_in_flight gauge",
        "# TYPE loadgen_request_duration_seconds histogram",
        "# TYPE loadgen_request_duration_uncorrected_seconds histogram",
        "# TYPE loadgen_target_rate gauge",
        "# TYPE loadgen_achieved_rate gauge",
    ] {
        assert!(
            exposition.1.contains(family),
            "{family} in\n{}",
            exposition.1
        );
    }

    // Prometheus scrapes it as the job loadgen: the rates, the answers by route and status,
    // and latency in the RED histogram's buckets, both ways.
    let expect = [
        ("loadgen_target_rate{job=\"loadgen\"}", 20.0, 20.0),
        ("avg_over_time(loadgen_achieved_rate[10s])", 15.0, 25.0),
        (
            "loadgen_requests_answered_total{route=\"/simulate_error\",status=\"500\"}",
            1.0,
            f64::MAX,
        ),
        (
            "histogram_quantile(0.5, sum by (le) (rate(loadgen_request_duration_seconds_bucket{route=\"/\"}[10s])))",
            0.05,
            0.1,
        ),
        (
            "histogram_quantile(0.5, sum by (le) (rate(loadgen_request_duration_uncorrected_seconds_bucket{route=\"/\"}[10s])))",
            0.05,
            0.1,
        ),
    ];
    for (expr, low, high) in expect {
        poll(expr, Duration::from_secs(30), || async {
            value(&query(&base, expr, None).await).filter(|v| (low..=high).contains(v))
        })
        .await;
    }

    // Stopped by SIGTERM, it sums up; Prometheus saw no more than it sent.
    let seen = value(
        &query(
            &base,
            "max_over_time(loadgen_requests_sent_total{route=\"/\"}[1m])",
            None,
        )
        .await,
    )
    .unwrap();
    let summary = generator.finish();
    assert!(
        seen >= 1.0 && seen <= count(&summary["paths"]["/"]["sent"]),
        "Prometheus saw {seen} sent to /: {summary}"
    );
}
