//! The compatibility test: the seed's own Flask app and the service get the same requests, and
//! their expositions, in both formats, must have the same families, types, sample names, label
//! names and values, and the same counts. Both are parsed by the seed's own client library.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{Seed, Service, get, get_openmetrics, pipe, seed_python};

const SEED_APP: &str = "http://127.0.0.1:5000";
const SEED_METRICS: &str = "http://127.0.0.1:8000/metrics";

/// A family as the Python client's parser reports it.
#[derive(Debug)]
struct Family {
    kind: String,
    /// Sample name -> label sets (as `k=v,...`) -> value.
    samples: BTreeMap<String, BTreeMap<String, f64>>,
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
            for s in family["samples"].as_array().unwrap() {
                let labels = s["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect::<Vec<_>>()
                    .join(",");
                let value = s["value"].as_f64().unwrap_or(f64::NAN);
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

#[tokio::test]
async fn the_exposition_matches_the_seeds_family_for_family() {
    let _seed = Seed::start();
    let service = Service::start(&["--max-delay", "1s"]);
    let ours = service.app_url("");

    // The same requests to both: three to `/` at once (the seed's take up to 5 s each), then
    // pairs to `/simulate_error` until each side has answered both 200 and 500.
    let (mut seed_codes, mut our_codes) = (Codes::new(), Codes::new());
    {
        let mut roots = tokio::task::JoinSet::new();
        for base in [SEED_APP, SEED_APP, SEED_APP, &ours, &ours, &ours] {
            let base = base.to_owned();
            roots.spawn(async move {
                reqwest::get(format!("{base}/"))
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
        }
        assert!(roots.join_all().await.iter().all(|&s| s == 200));
    }
    let mut pairs = 0;
    while seed_codes.len() < 2 || our_codes.len() < 2 {
        send(SEED_APP, "/simulate_error", &mut seed_codes).await;
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

    let mut report = String::new();
    for openmetrics in [false, true] {
        let seed = families(SEED_METRICS, openmetrics).await;
        let mine = families(&service.metrics_url("/metrics"), openmetrics).await;
        let format = if openmetrics {
            "OpenMetrics"
        } else {
            "text 0.0.4"
        };
        report += &format!("\n{format}: family / type / samples (label sets), seed = ours\n");

        for (name, theirs) in seed.iter().filter(|(name, _)| !name.starts_with("python_")) {
            let ours = mine
                .get(name)
                .unwrap_or_else(|| panic!("{format}: no family {name}"));
            assert_eq!(
                ours.shape(),
                theirs.shape(),
                "{format}: family {name} differs"
            );
            let samples: Vec<_> = theirs
                .samples
                .iter()
                .map(|(s, l)| format!("{s}({})", l.len()))
                .collect();
            report += &format!("  {name} / {} / {}\n", theirs.kind, samples.join(" "));
        }
        let extra: Vec<_> = mine
            .keys()
            .filter(|name| !seed.contains_key(*name))
            .collect();
        report += &format!("  ours only: {extra:?}\n");

        // The counts: both sides saw the same requests; each side's codes are its own draws.
        for (side, families, codes) in [("seed", &seed, &seed_codes), ("ours", &mine, &our_codes)] {
            let requests = 3 + pairs;
            let counted = families["request_count"].value("request_count_total", "");
            assert_eq!(
                counted,
                f64::from(requests),
                "{side} {format}: request_count_total"
            );
            for (summary, sample) in [
                (
                    "request_processing_seconds",
                    "request_processing_seconds_count",
                ),
                ("request_duration_seconds", "request_duration_seconds_count"),
            ] {
                assert_eq!(
                    families[summary].value(sample, ""),
                    3.0,
                    "{side} {format} {sample}"
                );
            }
            let codes_family = &families["response_code_count"];
            for (code, n) in codes {
                let seen =
                    codes_family.value("response_code_count_total", &format!("status_code={code}"));
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
                "  {side}: request_count_total {requests}, codes {codes:?}, error_count_total {errors}\n"
            );
        }
    }
    println!("{report}");
}
