"""Print the README's tables from ``bench/results/serving.json``.

.venv/bin/python -m bench.serving.table
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.serving.run import RESULTS

SYSTEMS = (
    ("nbfeatures", "nbfeatures, 1 process (gRPC, raw stub)"),
    ("nbfeatures_2p", "nbfeatures, 2 processes (gRPC, raw stub)"),
    ("nbfeatures_feature_client", "nbfeatures, 1 process (FeatureClient)"),
    ("nbfeatures_native", "nbfeatures, native data plane (gRPC, raw stub)"),
    ("feast_listen", "Feast `listen` (gRPC)"),
    ("feast_serve", "Feast `serve` (HTTP/JSON, 1 worker)"),
    ("feast_serve_2w", "Feast `serve` (HTTP/JSON, 2 workers)"),
    ("grpc_echo", "limit: grpcio echo (thread pool)"),
    ("grpc_echo_aio", "limit: grpcio echo (aio)"),
)
OURS = ("nbfeatures", "nbfeatures_2p", "nbfeatures_native")
# The variants with their own line in the goals table.
VARIANTS = (
    ("nbfeatures", "Python, 1 process"),
    ("nbfeatures_2p", "Python, 2 processes"),
    ("nbfeatures_native", "native"),
)


def _median(runs: list[dict[str, Any]], part: str, key: str) -> float | None:
    values = [r[part][key] for r in runs if part in r]
    return statistics.median(values) if values else None


def main() -> None:
    data = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else RESULTS).read_text())
    runs = [r for r in data["runs"] if "latency" in r and not r["system"].startswith("serial_")]
    cases = sorted({r["case"] for r in runs if "f" in r["case"]},
                   key=lambda c: (int(c.split("e")[0]), c))  # fmt: skip
    print("| case | system | p50 ms | p99 ms | req/s @32 | entity rows/s | "
          "Python 1 process ×, per round | 2 processes × | native × |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        for system, label in SYSTEMS:
            mine = [r for r in runs if r["case"] == case and r["system"] == system]
            if not mine:
                continue
            p50 = _median(mine, "latency", "p50_ms")
            p99 = _median(mine, "latency", "p99_ms")
            rps = _median(mine, "throughput", "requests_per_s")
            rows = _median(mine, "throughput", "entity_rows_per_s")
            cells = []
            for ours in OURS:
                nbf = {r["round"]: r for r in runs if r["case"] == case and r["system"] == ours}
                per = []
                if system not in (*OURS, "nbfeatures_feature_client") and rps:
                    per = [nbf[r["round"]]["throughput"]["requests_per_s"]
                           / r["throughput"]["requests_per_s"]
                           for r in mine if r["round"] in nbf and "throughput" in r
                           and "throughput" in nbf[r["round"]]]  # fmt: skip
                cells.append(", ".join(f"{x:.2f}" for x in per))
            print(f"| {case} | {label} | {p50:.2f} | {p99:.2f} | "
                  f"{f'{rps:,.0f}' if rps else ''} | {f'{rows:,.0f}' if rows else ''} | "
                  f"{cells[0]} | {cells[1]} | {cells[2]} |")  # fmt: skip
    print()
    print("| redis-benchmark MGET | 1 client p50 ms | p99 ms | req/s @32 clients | keys/s |")
    print("|---|---|---|---|---|")
    for n in (1, 10, 100):
        mine = [r for r in runs if r["system"] == "redis_benchmark_mget" and r["entities"] == n]
        if mine:
            print(f"| {n} keys | {_median(mine, 'latency', 'p50_ms'):.3f} | "
                  f"{_median(mine, 'latency', 'p99_ms'):.3f} | "
                  f"{_median(mine, 'throughput', 'requests_per_s'):,.0f} | "
                  f"{_median(mine, 'throughput', 'entity_rows_per_s'):,.0f} |")  # fmt: skip
    loads = [r["load_before"][0] for r in runs if "load_before" in r]
    print(f"\nload average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f}")
    serial_table(data["runs"])
    goals_table(runs)


def serial_table(runs: list[dict[str, Any]]) -> None:
    """Serial latency of nbfeatures and the aio echo server measured in alternating pairs."""
    pairs = [r for r in runs if r["system"].startswith("serial_")]
    if not pairs:
        return
    print("\n| serial, 1 entity x 10 features, alternating | runs | p50 ms (median) | "
          "p99 ms (median) | p99 ms per run |")  # fmt: skip
    print("|---|---|---|---|---|")
    for system, label in (("serial_nbfeatures", "nbfeatures, Python, 1 process"),
                          ("serial_nbfeatures_native", "nbfeatures, native data plane"),
                          ("serial_grpc_echo_aio", "limit: grpcio echo (aio)")):  # fmt: skip
        mine = [r for r in pairs if r["system"] == system]
        if mine:
            each = ", ".join(f"{r['latency']['p99_ms']:.2f}" for r in mine)
            print(f"| {label} | {len(mine)} | {_median(mine, 'latency', 'p50_ms'):.2f} | "
                  f"{_median(mine, 'latency', 'p99_ms'):.2f} | {each} |")  # fmt: skip


def _per_round(runs: list[dict[str, Any]], case: str, ours: str,
               others: tuple[str, ...]) -> list[tuple[float, str, float]]:  # fmt: skip
    """Per round: our req/s over the best of ``others`` (ratio, best system, its req/s)."""
    out = []
    for rnd in sorted({r["round"] for r in runs}):

        def rps(system: str, rnd: int = rnd) -> float | None:
            for r in runs:
                if (r["round"], r["case"], r["system"]) == (rnd, case, system) \
                        and "throughput" in r:  # fmt: skip
                    return float(r["throughput"]["requests_per_s"])
            return None

        mine = rps(ours)
        best = max(((v, o) for o in others if (v := rps(o)) is not None), default=None)
        if mine is not None and best is not None:
            out.append((mine / best[0], best[1], best[0]))
    return out


def goals_table(runs: list[dict[str, Any]]) -> None:
    """The issue's goals, per round."""
    feast = ("feast_listen", "feast_serve", "feast_serve_2w")
    echo = ("grpc_echo", "grpc_echo_aio")
    print("\n| goal | per round | met in |")
    print("|---|---|---|")
    for ours, variant in (VARIANTS[0], VARIANTS[2]):
        serial = [r for r in runs if r["system"] == ours and r["case"] == "1e_10f"]
        p99s = [r["latency"]["p99_ms"] for r in serial]
        if not p99s:
            continue
        met = sum(p <= 1.0 for p in p99s)
        each = ", ".join(f"{p:.2f}" for p in p99s)
        print(f"| p99 <= 1 ms, 1 entity x 10 features, serial ({variant}) | p99 {each} ms "
              f"| {met} of {len(p99s)} rounds |")  # fmt: skip
    for label, case, others, goal in (
        ("3x Feast's best, 1 entity", "1e_10f", feast, 3.0),
        ("5x Feast's best, 100 entities", "100e_10f", feast, 5.0),
        ("half the faster echo server, 1 entity", "1e_10f", echo, 0.5),
        ("half the faster echo server, 100 entities", "100e_10f", echo, 0.5),
    ):
        for ours, procs in VARIANTS:
            rounds = _per_round(runs, case, ours, others)
            if not rounds:
                continue
            cells = ", ".join(f"{x:.2f}x ({who} {v:,.0f} req/s)" for x, who, v in rounds)
            met = sum(x >= goal for x, _, _ in rounds)
            print(f"| >= {label} ({procs}) | {cells} | {met} of {len(rounds)} rounds |")


if __name__ == "__main__":
    main()
