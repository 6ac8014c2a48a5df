//! `demo-service history` and `scripts/history-load` against a real Prometheus (Debian's
//! 2.42), scraping the real service: a week of history loads beside the live data, before it,
//! with its recording rules; a history asked for again adds nothing; a loader that fails
//! leaves nothing in Prometheus' data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{BIN, Daemon, Service, get, prometheus_config, query, targets_file};

const HISTORY: &str = "history:8000";

fn history(out: &Path, prometheus: &str, days: &str) -> String {
    let output = Command::new(BIN)
        .args(["history", "--days", days, "--seed", "3", "--out"])
        .arg(out)
        .args(["--prometheus", prometheus])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "history: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// Runs scripts/history-load; its exit status and what it said.
fn load(history: &Path, data: &Path, prometheus: &str) -> (bool, String) {
    let output = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/history-load"))
        .arg(history)
        .arg(data)
        .arg(prometheus)
        .env("HISTORY_LOAD_PORT", crate::helpers::free_port().to_string())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

/// The series of `selector` at `at`, each as its labels without `instance`.
async fn series(base: &str, selector: &str, at: f64) -> BTreeSet<String> {
    query(base, &format!("last_over_time({selector}[1m])"), Some(at))
        .await
        .iter()
        .map(|r| {
            let mut metric = r["metric"].as_object().unwrap().clone();
            metric.remove("instance");
            Value::Object(metric).to_string()
        })
        .collect()
}

fn number(result: &[Value]) -> f64 {
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

/// The blocks in a Prometheus' data directory, and anything else that is not its own.
fn blocks(data: &Path) -> BTreeSet<String> {
    std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["wal", "chunks_head", "lock", "queries.active"].contains(&n.as_str()))
        .collect()
}

#[tokio::test]
async fn a_week_of_history_loads_before_the_live_data_with_its_recording_rules() {
    let service = Service::start(&["--max-delay", "10ms"]);
    let targets = targets_file(&[service.metrics]);
    let prometheus =
        Daemon::start(|addr| prometheus_config(targets.path(), addr, None, None)).await;
    let base = format!("http://{}", prometheus.addr);
    // Live traffic to both routes, and Prometheus has scraped it.
    for path in ["/", "/simulate_error", "/", "/simulate_error"] {
        get(&service.app_url(path)).await;
    }
    // And the live data is older than a step of the history (15 s, the scrape interval of
    // prometheus/prometheus.yml), so that a history that ended now would overlap it: the
    // live data is younger than the last hour, as a learner's is who loads a history minutes
    // after `docker compose up`.
    let live = "up{job=\"flask_app\",instance!=\"history:8000\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    while query(&base, "http_requests_total{job=\"flask_app\"}", None)
        .await
        .len()
        < 2
        || query(&base, &format!("count_over_time({live}[1h]) > 34"), None)
            .await
            .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus has not scraped the service for 17 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("history");
    let said = history(&out, &base, "7");
    assert!(
        said.starts_with("wrote 7 days of job flask_app, instance history:8000"),
        "{said}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("history.json")).unwrap()).unwrap();
    let end = report["end"].as_f64().unwrap();
    let (ok, said) = load(&out, &prometheus.data_dir(), &base);
    assert!(ok, "history-load: {said}\n{}", prometheus.log());
    assert!(said.contains("loaded 7 days"), "{said}");

    // It ends before the live data begins.
    assert!(
        query(&base, &format!("count_over_time({live}[8d])"), Some(end))
            .await
            .is_empty(),
        "live samples at or before the history's end"
    );
    // Every series the live service has, the history has too: what only Prometheus makes,
    // scrape_* and the alerts, aside; and the native histogram, which a history written in
    // OpenMetrics text (all that promtool makes blocks from) has no way to hold.
    let live_series = series(
        &base,
        "{job=\"flask_app\",instance=~\".+\",instance!=\"history:8000\",__name__!~\"scrape_.*|ALERTS.*|request_duration_native_seconds\"}",
        now(),
    )
    .await;
    let history_series = series(&base, &format!("{{instance=\"{HISTORY}\"}}"), end).await;
    let missing: Vec<_> = live_series.difference(&history_series).collect();
    assert!(missing.is_empty(), "not in the history: {missing:?}");

    // A day's rate agrees with the traffic the generator wrote, within 1 %.
    let by_day = report["requests_by_day"].as_array().unwrap();
    for (day, written) in by_day.iter().take(2).enumerate() {
        let at = end - day as f64 * 86_400.0;
        let increase = number(
            &query(
                &base,
                "sum(increase(http_requests_total{instance=\"history:8000\"}[1d]))",
                Some(at),
            )
            .await,
        );
        let written = written.as_f64().unwrap();
        assert!(
            (increase / written - 1.0).abs() < 0.01,
            "day {day}: increase {increase}, written {written}"
        );
    }
    // The recording rules have a week of history too, every 30 s, those that read other
    // records (the budget: levels 2 and 3) included.
    for rule in [
        "job:slo_errors_per_request:ratio_rate5m{slo=\"availability\"}",
        "job:slo_errors_per_request:ratio_rate3d{slo=\"latency\"}",
        "job:slo_errors_per_request:ratio_rate30d{slo=\"latency\"}",
        "job:slo_error_budget_remaining:ratio{slo=\"availability\"}",
        "instance:http_requests:rate5m{instance=\"history:8000\"}",
    ] {
        let count = number(&query(&base, &format!("count_over_time({rule}[7d])"), Some(end)).await);
        assert!(count > 7.0 * 2880.0 * 0.99, "{rule}: {count} samples");
    }
    // The default knobs meet both objectives: a week of them leaves budget in each.
    let left = query(&base, "job:slo_error_budget_remaining:ratio", Some(end)).await;
    let left: BTreeMap<String, f64> = left
        .iter()
        .map(|s| {
            let slo = s["metric"]["slo"].as_str().unwrap().to_owned();
            (slo, s["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.values().all(|&l| l > 0.5 && l <= 1.0), "{left:?}");
    // The dashboard's objectives row answers over the history, at its end. All but the time
    // until the budget is gone: nothing burns it in a history of the default knobs, and the
    // panel says so ("nothing burns").
    let (report, empty) =
        crate::stack::dashboard_queries_of(&base, "history:8000", "1m", "Objectives", Some(end))
            .await;
    for panel in [
        "Error budget left (30 days) |",
        "Burn rate: the ticket's windows |",
    ] {
        assert!(report.contains(panel), "{panel} {report}");
    }
    assert!(
        empty
            .iter()
            .all(|e| e.contains("job:slo_error_budget_time_left:seconds")),
        "panels of the objectives row without data over the history:\n{}",
        empty.join("\n")
    );
    assert!(empty.len() <= 2, "{empty:?}");

    // Asked for again: nothing to add, and nothing changes.
    let before = number(
        &query(
            &base,
            "count_over_time(up{instance=\"history:8000\"}[8d])",
            Some(end),
        )
        .await,
    );
    let said = history(&out, &base, "7");
    assert!(said.contains("the history is there already"), "{said}");
    let (ok, said) = load(&out, &prometheus.data_dir(), &base);
    assert!(ok && said.contains("nothing to add"), "{said}");
    let after = number(
        &query(
            &base,
            "count_over_time(up{instance=\"history:8000\"}[8d])",
            Some(end),
        )
        .await,
    );
    assert_eq!(before, after);
    assert_eq!(before, 7.0 * 5760.0);
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn a_load_that_fails_leaves_nothing_in_prometheus_data() {
    let targets = targets_file(&[]);
    let prometheus =
        Daemon::start(|addr| prometheus_config(targets.path(), addr, None, None)).await;
    let base = format!("http://{}", prometheus.addr);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("history");
    history(&out, &base, "1");
    let before = blocks(&prometheus.data_dir());
    // One file of scrapes cut short: promtool refuses it.
    let file = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "om"))
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() / 2]).unwrap();
    let (ok, said) = load(&out, &prometheus.data_dir(), &base);
    assert!(!ok, "{said}");
    assert!(
        said.contains("history-load: promtool could not read"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
    assert_eq!(blocks(&prometheus.data_dir()), before);
}

#[test]
fn bad_input_gets_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let timeline = dir.path().join("bad.toml");
    std::fs::write(&timeline, "[[step]\n").unwrap();
    let out = dir.path().join("out");
    for (args, says) in [
        (vec!["--days", "0"], "0 is not in 1..=400"),
        (
            vec!["--days", "1", "--incidents", timeline.to_str().unwrap()],
            "the timeline",
        ),
        (
            vec!["--days", "1", "--mix", "/delay/1s"],
            "--mix names /delay/1s",
        ),
        (
            vec!["--days", "1", "--prometheus", "http://127.0.0.1:1"],
            "cannot reach Prometheus at http://127.0.0.1:1",
        ),
        (
            vec!["--days", "1", "--config", "nowhere.yml"],
            "cannot read Prometheus' configuration nowhere.yml",
        ),
    ] {
        let output = Command::new(BIN)
            .arg("history")
            .args(&args)
            .arg("--out")
            .arg(&out)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} wrote {out:?}");
    }
    // A folder that cannot be written: one line too.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let output = Command::new(BIN)
        .args(["history", "--days", "1", "--out"])
        .arg(file.join("sub"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot create"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
