//! Incident timelines: the shipped ones read and match their schema, and a short one plays on
//! the running service, step by step, as GET /admin/incidents says.

use std::path::Path;
use std::time::{Duration, Instant};

use demo_service::behaviour::faults::Limits;
use demo_service::behaviour::knobs::{Knobs, View};
use demo_service::behaviour::timeline::Timeline;

use crate::faults::Admin;
use crate::helpers::{BIN, get, sample, scrape, stdout_of, tools_python};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The TOML files of the repository's directory `dir`, in order.
fn toml_files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The timeline's schema, and the scenario's (which takes its knobs and durations from the
/// timeline's).
const TIMELINE_SCHEMA: &str = "incidents/timeline.schema.json";
const SCENARIO_SCHEMA: &str = "scenarios/scenario.schema.json";

/// Validates each TOML file against `schema` (one of the two above, both known to the
/// validator so that one may refer to the other) with Python's tomllib and jsonschema;
/// returns the files that fail, with why.
fn schema_faults(schema: &str, files: &[std::path::PathBuf]) -> String {
    let script = r#"
import json, sys, tomllib, jsonschema, referencing
schemas = [json.load(open(path)) for path in sys.argv[1:3]]
registry = referencing.Registry().with_resources(
    (s["$id"], referencing.Resource.from_contents(s)) for s in schemas)
schema = schemas[0]
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema, registry=registry)
for path in sys.argv[3:]:
    with open(path, "rb") as f:
        for e in validator.iter_errors(tomllib.load(f)):
            print(f"{path}: {'/'.join(map(str, e.path))}: {e.message}")
"#;
    let other = if schema == TIMELINE_SCHEMA {
        SCENARIO_SCHEMA
    } else {
        TIMELINE_SCHEMA
    };
    stdout_of(
        std::process::Command::new(tools_python())
            .args(["-c", script])
            .arg(Path::new(ROOT).join(schema))
            .arg(Path::new(ROOT).join(other))
            .args(files),
    )
}

#[test]
fn the_shipped_scenarios_match_their_schema_and_the_schema_refuses_what_the_parser_does() {
    let files = toml_files("scenarios");
    assert!(files.len() >= 13, "{files:?}");
    assert_eq!(schema_faults(SCENARIO_SCHEMA, &files), "");
    // What the parser refuses, the schema refuses too.
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        (
            "no-for",
            "description = \"d\"\n[[step]]\nat = \"0s\"\nset = { error_rate = 1.0 }\n[[expect]]\nalert = \"A\"\nfiring = \"1m\"\nresolved = \"1m\"\n",
        ),
        (
            "no-expect",
            "description = \"d\"\n[[stop]]\nservice = \"app\"\nat = \"0s\"\nfor = \"1m\"\n",
        ),
        (
            "bad-part",
            "description = \"d\"\n[[kill]]\nservice = \"grafana\"\nat = \"0s\"\n[[expect]]\nalert = \"A\"\nfiring = \"1m\"\nresolved = \"1m\"\n",
        ),
        (
            "bad-knob",
            "description = \"d\"\n[[step]]\nat = \"0s\"\nfor = \"1m\"\nset = { colour = 1 }\n[[expect]]\nalert = \"A\"\nfiring = \"1m\"\nresolved = \"1m\"\n",
        ),
    ];
    let mut paths = Vec::new();
    for (name, text) in bad {
        assert!(
            demo_service::scenario::Scenario::parse(name, text).is_err(),
            "{name}: the parser takes it"
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let faults = schema_faults(SCENARIO_SCHEMA, &paths);
    for (name, _) in bad {
        assert!(
            faults.contains(&format!("{name}.toml")),
            "{name}: the schema takes it:\n{faults}"
        );
    }
}

#[test]
fn the_shipped_timelines_read_and_match_their_schema() {
    let files = toml_files("incidents");
    assert!(files.len() >= 8, "{files:?}");
    for file in &files {
        Timeline::read(file, &Knobs::default(), &Limits::default())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(schema_faults(TIMELINE_SCHEMA, &files), "");
    // The schema names every knob, and nothing else.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join(TIMELINE_SCHEMA)).unwrap(),
    )
    .unwrap();
    let mut in_schema: Vec<&str> = schema["$defs"]["knobs"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut knobs: Vec<&str> = View::from(&Knobs::default()).names().collect();
    in_schema.sort();
    knobs.sort();
    assert_eq!(in_schema, knobs);
    // A timeline for every fault of the catalogue.
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for knob in [
        "not_ready",
        "memory_leak",
        "cpu_burn",
        "dependency_down",
        "dependency_latency",
        "metrics_delay",
        "hide_family",
        "cardinality",
    ] {
        assert!(
            all.contains(&format!("{knob} =")),
            "no timeline sets {knob}"
        );
    }
}

#[test]
fn a_bad_timeline_is_refused_by_its_schema_and_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[step]]\nat = \"1m\"\nset = { cpu = \"5s\" }\n").unwrap();

    assert!(
        schema_faults(TIMELINE_SCHEMA, std::slice::from_ref(&bad))
            .contains("step/0/set: Additional properties are not allowed ('cpu' was unexpected)"),
        "the schema let it through"
    );
    let out = std::process::Command::new(BIN)
        .args(["--app-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .arg("--incidents")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("bad.toml: step 1: set: unknown field `cpu`, expected one of `error_rate`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_short_timeline_plays_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("short.toml");
    std::fs::write(
        &file,
        r#"description = "errors, then more series"
[[step]]
at = "1s"
for = "2s"
set = { error_rate = 1.0 }
[[step]]
at = "1500ms"
for = "2s"
set = { cardinality = 7 }
"#,
    )
    .unwrap();
    let started = Instant::now();
    let admin = Admin::start(&["--incidents", file.to_str().unwrap()]);
    let incidents = || admin.get("/admin/incidents");
    let status = incidents().await;
    assert_eq!(status["timeline"], "short");
    assert_eq!(status["next"]["step"], 1, "{status}");
    assert_eq!(status["next"]["set"]["error_rate"], 1.0);

    // Step 1 plays from 1 s to 3 s, step 2 from 1.5 s to 3.5 s: in between, both.
    let until = |at: Duration| tokio::time::sleep(at.saturating_sub(started.elapsed()));
    until(Duration::from_millis(2000)).await;
    let status = incidents().await;
    assert_eq!(status["playing"].as_array().unwrap().len(), 2, "{status}");
    assert_eq!(get(&admin.service.app_url("/simulate_error")).await.0, 500);
    let m = scrape(&admin.service.metrics_url("/metrics")).await;
    assert_eq!(
        sample(&m, r#"demo_service_fault_active{fault="cardinality"}"#),
        1.0
    );
    // By hand, meanwhile: the step's end leaves this knob alone.
    admin.set(r#"{"cardinality": 3}"#).await;

    until(Duration::from_millis(4500)).await;
    let status = incidents().await;
    assert_eq!(status["playing"], serde_json::json!([]), "{status}");
    assert_eq!(status["next"], serde_json::Value::Null, "played once: over");
    let knobs = admin.get("/admin/knobs").await;
    assert_eq!(knobs["error_rate"], 0.2, "put back");
    assert_eq!(knobs["cardinality"], 3, "changed by hand: kept");
    let logged: Vec<String> = admin
        .service
        .logs()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("incident step"))
        })
        .map(|l| format!("{} {} {}", l["message"], l["step"], l["changes"]))
        .collect();
    assert_eq!(
        logged,
        [
            r#""incident step began" 1 "error_rate 0.2 -> 1.0""#,
            r#""incident step began" 2 "cardinality 0 -> 7""#,
            r#""incident step ended" 1 "error_rate 1.0 -> 0.2""#,
            r#""incident step ended" 2 "nothing""#,
        ]
    );
}
