"""Point-in-time training-set join: nbfeatures vs Feast 0.67 ``get_historical_features``.

Same Parquet files for every system (``bench/offline/data.py``): a feature table (entity id,
event time, ten float64 features) and a spine (row id, entity id, event time, label); ttl 7
days on both sides. Systems, one at a time, each measurement in a fresh process that runs its
own warm-up before the timed run:

- ``nbfeatures-arrow``: the in-process join ``training_set`` runs by default for a pandas spine
  on local Spark (``engine.arrow.pit``), on the family's offline set as ``compute_offline``
  stored it, through its join index (``engine.arrow.join_index``, memory-mapped); timed like Feast:
  spine in pandas before the clock, then the stored rows opened, the join and the complete
  pandas result (``nbf_side.py --arrow``);
- ``nbfeatures-arrow-parquet``: the same join on the same offline set's date-partitioned
  Parquet, the index ignored (``nbf_side.py --arrow-parquet``);
- ``nbfeatures-spark``: ``point_in_time_join`` on Spark (local[2], 8g driver), result written
  to Parquet (``nbf_side.py``);
- ``feast-file``: Feast's file offline store (Dask), ``get_historical_features(...).to_df()``;
- ``feast-duckdb``: the same with ``offline_store: {type: duckdb}`` (``feast_side.py``).

Feast reads the benchmark's feature file (its offline store is the source itself);
nbfeatures reads the offline set it computed from that file. Computing it (Spark, once per
size, cached under bench/.data) is not timed by the rounds; one more build of the join index
is timed before them and recorded as ``preparation``.

Rounds alternate the systems (A B C D A B C D ...); the goal's ratio is Feast's best over
``nbfeatures-arrow``, per round. Peak memory is the peak of the summed RSS of
the measured process and all its descendants (the Spark JVM is a child of the Python driver),
sampled every 100 ms (``ru_maxrss`` would give only the largest single process, and the
JVM is not waited for by the driver). Each side also reports its own ``ru_maxrss``.
A Feast configuration that exceeds the time or memory bound is recorded as such and not
retried in later rounds.

Run: ``.venv/bin/python -m bench.offline.run --size small --rounds 3`` (then ``--size large``).
Writes bench/results/offline_pit.json (one entry per size) and prints the table.
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
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.machine import machine_facts
from bench.offline.data import SIZES, Size, generate

ROOT = Path(__file__).resolve().parent.parent
REPO_ROOT = ROOT.parent
FEAST_PYTHON = ROOT / ".feast-venv" / "bin" / "python"
FEAST_CLI = ROOT / ".feast-venv" / "bin" / "feast"
FEAST_SIDE = Path(__file__).resolve().parent / "feast_side.py"
FEAST_REPOS = ROOT / ".data" / "offline_pit" / "feast"
RESULTS = ROOT / "results" / "offline_pit.json"
STORES = {"feast-file": "file", "feast-duckdb": "duckdb"}
OURS = ("nbfeatures-arrow", "nbfeatures-arrow-parquet", "nbfeatures-spark")
SYSTEMS = (*OURS, *STORES)
GIB = 1024**3


def feast_repo(size: Size, store: str, features_path: Path) -> Path:
    """The Feast repo folder for ``size`` and ``store``; written and applied once."""
    repo = FEAST_REPOS / f"{store}_{size.name}"
    if not (repo / "data" / "registry.db").exists():
        subprocess.run(
            [str(FEAST_PYTHON), str(FEAST_SIDE), "repo", str(repo), str(features_path), store],
            check=True,
        )
        subprocess.run([str(FEAST_CLI), "apply"], cwd=repo, check=True, capture_output=True)
    return repo


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a process may end while we look
            total += proc.memory_info().rss
    return total


def measure(command: list[str], timeout_s: float, memory_bound: int) -> dict[str, Any]:
    """Run ``command`` alone; its JSON line plus peak tree RSS, or why it did not finish."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a kill reaches the JVM too
    )
    proc = psutil.Process(child.pid)
    peak, status = 0, "ok"
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, _tree_rss(proc))
        elapsed = time.perf_counter() - started
        if elapsed > timeout_s or peak > memory_bound:
            status = "timeout" if elapsed > timeout_s else "memory_bound"
            os.killpg(child.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    out, err = child.communicate()
    result: dict[str, Any] = {
        "status": status,
        "peak_tree_rss_bytes": peak,
        "process_seconds": time.perf_counter() - started,
    }
    if status == "ok" and child.returncode != 0:
        result["status"] = "oom" if child.returncode == -9 or "MemoryError" in err else "failed"
        result["stderr_tail"] = err[-2000:]
    if result["status"] == "ok":
        result.update(json.loads(out.strip().splitlines()[-1]))
    return result


def commands(size: Size, repos: dict[str, Path], spine: Path) -> dict[str, list[str]]:
    """The command of each system's measurement process (Feast ones only when repos given)."""
    ours = [str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "bench.offline.nbf_side", size.name]
    cmds = {
        "nbfeatures-arrow": [*ours, "--arrow"],
        "nbfeatures-arrow-parquet": [*ours, "--arrow-parquet"],
        "nbfeatures-spark": ours,
    }
    for system, store in STORES.items():
        if store not in repos:
            continue
        cmds[system] = [str(FEAST_PYTHON), str(FEAST_SIDE), "run", str(repos[store]), str(spine)]
    return cmds


def check_agreement(size: Size, repos: dict[str, Path], spine: Path) -> dict[str, Any]:
    """Run each system once more (untimed) saving its output; compare every spine row."""
    import numpy as np
    import pandas as pd

    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nbf-pit-check-") as tmp:
        cmds = commands(size, repos, spine)
        names = [f"f{i}" for i in range(10)]
        outputs = {}
        for system in SYSTEMS:
            subprocess.run(
                [*cmds[system], f"{tmp}/{system}.parquet"],
                cwd=REPO_ROOT,
                check=True,
                capture_output=True,
            )
            frame = pd.read_parquet(f"{tmp}/{system}.parquet").set_index("spine_id")
            if system in OURS:  # the reference below names the columns as Feast does
                frame = frame.rename(columns={f"bench__{f}": f for f in names})
            outputs[system] = frame.astype({f: "float64" for f in names})
        for system in OURS:
            ours = outputs[system].sort_index()
            report[system] = {"rows_with_values": int(ours[names].notna().all(axis=1).sum())}
            for other in SYSTEMS:
                if other == system:
                    continue
                theirs = outputs[other]
                common = ours.index.intersection(theirs.index)
                a = ours.loc[common, names].to_numpy()
                b = theirs.loc[common, names].to_numpy()
                same = ((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)
                missing = ours.index.difference(theirs.index)
                report[system][f"vs_{other}"] = {
                    "spine_rows": len(ours),
                    "rows_returned": len(theirs),
                    "rows_compared": len(common),
                    "rows_agreeing": int(same.sum()),
                    "agreement_rate": float(same.mean()) if len(common) else None,
                    "spine_rows_missing": len(missing),
                    "missing_rows_null_here": int(ours.loc[missing, "f0"].isna().sum()),
                }
    return report


def machine() -> dict[str, Any]:
    import pyspark

    feast_versions = (
        subprocess.run(
            [
                str(FEAST_PYTHON),
                "-c",
                "import feast, dask, duckdb, pandas, pyarrow, json; print(json.dumps({'feast': "
                "feast.__version__, 'dask': dask.__version__, 'duckdb': duckdb.__version__, "
                "'pandas': pandas.__version__, 'pyarrow': pyarrow.__version__}))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return machine_facts(
        pyspark=pyspark.__version__,
        java=java.splitlines()[0] if java else None,
        spark_master="local[2]",
        spark_driver_memory="8g",
        feast_venv=json.loads(feast_versions),
    )


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for system in SYSTEMS:
        runs = [r[system] for r in rounds if r.get(system, {}).get("status") == "ok"]
        if not runs:
            statuses = sorted({r[system]["status"] for r in rounds if system in r})
            summary[system] = {"status": ",".join(statuses)}
            continue
        median = statistics.median(r["seconds"] for r in runs)
        summary[system] = {
            "status": "ok",
            "runs": len(runs),
            "median_seconds": median,
            "spine_rows_per_second": runs[0]["spine_rows"] / median
            if "spine_rows" in runs[0]
            else runs[0]["rows"] / median,
            "median_peak_tree_rss_gib": statistics.median(r["peak_tree_rss_bytes"] for r in runs)
            / GIB,
            "rows_returned": runs[0]["rows"],
        }
    for system in OURS:
        name = f"ratio_feast_best_over_{system}"
        ratios = [r[name] for r in rounds if r.get(name) is not None]
        summary[f"per_round_{name}"] = ratios
        summary[f"median_{name}"] = statistics.median(ratios) if ratios else None
    return summary


def _show(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def training_set_path(size: Size, rounds: int, timeout_s: float) -> None:
    """The cost of the public ``training_set`` over the bare join, alternating rounds."""
    generate(size)
    bare = commands(size, {}, Path())["nbfeatures-spark"]
    systems = {"point_in_time_join": bare, "training_set": [*bare, "--training-set"]}
    measured: list[dict[str, Any]] = []
    for number in range(1, rounds + 1):
        row: dict[str, Any] = {"round": number}
        for name, command in systems.items():
            row[name] = measure(command, timeout_s, 16 * GIB)
            shown = row[name].get("seconds", row[name]["status"])
            print(f"round {number} {name}: {shown}", flush=True)
        if all(row[n]["status"] == "ok" for n in systems):
            row["ratio_training_set_over_join"] = (
                row["training_set"]["seconds"] / row["point_in_time_join"]["seconds"]
            )
        measured.append(row)
    ok = [r for r in measured if "ratio_training_set_over_join" in r]
    entry = {
        "command": f".venv/bin/python -m bench.offline.run --size {size.name} "
        f"--rounds {rounds} --training-set-path",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rounds": measured,
        "median_seconds": {
            n: statistics.median(r[n]["seconds"] for r in ok) if ok else None for n in systems
        },
        "median_ratio_training_set_over_join": (
            statistics.median(r["ratio_training_set_over_join"] for r in ok) if ok else None
        ),
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("training_set_path", {})[size.name] = entry
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        json.dumps(
            {k: entry[k] for k in ("median_seconds", "median_ratio_training_set_over_join")},
            indent=2,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--memory-bound-gib", type=float, default=16.0)
    parser.add_argument("--no-check", action="store_true", help="skip the agreement check")
    parser.add_argument(
        "--training-set-path",
        action="store_true",
        help="instead: alternate the bare join with the full training_set path (nbfeatures only)",
    )
    args = parser.parse_args()
    if args.training_set_path:
        return training_set_path(SIZES[args.size], args.rounds, args.timeout)

    size = SIZES[args.size]
    features_path, spine_path = generate(size)
    repos = {store: feast_repo(size, store, features_path) for store in STORES.values()}
    cmds = commands(size, repos, spine_path)
    prepared = subprocess.run(
        [*cmds["nbfeatures-spark"], "--prepare"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    preparation = json.loads(prepared.stdout.strip().splitlines()[-1])
    print(f"preparation: {preparation}", flush=True)
    gave_up: dict[str, dict[str, Any]] = {}
    rounds: list[dict[str, Any]] = []
    load_at_start = list(os.getloadavg())
    for number in range(1, args.rounds + 1):
        row: dict[str, Any] = {"round": number}
        for system in SYSTEMS:
            if system in gave_up:
                row[system] = {**gave_up[system], "retried": False}
                continue
            result = measure(cmds[system], args.timeout, int(args.memory_bound_gib * GIB))
            if system in OURS and result["status"] == "ok":
                result["spine_rows"] = size.spine_rows
            if result["status"] != "ok" and system not in OURS:
                gave_up[system] = result
            row[system] = result
            shown = f"{result['seconds']:.2f}s" if result["status"] == "ok" else result["status"]
            print(
                f"round {number} {system}: {shown} "
                f"peak {result['peak_tree_rss_bytes'] / GIB:.2f} GiB",
                flush=True,
            )
        feast = [row[s]["seconds"] for s in STORES if row[s].get("status") == "ok"]
        for system in OURS:
            ours = row[system]
            row[f"ratio_feast_best_over_{system}"] = (
                min(feast) / ours["seconds"] if feast and ours.get("status") == "ok" else None
            )
        rounds.append(row)
        print(
            f"round {number} ratios Feast best / "
            + ", ".join(f"{s}: {_show(row[f'ratio_feast_best_over_{s}'])}" for s in OURS),
            flush=True,
        )

    entry: dict[str, Any] = {
        "size": {
            "name": size.name,
            "feature_rows": size.feature_rows,
            "entities": size.entities,
            "spine_rows": size.spine_rows,
            "features": 10,
            "ttl_days": 7,
        },
        "command": f".venv/bin/python -m bench.offline.run --size {size.name} "
        f"--rounds {args.rounds}",
        "bounds": {"timeout_seconds": args.timeout, "memory_gib": args.memory_bound_gib},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "preparation": preparation,
        "rounds": rounds,
        "summary": summarize(rounds),
    }
    if not args.no_check:
        entry["agreement"] = check_agreement(size, repos, spine_path)

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = machine()
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    results.setdefault("sizes", {})[size.name] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(entry["summary"], indent=2))
    if "agreement" in entry:
        print(json.dumps(entry["agreement"], indent=2))


if __name__ == "__main__":
    sys.exit(main())
