//! The stack's configuration, proven: every dashboard query answers from a real Prometheus that
//! scrapes the real service; every Prometheus configuration passes promtool; the compose file
//! is valid and keeps its promises; the dashboard references only what exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::compose::poll;
use crate::helpers::{
    Generator, Prometheus, Service, prometheus_config, promtool, stack_config, stdout_of,
    targets_file,
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DASHBOARD: &str = "grafana/dashboards/service-monitoring.json";

/// Series that Prometheus itself writes for every target.
const SCRAPE_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap()
}

/// Every panel that queries (rows aside), with the title of its row, its own title and the
/// expressions of its targets.
fn queries(dashboard: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut row = String::new();
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap().to_owned();
        if panel["type"] == "row" {
            row = title;
            continue;
        }
        let exprs = panel["targets"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| t["expr"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        found.push((row.clone(), title, exprs));
    }
    found
}

/// What Grafana would send: variables and `$__rate_interval` replaced.
fn substitute(expr: &str, job: &str, instance: &str, rate_interval: &str) -> String {
    expr.replace("$__rate_interval", rate_interval)
        .replace("$instance", instance)
        .replace("$job", job)
}

#[tokio::test]
async fn every_dashboard_query_answers_from_a_real_prometheus() {
    let service = Service::start(&["--max-delay", "200ms", "--users-interval", "1s"]);
    let targets = targets_file(&[service.metrics]);
    let prometheus =
        Prometheus::start(|addr| prometheus_config(targets.path(), addr, None, None)).await;
    // The load generator, for the panels of its own metrics (the job loadgen).
    let _generator = Generator::start(&service, targets.path(), &["--rate", "20"]);

    // Traffic of every kind the dashboard shows, until the queries are done.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, app) = (stop.clone(), service.app_url(""));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                // /status/500 spends the availability budget, so that the time until it is
                // gone has a value.
                for path in [
                    "/",
                    "/simulate_error",
                    "/simulate_error",
                    "/nope",
                    "/status/500",
                ] {
                    let _ = client.get(format!("{app}{path}")).send().await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Enough scrapes for every rate() window: ten seconds of them. Then the objectives'
    // budget, which adds up 5-minute tiles, recorded by a group of their own every 5 minutes,
    // at a phase of Prometheus' choosing: its first is up to 5 minutes away.
    for (what, query, within) in [
        (
            "Prometheus scraping the service",
            "count_over_time(request_count_total[1m]) >= 10",
            Duration::from_secs(30),
        ),
        (
            "an error budget recorded for both objectives",
            "count(job:slo_error_budget_remaining:ratio) == 2",
            Duration::from_secs(330),
        ),
    ] {
        poll(what, within, || async {
            (!prometheus.query(query).await.is_empty()).then_some(())
        })
        .await;
    }

    let prometheus_url = format!("http://{}", prometheus.addr);
    let instance = service.metrics.to_string();
    let (report, empty) = dashboard_queries(&prometheus_url, &instance, "10s").await;
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.await;
    crate::helpers::write_report("dashboard-queries.txt", &report);
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
}

/// Runs every query of the dashboard against the Prometheus at `prometheus` (`http://...`) as
/// Grafana would: as the dashboard opens (every job and instance), and with the job flask_app
/// and `instance` chosen, `$__rate_interval` being `rate_interval`. Returns a report of the
/// values (panel | query | value) and the queries that returned nothing, with their panels.
pub async fn dashboard_queries(
    prometheus: &str,
    instance: &str,
    rate_interval: &str,
) -> (String, Vec<String>) {
    dashboard_queries_of(prometheus, instance, rate_interval, "", None).await
}

/// [`dashboard_queries`], of the panels of the rows whose title starts with `row` only, at
/// the time `at` (a Unix time in seconds) rather than now.
pub async fn dashboard_queries_of(
    prometheus: &str,
    instance: &str,
    rate_interval: &str,
    row: &str,
    at: Option<f64>,
) -> (String, Vec<String>) {
    let mut report = String::from("\npanel | query (job=flask_app) | value\n");
    let mut empty = Vec::new();
    for (_, title, exprs) in queries(&dashboard())
        .into_iter()
        .filter(|(r, _, _)| r.starts_with(row))
    {
        for expr in exprs {
            for (job, instance) in [(".*", ".*"), ("flask_app", instance)] {
                let query = substitute(&expr, job, instance, rate_interval);
                let result = crate::helpers::query(prometheus, &query, at).await;
                // A float sample's value; a native histogram's, its count (a heatmap's cells).
                let values: Vec<f64> = result
                    .iter()
                    .filter_map(|s| {
                        s["value"][1]
                            .as_str()
                            .or_else(|| s["histogram"][1]["count"].as_str())?
                            .parse()
                            .ok()
                    })
                    .filter(|v: &f64| v.is_finite())
                    .collect();
                if values.is_empty() {
                    empty.push(format!("{title}: {query} -> {result:?}"));
                } else if job != ".*" {
                    let shown: Vec<String> =
                        values.iter().take(3).map(|v| format!("{v:.4}")).collect();
                    report += &format!("{title} | {query} | {}\n", shown.join(", "));
                }
            }
        }
    }
    (report, empty)
}

#[test]
fn no_secret_is_committed() {
    let ignored = read(".gitignore");
    assert!(
        ignored.lines().any(|l| l.trim() == ".env"),
        ".env is not ignored"
    );
    let tracked = Command::new("git")
        .args(["ls-files"])
        .current_dir(ROOT)
        .output()
        .unwrap();
    let tracked = String::from_utf8(tracked.stdout).unwrap();
    assert!(
        tracked.lines().any(|f| f == ".env.example"),
        "no .env.example"
    );
    assert!(
        !tracked.lines().any(|f| f == ".env" || f.ends_with("/.env")),
        "a .env is committed"
    );
    // The example holds no real secret: empty or an obvious placeholder.
    let secrets = read(".env.example");
    let secrets = secrets
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(key, _)| key.contains("PASSWORD") || key.contains("TOKEN"));
    for (key, value) in secrets {
        assert!(
            value.is_empty() || value.starts_with("change-me"),
            "{key} has a value in .env.example"
        );
    }
}

#[test]
fn the_latency_panels_show_exemplars_named_by_their_trace_label() {
    // Every panel that reads a latency histogram with exemplars (the seed's, the RED one; not
    // the dependency's) draws them, once (one target asks).
    let dashboard = dashboard();
    let mut latency = Vec::new();
    let mut stack = vec![&dashboard["panels"]];
    while let Some(panels) = stack.pop() {
        for panel in panels.as_array().into_iter().flatten() {
            stack.push(&panel["panels"]);
            let targets = panel["targets"].as_array().into_iter().flatten();
            let (histogram, asking): (Vec<_>, Vec<_>) = targets
                .map(|t| {
                    let expr = t["expr"].as_str().unwrap_or("");
                    (
                        selectors(expr).iter().any(|(metric, _)| {
                            metric == "request_duration_seconds_bucket"
                                || metric == "http_request_duration_seconds_bucket"
                                || metric == "request_duration_native_seconds"
                        }),
                        t["exemplar"] == true,
                    )
                })
                .unzip();
            if histogram.contains(&true) {
                let asking = asking.iter().filter(|a| **a).count();
                assert_eq!(
                    asking, 1,
                    "{}: targets asking for exemplars",
                    panel["title"]
                );
                latency.push(panel["title"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(latency.len(), 7, "{latency:?}");
    // The data source names the exemplars' trace label, and links it nowhere: no tracing
    // backend runs here.
    let provisioned = read("grafana/provisioning/datasources/prometheus.yml");
    let destinations: Vec<&str> = provisioned
        .lines()
        .skip_while(|l| l.trim() != "exemplarTraceIdDestinations:")
        .skip(1)
        .take_while(|l| l.starts_with("        "))
        .map(str::trim)
        .collect();
    assert_eq!(destinations, ["- name: trace_id"]);
}

#[test]
fn the_dashboard_is_well_formed() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "service-monitoring");
    assert_eq!(dashboard["title"], "Service Monitoring");

    let provisioned = read("grafana/provisioning/datasources/prometheus.yml");
    let uid = provisioned
        .lines()
        .find_map(|l| l.trim().strip_prefix("uid: "))
        .expect("the data source has a uid");
    let mut ids = BTreeSet::new();
    let mut uids = BTreeSet::new();
    collect_datasource_uids(&dashboard, &mut uids);
    assert_eq!(
        uids,
        BTreeSet::from([uid.to_owned()]),
        "every data source is the provisioned one"
    );

    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["job", "instance"]);

    for panel in dashboard["panels"].as_array().unwrap() {
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        if panel["type"] != "row" {
            let title = panel["title"].as_str().unwrap();
            let description = panel["description"].as_str().unwrap_or("");
            assert!(
                description.len() > 40,
                "{title}: no description worth the name"
            );
        }
    }

    let known = exposed_series_names();
    let recorded = recorded_series_names();
    for (_, title, exprs) in queries(&dashboard) {
        assert!(!exprs.is_empty(), "{title}: no query");
        for expr in exprs {
            assert!(
                !expr.trim().is_empty(),
                "{title}: a target without an expression"
            );
            let selectors = selectors(&expr);
            assert!(!selectors.is_empty(), "{title}: {expr} selects nothing");
            for (metric, matchers) in selectors {
                // A series recorded by job (the objectives') has no instance to choose.
                let by_job = metric.starts_with("job:") && recorded.contains(&metric);
                assert!(
                    known.contains(&metric) || SCRAPE_SERIES.contains(&metric.as_str()) || by_job,
                    "{title}: {metric} is not in the service's or the load generator's \
                     exposition, nor a series the rules record by job"
                );
                // The load generator's series are its job's, whichever service is chosen.
                let variables: &[&str] = if metric.starts_with("loadgen_") {
                    &["job=\"loadgen\""]
                } else if by_job {
                    &["job=~\"$job\""]
                } else {
                    &["job=~\"$job\"", "instance=~\"$instance\""]
                };
                for variable in variables {
                    assert!(
                        matchers.contains(variable),
                        "{title}: {metric} ignores {variable}"
                    );
                }
            }
            // Rates take Grafana's interval; a trend's span (predict_linear) is the alert's.
            for window in ranges(&expr) {
                if expr.starts_with("predict_linear(") {
                    assert_eq!(
                        window, "15m",
                        "{title}: DemoServiceMemoryLeak's span in {expr}"
                    );
                } else {
                    assert_eq!(
                        window, "$__rate_interval",
                        "{title}: a fixed window in {expr}"
                    );
                }
            }
        }
    }
}

/// The series that the rules of prometheus/rules/ record.
fn recorded_series_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(Path::new(ROOT).join("prometheus/rules")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            if let Some(name) = line.trim().strip_prefix("- record:") {
                names.insert(name.trim().to_owned());
            }
        }
    }
    names
}

fn collect_datasource_uids(value: &Value, uids: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            // `-- Grafana --` is Grafana's own data source, for annotations.
            if let Some(uid) = map
                .get("datasource")
                .and_then(|d| d.get("uid"))
                .and_then(Value::as_str)
                .filter(|uid| !uid.starts_with("-- "))
            {
                uids.insert(uid.to_owned());
            }
            map.values().for_each(|v| collect_datasource_uids(v, uids));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_datasource_uids(v, uids)),
        _ => {}
    }
}

/// The metric selectors of an expression: each name written right before `{`, with what the
/// braces hold. (Every selector of the dashboard has braces: it must filter on the variables.)
fn selectors(expr: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let bytes = expr.as_bytes();
    for (i, _) in expr.match_indices('{') {
        let start = expr[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |p| p + 1);
        let name = &expr[start..i];
        let end = i + expr[i..].find('}').expect("braces close");
        if !name.is_empty() && !bytes[start].is_ascii_digit() {
            found.push((name.to_owned(), expr[i + 1..end].to_owned()));
        }
    }
    found
}

/// The range windows (`[5m]`) of an expression.
fn ranges(expr: &str) -> Vec<&str> {
    expr.match_indices('[')
        .map(|(i, _)| &expr[i + 1..i + expr[i..].find(']').unwrap()])
        .collect()
}

/// Every sample name the service exposes once it has answered each kind of request, and every
/// one the load generator exposes (with --metrics-addr) once it has had answers.
fn exposed_series_names() -> BTreeSet<String> {
    let service = Service::start(&["--max-delay", "0s", "--error-rate", "0.5"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exposition = runtime.block_on(async {
        for path in [
            "/",
            "/simulate_error",
            "/simulate_error",
            "/simulate_error",
            "/nope",
        ] {
            reqwest::get(service.app_url(path)).await.unwrap();
        }
        let text = reqwest::get(service.metrics_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let protobuf = reqwest::Client::new()
            .get(service.metrics_url("/metrics"))
            .header("accept", crate::native::ACCEPT_NATIVE)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        // The load generator's, with --metrics-addr, once it has had answers.
        let listed = tempfile::NamedTempFile::new().unwrap();
        let generator = Generator::start(&service, listed.path(), &["--rate", "50"]);
        let url = format!("http://{}/metrics", generator.metrics);
        let loadgen = crate::compose::poll(
            "the load generator's metrics",
            Duration::from_secs(10),
            || async {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                text.contains("loadgen_requests_answered_total")
                    .then_some(text)
            },
        )
        .await;
        (text + &loadgen, protobuf)
    });
    let (text, protobuf) = exposition;
    // The text format's samples, and the native histograms, which only protobuf carries: a
    // native histogram's series is the family's name.
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .chain(
            crate::native::families(&protobuf)
                .into_iter()
                .filter(|f| {
                    f.metric
                        .iter()
                        .any(|m| m.histogram.as_ref().is_some_and(|h| h.zero_threshold > 0.0))
                })
                .map(|f| f.name),
        )
        .collect()
}

/// Checks `file` (a compose configuration) and its native derivation (`scripts/stack ARGS`)
/// with `check` (the compose one only if `compose_checks`), and that the two differ in the
/// lines `differ` only: (compose, native) pairs, native "" for a line the derivation deletes.
fn derived_cleanly(
    file: &str,
    stack: &[&str],
    check: &[&str],
    compose_checks: bool,
    differ: &[(&str, &str)],
) {
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("native.yml");
    std::fs::write(&native, stack_config(stack)).unwrap();
    let compose = Path::new(ROOT).join(file);
    stdout_of(Command::new(check[0]).args(&check[1..]).arg(&native));
    if compose_checks {
        stdout_of(Command::new(check[0]).args(&check[1..]).arg(&compose));
    }
    let native = std::fs::read_to_string(&native).unwrap();
    let compose = std::fs::read_to_string(&compose).unwrap();
    assert_eq!(line_changes(&compose, &native), differ);
}

/// The lines `from` and `to` differ in, as (line of `from`, line of `to`) pairs; a line of
/// `from` missing from `to` pairs with "". (Enough of a diff for a derivation, which replaces
/// and deletes lines and adds none.)
fn line_changes<'a>(from: &'a str, to: &'a str) -> Vec<(&'a str, &'a str)> {
    let (from, to): (Vec<_>, Vec<_>) = (from.lines().collect(), to.lines().collect());
    let (mut i, mut j, mut changes) = (0, 0, Vec::new());
    while i < from.len() {
        if to.get(j) == Some(&from[i]) {
            (i, j) = (i + 1, j + 1);
        } else if let Some(k) =
            (1..=5).find(|k| from.get(i + k).is_some() && from.get(i + k) == to.get(j))
        {
            changes.extend(from[i..i + k].iter().map(|line| (*line, "")));
            i += k;
        } else {
            changes.push((from[i], to.get(j).copied().unwrap_or("")));
            (i, j) = (i + 1, j + 1);
        }
    }
    changes
}

#[test]
fn every_prometheus_config_passes_promtool_and_derives_cleanly() {
    let promtool = promtool();
    let rules = format!(r#"  - "{ROOT}/prometheus/rules/*.yml""#);
    let targets = format!(r#"      - files: ["{ROOT}/target/stack/targets/flask_app.json"]"#);
    let loadgen = format!(r#"      - files: ["{ROOT}/target/stack/targets/loadgen.json"]"#);
    // The keys that turn native histograms on, which Prometheus takes from 3.8 on (compose
    // runs 3.13); before, it rejects them, and takes a flag instead.
    let native_keys = [
        ("    scrape_native_histograms: true", ""),
        ("    always_scrape_classic_histograms: true", ""),
        (
            "    scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4]",
            "",
        ),
    ];
    let before_3_8 = crate::helpers::prometheus_flags().contains("native-histograms");
    if before_3_8 {
        // This promtool reads the compose configuration as this Prometheus would: it refuses
        // the three keys, and only them, which is why the native stack derives a
        // configuration without them.
        let out = Command::new(&promtool)
            .args(["check", "config"])
            .arg(Path::new(ROOT).join("prometheus/prometheus.yml"))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{said}");
        let refused: Vec<_> = said
            .lines()
            .filter_map(|l| l.split_once("field ").map(|(_, rest)| rest))
            .map(|rest| rest.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(
            refused,
            [
                "scrape_native_histograms",
                "always_scrape_classic_histograms",
                "scrape_protocols"
            ],
            "{said}"
        );
    }
    // The native configuration differs from the compose one in its addresses only, and, for
    // a Prometheus before 3.8, those keys.
    let mut differ = vec![
        (r#"  - "rules/*.yml""#, rules.as_str()),
        (
            r#"        - targets: ["alertmanager:9093"]"#,
            r#"        - targets: ["127.0.0.1:9093"]"#,
        ),
    ];
    if before_3_8 {
        differ.extend(native_keys);
    }
    differ.extend([
        ("    dns_sd_configs:", "    file_sd_configs:"),
        (r#"      - names: ["app"]"#, targets.as_str()),
        ("        type: A", ""),
        ("        port: 8000", ""),
        ("        refresh_interval: 10s", ""),
        ("    dns_sd_configs:", "    file_sd_configs:"),
        (r#"      - names: ["loadgen"]"#, loadgen.as_str()),
        ("        type: A", ""),
        ("        port: 9101", ""),
        ("        refresh_interval: 10s", ""),
        (
            r#"      - targets: ["localhost:9090"]"#,
            r#"      - targets: ["127.0.0.1:9090"]"#,
        ),
        (
            r#"      - targets: ["alertmanager:9093"]"#,
            r#"      - targets: ["127.0.0.1:9093"]"#,
        ),
    ]);
    derived_cleanly(
        "prometheus/prometheus.yml",
        &["prometheus-config"],
        &[promtool.to_str().unwrap(), "check", "config"],
        !before_3_8,
        &differ,
    );
}

#[test]
fn the_alertmanager_config_passes_amtool_and_derives_cleanly() {
    let receiver = (
        "      - url: http://receiver:9095/alerts",
        "      - url: http://127.0.0.1:9095/alerts",
    );
    derived_cleanly(
        "alertmanager/alertmanager.yml",
        &["alertmanager-config"],
        &["amtool", "check-config"],
        true,
        &[receiver, receiver],
    );
}

/// The compose file as Docker Compose v2 (`docker compose config`) resolves it with `env`,
/// every profile included, as JSON. Compose validates it against its schema on the way.
fn compose_config(env: &[(&str, &str)]) -> Value {
    // An empty env file, so that a developer's own .env does not count.
    let no_env = tempfile::NamedTempFile::new().unwrap();
    let json = stdout_of(
        Command::new("docker")
            .current_dir(ROOT)
            .args(["compose", "--profile", "*", "--env-file"])
            .arg(no_env.path())
            .args(["config", "--format", "json"])
            // Only what the test sets: a developer's own exports must not count either.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied()),
    );
    serde_json::from_str(&json).unwrap()
}

/// A published port as `host_ip:published:target`.
fn published(port: &Value) -> String {
    format!(
        "{}:{}:{}",
        port["host_ip"].as_str().unwrap_or(""),
        port["published"].as_str().unwrap_or(""),
        port["target"]
    )
}

#[test]
fn the_docs_name_the_images_compose_pins() {
    // Every mention of a pinned image (prom/prometheus:v3.13.2, ...) in the README and the
    // docs has the tag compose pins: a learner who reads one version runs that one.
    let config = compose_config(&[]);
    let pinned: Vec<(String, String)> = config["services"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|s| s["image"].as_str())
        .filter_map(|image| image.split_once(':'))
        .filter(|(name, _)| name.contains('/'))
        .map(|(name, tag)| (name.to_owned(), tag.to_owned()))
        .collect();
    assert!(pinned.len() >= 3, "{pinned:?}");
    let mut pages = vec!["README.md".to_owned()];
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(format!(
                "docs/{}",
                path.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    for page in &pages {
        let text = read(page);
        for (name, tag) in &pinned {
            for (at, _) in text.match_indices(&format!("{name}:")) {
                let named: String = text[at + name.len() + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || ".-".contains(*c))
                    .collect();
                assert_eq!(
                    &named, tag,
                    "{page} names {name}:{named}, compose pins {tag}"
                );
            }
        }
    }
}

#[test]
fn the_compose_file_is_valid_and_keeps_its_promises() {
    assert!(
        !read("docker-compose.yml")
            .lines()
            .any(|l| l.starts_with("version:")),
        "no version key"
    );
    let config = compose_config(&[]);
    let services = config["services"].as_object().unwrap();
    assert_eq!(
        services.keys().collect::<Vec<_>>(),
        [
            "alertmanager",
            "app",
            "gameday",
            "grafana",
            "history",
            "history-load",
            "loadgen",
            "prometheus",
            "receiver",
            "replica"
        ]
    );

    for (name, service) in services {
        let one_shot = ["gameday", "history", "history-load"].contains(&name.as_str());
        if name == "loadgen" || one_shot {
            // They serve nothing to check.
            assert_eq!(service["healthcheck"]["disable"], true);
        } else {
            assert!(
                service["healthcheck"]["test"].is_array(),
                "{name}: no healthcheck"
            );
        }
        if name == "gameday" {
            // A tool run once (`docker compose run --rm gameday ...`), in a profile of its own.
            assert_eq!(service["profiles"], serde_json::json!(["tools"]), "{name}");
            assert!(
                service["restart"].is_null(),
                "{name}: a one-shot tool restarts not"
            );
        } else if one_shot {
            // The history, written and loaded once (`docker compose --profile history run --rm
            // history-load`).
            assert_eq!(
                service["profiles"],
                serde_json::json!(["history"]),
                "{name}"
            );
            assert_eq!(service["restart"], "no", "{name}: a one-shot restarts not");
        } else {
            assert_eq!(service["restart"], "unless-stopped", "{name}");
        }
        assert_eq!(
            service["read_only"], true,
            "{name}: root filesystem not read-only"
        );
        assert_eq!(service["cap_drop"], serde_json::json!(["ALL"]), "{name}");
        assert_eq!(
            service["security_opt"],
            serde_json::json!(["no-new-privileges:true"]),
            "{name}"
        );
        let user = service["user"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no user"));
        assert!(
            !user.starts_with("0:") && !user.starts_with("root"),
            "{name} runs as root"
        );
        for port in service["ports"].as_array().into_iter().flatten() {
            assert_eq!(
                port["host_ip"], "127.0.0.1",
                "{name} publishes {port} beyond loopback"
            );
        }
        let image = service["image"].as_str().unwrap();
        if image == "demo-service:local" {
            // One service builds the project's image, the others run it and pull nothing:
            // three builds of one tag race each other under Compose's bake builder.
            if name == "app" {
                assert!(service["build"].is_object());
            } else {
                assert!(service["build"].is_null(), "{name} builds the image again");
                assert_eq!(service["pull_policy"], "never", "{name}");
            }
        } else {
            let tag = image.rsplit_once(':').map_or("", |(_, tag)| tag);
            assert!(
                tag.chars().any(|c| c.is_ascii_digit()),
                "{name}: image {image} is not pinned"
            );
        }
    }
    // The seed's ports, fixed: the app on 5000 and its metrics on 8000 whatever was stopped
    // and started. (A range would move them at every start.) Its replicas publish nothing and
    // answer to the name `app` as well, so Prometheus finds them all by DNS, not by a list.
    let app = &services["app"];
    assert!(app["container_name"].is_null());
    let ports: Vec<String> = app["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(published)
        .collect();
    assert_eq!(ports, ["127.0.0.1:5000:5000", "127.0.0.1:8000:8000"]);
    let replica = &services["replica"];
    assert_eq!(replica["profiles"], serde_json::json!(["replicas"]));
    assert!(replica["ports"].is_null(), "replicas publish no ports");
    assert_eq!(
        replica["networks"]["default"]["aliases"],
        serde_json::json!(["app"])
    );
    assert_eq!(replica["deploy"]["replicas"], 2);
    for key in ["environment", "healthcheck", "user", "stop_grace_period"] {
        assert_eq!(replica[key], app[key], "replica and app differ in {key}");
    }
    let prometheus = read("prometheus/prometheus.yml");
    let job = prometheus
        .split("- job_name: ")
        .find(|job| job.starts_with("flask_app"))
        .unwrap();
    assert!(job.contains("dns_sd_configs:") && job.contains(r#"names: ["app"]"#));
    assert!(!job.contains("static_configs"), "{job}");
    // The load generator: only with `--profile load`, at the app, once the app is healthy.
    let loadgen = &services["loadgen"];
    assert_eq!(loadgen["profiles"], serde_json::json!(["load"]));
    assert_eq!(loadgen["command"][0], "load");
    assert!(
        loadgen["command"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--target=http://app:5000")
    );
    assert_eq!(loadgen["depends_on"]["app"]["condition"], "service_healthy");
    // Its own metrics, on the port Prometheus' job loadgen scrapes.
    assert!(
        loadgen["command"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--metrics-addr=0.0.0.0:9101")
    );
    let job = prometheus
        .split("- job_name: ")
        .find(|job| job.starts_with("loadgen"))
        .unwrap();
    assert!(job.contains(r#"names: ["loadgen"]"#) && job.contains("port: 9101"));
    // Start-up order, as the file's header explains it: Grafana waits for a healthy
    // Prometheus, Prometheus for a started app and a started Alertmanager.
    assert_eq!(
        services["grafana"]["depends_on"]["prometheus"]["condition"],
        "service_healthy"
    );
    for dependency in ["app", "alertmanager"] {
        assert_eq!(
            services["prometheus"]["depends_on"][dependency]["condition"],
            "service_started"
        );
    }
    // History survives re-creation, for a bounded time.
    let volumes: BTreeSet<_> = config["volumes"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let expected = [
        "alertmanager_data",
        "gameday_state",
        "grafana_data",
        "prometheus_data",
    ];
    assert_eq!(volumes, expected.map(str::to_owned).into());
    let command = services["prometheus"]["command"].as_array().unwrap();
    // Prometheus' admin API (deleting series) and lifecycle API (reload, quit) stay off.
    for flag in ["--web.enable-admin-api", "--web.enable-lifecycle"] {
        assert!(
            !command
                .iter()
                .any(|c| c.as_str().unwrap().starts_with(flag)),
            "{flag} in compose"
        );
        assert!(
            !read("scripts/stack").contains(flag),
            "{flag} in scripts/stack"
        );
    }
    assert!(
        command
            .iter()
            .any(|c| c == "--storage.tsdb.retention.time=31d")
    );
    // The exemplars are kept, in compose and natively.
    let exemplars = "--enable-feature=exemplar-storage";
    assert!(command.iter().any(|c| c == exemplars), "{command:?}");
    assert!(read("scripts/stack").contains(exemplars));
    // Grafana: the seed's admin/admin only as the fallback; no sign-up, no anonymous access.
    let grafana = &services["grafana"]["environment"];
    assert_eq!(grafana["GF_SECURITY_ADMIN_PASSWORD"], "admin");
    assert_eq!(grafana["GF_USERS_ALLOW_SIGN_UP"], "false");
    assert_eq!(grafana["GF_AUTH_ANONYMOUS_ENABLED"], "false");

    // The environment moves what it says it moves.
    let config = compose_config(&[
        ("BIND_ADDRESS", "0.0.0.0"),
        ("GRAFANA_ADMIN_PASSWORD", "s3cret"),
    ]);
    let ports: Vec<String> = config["services"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|s| s["ports"].as_array().cloned().unwrap_or_default())
        .map(|p| published(&p))
        .collect();
    assert!(
        ports.len() >= 6 && ports.iter().all(|p| p.starts_with("0.0.0.0:")),
        "{ports:?}"
    );
    assert_eq!(
        config["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"],
        "s3cret"
    );
}

#[test]
fn the_native_stack_starts_grafana_13_as_well_as_older_ones() {
    // Grafana 13 removed `grafana-server`; `grafana server` is what it has.
    let cases: [(&[&str], &str); 4] = [
        (&["grafana", "grafana-server"], "grafana server"),
        (&["grafana"], "grafana server"),
        (&["grafana-server"], "grafana-server"),
        (&[], ""),
    ];
    for (installed, expected) in cases {
        let bin = tempfile::tempdir().unwrap();
        for name in installed {
            let path = bin.path().join(name);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(&path, executable).unwrap();
        }
        let path = format!("{}:/usr/bin:/bin", bin.path().display());
        let out = stdout_of(
            Command::new(Path::new(ROOT).join("scripts/stack"))
                .arg("grafana-command")
                .env("PATH", path),
        );
        assert_eq!(out.trim(), expected, "with {installed:?} installed");
    }
}

#[test]
fn the_reference_configurations_for_scaling_prometheus_pass_promtool() {
    // The external labels that tell the replicas of an HA pair apart and that still reach the
    // alerts: Prometheus puts external labels on its alerts, then applies alert_relabel_configs
    // (a labeldrop whose anchored regex matches the name takes one off). Alertmanager
    // deduplicates identical alerts only, so with such a label each notification comes twice.
    let replica_labels_on_alerts = |config: &str| -> (Vec<String>, Vec<String>) {
        const CHECK: &str = r#"
import json, re, sys, yaml
config = yaml.safe_load(sys.stdin)
names = [n for n in (config.get("global") or {}).get("external_labels") or {} if "replica" in n.lower()]
drops = [r.get("regex", "(.*)") for r in (config.get("alerting") or {}).get("alert_relabel_configs") or []
         if r.get("action", "replace") == "labeldrop"]
json.dump([names, [n for n in names if not any(re.fullmatch(d, n) for d in drops)]], sys.stdout)
"#;
        let out = crate::helpers::pipe(
            Command::new(crate::helpers::tools_python()).args(["-c", CHECK]),
            config,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    for file in ["remote-write.yml", "federation.yml"] {
        let path = Path::new(ROOT).join("deploy/prometheus-scaling").join(file);
        stdout_of(
            Command::new(promtool())
                .args(["check", "config"])
                .arg(&path),
        );
        let config = std::fs::read_to_string(&path).unwrap();
        let (replica, on_alerts) = replica_labels_on_alerts(&config);
        assert!(
            on_alerts.is_empty(),
            "{file}: the external labels {on_alerts:?} tell the replicas apart and reach the \
             alerts: drop them with alerting.alert_relabel_configs (action: labeldrop)"
        );
        if file == "remote-write.yml" {
            // The HA pair's label is there, and the check sees it when it is not dropped.
            assert_eq!(replica, ["__replica__"]);
            let kept = config.replace("regex: __replica__", "regex: replica");
            assert_eq!(replica_labels_on_alerts(&kept).1, ["__replica__"]);
        }
    }
}

#[test]
fn docs_metrics_shows_every_panel_and_its_query() {
    let doc = read("docs/metrics.md");
    for (_, title, exprs) in queries(&dashboard()) {
        assert!(
            doc.contains(&format!("| {title} |")),
            "docs/metrics.md has no row for the panel {title:?}"
        );
        for expr in exprs {
            // As the page shows it: without the variables' selectors, `|` escaped.
            let shown = expr
                .replace(r#", job=~"$job", instance=~"$instance""#, "")
                .replace(r#"{job=~"$job", instance=~"$instance"}"#, "")
                .replace(r#"{job=~"$job"}"#, "")
                .replace('|', r"\|");
            assert!(
                doc.contains(&format!("`{shown}`")),
                "docs/metrics.md does not show the query of {title:?}: {shown}"
            );
        }
    }
}

/// An empty git work tree, for scripts/check-docs to check instead of this one.
fn scratch_repository() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(repo.path())
        .status()
        .unwrap();
    assert!(git.success());
    repo
}

/// Runs `scripts/check-docs MODE` on the scratch repository `repo`: whether it passed, and its
/// report.
fn check_docs_in(repo: &tempfile::TempDir, mode: &str) -> (bool, String) {
    let out = Command::new(Path::new(ROOT).join("scripts/check-docs"))
        .args(mode.split(' '))
        .env("CHECK_DOCS_ROOT", repo.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), report)
}

#[test]
fn the_docs_check_finds_broken_links_and_unrun_commands() {
    // The real documentation passes...
    let check = Path::new(ROOT).join("scripts/check-docs");
    let out = Command::new(&check).arg("--links").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and a page with a dead link, a dead anchor, a shell block that is neither run nor
    // needs what cannot run here, and one marked for a path that does not exist, does not.
    // (A block that needs a cluster, and one for the compose path, are fine.)
    let repo = scratch_repository();
    std::fs::write(repo.path().join("other.md"), "# A heading\n").unwrap();
    std::fs::write(
        repo.path().join("page.md"),
        "[gone](missing.md) [there](other.md#a-heading) [no anchor](other.md#nope)\n\n\
         ```sh\nls -l\n```\n\n```sh\nkubectl apply -k deploy/kubernetes\n```\n\n\
         ```sh runnable compose\ndocker compose up -d\n```\n\n\
         ```sh runnable staging\nls\n```\n",
    )
    .unwrap();
    let (passed, report) = check_docs_in(&repo, "--links");
    assert!(!passed, "{report}");
    assert!(report.contains("link missing.md: no such file"), "{report}");
    assert!(report.contains("no heading #nope"), "{report}");
    assert!(report.contains("page.md:3: a shell block"), "{report}");
    assert!(
        report.contains("page.md:15: `runnable staging`: a runnable block names at most one path"),
        "{report}"
    );
    assert!(report.contains("4 problems"), "{report}");
}

#[test]
fn the_docs_check_runs_each_path_s_blocks_in_one_terminal() {
    // Blocks for both paths, for one, and a variable set in one block and read in a later one,
    // as in a learner's terminal; on the native path, the compose block does not run.
    let repo = scratch_repository();
    std::fs::write(
        repo.path().join("page.md"),
        "```sh runnable\nGREETING=$(echo hello)   # kept\n```\n\n\
         ```sh runnable native\necho \"native: $GREETING\" > native.txt\n```\n\n\
         ```sh runnable compose\necho \"compose: $GREETING\" > compose.txt\n```\n\n\
         ```sh runnable\ntest \"$GREETING\" = hello && false\n```\n",
    )
    .unwrap();

    let (passed, report) = check_docs_in(&repo, "--blocks native");

    assert!(!passed, "{report}");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("native.txt")).unwrap(),
        "native: hello\n"
    );
    assert!(!repo.path().join("compose.txt").exists(), "{report}");
    assert!(report.contains("ran page.md:1 (native)"), "{report}");
    assert!(report.contains("FAILED page.md:13 (native)"), "{report}");
    assert!(
        report.contains("1 blocks of the native path failed"),
        "{report}"
    );
}

#[test]
fn the_docs_check_opens_every_url_and_fails_on_a_dead_one() {
    // A page naming, outside code blocks, a URL that answers, one that is 404, one where
    // nothing listens, one marked as compose's alone and one with a placeholder: the check
    // opens the first three and reports the two dead ones, with their lines.
    let service = crate::helpers::Service::start(&[]);
    let app = service.app.port();
    let nobody = crate::helpers::free_port();
    let repo = scratch_repository();
    std::fs::write(
        repo.path().join("page.md"),
        format!(
            "Open http://localhost:{app}/healthz.\n\
             The old page, http://localhost:{app}/targets, is gone.\n\
             Nothing at http://127.0.0.1:{nobody}/ready either.\n\
             Compose has http://localhost:{app}/query (compose).\n\
             And http://localhost:{app}/status/{{code}} answers any code.\n\n\
             ```sh\ndocker compose exec app curl http://localhost:{app}/in-a-block\n```\n"
        ),
    )
    .unwrap();
    let (passed, report) = check_docs_in(&repo, "--urls");
    assert!(!passed, "{report}");
    assert!(
        report.contains(&format!(
            "page.md:2: http://localhost:{app}/targets: 404 on the native stack"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "page.md:3: http://127.0.0.1:{nobody}/ready: no answer"
        )),
        "{report}"
    );
    assert!(
        report.contains(
            "3 URLs opened, 2 left out (compose only, Grafana, placeholders): 2 problems"
        ),
        "{report}"
    );
}
