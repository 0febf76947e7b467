"""Drift and skew reports over 1M served vectors: time and peak memory, vs Evidently's preset.

Data (``bench/monitoring/data.py``, built once under ``bench/.data/monitoring/``): a workspace
with the family ``user_activity`` (ten features: float64, int64, int32, strings) registered in
its embedded MLflow catalog as production, its offline set computed by ``compute_offline``,
and 1M served vectors over one day in the served-log Parquet ``flush_served_log`` writes
(10M long rows), with planted drift, stale vectors and value bugs.

Systems (``side.py``), one at a time, each measurement a fresh process that warms up on the
window's first hour, then runs the whole window timed: ``read-log`` (the machine's floor: the
log's Parquet read into Arrow), ``read-served`` (the reports' shared first step),
``drift`` / ``drift-full`` (default sampling / every row), ``skew`` (every served vector
recomputed) / ``skew-default`` (the default 10k sample), ``evidently`` (the baseline: the
preset on the same 1M rows and reference). A warm-up round (not kept) fills the page cache;
then ``--rounds`` alternating rounds (A B C ... A B C ...).

Peak memory is the peak of the summed RSS of the process and its children, sampled every
50 ms from outside (``ru_maxrss`` of the process is kept too). The 1-minute load average at
each measurement's start is recorded: the machine has 2 cores and is shared.

Run: ``.venv/bin/python -m bench.monitoring.run --rounds 3``. Writes
``bench/results/monitoring.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench.machine import machine_facts
from bench.monitoring.data import prepare
from bench.monitoring.side import SYSTEMS

ROOT = Path(__file__).resolve().parent.parent
REPO_ROOT = ROOT.parent
RESULTS = ROOT / "results" / "monitoring.json"
GIB = 1024**3
# The aims, seconds over the whole window.
AIMS = {"skew": 10.0, "drift": 15.0, "drift-full": 15.0}
BASELINE = "evidently"
FLOOR = "read-log"


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a process may end while we look
            total += proc.memory_info().rss
    return total


def measure(system: str, timeout_s: float) -> dict[str, Any]:
    """Run ``system``'s side in a fresh process; its JSON line plus peak tree RSS."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.monitoring.side", system],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    proc = psutil.Process(child.pid)
    peak, status = 0, "ok"
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, _tree_rss(proc))
        if time.perf_counter() - started > timeout_s:
            status = "timeout"
            os.killpg(child.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    out, err = child.communicate()
    result: dict[str, Any] = {
        "status": status,
        "load_average_1m_at_start": load,
        "peak_tree_rss_bytes": peak,
        "process_seconds": time.perf_counter() - started,
    }
    if status == "ok" and child.returncode != 0:
        result["status"] = "failed"
        result["stderr_tail"] = err[-3000:]
    if result["status"] == "ok":
        # The side's facts may carry the report's own status: it never replaces ours.
        result.update({**json.loads(out.strip().splitlines()[-1]), "status": "ok"})
    return result


def summarize(rounds: list[dict[str, Any]], systems: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for system in systems:
        runs = [r[system] for r in rounds if r.get(system, {}).get("status") == "ok"]
        if not runs:
            summary[system] = {"status": ",".join(sorted({r[system]["status"] for r in rounds}))}
            continue
        entry: dict[str, Any] = {
            "status": "ok",
            "runs": len(runs),
            "seconds": [r["seconds"] for r in runs],
            "median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_peak_tree_rss_gib": statistics.median(r["peak_tree_rss_bytes"] for r in runs)
            / GIB,
            "median_user_plus_system_cpu_seconds": statistics.median(
                r["user_seconds"] + r["system_seconds"] for r in runs
            ),
        }
        for other in (BASELINE, FLOOR):
            key = f"ratio_{other}_over_this"
            ratios = [r[key][system] for r in rounds if system in r.get(key, {})]
            if ratios and other != system:
                entry[f"per_round_{key}"] = ratios
                entry[f"median_{key}"] = statistics.median(ratios)
        if system in AIMS:
            entry["aim_seconds"] = AIMS[system]
            entry["rounds_within_aim"] = sum(r["seconds"] <= AIMS[system] for r in runs)
        summary[system] = entry
    return summary


def machine() -> dict[str, Any]:
    import evidently
    import pyarrow

    return machine_facts(pyarrow=pyarrow.__version__, evidently=evidently.__version__)


def _ratios(row: dict[str, Any], systems: list[str]) -> None:
    for other in (BASELINE, FLOOR):
        base = row.get(other, {})
        if base.get("status") != "ok":
            continue
        row[f"ratio_{other}_over_this"] = {
            s: base["seconds"] / row[s]["seconds"]
            for s in systems
            if s != other and row.get(s, {}).get("status") == "ok"
        }


def _line(system: str, result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"{system}: {result['status']} {result.get('stderr_tail', '')[-600:]}"
    cpu = result["user_seconds"] + result["system_seconds"]
    return (
        f"{system}: {result['seconds']:.2f}s (cpu {cpu:.1f}s) "
        f"peak {result['peak_tree_rss_bytes'] / GIB:.2f} GiB, "
        f"load {result['load_average_1m_at_start']:.1f}"
    )


NAMES = {
    "read-log": "floor: read the served-log Parquet (10M long rows) into Arrow",
    "read-log-dict": "floor, as `read_served` reads: its columns, text as dictionaries",
    "read-served": "`read_served`: 1M typed wide vectors (both reports' first step)",
    "drift": "drift report (statistics on all rows, page on a 200k sample)",
    "drift-full": "drift report, page on all rows",
    "skew": "skew report, all 1M vectors recomputed (Arrow engine)",
    "skew-default": "skew report, default 10k sample",
    "evidently": "Evidently `DataDriftPreset`, same 1M rows + reference",
}


def table(label: str) -> str:
    """The README's markdown table of run ``label`` from the results file."""
    entry = json.loads(RESULTS.read_text())["runs"][label]
    lines = [
        "| measurement | median s (rounds) | median CPU s | median peak RSS GiB "
        "| Evidently preset / this, per round | this / floor (median) |",
        "|---|---|---|---|---|---|",
    ]
    for system, item in entry["summary"].items():
        if item.get("status") != "ok":
            lines.append(f"| {NAMES.get(system, system)} | {item.get('status')} | | | | |")
            continue
        rounds = ", ".join(f"{s:.1f}" for s in item["seconds"])
        versus = ", ".join(f"{r:.2f}" for r in item.get("per_round_ratio_evidently_over_this", []))
        floor = item.get("median_ratio_read-log_over_this")
        lines.append(
            f"| {NAMES.get(system, system)} | {item['median_seconds']:.1f} ({rounds}) "
            f"| {item['median_user_plus_system_cpu_seconds']:.1f} "
            f"| {item['median_peak_tree_rss_gib']:.2f} | {versus} "
            f"| {'' if floor is None else f'{1 / floor:.1f}x'} |"
        )
    loads = [
        r[s]["load_average_1m_at_start"]
        for r in entry["rounds"]
        for s in entry["summary"]
        if s in r
    ]
    lines.append("")
    lines.append(
        f"1-minute load average at the measurements' starts: {min(loads):.1f} to {max(loads):.1f}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--no-warmup-round", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--label", default="default", help="key of this run in the results")
    parser.add_argument("--table", action="store_true", help="only print run LABEL's table")
    args = parser.parse_args()
    if args.table:
        print(table(args.label))
        return
    facts = prepare().facts
    systems: list[str] = args.systems
    if not args.no_warmup_round:
        for system in systems:
            print("warm-up", _line(system, measure(system, args.timeout)), flush=True)
    rounds: list[dict[str, Any]] = []
    load_at_start = list(os.getloadavg())
    for number in range(1, args.rounds + 1):
        row: dict[str, Any] = {"round": number}
        for system in systems:
            row[system] = measure(system, args.timeout)
            print(f"round {number}", _line(system, row[system]), flush=True)
        _ratios(row, systems)
        rounds.append(row)
    entry = {
        "command": ".venv/bin/python -m bench.monitoring.run " + " ".join(a for a in sys.argv[1:]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "data": facts,
        "rounds": rounds,
        "summary": summarize(rounds, systems),
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = machine()
    results.setdefault("runs", {})[args.label] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(entry["summary"], indent=2))


if __name__ == "__main__":
    main()
