"""nbfeatures' side: ``python -m bench.materialize.nbf_side PARQUET REDIS_URL [BATCH_ROWS]``.

Starts local Spark (local[2]), reads the Parquet file and runs ``materialize`` into Redis.
Prints one JSON line: the materialize call's seconds and its stats.
"""

from __future__ import annotations

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
    workspace = tempfile.mkdtemp(prefix="nbf-bench-")
    spark = get_spark(load_settings(workspace, environ={}, owner="bench", spark_memory="2g"))
    df = spark.read.parquet(path)
    started = time.perf_counter()
    stats = materialize(df, LAYOUT, url, batch_rows=batch_rows)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": stats.rows, "entities": stats.entities}))
    stop_spark()


if __name__ == "__main__":
    main()
