"""Validates rendered Kubernetes objects (a YAML stream on stdin) against their schemas.

Core kinds against Kubernetes' own (the kubernetes-validate package, strict: unknown fields are
errors); the Prometheus Operator's kinds against the openAPIV3Schema of their
CustomResourceDefinitions, from the directory given as the first argument. Prints one line per
object; exits 1 if any is invalid or has no schema.

    kubectl kustomize deploy/kubernetes | python validate.py SCHEMA_DIR ROOT RULES_OUT

It also checks that what was rendered carries the repository's sources unchanged: the
PrometheusRule's groups are those of ROOT/prometheus/rules/*.yml (which it writes to RULES_OUT,
for promtool), and the dashboards' ConfigMap holds ROOT/grafana/dashboards/*.json.
"""

import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml


def strict(schema):
    """The schema, with unknown fields refused wherever it lists the known ones, as the API
    server's strict field validation (kubectl apply --validate=strict) refuses them."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


def crd_schemas(directory):
    """(group/version, kind) -> the openAPIV3Schema of every CRD in directory."""
    schemas = {}
    for path in sorted(pathlib.Path(directory).glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            # Not checked against the metaschema: its patterns are Go's (RE2), not Python's.
            schemas[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return schemas


KUBERNETES = "1.32.0"


def same_as_sources(obj, root, rules_out):
    """A message when obj is the PrometheusRule or the dashboards' ConfigMap and does not hold
    what the sources under root hold; None otherwise."""
    if obj["kind"] == "PrometheusRule":
        groups = []
        for path in sorted((root / "prometheus/rules").glob("*.yml")):
            groups += yaml.safe_load(path.read_text())["groups"]
        rules_out.write_text(yaml.safe_dump({"groups": obj["spec"]["groups"]}))
        if obj["spec"]["groups"] != groups:
            return "its groups differ from prometheus/rules/*.yml"
    elif obj["kind"] == "ConfigMap" and "grafana_dashboard" in obj["metadata"].get("labels", {}):
        sources = {p.name: json.loads(p.read_text()) for p in (root / "grafana/dashboards").glob("*.json")}
        rendered = {name: json.loads(text) for name, text in obj["data"].items()}
        if rendered != sources:
            return "its dashboards differ from grafana/dashboards/*.json"
    return None


def main():
    crds = crd_schemas(sys.argv[1])
    root, rules_out = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    failures = 0
    for obj in yaml.safe_load_all(sys.stdin):
        if obj is None:
            continue
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        key = (obj.get("apiVersion"), obj.get("kind"))
        try:
            if key in crds:
                error = jsonschema.exceptions.best_match(crds[key].iter_errors(obj))
                if error:
                    raise error
                print(f"valid   {name} (its CRD's schema, strict)")
            else:
                kubernetes_validate.validate(obj, KUBERNETES, strict=True)
                print(f"valid   {name} (Kubernetes {KUBERNETES}, strict)")
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            failures += 1
            where = "/".join(str(p) for p in error.path)
            print(f"INVALID {name} at {where or '(root)'}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            failures += 1
            print(f"INVALID {name}: no schema for {key[0]} {key[1]}")
        drift = same_as_sources(obj, root, rules_out)
        if drift:
            failures += 1
            print(f"DRIFTED {name}: {drift} (run scripts/kubernetes-generate)")
    sys.exit(1 if failures else 0)


main()
