//! Trace context and exemplars, black-box: a request's `traceparent` names its trace in the
//! OpenMetrics exemplars of the bucket that holds its duration, and in its log line; a request
//! without one, or with a malformed one, gets a fresh trace and its answer all the same.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::helpers::{
    Prometheus, Service, get_openmetrics, load, prometheus_config, query_exemplars, targets_file,
};

/// A `traceparent` of the trace `trace` (32 hex digits).
fn traceparent(trace: &str) -> String {
    format!("00-{trace}-00f067aa0ba902b7-01")
}

async fn get_traced(url: &str, traceparent: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = traceparent {
        request = request.header("traceparent", value);
    }
    request.send().await.unwrap().status().as_u16()
}

/// An exemplar as the exposition writes it: the sample it follows, the labels of that sample
/// (without `le`), its `le`, the exemplar's trace id and value.
#[derive(Debug)]
struct Exemplar {
    sample: String,
    labels: String,
    le: Option<f64>,
    trace: String,
    value: f64,
}

/// Every exemplar of an exposition.
fn exemplars(exposition: &str) -> Vec<Exemplar> {
    exposition
        .lines()
        .filter_map(|line| line.split_once(" # {"))
        .map(|(sample, exemplar)| {
            let (name, labels) = sample.split_once('{').unwrap();
            let labels = labels.rsplit_once('}').unwrap().0;
            let (labels, le) = match labels.rsplit_once(",le=\"") {
                Some((rest, le)) => (rest, Some(le.trim_end_matches('"'))),
                None => (labels, None),
            };
            let (exemplar_labels, rest) = exemplar.split_once("} ").unwrap();
            let trace = exemplar_labels
                .strip_prefix("trace_id=\"")
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or_else(|| {
                    panic!(
                        "an exemplar's labels are its trace_id: {line:?}",
                        line = exemplar
                    )
                });
            let mut numbers = rest.split(' ');
            let value = numbers.next().unwrap().parse().unwrap();
            let timestamp: f64 = numbers.next().unwrap().parse().unwrap();
            assert!(timestamp > 1.7e9, "a timestamp in seconds: {exemplar}");
            assert!(
                exemplar_labels.len() <= 128,
                "OpenMetrics' limit: {exemplar}"
            );
            Exemplar {
                sample: name.to_owned(),
                labels: labels.to_owned(),
                le: le.map(|le| {
                    if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    }
                }),
                trace: trace.to_owned(),
                value,
            }
        })
        .collect()
}

/// The upper bounds of http_request_duration_seconds.
const BOUNDS: [f64; 12] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];

#[tokio::test]
async fn a_traceparent_names_the_exemplar_of_its_bucket_and_its_log_line() {
    let service = Service::start(&["--min-delay", "0s", "--max-delay", "0.2s"]);
    // Three requests of known durations, each of a trace of its own, each alone in its bucket:
    // 30 ms, 300 ms and 1.2 s land in three different buckets.
    let delays = [("30ms", "a1"), ("300ms", "b2"), ("1200ms", "c3")];
    let mut sent = Vec::new();
    for (delay, tag) in delays {
        let trace = format!("{tag:0>32}");
        let status = get_traced(
            &service.app_url(&format!("/delay/{delay}")),
            Some(&traceparent(&trace)),
        )
        .await;
        assert_eq!(status, 200);
        sent.push(trace);
    }
    // And one to /, whose log line names its trace.
    let root = format!("{:0>32}", "d4");
    assert_eq!(
        get_traced(&service.app_url("/"), Some(&traceparent(&root))).await,
        200
    );

    let (_, body) = get_openmetrics(&service.metrics_url("/metrics")).await;
    let found = exemplars(&body);
    // The histogram: the last request of the /delay route is 1.2 s, in le="2.5"; the earlier
    // ones were each the latest of their own bucket, and stay there.
    let delay_buckets: Vec<&Exemplar> = found
        .iter()
        .filter(|e| {
            e.sample == "http_request_duration_seconds_bucket"
                && e.labels.contains("route=\"/delay/{duration}\"")
        })
        .collect();
    assert_eq!(delay_buckets.len(), 3, "{body}");
    for (exemplar, trace) in delay_buckets.iter().zip(&sent) {
        assert_eq!(&exemplar.trace, trace, "{exemplar:?}");
        let le = exemplar.le.unwrap();
        let below = BOUNDS
            .iter()
            .rev()
            .find(|&&b| b < le)
            .copied()
            .unwrap_or(0.0);
        assert!(
            below < exemplar.value && exemplar.value <= le,
            "{exemplar:?} lies outside its bucket"
        );
    }
    // The counter names the latest request of the route.
    let counter = found
        .iter()
        .find(|e| {
            e.sample == "http_requests_total" && e.labels.contains("route=\"/delay/{duration}\"")
        })
        .expect("an exemplar on http_requests_total");
    assert_eq!(counter.trace, sent[2]);
    assert!((1.2..=2.5).contains(&counter.value), "{counter:?}");
    // The seed's histogram names the request to /.
    assert!(
        found
            .iter()
            .any(|e| e.sample == "request_duration_seconds_bucket" && e.trace == root),
        "{body}"
    );
    // The 0.0.4 text format has no exemplars.
    let text = crate::helpers::get(&service.metrics_url("/metrics"))
        .await
        .1;
    assert!(!text.contains(" # {"), "{text}");

    // The log line of the request to / names its trace.
    let processed = service.wait_for_log(
        |e| e["message"] == "request processed",
        Duration::from_secs(5),
    );
    assert_eq!(processed["trace_id"], root.as_str(), "{processed}");
}

#[tokio::test]
async fn a_malformed_traceparent_gets_its_answer_and_a_trace_of_its_own() {
    let service = Service::start(&["--error-rate", "1"]);
    let valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let malformed = [
        valid.replacen("00-", "01-", 1).replace("-01", "-01-extra"), // a later version
        valid.replacen("00-", "ff-", 1),                             // version ff
        valid.replacen("00-", "zz-", 1),                             // not hex
        valid[..50].to_owned(),                                      // too short
        format!("{valid}0"),                                         // too long for 00
        valid.replace("0af7651916cd43dd8448eb211c80319c", &"0".repeat(32)), // zero trace id
        valid.replace("b7ad6b7169203331", &"0".repeat(16)),          // zero parent id
        valid.to_uppercase(),                                        // uppercase
        valid.replace(
            "0af7651916cd43dd8448eb211c80319c",
            "0af7651916cd43dd8448eb211c80319g",
        ),
    ];
    let mut fresh = Vec::new();
    for value in &malformed[1..] {
        // /simulate_error fails every time here: its error log line carries the trace.
        assert_eq!(
            get_traced(&service.app_url("/simulate_error"), Some(value)).await,
            500
        );
        let (_, body) = get_openmetrics(&service.metrics_url("/metrics")).await;
        let counter = exemplars(&body)
            .into_iter()
            .find(|e| e.sample == "http_requests_total" && e.labels.contains("simulate_error"))
            .unwrap();
        assert_eq!(counter.trace.len(), 32);
        assert!(
            counter
                .trace
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(
            !value.contains(&counter.trace),
            "{value} was taken: {counter:?}"
        );
        assert!(!fresh.contains(&counter.trace), "a trace used twice");
        fresh.push(counter.trace);
    }
    // A later version's extra field is allowed, and its trace is taken.
    assert_eq!(
        get_traced(&service.app_url("/simulate_error"), Some(&malformed[0])).await,
        500
    );
    // The log lines come through a background writer: the last one may follow its answer.
    service.wait_for_log(
        |e| e["trace_id"] == "0af7651916cd43dd8448eb211c80319c",
        Duration::from_secs(5),
    );
    let errors: Vec<String> = service
        .logs()
        .iter()
        .filter(|e| e["message"] == "simulated error occurred")
        .map(|e| e["trace_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(errors.len(), malformed.len());
    assert_eq!(errors[..fresh.len()], fresh[..]);
    assert_eq!(errors.last().unwrap(), "0af7651916cd43dd8448eb211c80319c");
    // Two traceparent headers are as good as none.
    let two = reqwest::Client::new()
        .get(service.app_url("/simulate_error"))
        .header("traceparent", valid)
        .header("traceparent", valid)
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 500);
    let last = service.wait_for_log(
        |e| {
            e["message"] == "simulated error occurred"
                && e["trace_id"] != "0af7651916cd43dd8448eb211c80319c"
                && !fresh.iter().any(|t| e["trace_id"] == t.as_str())
        },
        Duration::from_secs(5),
    );
    assert_eq!(last["trace_id"].as_str().unwrap().len(), 32);
}

/// Exemplars of `query` that Prometheus has stored since `start`, as (trace_id, value) pairs.
async fn stored_exemplars(prometheus: &Prometheus, query: &str, start: f64) -> Vec<(String, f64)> {
    query_exemplars(&format!("http://{}", prometheus.addr), query, start)
        .await
        .iter()
        .map(|e| {
            (
                e["labels"]["trace_id"].as_str().unwrap_or("").to_owned(),
                e["value"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn prometheus_stores_the_exemplars_of_the_generators_traces() {
    let service = Service::start(&["--max-delay", "300ms"]);
    let targets = targets_file(&[service.metrics]);
    let prometheus =
        Prometheus::start(|addr| prometheus_config(targets.path(), addr, None, None)).await;
    // Scraping before the traffic starts, so that every second of it is scraped.
    let deadline = Instant::now() + Duration::from_secs(20);
    while prometheus.query("up == 1").await.is_empty() {
        assert!(Instant::now() < deadline, "no scrape: {}", prometheus.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    // The load generator's traffic to /, every request listed with its trace (--slowest as
    // many as it sends), over six of Prometheus' one-second scrapes.
    let summary = load(
        &service,
        &[
            "--mix",
            "/=1",
            "--rate",
            "40",
            "--requests",
            "240",
            "--slowest",
            "240",
        ],
    );
    let sent: BTreeSet<String> = summary["slowest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent.len(), 240, "sent {}", summary["sent"]);
    // The log lines come through a background writer: wait until all of them are there.
    let logged = || -> BTreeSet<String> {
        service
            .logs()
            .iter()
            .filter(|e| e["message"] == "request processed")
            .map(|e| e["trace_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while logged().len() < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logged = logged();
    assert_eq!(
        logged, sent,
        "each request to / logs the trace it was sent with"
    );

    // The seed's histogram and the RED one of /: Prometheus has stored exemplars of both
    // (polled: a scrape after the last request), every one a trace the generator sent.
    let mut report = String::new();
    for query in [
        "request_duration_seconds_bucket",
        r#"http_request_duration_seconds_bucket{route="/"}"#,
    ] {
        let deadline = Instant::now() + Duration::from_secs(20);
        let exemplars = loop {
            let exemplars = stored_exemplars(&prometheus, query, started).await;
            // One per bucket that had requests, per scrape: there are more than a few.
            if exemplars.len() >= 6 {
                break exemplars;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: {} exemplars stored: {}",
                exemplars.len(),
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        for (trace, value) in &exemplars {
            assert!(sent.contains(trace), "{query}: {trace} was not sent");
            assert!((0.0..0.5).contains(value), "{query}: {value}");
        }
        let (trace, value) = &exemplars[exemplars.len() / 2];
        writeln!(
            report,
            "{query}: {} exemplars stored, every trace_id one the generator sent and the service logged; e.g. trace_id {trace}, {value} s",
            exemplars.len()
        )
        .unwrap();
    }
    crate::helpers::write_report("exemplars.txt", &report);
}
