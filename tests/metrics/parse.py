"""Reads Prometheus text exposition on stdin and prints its samples as JSON:
{"<sample name>": [{"labels": {...}, "value": <float>}, ...], ...}, with each family's type under
"__types__" ({"<family name>": "counter" | "gauge" | "histogram" | ...}).

The parser is the reference one, prometheus_client's (PyPI `prometheus-client`): text it refuses
exits non-zero with its error.
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    samples: dict = {}
    types: dict = {}
    for family in text_string_to_metric_families(sys.stdin.read()):
        types[family.name] = family.type
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(
                {"labels": dict(sample.labels), "value": sample.value}
            )
    samples["__types__"] = types
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
