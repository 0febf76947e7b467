"""nbfeatures' side of the benchmark: one measurement in this fresh process.

Starts the workspace Spark session (local[2], 8g driver, as ``get_spark`` builds it), runs a
warm-up join on the small size's files, then times one ``point_in_time_join`` from reading the
Parquet files to the result written as Parquet in a temporary folder (so every row is
materialized, as Feast's ``to_df()`` materializes its result). The join is the one
``training_set`` runs; it is called directly on DataFrames read from the benchmark files
instead of through the catalog and the offline store layout.

With ``--training-set`` the timed run is the public ``nbfeatures.training_set`` instead, with a
Spark spine read from the same spine file: catalog resolution (embedded MLflow on SQLite), the
offline store's coverage check and date-partitioned read, the same join, and the write. Its
workspace (a registered family whose offline data was computed from the benchmark's feature
file) is built once per size under ``bench/.data/``, untimed.

With ``--arrow`` the timed run is the in-process join ``training_set`` uses by default for a
pandas spine on local Spark (``engine.local_pit``; no Spark is started), timed the way Feast
is: the spine is read into pandas before the clock; the clock covers reading the feature file
with pyarrow, the join and the complete pandas result (every row), and nothing is written.
The same steps as ``training_set``'s Arrow path: spine normalized to UTC, converted to Arrow,
joined, converted back with the same pandas types as the Spark path.

Usage: ``python -m bench.offline.nbf_side SIZE [SAVE] [--training-set] [--arrow]``; prints one
JSON line.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.offline.data import FEATURES, SIZES, SPAN, START, Size, paths

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


WORKSPACES = Path(__file__).resolve().parent.parent / ".data" / "offline_pit"


def training_workspace(spark: object, size: Size) -> Path:
    """A workspace with family ``bench`` registered and its offline data computed (once)."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import load_settings
    from nbfeatures.definitions import Entity, Feature, FeatureFamily, Source, Transformation
    from nbfeatures.engine.offline import compute_offline

    root = WORKSPACES / f"nbf_workspace_{size.name}"
    done = root / "ready"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    settings = load_settings(root, environ={}, owner="bench", spark_memory="8g")
    features_path, _ = paths(size)
    family = FeatureFamily(
        name="bench",
        entity=Entity("entity", "entity_id"),
        timestamp="event_timestamp",
        features=tuple(Feature(f, "float64") for f in FEATURES),
        transformation=Transformation(
            "sql", f"SELECT entity_id, event_timestamp, {', '.join(FEATURES)} FROM src"
        ),
        sources=(Source.infer("src", str(features_path)),),
        owner="bench",
        ttl="7d",
    )
    version = Catalog.from_settings(settings).register(family).version
    compute_offline(spark, settings, version, START, START + SPAN)  # type: ignore[arg-type]
    done.write_text("ok\n")
    return root


def via_training_set(spark: object, size: Size, out: str) -> float:
    """Seconds for ``training_set`` on the Spark spine, result written to ``out``."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import load_settings
    from nbfeatures.training import training_set

    root = training_workspace(spark, size)
    settings = load_settings(root, environ={}, owner="bench", spark_memory="8g")
    catalog = Catalog.from_settings(settings)
    _, spine_path = paths(size)
    started = time.perf_counter()
    spine = spark.read.parquet(str(spine_path))  # type: ignore[attr-defined]
    result = training_set(
        spine, ["bench:*"], settings=settings, catalog=catalog, spark=spark, progress=False
    )
    result.write.mode("overwrite").parquet(out)
    return time.perf_counter() - started


def arrow_join(size: Size) -> tuple[float, Any]:
    """Seconds from the spine in pandas to the complete pandas result, and that result."""
    import pandas as pd
    import pyarrow as pa

    from nbfeatures.engine.arrow_rows import ParquetRows
    from nbfeatures.engine.local_pit import ArrowFeatures, point_in_time_join_arrow, to_pandas
    from nbfeatures.training import _normalize_pandas

    features_path, spine_path = paths(size)
    spine = pd.read_parquet(spine_path)
    started = time.perf_counter()
    normalized = _normalize_pandas(spine, "event_timestamp", tuple(spine.columns))
    rows = ParquetRows.from_paths([str(features_path)])
    family = ArrowFeatures("bench", rows, "entity_id", "event_timestamp", FEATURES, TTL)
    joined = point_in_time_join_arrow(
        pa.Table.from_pandas(normalized.drop(columns=["__nbf_row"]), preserve_index=False),
        [family],
        timestamp_column="event_timestamp",
    )
    result = to_pandas(joined)
    return time.perf_counter() - started, result


def main_arrow(size_name: str, save: str | None) -> None:
    size = SIZES[size_name]
    warmup, _ = arrow_join(SIZES["small"])
    seconds, result = arrow_join(size)
    if save:
        result.to_parquet(save)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "warmup_seconds": warmup,
                "rows": len(result),
                "non_null_f0": int(result["bench__f0"].notna().sum()),
                "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


def main(size_name: str, save: str | None, full_path: bool) -> None:
    from nbfeatures.config import load_settings
    from nbfeatures.engine.session import get_spark, stop_spark

    size = SIZES[size_name]
    with tempfile.TemporaryDirectory(prefix="nbf-pit-") as tmp:
        settings = load_settings(Path(tmp), environ={}, spark_memory="8g")
        started = time.perf_counter()
        spark = get_spark(settings)
        startup = time.perf_counter() - started
        run = via_training_set if full_path else join_and_write
        warmup = run(spark, SIZES["small"], f"{tmp}/warmup")
        out = save or f"{tmp}/out"
        seconds = run(spark, size, out)
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
                # The Python driver only: the JVM is measured by the caller's tree sampling.
                "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    positional = [a for a in sys.argv[1:] if not a.startswith("--")]
    save_to = positional[1] if len(positional) > 1 else None
    if "--arrow" in flags:
        main_arrow(positional[0], save_to)
    else:
        main(positional[0], save_to, "--training-set" in flags)
