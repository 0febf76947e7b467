"""nbfeatures' side: ``python -m bench.materialize.nbf_side PARQUET URL [BATCH] [TTL] [ENGINE]``.

Runs ``materialize`` of the Parquet file into Redis. ``TTL`` is ``ttl`` (the default: a 7-day
ttl, so every key gets a ``PXAT`` expiry, like Feast's ``key_ttl_seconds`` variant) or
``none`` (no ttl, no per-key expiry). ``ENGINE`` is ``arrow`` (the default: pyarrow reads the
file and this process writes, no JVM is started) or ``spark`` (local[2] Spark reads it and
its executors write with ``mapInArrow``). Prints one JSON line: the materialize call's seconds
and its stats.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from bench.materialize.data import FEATURES
from nbfeatures.materialization import materialize
from nbfeatures.online import FamilyLayout

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
    engine = sys.argv[5] if len(sys.argv) > 5 else "arrow"
    layout = LAYOUT if with_ttl else dataclasses.replace(LAYOUT, ttl_seconds=None)
    if engine == "spark":
        import tempfile

        from nbfeatures.config import load_settings
        from nbfeatures.engine.spark.session import get_spark, stop_spark

        workspace = tempfile.mkdtemp(prefix="nbf-bench-")
        spark = get_spark(load_settings(workspace, environ={}, owner="bench", spark_memory="2g"))
        source: object = spark.read.parquet(path)
    else:
        source = path
    started = time.perf_counter()
    stats = materialize(source, layout, url, batch_rows=batch_rows, engine=engine)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": stats.rows, "entities": stats.entities,
                      "engine": stats.engine}))  # fmt: skip
    if engine == "spark":
        stop_spark()


if __name__ == "__main__":
    main()
