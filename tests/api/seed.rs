//! The compatibility test: the seed's own Flask app and the service get the same requests, and
//! their expositions, in both formats, must have the same families, types, sample names, label
//! names and values, and the same counts. Both are parsed by the seed's own client library.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{Seed, Service, get, get_openmetrics, pipe, seed_python};

/// A family as the Python client's parser reports it.
#[derive(Debug)]
struct Family {
    kind: String,
    /// Sample name -> label sets (as `k=v,...`) -> value.
    samples: BTreeMap<String, BTreeMap<String, f64>>,
    /// Sample name and label set -> the exemplar's trace_id and value (OpenMetrics only).
    exemplars: BTreeMap<(String, String), (String, f64)>,
}

impl Family {
    /// What must be equal on both sides: the type, and each sample name with its label sets.
    fn shape(&self) -> (String, BTreeMap<&String, BTreeSet<&String>>) {
        let samples = self
            .samples
            .iter()
            .map(|(name, series)| (name, series.keys().collect()))
            .collect();
        (self.kind.clone(), samples)
    }

    fn value(&self, sample: &str, labels: &str) -> f64 {
        self.samples[sample][labels]
    }
}

/// Fetches an exposition and parses it with the seed's client library; the OpenMetrics parser
/// rejects any exposition that breaks the format.
async fn families(url: &str, openmetrics: bool) -> BTreeMap<String, Family> {
    let body = if openmetrics {
        get_openmetrics(url).await.1
    } else {
        get(url).await.1
    };
    let format = if openmetrics { "openmetrics" } else { "text" };
    let mut parser = Command::new(seed_python());
    parser
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/seed/families.py"
        ))
        .arg(format);
    let out = pipe(&mut parser, &body);
    assert!(
        out.status.success(),
        "the {format} parser rejects {url}:\n{}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    parsed
        .into_iter()
        .map(|family| {
            let mut samples: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
            let mut exemplars = BTreeMap::new();
            for s in family["samples"].as_array().unwrap() {
                let labels = s["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect::<Vec<_>>()
                    .join(",");
                let value = s["value"].as_f64().unwrap_or(f64::NAN);
                if let Some(exemplar) = s["exemplar"].as_object() {
                    let trace = exemplar["labels"]["trace_id"].as_str().unwrap_or("");
                    exemplars.insert(
                        (s["name"].as_str().unwrap().to_owned(), labels.clone()),
                        (trace.to_owned(), exemplar["value"].as_f64().unwrap()),
                    );
                }
                samples
                    .entry(s["name"].as_str().unwrap().to_owned())
                    .or_default()
                    .insert(labels, value);
            }
            let name = family["name"].as_str().unwrap().to_owned();
            (
                name,
                Family {
                    kind: family["type"].as_str().unwrap().to_owned(),
                    samples,
                    exemplars,
                },
            )
        })
        .collect()
}

/// Status codes seen, by code.
type Codes = BTreeMap<u16, u32>;

async fn send(base: &str, path: &str, codes: &mut Codes) {
    let status = reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .status()
        .as_u16();
    *codes.entry(status).or_default() += 1;
}

/// Checks that every family of the seed's (`python_*` aside) is in ours with the same type,
/// sample names and label sets, in both formats; returns both sides' families per format, and a
/// report of what was compared.
async fn same_shapes(
    seed: &Seed,
    service: &Service,
    stage: &str,
) -> (Vec<[BTreeMap<String, Family>; 2]>, String) {
    let mut report = String::new();
    let mut parsed = Vec::new();
    for openmetrics in [false, true] {
        let theirs = families(&seed.metrics, openmetrics).await;
        let ours = families(&service.metrics_url("/metrics"), openmetrics).await;
        let format = if openmetrics {
            "OpenMetrics"
        } else {
            "text 0.0.4"
        };
        report += &format!(
            "\n{stage}, {format}: family / type / sample names (label sets): seed = ours\n"
        );
        for (name, family) in theirs
            .iter()
            .filter(|(name, _)| !name.starts_with("python_"))
        {
            let mine = ours
                .get(name)
                .unwrap_or_else(|| panic!("{stage}, {format}: no family {name}"));
            assert_eq!(
                mine.shape(),
                family.shape(),
                "{stage}, {format}: family {name} differs"
            );
            let samples: Vec<_> = family
                .samples
                .iter()
                .map(|(s, l)| format!("{s}({})", l.len()))
                .collect();
            report += &format!("  {name} / {} / {}\n", family.kind, samples.join(" "));
        }
        let extra: Vec<_> = ours
            .keys()
            .filter(|name| !theirs.contains_key(*name))
            .collect();
        report += &format!("  ours only: {extra:?}\n");
        parsed.push([theirs, ours]);
    }
    (parsed, report)
}

#[tokio::test]
async fn the_exposition_matches_the_seeds_family_for_family() {
    let seed = Seed::start();
    let service = Service::start(&["--max-delay", "1s"]);
    let ours = service.app_url("");

    // Before any request: the same families, and no child of response_code_count yet.
    let (_, mut report) = same_shapes(&seed, &service, "before any request").await;

    // The same requests to both: three to `/` at once (the seed's take up to 5 s each), each
    // naming a trace of its own, then pairs to `/simulate_error` until each side has answered
    // both 200 and 500.
    let (mut seed_codes, mut our_codes) = (Codes::new(), Codes::new());
    let traces: Vec<String> = (1..=3).map(|i| format!("{i:032x}")).collect();
    {
        let mut roots = tokio::task::JoinSet::new();
        for (base, trace) in [&seed.app, &ours]
            .into_iter()
            .flat_map(|base| traces.iter().map(move |t| (base, t)))
        {
            let url = format!("{base}/");
            let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
            roots.spawn(async move {
                let client = reqwest::Client::new();
                let request = client.get(url).header("traceparent", traceparent);
                request.send().await.unwrap().status().as_u16()
            });
        }
        assert!(roots.join_all().await.iter().all(|&s| s == 200));
    }
    let mut pairs = 0;
    while seed_codes.len() < 2 || our_codes.len() < 2 {
        send(&seed.app, "/simulate_error", &mut seed_codes).await;
        send(&ours, "/simulate_error", &mut our_codes).await;
        pairs += 1;
        assert!(
            pairs < 500,
            "no 500 (or no 200) in 500 tries: seed {seed_codes:?}, ours {our_codes:?}"
        );
    }
    for codes in [&mut seed_codes, &mut our_codes] {
        *codes.entry(200).or_default() += 3;
    }

    let (parsed, shapes) = same_shapes(&seed, &service, "after the requests").await;
    report += &shapes;
    // The counts: both sides saw the same requests; each side's codes are its own draws.
    for ([theirs, mine], format) in parsed.iter().zip(["text 0.0.4", "OpenMetrics"]) {
        for (side, families, codes) in [("seed", theirs, &seed_codes), ("ours", mine, &our_codes)] {
            let requests = 3 + pairs;
            let counted = families["request_count"].value("request_count_total", "");
            assert_eq!(
                counted,
                f64::from(requests),
                "{side} {format}: request_count_total"
            );
            for (family, sample) in [
                (
                    "request_processing_seconds",
                    "request_processing_seconds_count",
                ),
                ("request_duration_seconds", "request_duration_seconds_count"),
            ] {
                assert_eq!(
                    families[family].value(sample, ""),
                    3.0,
                    "{side} {format} {sample}"
                );
            }
            let answered = &families["response_code_count"];
            for (code, n) in codes {
                let seen =
                    answered.value("response_code_count_total", &format!("status_code={code}"));
                assert_eq!(
                    seen,
                    f64::from(*n),
                    "{side} {format}: responses with {code}"
                );
            }
            let errors = families["error_count"].value("error_count_total", "");
            assert_eq!(
                errors,
                f64::from(codes[&500]),
                "{side} {format}: error_count_total"
            );
            report += &format!(
                "{format}, {side}: request_count_total {requests}, responses {codes:?}, error_count_total {errors}\n"
            );
        }
    }
    // The exemplars, which the seed's OpenMetrics parser read above: on the seed's histogram,
    // each names one of the three traces and lies within its bucket; none in the text format.
    let [text, openmetrics] = [&parsed[0][1], &parsed[1][1]];
    assert!(text.values().all(|f| f.exemplars.is_empty()));
    let histogram = &openmetrics["request_duration_seconds"];
    assert!(!histogram.exemplars.is_empty(), "no exemplar");
    let bounds = [0.0, 0.1, 0.3, 0.5, 0.7, 1.0, 2.0, 5.0, 10.0, f64::INFINITY];
    for ((sample, labels), (trace, value)) in &histogram.exemplars {
        assert_eq!(sample, "request_duration_seconds_bucket");
        assert!(traces.contains(trace), "{trace} is none of {traces:?}");
        let le: f64 = labels.trim_start_matches("le=").parse().unwrap();
        let below = bounds[bounds.iter().position(|&b| b == le).unwrap() - 1];
        assert!(
            below < *value && *value <= le,
            "{value} in the bucket le={le}"
        );
        report += &format!(
            "exemplar of request_duration_seconds_bucket{{{labels}}}: trace_id {trace}, {value} s\n"
        );
    }
    crate::helpers::write_report("seed-comparison.txt", &report);
}
