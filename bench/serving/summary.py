"""The serving benchmark's summary: medians per system and case, ratios per round.

Written into ``bench/results/serving.json`` by ``bench.serving.run``; the README's tables come
from ``bench.serving.table``.
"""

from __future__ import annotations

import statistics
from typing import Any


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per system and case, and nbfeatures' ratio to every other system per round."""
    table: dict[str, dict[str, Any]] = {}
    for run in runs:
        if "latency" not in run or run["system"].startswith("serial_"):
            continue  # serial pairs are summarized on their own below
        row = table.setdefault(run["case"], {}).setdefault(run["system"], {"rounds": []})
        row["rounds"].append(run)
    out: dict[str, Any] = {}
    for case, systems in table.items():
        out[case] = {}
        for system, row in systems.items():
            rounds = row["rounds"]
            entry: dict[str, Any] = {"rounds": len(rounds)}
            for part in ("latency", "throughput", "latency_python", "throughput_python"):
                for key in ("p50_ms", "p99_ms", "requests_per_s", "entity_rows_per_s"):
                    values = [r[part][key] for r in rounds if part in r and key in r[part]]
                    if values:
                        entry[f"{part}.{key}"] = statistics.median(values)
            out[case][system] = entry
        ours = [s for s in systems if s.startswith("nbfeatures") and "client" not in s]
        for name in ours:
            nbf = {r["round"]: r for r in systems[name]["rounds"]}
            for system, row in systems.items():
                if system == name:
                    continue
                ratios: dict[str, list[float]] = {"p99_ratio": [], "throughput_ratio": []}
                for other in row["rounds"]:
                    mine = nbf.get(other["round"])
                    if mine is None:
                        continue
                    ratios["p99_ratio"].append(
                        other["latency"]["p99_ms"] / mine["latency"]["p99_ms"]
                    )
                    for part in ("throughput", "throughput_python"):
                        if part in mine and part in other:
                            ratios.setdefault(f"{part}_ratio", []).append(
                                mine[part]["requests_per_s"] / other[part]["requests_per_s"]
                            )
                out[case][system][f"{name}_vs_this_per_round"] = {
                    k: [round(x, 3) for x in v] for k, v in ratios.items() if v
                }
    serial: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["system"].startswith("serial_"):
            serial.setdefault(run["system"], []).append(run)
    if serial:
        out["serial_1e_10f"] = {
            system: {
                "runs": len(rows),
                "samples": sum(r["latency"]["n"] for r in rows),
                "latency.p50_ms": statistics.median(r["latency"]["p50_ms"] for r in rows),
                "latency.p99_ms": statistics.median(r["latency"]["p99_ms"] for r in rows),
                "p99_ms_per_run": [r["latency"]["p99_ms"] for r in rows],
                "p50_ms_per_run": [r["latency"]["p50_ms"] for r in rows],
            }
            for system, rows in serial.items()
        }
    return out
