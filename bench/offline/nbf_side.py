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
pandas spine on local Spark (``engine.arrow.pit``; no Spark is started), on the benchmark
family's offline set as ``compute_offline`` stored it (the ``--training-set`` workspace): its
join index (``engine.arrow.join_index``), memory-mapped. Timed the way Feast is: the spine is read
into pandas before the clock; the clock covers opening the stored rows, the join and the
complete pandas result (every row), and nothing is written. The same steps as
``training_set``'s Arrow path: spine normalized to UTC, converted to Arrow, joined, converted
back with the same pandas types as the Spark path. ``--arrow-parquet`` is the same join on
the same offline set's date-partitioned Parquet, the index ignored (what versions computed
before the index, and ``gs://`` roots, are joined from).

``--prepare`` builds the workspaces of the small size and of SIZE (Spark computes the family
once; untimed by the rounds) and prints the time one more build of SIZE's join index takes.

Usage: ``python -m bench.offline.nbf_side SIZE [SAVE] [--training-set] [--arrow]
[--arrow-parquet] [--prepare]``; prints one JSON line.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.offline.data import FEATURES, SIZES, SPAN, START, Size, paths

TTL = dt.timedelta(days=7)


def join_and_write(spark: object, size: Size, out: str) -> float:
    """Seconds to read, join and write the result of ``size`` to ``out``."""
    from nbfeatures.engine.spark.pit import FeatureFrame, point_in_time_join

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
    from nbfeatures.engine.spark.offline import compute_offline

    root = WORKSPACES / f"nbf_workspace_{size.name}"
    done = root / "ready"
    if done.exists():
        return root
    if root.exists():  # a build that died: start over
        shutil.rmtree(root)
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


def workspace_settings(size: Size) -> Any:
    from nbfeatures.config import load_settings

    root = WORKSPACES / f"nbf_workspace_{size.name}"
    if not (root / "ready").exists():
        raise SystemExit(f"no workspace for {size.name}: run with --prepare first")
    return load_settings(root, environ={}, owner="bench", spark_memory="8g")


def arrow_join(size: Size, use_index: bool) -> tuple[float, Any]:
    """Seconds from the spine in pandas to the complete pandas result, and that result."""
    import pandas as pd
    import pyarrow as pa

    from nbfeatures.engine.arrow.columns import ArrowFeatures
    from nbfeatures.engine.arrow.join_index import JoinIndex
    from nbfeatures.engine.arrow.offline import read_offline_table
    from nbfeatures.engine.arrow.pit import point_in_time_join_arrow, to_pandas
    from nbfeatures.training import _normalize_pandas

    settings = workspace_settings(size)
    _, spine_path = paths(size)
    spine = pd.read_parquet(spine_path)
    started = time.perf_counter()
    normalized = _normalize_pandas(spine, "event_timestamp", tuple(spine.columns))
    times = normalized["event_timestamp"]
    rows = read_offline_table(settings, "bench", 1, times.min() - TTL, times.max())
    if isinstance(rows, JoinIndex) != use_index:
        if use_index:
            raise SystemExit(f"the {size.name} workspace has no join index: run --prepare")
        rows = rows.fallback()
    family = ArrowFeatures("bench", rows, "entity_id", "event_timestamp", FEATURES, TTL)
    joined = point_in_time_join_arrow(
        pa.Table.from_pandas(normalized.drop(columns=["__nbf_row"]), preserve_index=False),
        [family],
        timestamp_column="event_timestamp",
    )
    result = to_pandas(joined)
    return time.perf_counter() - started, result


def main_arrow(size_name: str, save: str | None, use_index: bool) -> None:
    size = SIZES[size_name]
    warmup, _ = arrow_join(SIZES["small"], use_index)
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds, result = arrow_join(size, use_index)
    after = resource.getrusage(resource.RUSAGE_SELF)
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
                # Of the timed run: CPU in the process and in the kernel (page faults on
                # mapped and fresh memory), and faults that had to read the disk.
                "user_seconds": after.ru_utime - before.ru_utime,
                "system_seconds": after.ru_stime - before.ru_stime,
                "minor_faults": after.ru_minflt - before.ru_minflt,
                "major_faults": after.ru_majflt - before.ru_majflt,
            }
        )
    )


def main_prepare(size_name: str) -> None:
    """Both workspaces computed (once); one more timed build of SIZE's join index."""
    from nbfeatures.config import load_settings
    from nbfeatures.engine.arrow.join_index import build_index
    from nbfeatures.engine.offline_store import read_manifest, version_path
    from nbfeatures.engine.spark.session import get_spark, stop_spark

    size = SIZES[size_name]
    with tempfile.TemporaryDirectory(prefix="nbf-pit-") as tmp:
        spark = get_spark(load_settings(Path(tmp), environ={}, spark_memory="8g"))
        for each in {SIZES["small"], size}:
            training_workspace(spark, each)
        stop_spark()
    settings = workspace_settings(size)
    manifest = read_manifest(settings, "bench", 1)
    assert manifest is not None
    path = version_path(settings, "bench", 1)
    started = time.perf_counter()
    folder = build_index(manifest, path, FEATURES)
    seconds = time.perf_counter() - started
    assert folder is not None
    size_bytes = sum(f.stat().st_size for f in folder.iterdir())
    parquet_bytes = sum(f.stat().st_size for f in Path(path).glob("event_date=*/*.parquet"))
    print(
        json.dumps(
            {
                "index_build_seconds": seconds,
                "index_bytes": size_bytes,
                "parquet_bytes": parquet_bytes,
                "rows": manifest.rows,
                "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


def main(size_name: str, save: str | None, full_path: bool) -> None:
    from nbfeatures.config import load_settings
    from nbfeatures.engine.spark.session import get_spark, stop_spark

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
    if "--prepare" in flags:
        main_prepare(positional[0])
    elif "--arrow" in flags or "--arrow-parquet" in flags:
        main_arrow(positional[0], save_to, use_index="--arrow" in flags)
    else:
        main(positional[0], save_to, "--training-set" in flags)
