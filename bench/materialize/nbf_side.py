"""nbfeatures' side: ``python -m bench.materialize.nbf_side PARQUET REDIS_URL [BATCH_ROWS] [TTL]``.

Starts local Spark (local[2]), reads the Parquet file and runs ``materialize`` into Redis.
``TTL`` is ``ttl`` (the default: a 7-day ttl, so every key gets a ``PXAT`` expiry, like the
Feast view's 7-day ttl) or ``none`` (no ttl, no per-key expiry). Prints one JSON line: the
materialize call's seconds and its stats.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time

from bench.materialize.data import FEATURES
from nbfeatures.config import load_settings
from nbfeatures.engine.session import get_spark, stop_spark
from nbfeatures.online import FamilyLayout
from nbfeatures.online.materialize import materialize

LAYOUT = FamilyLayout(
    family="bench_features",
    version=1,
    hash="bench",
    entity_key="entity_id",
    timestamp="event_timestamp",
    features=tuple((f, "float64") for f in FEATURES),
    ttl_seconds=7 * 86400,
)


def main() -> None:
    path, url = sys.argv[1], sys.argv[2]
    batch_rows = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    with_ttl = len(sys.argv) <= 4 or sys.argv[4] != "none"
    layout = LAYOUT if with_ttl else dataclasses.replace(LAYOUT, ttl_seconds=None)
    workspace = tempfile.mkdtemp(prefix="nbf-bench-")
    spark = get_spark(load_settings(workspace, environ={}, owner="bench", spark_memory="2g"))
    df = spark.read.parquet(path)
    started = time.perf_counter()
    stats = materialize(df, layout, url, batch_rows=batch_rows)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": stats.rows, "entities": stats.entities}))
    stop_spark()


if __name__ == "__main__":
    main()
