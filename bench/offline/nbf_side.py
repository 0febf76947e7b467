"""nbfeatures' side of the benchmark: one measurement in this fresh process.

Starts the workspace Spark session (local[2], 8g driver, as ``get_spark`` builds it), runs a
warm-up join on the small size's files, then times one ``point_in_time_join`` from reading the
Parquet files to the result written as Parquet in a temporary folder (so every row is
materialized, as Feast's ``to_df()`` materializes its result). The join is the one
``training_set`` runs; it is called directly on DataFrames read from the benchmark files
instead of through the catalog and the offline store layout.

Usage: ``python -m bench.offline.nbf_side SIZE [SAVE]``; prints one JSON line.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.offline.data import FEATURES, SIZES, Size, paths

TTL = dt.timedelta(days=7)


def join_and_write(spark: object, size: Size, out: str) -> float:
    """Seconds to read, join and write the result of ``size`` to ``out``."""
    from nbfeatures.engine.pit import FeatureFrame, point_in_time_join

    features_path, spine_path = paths(size)
    started = time.perf_counter()
    features = spark.read.parquet(str(features_path))  # type: ignore[attr-defined]
    spine = spark.read.parquet(str(spine_path))  # type: ignore[attr-defined]
    family = FeatureFrame(
        name="bench",
        frame=features,
        join_key="entity_id",
        timestamp="event_timestamp",
        features=FEATURES,
        ttl=TTL,
    )
    joined = point_in_time_join(spine, [family], timestamp_column="event_timestamp")
    joined.write.mode("overwrite").parquet(out)
    return time.perf_counter() - started


def main(size_name: str, save: str | None) -> None:
    from nbfeatures.config import load_settings
    from nbfeatures.engine.session import get_spark, stop_spark

    size = SIZES[size_name]
    with tempfile.TemporaryDirectory(prefix="nbf-pit-") as tmp:
        settings = load_settings(Path(tmp), environ={}, spark_memory="8g")
        started = time.perf_counter()
        spark = get_spark(settings)
        startup = time.perf_counter() - started
        warmup = join_and_write(spark, SIZES["small"], f"{tmp}/warmup")
        out = save or f"{tmp}/out"
        seconds = join_and_write(spark, size, out)
        written = spark.read.parquet(out)
        rows = written.count()
        non_null = written.where(written["bench__f0"].isNotNull()).count()
        stop_spark()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "warmup_seconds": warmup,
                "spark_startup_seconds": startup,
                "rows": rows,
                "non_null_f0": non_null,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
