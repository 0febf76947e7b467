"""Materialization into Redis: nbfeatures vs ``feast materialize``, and redis-benchmark's limit.

    .venv/bin/python -m bench.materialize.run --entities 300000 --rounds 3

Per size: a dedicated ``redis-server`` on a free port with persistence off; a warm-up run of
each system (discarded; ``--no-feast-warmup`` skips Feast's, for sizes where one Feast run
takes many minutes); then ``--rounds`` alternating rounds of the ``--systems`` (default: all),
with ``FLUSHALL`` before every run:

- ``nbfeatures``: ``materialize()`` with the Arrow writer (``engine="arrow"``, what ``auto``
  picks for local Spark: no JVM) and the family's 7-day ttl, so every key gets a ``PXAT``
  expiry; ``nbfeatures_no_ttl``: the same without a ttl (no per-key expiry);
  ``nbfeatures_spark``: the executor path (local[2] Spark, ``mapInArrow``) with the ttl.
- ``feast``: ``feast materialize`` with its Redis online store (the view's 7-day ttl is only
  checked on read: no key expiry); ``feast_skip_dedup``: the same with ``skip_dedup: true``;
  ``feast_ttl``: with ``key_ttl_seconds: 604800``, so Feast also sets an expiry on every key
  (like for like with ``nbfeatures``).

A Feast run still going after ``--feast-timeout`` seconds is killed and recorded as
``did_not_finish`` (its rows/s is then at most entities / timeout, and ratios against it are
lower bounds). For every run:

- ``wall_s``: the whole writing command, from process start to exit (Spark or Feast start-up,
  reading the Parquet file, writing Redis); ``rows_per_s`` = entities / ``wall_s``. For
  nbfeatures also ``call_s``, the ``materialize()`` call alone, timed inside the process.
- ``peak_tree_rss``: the peak, sampled every 50 ms with psutil, of the summed RSS of the
  command's whole process tree; ``peak_writer_rss`` the processes that write to Redis. With
  the Arrow writer the command is one process that reads and writes (tree = writer). With
  Spark the tree is the driver Python, the JVM and the Python workers, and the writers are
  the workers (``pyspark.daemon``/``worker``, summed). For Feast the tree is the one
  ``feast`` process, which also does the writing (its writer RSS is reported as the tree).
- ``redis_bytes_per_entity``: (``used_memory`` after - before) / entities, read once Redis
  has settled (``settled_used_memory``: no dictionary rehashing, per ``DEBUG HTSTATS``, then
  no change for 8 s; at most 120 s): a dictionary that grew during the write keeps its old
  bucket array until Redis finishes rehashing it in the background, seconds after the
  writer exits (the keys' dictionary first, then the expiry times'), and reading before
  that counts the old array as data (2 MiB, ~7 B/entity at 300k, for either system).
  The reading right at exit is kept as ``redis_bytes_per_entity_at_exit``. Also
  ``key_memory_usage``, the median ``MEMORY USAGE`` of 200 random keys (the key's own
  allocations, without the dictionary's bucket array), and ``expires``, keys with an expiry.

The machine's limit: ``redis-benchmark -P 64 -t set -d <nbfeatures value size> -r N -n N`` on
the same server. Results: ``bench/results/materialize.json`` (each size replaces its own entry).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.materialize.data import generate

ROOT = Path(__file__).resolve().parents[2]
FEAST_BIN = ROOT / "bench" / ".feast-venv" / "bin"
RESULTS = ROOT / "bench" / "results" / "materialize.json"
VALUE_BYTES = 1 + 8 + 2 + 10 * 8  # nbfeatures' value for 10 float64 features
SYSTEMS = ("nbfeatures", "nbfeatures_no_ttl", "nbfeatures_spark", "feast", "feast_skip_dedup",
           "feast_ttl")  # fmt: skip
NBF = ("nbfeatures", "nbfeatures_no_ttl", "nbfeatures_spark")
FEAST = ("feast", "feast_skip_dedup", "feast_ttl")
# Like-for-like pairs: per-key expiry on both sides, or on neither.
PAIRS = (("nbfeatures", "feast_ttl"), ("nbfeatures_no_ttl", "feast"),
         ("nbfeatures_no_ttl", "feast_skip_dedup"), ("nbfeatures", "feast"),
         ("nbfeatures_spark", "feast_ttl"))  # fmt: skip
# How each nbfeatures variant runs: (ttl, engine).
NBF_ARGS = {"nbfeatures": ("ttl", "arrow"), "nbfeatures_no_ttl": ("none", "arrow"),
            "nbfeatures_spark": ("ttl", "spark")}  # fmt: skip
# Feast's Redis store config per variant: skip_dedup, key_ttl_seconds (None: no expiry).
FEAST_ARGS = {"feast": ("false", None), "feast_skip_dedup": ("true", None),
              "feast_ttl": ("false", 7 * 86400)}  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir),
         "--enable-debug-command", "local"],  # DEBUG HTSTATS: is a dictionary rehashing?
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(200):
        with contextlib.suppress(redis.ConnectionError):
            client.ping()
            return proc
        time.sleep(0.05)
    raise RuntimeError("benchmark redis-server did not start")


def _is_writer(proc: psutil.Process, root: psutil.Process) -> bool:
    """Spark's Python workers; or the command itself when it has no Spark (it writes)."""
    with contextlib.suppress(psutil.Error):
        line = " ".join(proc.cmdline())
        if proc.pid == root.pid:
            return "nbf_side" in line and "spark" not in line.split()
        return "pyspark.daemon" in line or "pyspark/worker" in line or "pyspark.worker" in line
    return False


def measure(
    command: list[str], cwd: Path | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """Run ``command``, sampling its process tree's RSS; return wall time, peaks, stdout.

    Past ``timeout`` seconds the whole tree is killed and ``did_not_finish`` is set.
    """
    started = time.perf_counter()
    out = tempfile.TemporaryFile()  # noqa: SIM115 - read after the child exits, then closed
    child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
    root = psutil.Process(child.pid)
    peak_tree = peak_writer = 0
    unfinished = False
    while child.poll() is None:
        if timeout is not None and time.perf_counter() - started > timeout:
            for proc in [*root.children(recursive=True), root]:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            child.wait()
            unfinished = True
            break
        tree, writers = 0, 0
        with contextlib.suppress(psutil.Error):
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    rss = proc.memory_info().rss
                    tree += rss
                    writers += rss if _is_writer(proc, root) else 0
        peak_tree, peak_writer = max(peak_tree, tree), max(peak_writer, writers)
        time.sleep(0.05)
    wall = time.perf_counter() - started
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    if unfinished:
        return {"wall_s": wall, "peak_tree_rss": peak_tree, "peak_writer_rss": peak_writer,
                "stdout": text, "did_not_finish": True}  # fmt: skip
    if child.returncode == -9:  # killed from outside, e.g. by the kernel's OOM killer
        return {"wall_s": wall, "peak_tree_rss": peak_tree, "peak_writer_rss": peak_writer,
                "stdout": text, "did_not_finish": True, "killed": True}  # fmt: skip
    if child.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({child.returncode}): {text[-2000:]}")
    return {"wall_s": wall, "peak_tree_rss": peak_tree, "peak_writer_rss": peak_writer,
            "stdout": text}  # fmt: skip


def feast_repo(parquet: Path, port: int, system: str, workdir: Path) -> Path:
    repo = workdir / system
    skip_dedup, key_ttl = FEAST_ARGS[system]
    subprocess.run(
        [str(FEAST_BIN / "python"), str(Path(__file__).with_name("feast_side.py")), "repo",
         str(repo), str(parquet), str(port), skip_dedup, str(key_ttl or "none")],
        check=True,
    )  # fmt: skip
    subprocess.run([str(FEAST_BIN / "feast"), "apply"], cwd=repo, check=True, capture_output=True)
    return repo


def key_memory(client: redis.Redis[bytes]) -> dict[str, Any]:
    """Median ``MEMORY USAGE`` of 200 random keys, and how many keys carry an expiry."""
    sizes = []
    for _ in range(200):
        key = client.randomkey()
        if key is not None:
            sizes.append(int(client.memory_usage(key, samples=0) or 0))
    expires = int(client.info("keyspace").get("db0", {}).get("expires", 0))
    return {"key_memory_usage": statistics.median(sizes) if sizes else 0, "expires": expires}


def rehashing(client: redis.Redis[bytes]) -> bool:
    """Whether a dictionary of database 0 (keys or expiry times) is still being rehashed."""
    stats = client.execute_command("DEBUG", "HTSTATS", "0")
    text = stats.decode() if isinstance(stats, bytes) else str(stats)
    return "rehashing target" in text


def settled_used_memory(
    client: redis.Redis[bytes], quiet_s: float = 8.0, limit_s: float = 120.0
) -> int:
    """``used_memory`` once no dictionary is rehashing and it has not changed for ``quiet_s``.

    A dictionary that grew during the write holds its old bucket array until Redis has moved
    every entry, in 1 ms steps of its 10 Hz timer, keys first, then expiry times: on a busy
    machine each takes several seconds with ``used_memory`` unchanged meanwhile, so a quiet
    period alone can end before the second one finishes (seen: 226 then 219 B/entity).
    """
    started = time.monotonic()
    while rehashing(client) and time.monotonic() - started < limit_s:
        time.sleep(0.5)
    last = int(client.info("memory")["used_memory"])
    changed = time.monotonic()
    while time.monotonic() - changed < quiet_s and time.monotonic() - started < limit_s:
        time.sleep(0.5)
        now = int(client.info("memory")["used_memory"])
        if now != last:
            last, changed = now, time.monotonic()
    return last


def run_once(
    system: str, parquet: Path, port: int, repos: dict[str, Path], feast_timeout: float
) -> dict[str, Any]:
    client = redis.Redis(port=port)
    client.flushall()
    load_before = os.getloadavg()[0]  # the machine is shared: each run says how busy it was
    before = int(client.info("memory")["used_memory"])
    if system in NBF:
        ttl, engine = NBF_ARGS[system]
        result = measure(
            [sys.executable, "-m", "bench.materialize.nbf_side", str(parquet),
             f"redis://127.0.0.1:{port}/0", "10000", ttl, engine],
            cwd=ROOT,
        )  # fmt: skip
        inner = json.loads(result["stdout"].strip().splitlines()[-1])
        result["call_s"] = inner["seconds"]
        entities = inner["entities"]
    else:
        end = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
        start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
        result = measure(
            [str(FEAST_BIN / "feast"), "materialize", start, end], cwd=repos[system],
            timeout=feast_timeout,
        )  # fmt: skip
        entities = int(parquet.stem.split("_")[-1])
        result["peak_writer_rss"] = result["peak_tree_rss"]  # one process reads and writes
    keys = int(client.dbsize())
    at_exit = int(client.info("memory")["used_memory"]) - before
    used = settled_used_memory(client) - before
    result.update(key_memory(client))
    result.pop("stdout")
    result.update(
        system=system, entities=entities, keys=keys, rows_per_s=entities / result["wall_s"],
        load_average_1m=load_before,
        redis_bytes_per_entity=used / entities,
        redis_bytes_per_entity_at_exit=at_exit / entities,
    )  # fmt: skip
    if "call_s" in result:
        result["call_rows_per_s"] = entities / result["call_s"]
    if result.get("did_not_finish"):
        # Killed: its rows/s is at most this; Redis memory of a partial write means nothing.
        result["redis_bytes_per_entity"] = None
    return result


def redis_limit(port: int, n: int) -> dict[str, Any]:
    redis.Redis(port=port).flushall()
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-P", "64", "-t", "set", "-d", str(VALUE_BYTES),
         "-r", str(n), "-n", str(n), "-q"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    line = [x for x in out.replace("\r", "\n").splitlines() if "requests per second" in x][-1]
    rps = float(line.split(":")[1].split("requests")[0].strip())
    return {"command": f"redis-benchmark -P 64 -t set -d {VALUE_BYTES} -r {n} -n {n}",
            "set_per_s": rps}  # fmt: skip


def summarize(
    runs: list[dict[str, Any]], rounds: int, systems: tuple[str, ...] = SYSTEMS
) -> dict[str, Any]:
    by = {s: [r for r in runs if r["system"] == s] for s in systems}
    figures = ("rows_per_s", "peak_tree_rss", "peak_writer_rss", "redis_bytes_per_entity",
               "wall_s", "key_memory_usage")  # fmt: skip

    def median(values: list[Any]) -> Any:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    medians: dict[str, dict[str, Any]] = {
        s: {f: median([r[f] for r in rs]) for f in figures} for s, rs in by.items()
    }
    for s in systems:
        medians[s]["did_not_finish"] = sum(1 for r in by[s] if r.get("did_not_finish"))
    for s in NBF:
        if s not in systems:
            continue
        medians[s]["call_rows_per_s"] = median([r["call_rows_per_s"] for r in by[s]])

    def ratio(a: Any, b: Any) -> Any:
        return None if a is None or b is None else a / b

    ratios = {
        f"{nbf}_vs_{ref}": {
            "rows_per_s_x": [
                ratio(by[nbf][i]["rows_per_s"], by[ref][i]["rows_per_s"]) for i in range(rounds)
            ],
            "rows_per_s_x_is_lower_bound": [
                bool(by[ref][i].get("did_not_finish")) for i in range(rounds)
            ],
            "redis_bytes_per_entity_fraction": [
                ratio(by[nbf][i]["redis_bytes_per_entity"], by[ref][i]["redis_bytes_per_entity"])
                for i in range(rounds)
            ],
        }
        for nbf, ref in PAIRS
        if nbf in systems and ref in systems
    }
    return {"medians": medians, "per_round_ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, nargs="+", default=[300_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--feast-timeout", type=float, default=900.0)
    parser.add_argument("--no-feast-warmup", action="store_true")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(),
                    "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)},
        "feast_version": subprocess.run([str(FEAST_BIN / "feast"), "version"], capture_output=True,
                                        text=True).stdout.strip().split('"')[-2],
        "sizes": {},
    }  # fmt: skip
    for n in args.entities:
        parquet = generate(n)
        workdir = Path(tempfile.mkdtemp(prefix="nbf-bench-mat-"))
        port = free_port()
        server = start_redis(port, workdir)
        try:
            repos = {s: feast_repo(parquet, port, s, workdir) for s in FEAST
                     if s in args.systems}  # fmt: skip
            systems = tuple(s for s in SYSTEMS if s in args.systems)
            for system in systems:
                if args.no_feast_warmup and system in FEAST:
                    continue
                print(f"[{n}] warm-up {system}", flush=True)
                run_once(system, parquet, port, repos, args.feast_timeout)
            runs = []
            for i in range(args.rounds):
                for system in systems:
                    result = run_once(system, parquet, port, repos, args.feast_timeout)
                    result["round"] = i
                    runs.append(result)
                    print(f"[{n}] round {i} {system}: {result['rows_per_s']:.0f} rows/s, "
                          f"tree {result['peak_tree_rss'] / 2**20:.0f} MiB, "
                          f"writers {result['peak_writer_rss'] / 2**20:.0f} MiB, "
                          f"{result['redis_bytes_per_entity'] or 0:.0f} B/entity"
                          f"{' (did not finish)' if result.get('did_not_finish') else ''}",
                          flush=True)  # fmt: skip
            limit = redis_limit(port, n)
            report["sizes"][str(n)] = {"load_average_at_end": os.getloadavg(),
                                       "feast_timeout_s": args.feast_timeout, "runs": runs,
                                       **summarize(runs, args.rounds, systems),
                                       "redis_limit": limit}  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if RESULTS.exists():  # keep the other sizes' results
        kept = json.loads(RESULTS.read_text()).get("sizes", {})
        for size, entry in report["sizes"].items():
            # Feast's recorded attempts at a size it cannot finish here stay with that size.
            if "feast_attempts" in kept.get(size, {}) and not set(FEAST) & set(args.systems):
                entry["feast_attempts"] = kept[size]["feast_attempts"]
        report["sizes"] = {**kept, **report["sizes"]}
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({n: s["medians"] for n, s in report["sizes"].items()}, indent=2))


if __name__ == "__main__":
    main()
