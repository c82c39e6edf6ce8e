"""Parses an OpenMetrics text exposition (livestack's GET /metrics) with the
Prometheus project's own parser and prints its samples as JSON lines:
{"name": ..., "labels": {...}, "value": ...}. A parse error exits non-zero,
so a malformed exposition fails the test that scraped it.

Usage: python parse_metrics.py < exposition.txt
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main() -> None:
    text = sys.stdin.read()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))


if __name__ == "__main__":
    main()
