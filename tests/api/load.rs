//! The load generator against the real service: what it says it sent and received is what the
//! service counted, at the rate and in the mix it was asked for.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{BIN, Service, free_port, sample, scrape};

/// Runs `demo-service load` against `service` with JSON output; returns the summary.
fn load(service: &Service, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(["load", "--target", &service.app_url(""), "--output", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "load {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn count(value: &Value) -> f64 {
    value.as_u64().map_or(0.0, |n| n as f64)
}

#[tokio::test]
async fn what_it_reports_is_what_the_service_counted() {
    let service = Service::start(&["--max-delay", "0s"]);

    let summary = load(&service, &["--rate", "300", "--duration", "3s"]);

    assert_eq!(summary["sent"], 900);
    assert_eq!(summary["answered"], 900);
    assert_eq!(summary["failed"], 0);
    let m = scrape(&service.metrics_url("/metrics")).await;
    assert_eq!(sample(&m, "request_count_total"), count(&summary["sent"]));
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
    let latency = &summary["latency_seconds"];
    assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap());
}

#[tokio::test]
async fn an_open_loop_keeps_its_rate() {
    let service = Service::start(&["--max-delay", "0s"]);
    let mut run = Command::new(BIN)
        .args([
            "load",
            "--target",
            &service.app_url(""),
            "--rate",
            "250",
            "--duration",
            "5s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The rate as the service sees it, between two scrapes a measured 3 s apart.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (first, t0) = (
        scrape(&service.metrics_url("/metrics")).await,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (second, t1) = (
        scrape(&service.metrics_url("/metrics")).await,
        Instant::now(),
    );
    assert!(run.wait().unwrap().success());

    let counted = sample(&second, "request_count_total") - sample(&first, "request_count_total");
    let rate = counted / (t1 - t0).as_secs_f64();
    assert!(
        (rate - 250.0).abs() <= 250.0 * 0.04,
        "the service saw {rate:.1} requests/s, not 250"
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

#[test]
fn a_signal_ends_the_run_with_its_summary() {
    let service = Service::start(&["--max-delay", "0s"]);
    let run = Command::new(BIN)
        .args([
            "load",
            "--target",
            &service.app_url(""),
            "--rate",
            "50",
            "--output",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let out = run.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["interrupted"], true);
    let sent = summary["sent"].as_u64().unwrap();
    assert!(
        (60..=90).contains(&sent),
        "sent {sent} in about 1.5 s at 50/s"
    );
    assert_eq!(summary["answered"], sent);
}

#[test]
fn bad_arguments_and_no_service_are_one_line_and_a_nonzero_exit() {
    let nobody = format!("http://127.0.0.1:{}", free_port());
    #[rustfmt::skip]
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--rate", "0"], 2, "a rate of 0 sends nothing"),
        (&["--target", "ftp://example.org"], 2, "expected http://HOST:PORT"),
        (&["--target", "not a url"], 2, "is not a URL"),
        (&["--mix", "/=1,"], 2, "an empty entry"),
        (&["--mix", "nope"], 2, "a path starts with /"),
        (&["--concurrency", "2", "--shape", "ramp"], 2, "--shape ramp needs an open loop"),
        (&["--duration", "soon"], 2, "'--duration <DURATION>'"),
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
