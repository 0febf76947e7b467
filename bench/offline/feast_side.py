"""Feast's side of the benchmark: run with the Feast virtual environment's Python.

Two modes:

- ``repo REPO FEATURES STORE``: write a Feast repo folder holding only ``feature_store.yaml``
  and ``definitions.py`` (an entity and a feature view with the ten features and a 7-day ttl
  on a FileSource over the benchmark's Parquet file), for the ``file`` (Dask) or ``duckdb``
  offline store. ``feast apply`` is run on it by the caller.
- ``run REPO SPINE``: in this fresh process, load the spine into pandas, open the store, run a
  warm-up ``get_historical_features`` on the spine's first 1,000 rows, then time one
  ``get_historical_features(entity_df=spine, features=[...]).to_df()`` on the whole spine.
  Prints one JSON line: seconds, rows, peak RSS of this process (getrusage).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for feast_view
from feast_view import write_feast_repo

FEATURES = tuple(f"f{i}" for i in range(10))
TTL_DAYS = 7
VIEW = "bench_features"


CONFIG = """project: nbf_bench
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online.db
offline_store:
  type: {store}
entity_key_serialization_version: 3
"""


def write_repo(repo: Path, features_path: str, store: str) -> None:
    write_feast_repo(
        repo, features_path, FEATURES, CONFIG.format(store=store), online=False,
        generated_by="bench/offline/feast_side.py", ttl_days=TTL_DAYS,
    )  # fmt: skip


def run(repo: str, spine_path: str, save: str | None) -> None:
    import pandas as pd
    from feast import FeatureStore

    spine = pd.read_parquet(spine_path)
    store = FeatureStore(repo_path=repo)
    refs = [f"{VIEW}:{f}" for f in FEATURES]

    started = time.perf_counter()
    store.get_historical_features(entity_df=spine.head(1000), features=refs).to_df()
    warmup = time.perf_counter() - started

    started = time.perf_counter()
    result = store.get_historical_features(entity_df=spine, features=refs).to_df()
    seconds = time.perf_counter() - started

    # Not an error here: a store that drops spine rows is a finding, reported by the caller.
    if save:
        result.to_parquet(save)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "warmup_seconds": warmup,
                "rows": len(result),
                "spine_rows": len(spine),
                "non_null_f0": int(result["f0"].notna().sum()),
                "ru_maxrss_bytes": usage.ru_maxrss * 1024,
            }
        )
    )


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "repo":
        write_repo(Path(args[0]), args[1], args[2])
    elif mode == "run":
        run(args[0], args[1], args[2] if len(args) > 2 else None)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
