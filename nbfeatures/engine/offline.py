"""The offline store: versioned feature sets as Parquet, one folder per family version.

Layout under ``settings.offline`` (a local path or ``gs://bucket/prefix``)::

    {family}/v{N}/event_date=YYYY-MM-DD/part-*.parquet
    {family}/v{N}/_manifest.json
    {family}/v{N}/_join_index/{fingerprint}/   (local roots: ``engine.join_index``)

``compute_offline`` runs a version's transformation on its full sources, keeps the rows whose
event time falls in the requested range and replaces only the UTC dates of that range: a date
is the unit of replacement, so the range is widened to whole days (``ranges.widen_to_days``)
and the manifest records the widened range as covered. Other dates stay as they were.

The manifest (``Manifest``) says what the folder holds: rows, distinct entities, per-date
counts, the merged covered event-time ranges, the definition hash, the Spark version and, for
each run, the snapshot facts of every source read (file names, sizes, modification times for
paths; the table name for tables). Every time is UTC.

Local roots are written by Spark (dynamic partition overwrite), and so are ``gs://`` roots
when ``settings.gcs_connector`` says Spark has Google's GCS connector. Without it, ``gs://``
roots are written and read through pyarrow's GCS filesystem: Spark computes, the result is
collected as Arrow and pyarrow writes the partitions. Manifests always go through pyarrow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nbfeatures._deps import require
from nbfeatures.definitions import FeatureFamily, Source, SourceFormat
from nbfeatures.engine import ranges
from nbfeatures.engine.gcs import arrow_filesystem, configure_connector, is_gcs, join
from nbfeatures.engine.join_index import build_index
from nbfeatures.engine.spark_api import functions
from nbfeatures.errors import ConfigError, DefinitionError, OfflineDataMissing, SchemaError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import DataFrame, SparkSession

    from nbfeatures.config import Settings

log = logging.getLogger(__name__)

MANIFEST_FILE = "_manifest.json"
PARTITION_COLUMN = "event_date"
MANIFEST_FORMAT = 1


class VersionedFamily(Protocol):
    """What the offline store needs of a catalog version (``catalog.FamilyVersion`` fits)."""

    @property
    def family(self) -> FeatureFamily: ...

    @property
    def version(self) -> int: ...

    @property
    def hash(self) -> str: ...


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def _parse_time(text: str) -> dt.datetime:
    return ranges.to_utc(dt.datetime.fromisoformat(text))


@dataclass
class Manifest:
    """What one family version's offline folder holds; stored as ``_manifest.json``."""

    family: str
    version: int
    hash: str
    entity_key: str
    timestamp: str
    spark_version: str
    created_at: dt.datetime
    updated_at: dt.datetime
    covered: list[ranges.TimeRange] = field(default_factory=list)
    partitions: dict[str, dict[str, int]] = field(default_factory=dict)
    entities: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(p["rows"] for p in self.partitions.values())

    def missing(self, start: dt.datetime, end: dt.datetime) -> list[ranges.TimeRange]:
        """The parts of ``[start, end)`` this folder does not cover."""
        return ranges.gaps(self.covered, start, end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "family": self.family,
            "version": self.version,
            "hash": self.hash,
            "entity_key": self.entity_key,
            "timestamp": self.timestamp,
            "rows": self.rows,
            "entities": self.entities,
            "covered": [[_iso(s), _iso(e)] for s, e in self.covered],
            "partitions": dict(sorted(self.partitions.items())),
            "spark_version": self.spark_version,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "runs": self.runs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            family=data["family"],
            version=int(data["version"]),
            hash=data["hash"],
            entity_key=data["entity_key"],
            timestamp=data["timestamp"],
            spark_version=data["spark_version"],
            created_at=_parse_time(data["created_at"]),
            updated_at=_parse_time(data["updated_at"]),
            covered=[(_parse_time(s), _parse_time(e)) for s, e in data["covered"]],
            partitions={k: dict(v) for k, v in data["partitions"].items()},
            entities=int(data["entities"]),
            runs=list(data["runs"]),
        )


def version_path(settings: Settings, family: str, version: int) -> str:
    """Where a family version's Parquet lives: ``{offline}/{family}/v{N}``."""
    return join(settings.offline, family, f"v{version}")


def read_manifest(settings: Settings, family: str, version: int) -> Manifest | None:
    """The stored manifest of a family version, or ``None`` when nothing was computed."""
    fs, root = arrow_filesystem(
        version_path(settings, family, version), emulator=settings.gcs_emulator
    )
    path = f"{root}/{MANIFEST_FILE}"
    pafs = require("pyarrow.fs", "spark")
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return Manifest.from_dict(json.loads(stream.read().decode()))


def _write_manifest(settings: Settings, manifest: Manifest) -> None:
    """Write the manifest; locally through a temporary file and a rename, so it is whole."""
    fs, root = arrow_filesystem(
        version_path(settings, manifest.family, manifest.version), emulator=settings.gcs_emulator
    )
    fs.create_dir(root, recursive=True)
    data = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode()
    target = f"{root}/{MANIFEST_FILE}"
    if is_gcs(settings.offline):
        with fs.open_output_stream(target) as stream:
            stream.write(data)
        return
    temporary = f"{root}/.{MANIFEST_FILE}.{uuid.uuid4().hex}"
    with fs.open_output_stream(temporary) as stream:
        stream.write(data)
    fs.move(temporary, target)


def check_offline(
    settings: Settings, family: str, version: int, start: dt.datetime, end: dt.datetime
) -> Manifest:
    """The manifest, if it covers ``[start, end)``; else ``OfflineDataMissing`` naming the gap."""
    start, end = ranges.check_range(start, end)
    manifest = read_manifest(settings, family, version)
    if manifest is None:
        raise OfflineDataMissing(family, version, start, end)
    missing = manifest.missing(start, end)
    if missing:
        raise OfflineDataMissing(family, version, missing[0][0], missing[0][1])
    return manifest


def source_snapshot(source: Source, emulator: str | None = None) -> dict[str, Any]:
    """What a source looked like when read: files with sizes and mtimes, or a table name
    (``gs://`` sources through ``emulator`` if given)."""
    if source.format is SourceFormat.TABLE:
        return {"name": source.name, "format": source.format.value, "table": source.location}
    pafs = require("pyarrow.fs", "spark")
    fs, path = arrow_filesystem(source.location, emulator=emulator)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        infos = [
            i
            for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
            if i.type == pafs.FileType.File and not i.base_name.startswith(("_", "."))
        ]
    else:
        infos = [info] if info.type == pafs.FileType.File else []
    files = [
        {
            "path": i.path,
            "size": i.size,
            "modified": _iso(i.mtime) if i.mtime is not None else None,
        }
        for i in sorted(infos, key=lambda i: str(i.path))
    ]
    return {
        "name": source.name,
        "format": source.format.value,
        "location": source.location,
        "files": files,
    }


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
    from nbfeatures.engine.transform import run_transformation

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
            "started_at": _iso(started_at),
            "finished_at": _iso(now),
            "requested": [_iso(start), _iso(end)],
            "stored": [_iso(day_start), _iso(day_end)],
            "rows": sum(p["rows"] for p in written.values()),
            "sources": snapshots,
            **({"full": True} if full else {}),
        }
    )
    _write_manifest(settings, manifest)
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
    session at the settings' emulator (``configure_connector``), which may have started after
    the session.
    """
    if not is_gcs(settings.offline):
        return True
    if settings.gcs_connector:
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


def _arrow_partitioning() -> Any:
    pa = require("pyarrow", "spark")
    ds = require("pyarrow.dataset", "spark")
    return ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.string())]), flavor="hive")


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
            partitioning=_arrow_partitioning(),
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


def date_filter(start: dt.datetime | None, end: dt.datetime | None) -> Any:
    """A ``pyarrow.dataset`` filter keeping the event-date partitions of ``[start, end]``."""
    ds = require("pyarrow.dataset", "spark")
    condition = None
    if start is not None:
        condition = ds.field(PARTITION_COLUMN) >= start.date().isoformat()
    if end is not None:
        upper = ds.field(PARTITION_COLUMN) <= end.date().isoformat()
        condition = upper if condition is None else condition & upper
    return condition


def arrow_dataset(path: str, emulator: str | None = None) -> Any:
    """A version's offline set at ``path`` as a ``pyarrow.dataset`` (local, or ``gs://``
    through ``emulator`` if given: ``settings.gcs_emulator``)."""
    ds = require("pyarrow.dataset", "spark")
    fs, root = arrow_filesystem(path, emulator=emulator)
    return ds.dataset(
        root,
        format="parquet",
        filesystem=fs,
        partitioning=_arrow_partitioning(),
        exclude_invalid_files=False,
        ignore_prefixes=["_", "."],
    )


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
            _read_arrow(path, manifest.timestamp, start, end, settings.gcs_emulator)
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


def _read_arrow(
    path: str,
    timestamp: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    emulator: str | None,
) -> Any:
    table = arrow_dataset(path, emulator).to_table(filter=date_filter(start, end))
    return table.drop_columns([PARTITION_COLUMN])
