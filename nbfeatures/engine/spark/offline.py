"""The Spark engine's offline writes and reads: a version computed into its Parquet folder.

The folder's layout and its manifest are ``engine.offline_store``'s.

``compute_offline`` runs a version's transformation on its full sources, keeps the rows whose
event time falls in the requested range and replaces only the UTC dates of that range: a date
is the unit of replacement, so the range is widened to whole days (``ranges.widen_to_days``)
and the manifest records the widened range as covered. Other dates stay as they were.

Local roots are written by Spark (dynamic partition overwrite), and so are ``gs://`` roots
when ``settings.gcs_connector`` says Spark has Google's GCS connector. Without it, ``gs://``
roots are written and read through pyarrow's GCS filesystem: Spark computes, the result is
collected as Arrow and pyarrow writes the partitions.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING

from nbfeatures._deps import require
from nbfeatures.definitions import FeatureFamily, Source
from nbfeatures.engine import ranges
from nbfeatures.engine.arrow.join_index import build_index
from nbfeatures.engine.gcs import arrow_filesystem, is_gcs
from nbfeatures.engine.offline_store import (
    PARTITION_COLUMN,
    Manifest,
    VersionedFamily,
    arrow_dataset,
    arrow_partitioning,
    check_offline,
    iso_utc,
    read_arrow,
    read_manifest,
    source_snapshot,
    version_path,
    write_manifest,
)
from nbfeatures.engine.spark.spark_api import functions
from nbfeatures.errors import ConfigError, DefinitionError, OfflineDataMissing, SchemaError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import DataFrame, SparkSession

    from nbfeatures.config import Settings

log = logging.getLogger(__name__)


def _check_utc(spark: SparkSession) -> None:
    zone = spark.conf.get("spark.sql.session.timeZone")
    if zone not in ("UTC", "Etc/UTC", "GMT", "Z", "+00:00"):
        raise ConfigError(
            "spark.sql.session.timeZone",
            f"is {zone}; the offline store partitions by UTC date, set it to UTC",
        )


def prepare_output(frame: DataFrame, family: FeatureFamily) -> DataFrame:
    """The stored columns: entity key, event time as a timestamp, the features."""
    F = functions(frame)
    present = set(frame.columns)
    for column in (family.entity.join_key, family.timestamp, *family.feature_names):
        if column not in present:
            raise SchemaError(
                family.name, column, f"missing from the output; columns: {sorted(present)}"
            )
    return frame.select(
        F.col(family.entity.join_key),
        F.col(family.timestamp).cast("timestamp").alias(family.timestamp),
        *[F.col(name) for name in family.feature_names],
    )


def compute_offline(
    spark: SparkSession,
    settings: Settings,
    fv: VersionedFamily,
    start: dt.datetime,
    end: dt.datetime,
) -> Manifest:
    """Compute ``fv`` on its full sources and store event times ``[start, end)`` (whole days)."""
    from nbfeatures.engine.spark.transform import run_transformation

    started = dt.datetime.now(dt.UTC)
    family = fv.family
    frame, used = run_transformation(spark, family.name, family.transformation, family.sources)
    return write_offline(spark, settings, fv, frame, used, start, end, started_at=started)


def write_offline(
    spark: SparkSession,
    settings: Settings,
    fv: VersionedFamily,
    frame: DataFrame,
    sources: Sequence[Source],
    start: dt.datetime,
    end: dt.datetime,
    started_at: dt.datetime | None = None,
    *,
    full: bool = False,
) -> Manifest:
    """Store a computed frame's rows for ``[start, end)``, widened to whole UTC days.

    Only the dates of the range are replaced (dates with no rows now are removed); the
    manifest is written last, so a failed write never claims coverage it does not have.
    ``full`` says the range is everything the sources hold (recorded with the run).
    """
    F = functions(spark)
    _check_utc(spark)
    started_at = started_at or dt.datetime.now(dt.UTC)
    start, end = ranges.check_range(start, end)
    day_start, day_end = ranges.widen_to_days(start, end)
    family = fv.family
    previous = read_manifest(settings, family.name, fv.version)
    if previous is not None and previous.hash != fv.hash:
        raise DefinitionError(
            "hash",
            f"{family.name} v{fv.version} is stored with hash {previous.hash[:12]} but the "
            f"catalog says {fv.hash[:12]}; the offline folder belongs to another definition",
        )
    snapshots = [source_snapshot(s, settings.gcs_emulator) for s in sources]
    ts = F.col(family.timestamp)
    rows = (
        prepare_output(frame, family)
        .where(ts.isNotNull() & (ts >= F.lit(day_start)) & (ts < F.lit(day_end)))
        .withColumn(PARTITION_COLUMN, F.date_format(ts, "yyyy-MM-dd"))
    )
    path = version_path(settings, family.name, fv.version)
    through_spark = spark_reaches(settings, spark)
    if through_spark:
        written = _write_spark(spark, rows, path, family.entity.join_key, (day_start, day_end))
    else:
        written = _write_arrow(rows, path, family.entity.join_key, settings.gcs_emulator)
    stale = {d.isoformat() for d in ranges.days_in(day_start, day_end)} - set(written)
    _delete_partitions(path, stale, settings.gcs_emulator)

    now = dt.datetime.now(dt.UTC)
    manifest = previous or Manifest(
        family=family.name,
        version=fv.version,
        hash=fv.hash,
        entity_key=family.entity.join_key,
        timestamp=family.timestamp,
        spark_version=str(spark.version),
        created_at=now,
        updated_at=now,
    )
    for date in stale:
        manifest.partitions.pop(date, None)
    manifest.partitions.update(written)
    manifest.covered = ranges.merge([*manifest.covered, (day_start, day_end)])
    manifest.entities = _count_entities(
        spark, path, family.entity.join_key, through_spark, settings.gcs_emulator
    )
    manifest.spark_version = str(spark.version)
    manifest.updated_at = now
    manifest.runs.append(
        {
            "started_at": iso_utc(started_at),
            "finished_at": iso_utc(now),
            "requested": [iso_utc(start), iso_utc(end)],
            "stored": [iso_utc(day_start), iso_utc(day_end)],
            "rows": sum(p["rows"] for p in written.values()),
            "sources": snapshots,
            **({"full": True} if full else {}),
        }
    )
    write_manifest(settings, manifest)
    # After the manifest, which names it. The Parquet and the manifest are the offline set;
    # the index only speeds joins up, so a failed build is reported, not raised: without a
    # matching index, joins read the Parquet.
    try:
        build_index(manifest, path, family.feature_names)
    except Exception as error:
        log.warning("join index of %s v%s not built: %s", family.name, fv.version, error)
    return manifest


def spark_reaches(settings: Settings, spark: SparkSession) -> bool:
    """Whether Spark itself writes and reads this workspace's offline rows (``engine.gcs``):
    local roots always, ``gs://`` with the GCS connector.

    Called right before Spark touches the rows: with the connector it also points a local
    session at the settings' emulator (``spark.session.configure_connector``), which may have
    started after the session.
    """
    if not is_gcs(settings.offline):
        return True
    if settings.gcs_connector:
        from nbfeatures.engine.spark.session import configure_connector

        configure_connector(spark, settings.gcs_emulator)
        return True
    return False


def _write_spark(
    spark: SparkSession, rows: DataFrame, path: str, key: str, days: ranges.TimeRange
) -> dict[str, dict[str, int]]:
    """Dynamic partition overwrite: only the dates present in ``rows`` are replaced.

    The per-date counts are read back from what was written (cheap, columnar) rather than
    from ``rows``, which would run the transformation a second time.
    """
    F = functions(spark)
    (
        rows.write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(PARTITION_COLUMN)
        .parquet(path)
    )
    day = F.col(PARTITION_COLUMN).cast("string").alias("_d")
    counts = (
        spark.read.parquet(path)
        .where(
            (F.col(PARTITION_COLUMN) >= F.lit(days[0].date()))
            & (F.col(PARTITION_COLUMN) < F.lit(days[1].date()))
        )
        .groupBy(day)
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(key).alias("entities"))
    )
    return {
        r["_d"]: {"rows": int(r["rows"]), "entities": int(r["entities"])} for r in counts.collect()
    }


def _write_arrow(
    rows: DataFrame, path: str, key: str, emulator: str | None
) -> dict[str, dict[str, int]]:
    """Collect as Arrow and write the dates with pyarrow, replacing only those written."""
    ds = require("pyarrow.dataset", "spark")
    table = rows.toArrow()
    fs, root = arrow_filesystem(path, emulator=emulator)
    if table.num_rows:
        ds.write_dataset(
            table,
            root,
            format="parquet",
            filesystem=fs,
            partitioning=arrow_partitioning(),
            existing_data_behavior="delete_matching",
            basename_template=f"part-{uuid.uuid4().hex}-{{i}}.parquet",
        )
    counts: dict[str, dict[str, int]] = {}
    grouped = table.group_by(PARTITION_COLUMN).aggregate(
        [([], "count_all"), (key, "count_distinct")]
    )
    for row in grouped.to_pylist():
        counts[row[PARTITION_COLUMN]] = {
            "rows": int(row["count_all"]),
            "entities": int(row[f"{key}_count_distinct"]),
        }
    return counts


def _delete_partitions(path: str, dates: set[str], emulator: str | None) -> None:
    """Remove the folders of ``dates`` that exist.

    One listing, not one probe per date: a default range spans decades of days, and on GCS
    each probe would be a request.
    """
    pafs = require("pyarrow.fs", "spark")
    fs, root = arrow_filesystem(path, emulator=emulator)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return
    prefix = f"{PARTITION_COLUMN}="
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        name = info.base_name
        is_partition = info.type == pafs.FileType.Directory and name.startswith(prefix)
        if is_partition and name[len(prefix) :] in dates:
            fs.delete_dir(info.path)


def _count_entities(
    spark: SparkSession, path: str, key: str, through_spark: bool, emulator: str | None
) -> int:
    """Distinct entities over everything stored (only the key column is read)."""
    if not through_spark:
        pc = require("pyarrow.compute", "spark")
        table = arrow_dataset(path, emulator).to_table(columns=[key])
        return int(pc.count_distinct(table[key]).as_py())
    F = functions(spark)
    row = spark.read.parquet(path).agg(F.countDistinct(key).alias("n")).collect()[0]
    return int(row["n"])


def read_offline(
    spark: SparkSession,
    settings: Settings,
    family: str,
    version: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    *,
    check: bool = True,
) -> DataFrame:
    """A family version's stored rows with event time in ``[start, end)`` (open ends allowed).

    With ``check`` and both ends given, a range the manifest does not cover raises
    ``OfflineDataMissing`` naming the first gap. Without a manifest, nothing was computed.
    """
    F = functions(spark)
    manifest = read_manifest(settings, family, version)
    if manifest is None:
        now = dt.datetime.now(dt.UTC)
        raise OfflineDataMissing(family, version, start or now, end or now)
    if check and start is not None and end is not None:
        check_offline(settings, family, version, start, end)
    start = ranges.to_utc(start, "start") if start is not None else None
    end = ranges.to_utc(end, "end") if end is not None else None
    path = version_path(settings, family, version)
    if not spark_reaches(settings, spark):
        frame = spark.createDataFrame(
            read_arrow(path, manifest.timestamp, start, end, settings.gcs_emulator)
        )
    else:
        frame = spark.read.parquet(path)
        # Partition pruning first (cheap), then the exact event-time bounds.
        if start is not None:
            frame = frame.where(F.col(PARTITION_COLUMN) >= F.lit(start.date()))
        if end is not None:
            frame = frame.where(F.col(PARTITION_COLUMN) <= F.lit(end.date()))
    ts = F.col(manifest.timestamp)
    if start is not None:
        frame = frame.where(ts >= F.lit(start))
    if end is not None:
        frame = frame.where(ts < F.lit(end))
    return frame.drop(PARTITION_COLUMN)
