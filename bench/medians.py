#!/usr/bin/env python3
"""Medians over repeated runs, per scenario and server, of the figures the
publishing bars are judged on.

    bench/medians.py RESULTS.jsonl [MORE.jsonl ...]

Each file's runs are grouped by (scenario, clients, server); a group's line
shows how many runs it has and the median of each figure (figures a
scenario does not measure read 0).
"""

import collections
import json
import statistics
import sys

FIGURES = [
    ("publishes_per_s", "publishes/s", "{:.0f}"),
    ("cpu_us_per_publish", "CPU/publish µs", "{:.1f}"),
    ("cpu_us_per_delivery", "CPU/delivery µs", "{:.3f}"),
    ("ack_p99_ms", "ack p99 ms", "{:.1f}"),
    ("overtaken_max", "overtaken max", "{:.0f}"),
    ("lat_p50_ms", "p50 ms", "{:.2f}"),
    ("lat_p99_ms", "p99 ms", "{:.2f}"),
    ("idle_bytes_per_conn", "idle B/conn", "{:.0f}"),
]


def main(paths):
    groups = collections.OrderedDict()
    for path in paths:
        with open(path) as f:
            for line in f:
                run = json.loads(line)
                key = (path, run["scenario"], run["clients"], run["server"])
                groups.setdefault(key, []).append(run)
    last = None
    for (path, scenario, clients, server), runs in groups.items():
        if (path, scenario, clients) != last:
            last = (path, scenario, clients)
            print(f"\n{path}: {scenario}, {clients} clients")
            print("| server | runs | " + " | ".join(h for _, h, _ in FIGURES) + " |")
            print("|---|---:|" + "---:|" * len(FIGURES))
        cells = []
        for field, _, fmt in FIGURES:
            values = [r[field] for r in runs if r.get(field) is not None]
            cells.append(fmt.format(statistics.median(values)) if values else "")
        print(f"| {server} | {len(runs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["bench/results/results.jsonl"])
