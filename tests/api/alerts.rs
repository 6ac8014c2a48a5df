//! The alerts' round trip, end to end: the service, a real Prometheus evaluating the project's
//! rules, a real Alertmanager with the project's configuration, and the project's receiver.
//! The error-rate knob turns through the admin API; the error-ratio alert must reach the
//! receiver, then its resolution; the service stops, and the target-down alert must arrive.
//!
//! The rules run time-compressed: every duration in them (rate windows, `for:`) divided by
//! 30, so that five minutes take ten seconds. Their logic at full scale is what
//! prometheus/tests/*.test.yml test; this proves the path from knob to notification.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{
    BIN, Daemon, Kind, Process, Service, prometheus_config, stack_config, targets_file,
    write_report,
};

const TOKEN: &str = "end-to-end-test-token";
const COMPRESSION: u64 = 30;

/// `text` with every duration of a range (`[5m]`) or a `for:` divided by `factor`.
pub fn compress(text: &str, factor: u64) -> String {
    let seconds = |amount: u64, unit: char| match unit {
        's' => amount,
        'm' => amount * 60,
        'h' => amount * 3600,
        'd' => amount * 86_400,
        _ => unreachable!(),
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['[', 'f']) {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let (prefix, after) = if let Some(after) = tail.strip_prefix('[') {
            ("[", after)
        } else if let Some(after) = tail.strip_prefix("for: ") {
            ("for: ", after)
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
            continue;
        };
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        match after[digits..].chars().next() {
            Some(unit @ ('s' | 'm' | 'h' | 'd')) if digits > 0 => {
                let amount: u64 = after[..digits].parse().unwrap();
                let compressed = (seconds(amount, unit) / factor).max(1);
                out.push_str(&format!("{prefix}{compressed}s"));
                rest = &after[digits + 1..];
            }
            _ => {
                out.push_str(prefix);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The project's rules, compressed by `factor`, in a directory of their own.
pub fn compressed_rules(factor: u64) -> tempfile::TempDir {
    let rules = tempfile::tempdir().unwrap();
    for name in ["recording.yml", "alerts.yml"] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("prometheus/rules")
                .join(name),
        )
        .unwrap();
        std::fs::write(rules.path().join(name), compress(&text, factor)).unwrap();
    }
    rules
}

#[test]
fn durations_compress() {
    let rule = "rate(x[5m]) > 0 and rate(y[3d])\n        for: 2m\n  format: 1m";
    assert_eq!(
        compress(rule, 30),
        "rate(x[10s]) > 0 and rate(y[8640s])\n        for: 4s\n  format: 1m"
    );
}

/// Notifications the receiver has, as JSON.
pub async fn notifications(receiver: &str) -> Vec<Value> {
    reqwest::get(format!("{receiver}/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the receiver has a notification of `alertname` with `status`; returns it.
pub async fn notified(receiver: &str, alertname: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        for n in notifications(receiver).await {
            for alert in n["alerts"].as_array().unwrap() {
                if alert["alertname"] == alertname && alert["status"] == status {
                    return alert.clone();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {status} {alertname} within {within:?}: {:#?}",
            notifications(receiver).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The alerts Prometheus holds now (pending and firing), as its API lists them.
pub async fn alerts(prometheus: &Daemon) -> Vec<Value> {
    let url = format!("http://{}/api/v1/alerts", prometheus.addr);
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    body["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until Prometheus reports `alertname` firing; returns the alert.
pub async fn firing(prometheus: &Daemon, alertname: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let alerts = alerts(prometheus).await;
        if let Some(alert) = alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == alertname && a["state"] == "firing")
        {
            return alert.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{alertname} not firing within {within:?}: {alerts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn set_error_rate(service: &Service, rate: f64) {
    let response = reqwest::Client::new()
        .put(service.metrics_url("/admin/knobs"))
        .bearer_auth(TOKEN)
        .body(format!(r#"{{"error_rate": {rate}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The load generator, sending to /simulate_error until dropped.
pub struct Load(pub Child);

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_turned_knob_reaches_the_receiver_and_so_does_its_resolution() {
    let (receiver, listening) = Process::start(&["receiver", "--addr", "127.0.0.1:0"]);
    let receiver_url = format!("http://{}", listening["addr"].as_str().unwrap());
    let service = Service::start(&["--max-delay", "0s", "--admin-token", TOKEN]);

    let alertmanager = Daemon::start_kind(Kind::Alertmanager, |_| {
        let url = format!("{receiver_url}/alerts");
        stack_config(&[
            "alertmanager-config",
            "--receiver",
            &url,
            "--group-wait",
            "1s",
            "--group-interval",
            "2s",
        ])
    })
    .await;
    let rules = compressed_rules(COMPRESSION);
    let targets = targets_file(&[service.metrics]);
    let prometheus = Daemon::start(|addr| {
        prometheus_config(
            targets.path(),
            addr,
            Some(alertmanager.addr),
            Some(rules.path()),
        )
    })
    .await;
    let load = Load(
        Command::new(BIN)
            .args([
                "load",
                "--target",
                &service.app_url(""),
                "--rate",
                "40",
                "--mix",
                "/simulate_error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The default error rate (20 %) fires nothing: three compressed `for:` periods of it.
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        alerts(&prometheus).await,
        [] as [Value; 0],
        "alerts at the default error rate"
    );

    let knob = Instant::now();
    set_error_rate(&service, 0.9).await;
    let fired = firing(
        &prometheus,
        "DemoServiceErrorRatioHigh",
        Duration::from_secs(60),
    )
    .await;
    let fired_after = knob.elapsed();
    let alert = notified(
        &receiver_url,
        "DemoServiceErrorRatioHigh",
        "firing",
        Duration::from_secs(60),
    )
    .await;
    let notified_after = knob.elapsed();
    assert_eq!(alert["labels"]["route"], "/simulate_error");
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["instance"], service.metrics.to_string());
    let summary = alert["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!("/simulate_error on {} fails ", service.metrics)),
        "{summary}"
    );

    let lowered = Instant::now();
    set_error_rate(&service, 0.2).await;
    notified(
        &receiver_url,
        "DemoServiceErrorRatioHigh",
        "resolved",
        Duration::from_secs(60),
    )
    .await;
    let resolved_after = lowered.elapsed();

    drop(load);
    let stopped = Instant::now();
    service.signal("KILL");
    let down = notified(
        &receiver_url,
        "DemoServiceTargetDown",
        "firing",
        Duration::from_secs(60),
    )
    .await;
    let down_after = stopped.elapsed();
    assert_eq!(down["instance"], service.metrics.to_string());
    assert_eq!(down["severity"], "critical");

    // Each notification is logged too: the last one within moments (log lines reach stdout in
    // batches, every 100 ms).
    receiver.wait_for_log(
        |e| e["message"] == "alert notification" && e["alertname"] == "DemoServiceTargetDown",
        Duration::from_secs(5),
    );
    let logged = receiver
        .logs()
        .iter()
        .filter(|e| e["message"] == "alert notification")
        .count();
    assert!(logged >= 3, "the receiver logged {logged} notifications");
    write_report(
        "alert-round-trip.txt",
        &format!(
            "rules compressed {COMPRESSION}x (5m windows take 10s, for: 2m takes 4s); scrape and evaluation every 1s;\n\
             Alertmanager group_wait 1s, group_interval 2s; 40 requests/s to /simulate_error\n\
             error_rate 0.2 -> 0.9 at t=0\n\
             DemoServiceErrorRatioHigh firing in Prometheus at t={:.1}s (value {})\n\
             firing notification at the receiver at t={:.1}s: {summary}\n\
             error_rate 0.9 -> 0.2, then the resolved notification {:.1}s later\n\
             service killed, then the DemoServiceTargetDown notification {:.1}s later: {}\n",
            fired_after.as_secs_f64(),
            fired["value"],
            notified_after.as_secs_f64(),
            resolved_after.as_secs_f64(),
            down_after.as_secs_f64(),
            down["summary"].as_str().unwrap(),
        ),
    );
}

#[test]
fn the_rule_test_check_finds_each_planted_fault_and_passes_the_real_tests() {
    // scripts/check-rule-tests --self-test plants, in scratch files, a window that holds one
    // sample from Prometheus 3 on, a rule group left out of group_eval_order, a selector that
    // names no job and an assertion that holds in one order of the groups only: each must be
    // found, and the real test files must pass. (scripts/test runs the whole check.)
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-rule-tests"))
        .arg("--self-test")
        .env("PROMTOOL", crate::helpers::promtool())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What Alertmanager holds back, asked of the project's configuration with alerts posted to
/// it: `alertname -> inhibited`, once it is `expected` or after 10 s.
async fn inhibited(
    posted: serde_json::Value,
    expected: &std::collections::BTreeMap<String, bool>,
) -> std::collections::BTreeMap<String, bool> {
    let alertmanager = Daemon::start_kind(Kind::Alertmanager, |_| {
        stack_config(&["alertmanager-config"])
    })
    .await;
    let url = format!("http://{}/api/v2/alerts", alertmanager.addr);
    let client = reqwest::Client::new();
    let status = client
        .post(&url)
        .json(&posted)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    // Alertmanager takes posted alerts in, and works out what they inhibit, in the background:
    // asked at once, it may not have seen the inhibiting alert yet. Ask until the answer is the
    // one `expected`, or for 10 s; the last answer is the caller's to judge.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held: Vec<Value> = client.get(&url).send().await.unwrap().json().await.unwrap();
        let held: std::collections::BTreeMap<String, bool> = held
            .iter()
            .map(|a| {
                let inhibited = a["status"]["inhibitedBy"]
                    .as_array()
                    .is_some_and(|by| !by.is_empty());
                (
                    a["labels"]["alertname"].as_str().unwrap().to_owned(),
                    inhibited,
                )
            })
            .collect();
        if &held == expected || Instant::now() > deadline {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_targets_critical_alert_holds_back_its_warnings_and_a_job_wide_one_does_not() {
    let alert = |name: &str, severity: &str, instance: Option<&str>| {
        let mut labels =
            serde_json::json!({"alertname": name, "severity": severity, "job": "flask_app"});
        if let Some(instance) = instance {
            labels["instance"] = instance.into();
        }
        serde_json::json!({"labels": labels})
    };
    let expected = [
        ("DemoServiceDependencyFailing", false),
        ("DemoServiceErrorBudgetBurn", false),
        ("DemoServiceNotReady", true),
        ("DemoServiceTargetDown", false),
        ("DemoServiceTargetMissing", false),
    ]
    .map(|(name, held)| (name.to_owned(), held))
    .into();
    let held = inhibited(
        serde_json::json!([
            alert("DemoServiceTargetDown", "critical", Some("app:8000")),
            alert("DemoServiceNotReady", "warning", Some("app:8000")),
            alert(
                "DemoServiceDependencyFailing",
                "warning",
                Some("other:8000")
            ),
            alert("DemoServiceErrorBudgetBurn", "critical", None),
            alert("DemoServiceTargetMissing", "warning", None),
        ]),
        &expected,
    )
    .await;
    assert_eq!(held, expected);
}
