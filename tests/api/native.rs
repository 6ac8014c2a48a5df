//! Native histograms through a real Prometheus (Debian's 2.42, with the feature flag that
//! scripts/stack gives it), and the protobuf exposition they travel in.

use std::time::Duration;

use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::MetricFamily;
use prost::Message;
use serde_json::Value;

use crate::compose::poll;
use crate::helpers::{Daemon, Service, load, prometheus_config, query, targets_file};

/// Prometheus 3.13's Accept header with native histograms on, verbatim (scrape/scrape_test.go).
pub const ACCEPT_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

fn number(result: &[Value]) -> f64 {
    result
        .first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Every family of a protobuf body, read with the `.proto`'s own types.
pub fn families(body: &[u8]) -> Vec<MetricFamily> {
    let mut rest = body;
    let mut families = Vec::new();
    while !rest.is_empty() {
        families.push(MetricFamily::decode_length_delimited(&mut rest).unwrap());
    }
    families
}

#[tokio::test]
async fn the_protobuf_exposition_decodes_with_every_family_and_native_exemplars() {
    let service = Service::start(&["--max-delay", "10ms"]);
    for path in ["/", "/", "/simulate_error"] {
        reqwest::get(service.app_url(path)).await.unwrap();
    }
    let response = reqwest::Client::new()
        .get(service.metrics_url("/metrics"))
        .header("accept", ACCEPT_NATIVE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    );
    assert_eq!(response.headers()["vary"], "Accept");
    let families = families(&response.bytes().await.unwrap());
    let family = |name: &str| {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    // The seed's, the RED ones and the process', name for name.
    for name in [
        "request_processing_seconds",
        "request_count_total",
        "request_count_created",
        "request_duration_seconds",
        "error_count_total",
        "response_code_count_total",
        "current_users",
        "http_requests_total",
        "http_request_duration_seconds",
        "process_resident_memory_bytes",
    ] {
        family(name);
    }
    assert_eq!(
        family("request_count_total").metric[0]
            .counter
            .as_ref()
            .unwrap()
            .value,
        3.0
    );
    // The native histogram: schema 3, a zero threshold, spans and deltas, and exemplars with
    // their timestamps, the same requests as the classic buckets' exemplars.
    let native = family("request_duration_native_seconds").metric[0]
        .histogram
        .clone()
        .unwrap();
    assert_eq!((native.schema, native.sample_count), (3, 2));
    assert!(native.zero_threshold > 0.0);
    assert!(!native.positive_span.is_empty() && !native.positive_delta.is_empty());
    // Both requests took under 100 ms: one classic bucket, whose latest request is the one
    // exemplar.
    assert_eq!(native.exemplars.len(), 1);
    for exemplar in &native.exemplars {
        assert_eq!(exemplar.label[0].name, "trace_id");
        assert!(
            exemplar
                .timestamp
                .is_some_and(|t| t.seconds > 1_700_000_000)
        );
    }
    // The classic buckets' exemplars too, and the RED counter's.
    let classic = family("request_duration_seconds").metric[0]
        .histogram
        .clone()
        .unwrap();
    assert!(classic.bucket.iter().any(|b| b.exemplar.is_some()));
    let red = &family("http_requests_total").metric[0];
    assert!(red.counter.as_ref().unwrap().exemplar.is_some());
}

/// Under a lognormal load, Prometheus 2.42 stores the native histogram as one, and its p99 is
/// within a bucket's width of the load generator's exact one; the classic families are stored
/// as before, and the seed's queries answer.
#[tokio::test]
async fn prometheus_stores_the_native_histogram_and_its_p99_is_within_a_bucket() {
    let service = Service::start(&[
        "--delay-distribution",
        "lognormal:250ms:3s",
        "--max-delay",
        "20s",
        "--error-rate",
        "0",
        "--seed",
        "7",
    ]);
    let targets = targets_file(&[service.metrics]);
    let prometheus =
        Daemon::start(|addr| prometheus_config(targets.path(), addr, None, None)).await;
    let base = format!("http://{}", prometheus.addr);
    // 2,000 requests to /, each drawn from the lognormal: the p99 is that of 2,000 draws. Room
    // for every one of them in flight and within its time, so that none waits for a
    // connection (which the generator's latency would count) or is given up on.
    let summary = load(
        &service,
        &[
            "--rate",
            "100",
            "--duration",
            "20s",
            "--mix",
            "/=1",
            "--connections",
            "1000",
            "--timeout",
            "30s",
        ],
    );
    let answered = summary["status"]["200"].as_f64().unwrap();
    assert_eq!(summary["sent"].as_f64(), Some(answered), "{summary}");
    let selector = "request_duration_native_seconds{job=\"flask_app\"}";
    // Every answered request is in the native histogram Prometheus last scraped.
    poll(
        "Prometheus to scrape every request",
        Duration::from_secs(30),
        || async {
            let count = number(&query(&base, &format!("histogram_count({selector})"), None).await);
            (count == answered).then_some(())
        },
    )
    .await;
    let truth = summary["latency_seconds"]["p99"].as_f64().unwrap();
    let native = number(
        &query(
            &base,
            &format!("histogram_quantile(0.99, {selector})"),
            None,
        )
        .await,
    );
    let classic = number(
        &query(
            &base,
            "histogram_quantile(0.99, sum by (le) (request_duration_seconds_bucket{job=\"flask_app\"}))",
            None,
        )
        .await,
    );
    println!(
        "p99 of {answered} requests: generator {truth:.3} s, native {native:.3} s, classic {classic:.3} s"
    );
    // A native bucket is at most 2^(1/8) wide: an estimate inside it is off by less than that.
    let factor = 2f64.powf(1.0 / 8.0);
    assert!(
        native / truth < factor && truth / native < factor,
        "native p99 {native} against the generator's {truth}"
    );
    // The seed's buckets put it between 2 s and 5 s, and far from the truth.
    assert!((2.0..=5.0).contains(&classic), "classic p99 {classic}");
    assert!(
        (classic / truth - 1.0).abs() > 2.0 * (native / truth - 1.0).abs(),
        "classic {classic}, native {native}, truth {truth}"
    );
    // The classic families are stored as before: eight buckets and +Inf, the count, the sum,
    // the created time; and the seed's queries answer.
    let buckets = query(
        &base,
        "count(request_duration_seconds_bucket{job=\"flask_app\"})",
        None,
    )
    .await;
    assert_eq!(number(&buckets), 9.0);
    for expr in [
        "request_count_total",
        "request_count_created",
        "rate(request_duration_seconds_count[1m])",
        "request_processing_seconds_sum",
        "http_request_duration_seconds_bucket{le=\"5.0\"}",
    ] {
        assert!(
            !query(&base, expr, None).await.is_empty(),
            "{expr}: nothing"
        );
    }
    // The native histogram is one series, with no _bucket, _count or _sum of its own.
    let native_series = query(
        &base,
        "count({__name__=~\"request_duration_native_seconds.*\"})",
        None,
    )
    .await;
    assert_eq!(number(&native_series), 1.0);
}
