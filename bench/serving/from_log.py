"""Rebuild ``serving.json`` from a run's console log (what ``run.py`` prints per measurement).

    .venv/bin/python -m bench.serving.from_log bench/results/serving_run.log

Used for the committed results: that run's last measurement failed (Feast ``serve``'s worker
was restarted by gunicorn) before the harness wrote results incrementally, so its JSON was
never written. The log holds p50/p99 and requests/s of every measurement; means, sample counts
and response sizes are not in it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from bench.serving.run import RESULTS, summarize

LINE = re.compile(
    r"^  (?P<system>nbfeatures FeatureClient|\S+)\s+(?P<n>\d+)e_(?P<f>\d+)f\s+p50 (?P<p50>[\d.]+)"
    r" p99 (?P<p99>[\d.]+) ms(?:\s+(?P<rps>\d+) req/s \((?P<failed>\d+) failed\))?"
)
REDIS = re.compile(
    r"^  redis-benchmark MGET\s+(?P<n>\d+) keys: 1 client p50 (?P<p50>[\d.]+) p99 "
    r"(?P<p99>[\d.]+) ms, (?P<rps>\d+) req/s at (?P<c>\d+) clients"
)
ROUND = re.compile(r"^round (?P<r>\d+)/\d+, load \[(?P<load>[^\]]+)\]")


def parse(text: str) -> list[dict[str, object]]:
    runs: list[dict[str, object]] = []
    rnd, load = -1, [0.0]
    for line in text.splitlines():
        if m := ROUND.match(line):
            rnd, load = int(m["r"]) - 1, [float(x) for x in m["load"].split(",")]
        elif m := REDIS.match(line):
            n = int(m["n"])
            runs.append({
                "system": "redis_benchmark_mget", "protocol": "resp", "round": rnd,
                "case": f"{n}e", "entities": n,
                "latency": {"p50_ms": float(m["p50"]), "p99_ms": float(m["p99"]), "clients": 1},
                "throughput": {"requests_per_s": float(m["rps"]), "clients": int(m["c"]),
                               "entity_rows_per_s": float(m["rps"]) * n},
            })  # fmt: skip
        elif m := LINE.match(line):
            system = m["system"].replace("nbfeatures FeatureClient", "nbfeatures_feature_client")
            n, f = int(m["n"]), int(m["f"])
            record: dict[str, object] = {
                "system": system, "protocol": "http" if system == "feast_serve" else "grpc",
                "round": rnd, "case": f"{n}e_{f}f", "entities": n, "features": f,
                "latency": {"p50_ms": float(m["p50"]), "p99_ms": float(m["p99"])},
                "load_before": load,
            }  # fmt: skip
            if m["rps"]:
                record["throughput"] = {"requests_per_s": float(m["rps"]),
                                        "failed": int(m["failed"]), "concurrency": 32,
                                        "entity_rows_per_s": float(m["rps"]) * n}  # fmt: skip
            runs.append(record)
    return runs


def main() -> None:
    log = Path(sys.argv[1])
    runs = parse(log.read_text())
    result = {
        "command": ".venv/bin/python -m bench.serving.run --rounds 3",
        "source": f"parsed from the run's console log ({log.name}) by bench.serving.from_log",
        "machine": {"cpus": 2, "grpcio": "1.85.3", "redis_server": "7.0.15"},
        "feast_version": "0.67.0",
        "settings": {
            "rounds": 3,
            "requests": 2000,
            "max_seconds": 5.0,
            "warmup": 200,
            "duration": 10.0,
            "concurrency": 32,
            "feast_workers": 1,
            "throughput_cases": ["1e_10f", "100e_10f"],
        },
        "incomplete": "round 3 of feast_serve 100e_10f throughput and 100e_50f: gunicorn "
        "killed Feast's only worker (WORKER TIMEOUT) under 32 concurrent 100-entity requests",
        "summary": summarize(runs),
        "runs": runs,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(runs)} measurements -> {RESULTS}")


if __name__ == "__main__":
    main()
