"""A `%%feature` cell on a 1M-row source, and registration, side by side with references.

Measured in one run, same machine, same data, alternating rounds (see ../shared BENCHMARKS):

- preview: a `%%feature` cell in a real IPython shell with a warm Spark session, from the
  cell starting to the preview widget built and displayed; once with the default bounded
  sample (settings.preview_limit rows per source) and once reading the whole 1M rows.
  The reference is the machine's floor for the same look by hand in plain PySpark on the same
  session: the same SQL, `.limit(20).toPandas()` for rows and `.summary().toPandas()` for
  statistics.
- registration: `Catalog.register` of a new version on the embedded MLflow (SQLite) catalog
  vs Feast 0.67's `FeatureStore.apply` of an equivalent entity + feature view on its
  SQLite registry (Feast in its own virtual environment, timed inside its process).

Run: `make bench` (or `.venv/bin/python -m bench.notebook_preview --rounds 3`).
Writes bench/results/notebook_preview.json and prints the table for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data"
FEAST_PYTHON = ROOT / ".feast-venv" / "bin" / "python"
RESULTS = ROOT / "results" / "notebook_preview.json"

SQL = """
SELECT user_id, ts,
       amount AS amount,
       sum(amount) OVER (PARTITION BY user_id ORDER BY ts
                         ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS spend_7,
       count(*) OVER (PARTITION BY user_id ORDER BY ts
                      ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS txn_7
FROM transactions
"""


def ensure_feast() -> None:
    if not FEAST_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FEAST_PYTHON.parent.parent)], check=True)
        subprocess.run(
            [str(FEAST_PYTHON), "-m", "pip", "install", "-q", "feast[grpcio,duckdb,redis]==0.67.0"],
            check=True,
        )


def feast_apply_seconds(repo: Path, data: Path, repeats: int, round_no: int) -> list[float]:
    """Time FeatureStore.apply of a new feature view version inside Feast's own process."""
    script = f"""
import time, datetime as dt, json
from pathlib import Path
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.types import Float64, Int64
repo = Path({str(repo)!r}); repo.mkdir(parents=True, exist_ok=True)
(repo / "feature_store.yaml").write_text(
    "project: bench\\nregistry: " + str(repo / "registry.db") + "\\nprovider: local\\n"
    "online_store:\\n  type: sqlite\\n  path: " + str(repo / "online.db") + "\\n"
    "entity_key_serialization_version: 3\\n")
store = FeatureStore(repo_path=str(repo))
user = Entity(name="user", join_keys=["user_id"])
source = FileSource(path={str(data)!r}, timestamp_field="ts")
def view(i):
    return FeatureView(name="user_spend", entities=[user], ttl=dt.timedelta(days=7),
        schema=[Field(name="amount", dtype=Float64), Field(name="spend_7", dtype=Float64),
                Field(name="txn_7", dtype=Int64), Field(name=f"extra_{{i}}", dtype=Float64)],
        source=source)
store.apply([user, view(-1)])  # warm-up: first apply creates the registry
out = []
for i in range({repeats}):
    t = time.perf_counter()
    store.apply([user, view({round_no} * 100 + i)])
    out.append(time.perf_counter() - t)
print(json.dumps(out))
"""
    done = subprocess.run(
        [str(FEAST_PYTHON), "-c", script], capture_output=True, text=True, check=True
    )
    return [float(x) for x in json.loads(done.stdout.strip().splitlines()[-1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timings per round and system")
    args = parser.parse_args()

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from nbfeatures.catalog import Catalog
    from nbfeatures.config import load_settings
    from nbfeatures.demo_data import write_transactions
    from nbfeatures.engine.spark.session import get_spark
    from nbfeatures.notebook.state import configure

    ensure_feast()
    data = DATA / f"transactions_{args.rows}.parquet"
    if not data.exists():
        write_transactions(data, rows=args.rows, users=max(1, args.rows // 20), days=90)
    workspace = Path(tempfile.mkdtemp(prefix="nbf-bench-"))
    settings = load_settings(workspace, environ={}, owner="bench")
    full = load_settings(workspace, environ={}, owner="bench", preview_limit=args.rows)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbfeatures")
    spark = get_spark(settings)
    catalog = Catalog.from_settings(settings)

    def cell(limit_settings: Any, name: str) -> float:
        state = configure(limit_settings)
        state.sources.clear()
        with capture_output():
            shell.run_line_magic("nbf_source", f"transactions {data} --timestamp ts")
            start = time.perf_counter()
            shell.run_cell_magic("feature", f"{name} --entity user_id --timestamp ts", SQL)
        return time.perf_counter() - start

    def plain_spark() -> float:
        start = time.perf_counter()
        spark.read.parquet(str(data)).createOrReplaceTempView("transactions")
        frame = spark.sql(SQL)
        frame.limit(20).toPandas()
        frame.summary().toPandas()
        return time.perf_counter() - start

    def register(round_no: int, i: int) -> float:
        configure(settings)
        family = shell.user_ns["_nbf_last"].family
        changed = family.__class__.from_dict(
            {
                **family.to_dict(),
                "name": "bench_register",
                "transformation": {
                    "kind": "sql",
                    "text": SQL.replace(
                        "amount AS amount", f"amount + {round_no * 100 + i} AS amount"
                    ),
                },
            }
        )
        start = time.perf_counter()
        catalog.register(changed)
        return time.perf_counter() - start

    # Warm-up: start Spark, load the magics, JIT the plans, create the catalog and registry.
    cell(settings, "bench_warm")
    plain_spark()
    register(-1, 0)
    feast_repo = workspace / "feast_repo"
    feast_apply_seconds(feast_repo, data, 1, -1)

    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        row: dict[str, Any] = {"round": r}
        row["nbf_preview_sampled_s"] = statistics.median(
            cell(settings, f"bench_s{r}_{i}") for i in range(args.repeats)
        )
        row["plain_spark_s"] = statistics.median(plain_spark() for _ in range(args.repeats))
        row["nbf_preview_full_s"] = statistics.median(
            cell(full, f"bench_f{r}_{i}") for i in range(args.repeats)
        )
        row["nbf_register_s"] = statistics.median(register(r, i) for i in range(args.repeats))
        row["feast_apply_s"] = statistics.median(
            feast_apply_seconds(feast_repo, data, args.repeats, r)
        )
        row["preview_full_vs_plain"] = row["nbf_preview_full_s"] / row["plain_spark_s"]
        row["register_vs_feast_apply"] = row["nbf_register_s"] / row["feast_apply_s"]
        rounds.append(row)
        print(json.dumps(row), flush=True)

    keys = [k for k in rounds[0] if k != "round"]
    summary = {k: statistics.median(r[k] for r in rounds) for k in keys}
    result = {
        "benchmark": "notebook_preview",
        "command": "make bench  # .venv/bin/python -m bench.notebook_preview "
        f"--rows {args.rows} --rounds {args.rounds} --repeats {args.repeats}",
        "rows": args.rows,
        "preview_limit": settings.preview_limit,
        "machine": {"cpus": 2, "python": platform.python_version(), "spark": spark.version},
        "rounds": rounds,
        "median": summary,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
