//! deploy/kubernetes: kustomize renders it, every object is valid against its schema
//! (Kubernetes' own, and the Prometheus Operator's CRDs), and the generated PrometheusRule and
//! dashboard ConfigMap carry the repository's rules and dashboards unchanged.

use std::path::Path;
use std::process::Command;

use crate::helpers::{pipe, promtool, stdout_of, tools_python};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `kubectl kustomize deploy/kubernetes`: the objects, as a YAML stream.
fn rendered() -> String {
    stdout_of(
        Command::new("kubectl")
            .args(["kustomize", "deploy/kubernetes"])
            .current_dir(ROOT),
    )
}

/// Runs tests/kubernetes/validate.py over `objects`: what it printed, and whether all passed.
fn validate(objects: &str, rules_out: &Path) -> (String, bool) {
    let schemas = Path::new(ROOT).join("../shared/schemas/prometheus-operator");
    assert!(
        schemas.is_dir(),
        "the Prometheus Operator's CRDs are expected in {}",
        schemas.display()
    );
    let out = pipe(
        Command::new(tools_python())
            .arg(Path::new(ROOT).join("tests/kubernetes/validate.py"))
            .arg(&schemas)
            .arg(ROOT)
            .arg(rules_out),
        objects,
    );
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (report, out.status.success())
}

#[test]
fn the_manifests_render_and_every_object_is_valid() {
    let objects = rendered();
    let rules = tempfile::NamedTempFile::new().unwrap();
    let (report, ok) = validate(&objects, rules.path());
    assert!(ok, "{report}");
    for kind in [
        "Namespace",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
    ] {
        assert!(
            report.contains(&format!("valid   {kind}/")),
            "no valid {kind} in:\n{report}"
        );
    }
    // The rules as the Operator hands them to Prometheus pass promtool, as the sources do.
    stdout_of(
        Command::new(promtool())
            .args(["check", "rules"])
            .arg(rules.path()),
    );
}

#[test]
fn the_validation_refuses_an_unknown_field_and_a_drifted_rule() {
    let rules = tempfile::NamedTempFile::new().unwrap();
    // A typo in a core object and one in a custom resource: strict validation refuses both.
    let typos = rendered()
        .replacen("  replicas: 3", "  replica: 3", 1)
        .replacen("  - interval: 15s", "  - intervall: 15s", 1);
    let (report, ok) = validate(&typos, rules.path());
    assert!(!ok, "{report}");
    assert!(report.contains("'replica' was unexpected"), "{report}");
    assert!(report.contains("'intervall' was unexpected"), "{report}");
    // A rule changed in the manifest but not in prometheus/rules/.
    let drifted = rendered().replacen(
        r#"expr: up{job="flask_app"} == 0"#,
        r#"expr: up{job="flask_app"} == 2"#,
        1,
    );
    let (report, ok) = validate(&drifted, rules.path());
    assert!(!ok, "{report}");
    assert!(
        report.contains("DRIFTED PrometheusRule/demo-service"),
        "{report}"
    );
}

#[test]
fn the_generated_objects_are_what_the_generator_writes() {
    stdout_of(Command::new(Path::new(ROOT).join("scripts/kubernetes-generate")).arg("--check"));
}

#[test]
fn the_dashboard_folder_is_one_that_the_documented_values_make_grafana_read() {
    // Grafana's sidecar reads no folder annotation unless told which one: the values that
    // docs/scaling.md gives kube-prometheus-stack must name the one the ConfigMap carries.
    let objects = rendered();
    let config_map = objects
        .split("\n---\n")
        .find(|o| o.contains("kind: ConfigMap") && o.contains("name: demo-service-dashboards"))
        .expect("the dashboard ConfigMap");
    let annotation = config_map
        .lines()
        .skip_while(|l| *l != "  annotations:")
        .nth(1)
        .and_then(|l| l.trim().split_once(':'))
        .map(|(key, _)| key.to_owned())
        .expect("the dashboard ConfigMap has an annotation");
    assert_eq!(annotation, "grafana_folder");
    let docs = std::fs::read_to_string(Path::new(ROOT).join("docs/scaling.md")).unwrap();
    let values = docs
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/scaling.md shows kube-prometheus-stack's values");
    for line in [
        format!("folderAnnotation: {annotation}"),
        "foldersFromFilesStructure: true".to_owned(),
    ] {
        assert!(
            values.lines().any(|l| l.trim() == line),
            "docs/scaling.md's values lack `{line}`:\n{values}"
        );
    }
}

#[test]
fn the_pods_drain_within_their_grace_period() {
    let objects = rendered();
    let seconds = |key: &str| -> u64 {
        let line = objects
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in the Deployment"));
        line[key.len()..]
            .trim()
            .trim_end_matches('s')
            .parse()
            .unwrap()
    };
    let grace = seconds("terminationGracePeriodSeconds:");
    let pre_stop = seconds("seconds:");
    // The drain timeout the Deployment sets: the line after its name.
    let drain = objects
        .lines()
        .skip_while(|l| !l.contains("name: DEMO_SERVICE_SHUTDOWN_TIMEOUT"))
        .nth(1)
        .and_then(|l| l.trim().strip_prefix("value: "))
        .expect("DEMO_SERVICE_SHUTDOWN_TIMEOUT is set");
    let drain: u64 = drain.trim_end_matches('s').parse().unwrap();
    assert!(
        grace > pre_stop + drain,
        "grace {grace}s must exceed preStop {pre_stop}s + drain {drain}s"
    );
}
