"""Parses an exposition from stdin with the Python client's own parsers and prints its families
as JSON: [{"name", "type", "samples": [{"name", "labels", "value", "exemplar"}]}], where an
exemplar (OpenMetrics only) is {"labels", "value", "timestamp"} or null.

Usage: families.py text|openmetrics < exposition

Run in the seed's virtualenv (prometheus_client 0.11), so that the seed's reference parsers judge
both the seed's exposition and the service's: the OpenMetrics parser is strict and fails on any
exposition that breaks the format.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as text

parse = {"text": text, "openmetrics": openmetrics}[sys.argv[1]]
families = [
    {
        "name": family.name,
        "type": family.type,
        "samples": [
            {
                "name": s.name,
                "labels": s.labels,
                "value": s.value,
                "exemplar": getattr(s, "exemplar", None)
                and {
                    "labels": s.exemplar.labels,
                    "value": s.exemplar.value,
                    "timestamp": s.exemplar.timestamp and float(s.exemplar.timestamp),
                },
            }
            for s in family.samples
        ],
    }
    for family in parse(sys.stdin.read())
]
json.dump(families, sys.stdout, indent=1)
