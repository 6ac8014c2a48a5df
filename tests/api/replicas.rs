//! Three replicas, as `scripts/stack --replicas 3` runs them: found by a real Prometheus through
//! a file of targets, loaded in turn by one load generator. The per-instance counts add up to
//! the traffic sent; a stopped replica fires DemoServiceTargetDown for itself alone; a replica
//! that leaves service discovery (as a stopped container leaves Docker's DNS) fires
//! DemoServiceTargetMissing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::alerts::{alerts, compressed_rules, firing};
use crate::compose::poll;
use crate::helpers::{BIN, Daemon, Service, prometheus_config, targets_file, write_report};

/// The rules' durations divided by this: `for: 1m` takes 2 s, a 15m window 30 s.
const COMPRESSION: u64 = 30;

/// The alerts Prometheus has firing now about the app's job, as (name, instance) pairs. (The
/// configuration also scrapes Alertmanager, which this test does not run.)
async fn firing_now(prometheus: &Daemon) -> Vec<(String, String)> {
    let mut alerts: Vec<_> = alerts(prometheus)
        .await
        .iter()
        .filter(|a| a["state"] == "firing" && a["labels"]["job"] == "flask_app")
        .map(|a| {
            let label = |name: &str| a["labels"][name].as_str().unwrap_or("").to_owned();
            (label("alertname"), label("instance"))
        })
        .collect();
    alerts.sort();
    alerts
}

/// `query`'s result as instance -> value.
async fn by_instance(prometheus: &Daemon, query: &str) -> BTreeMap<String, f64> {
    prometheus
        .query(query)
        .await
        .iter()
        .map(|s| {
            let instance = s["metric"]["instance"].as_str().unwrap_or("").to_owned();
            (instance, s["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn three_replicas_add_up_and_one_stopped_alerts_alone() {
    let mut replicas: Vec<Service> = (0..3)
        .map(|_| Service::start(&["--max-delay", "0s"]))
        .collect();
    let instances: Vec<String> = replicas.iter().map(|r| r.metrics.to_string()).collect();
    let targets = targets_file(&replicas.iter().map(|r| r.metrics).collect::<Vec<_>>());
    let rules = compressed_rules(COMPRESSION);
    let prometheus =
        Daemon::start(|addr| prometheus_config(targets.path(), addr, None, Some(rules.path())))
            .await;
    let mut report = String::new();

    // Prometheus finds all three through the file.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = by_instance(&prometheus, r#"up{job="flask_app"}"#).await;
        if up.len() == 3 && up.values().all(|v| *v == 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "targets found: {up:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 30 requests a second for 20 s, spread over the replicas in turn.
    let mut load = Command::new(BIN);
    load.args(["load", "--output", "json", "--mix", "/=1,/simulate_error=1"]);
    for replica in &replicas {
        load.args(["--target", &replica.app_url("")]);
    }
    let load = load
        .args(["--rate", "30", "--duration", "20s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Midway, the per-instance rates add up to the rate sent.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let rates = by_instance(
        &prometheus,
        r#"sum by (instance) (rate(request_count_total{job="flask_app"}[8s]))"#,
    )
    .await;
    let total: f64 = rates.values().sum();
    writeln!(
        report,
        "at 30 requests/s over 3 replicas: {} per instance, {total:.1} together",
        rates
            .values()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(" + ")
    )
    .unwrap();
    assert_eq!(rates.len(), 3, "{rates:?}");
    assert!((24.0..=36.0).contains(&total), "{report}");
    for rate in rates.values() {
        assert!((7.0..=13.0).contains(rate), "{report}");
    }

    // Once it is over, the counts are exact: each replica a third, together all answered.
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let answered = summary["answered"].as_u64().unwrap() as f64;
    // Until every replica's last count has been scraped (the scrapes after the load's end); a
    // lost count never gets there, and the poll fails after 30 s.
    let sum = poll(
        "all answered requests counted",
        Duration::from_secs(30),
        || async {
            let sum = prometheus
                .query(r#"sum(request_count_total{job="flask_app"})"#)
                .await[0]["value"][1]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap();
            (sum >= answered).then_some(sum)
        },
    )
    .await;
    let counts = by_instance(&prometheus, r#"request_count_total{job="flask_app"}"#).await;
    writeln!(
        report,
        "after the load: {answered} answered; request_count_total per instance {counts:?}, sum {sum}"
    )
    .unwrap();
    assert_eq!(sum, answered, "{report}");
    let third = answered / 3.0;
    assert!(
        counts.values().all(|c| (c - third).abs() <= 1.0),
        "{report}"
    );

    // No alert about targets while all three answer.
    let alerts = firing_now(&prometheus).await;
    assert!(
        !alerts
            .iter()
            .any(|(name, _)| name == "DemoServiceTargetDown" || name == "DemoServiceTargetMissing"),
        "{alerts:?}"
    );

    // The second replica stops: DemoServiceTargetDown fires for it, and for it alone.
    let stopped = Instant::now();
    replicas[1].signal("TERM");
    assert!(replicas[1].wait(Duration::from_secs(15)).success());
    let down = ("DemoServiceTargetDown".to_owned(), instances[1].clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !firing_now(&prometheus).await.contains(&down) {
        assert!(Instant::now() < deadline, "{down:?} did not fire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // time for others to (wrongly) fire
    let alerts = firing_now(&prometheus).await;
    writeln!(
        report,
        "replica {} stopped: {:.1} s later firing {alerts:?}",
        instances[1],
        stopped.elapsed().as_secs_f64()
    )
    .unwrap();
    let target_alerts: Vec<_> = alerts
        .iter()
        .filter(|(name, _)| name.starts_with("DemoServiceTarget"))
        .collect();
    assert_eq!(target_alerts, [&down], "{report}");

    // It leaves service discovery, as a stopped container leaves Docker's DNS:
    // DemoServiceTargetDown has nothing left to fire on, and DemoServiceTargetMissing fires for
    // the job.
    let left = Instant::now();
    let remaining = [replicas[0].metrics, replicas[2].metrics];
    std::fs::write(
        targets.path(),
        serde_json::json!([{ "targets": remaining.map(|a| a.to_string()) }]).to_string(),
    )
    .unwrap();
    let missing = firing(
        &prometheus,
        "DemoServiceTargetMissing",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(missing["labels"]["job"], "flask_app");
    let alerts = firing_now(&prometheus).await;
    writeln!(
        report,
        "it left the file of targets: {:.1} s later firing {alerts:?}",
        left.elapsed().as_secs_f64()
    )
    .unwrap();
    assert!(
        !alerts
            .iter()
            .any(|(name, _)| name == "DemoServiceTargetDown"),
        "{report}"
    );
    write_report("replicas.txt", &report);
}
