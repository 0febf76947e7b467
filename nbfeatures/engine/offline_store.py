"""The offline store's layout, shared by both engines: manifests, version paths, Arrow reads.

Layout under ``settings.offline`` (a local path or ``gs://bucket/prefix``)::

    {family}/v{N}/event_date=YYYY-MM-DD/part-*.parquet
    {family}/v{N}/_manifest.json
    {family}/v{N}/_join_index/{fingerprint}/   (local roots: ``engine.arrow.join_index``)

The manifest (``Manifest``) says what the folder holds: rows, distinct entities, per-date
counts, the merged covered event-time ranges, the definition hash, the Spark version and, for
each run, the snapshot facts of every source read (file names, sizes, modification times for
paths; the table name for tables). Every time is UTC. Manifests always go through pyarrow.
Writing the rows is the Spark engine's (``engine.spark.offline``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nbfeatures._deps import require
from nbfeatures.definitions import FeatureFamily, Source, SourceFormat
from nbfeatures.engine import ranges
from nbfeatures.engine.gcs import arrow_filesystem, is_gcs, join
from nbfeatures.errors import OfflineDataMissing

if TYPE_CHECKING:
    from nbfeatures.config import Settings

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


def iso_utc(value: dt.datetime) -> str:
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
            "covered": [[iso_utc(s), iso_utc(e)] for s, e in self.covered],
            "partitions": dict(sorted(self.partitions.items())),
            "spark_version": self.spark_version,
            "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(self.updated_at),
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


def write_manifest(settings: Settings, manifest: Manifest) -> None:
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
            "modified": iso_utc(i.mtime) if i.mtime is not None else None,
        }
        for i in sorted(infos, key=lambda i: str(i.path))
    ]
    return {
        "name": source.name,
        "format": source.format.value,
        "location": source.location,
        "files": files,
    }


def arrow_partitioning() -> Any:
    pa = require("pyarrow", "spark")
    ds = require("pyarrow.dataset", "spark")
    return ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.string())]), flavor="hive")


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
        partitioning=arrow_partitioning(),
        exclude_invalid_files=False,
        ignore_prefixes=["_", "."],
    )


def read_arrow(
    path: str,
    timestamp: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    emulator: str | None = None,
) -> Any:
    table = arrow_dataset(path, emulator).to_table(filter=date_filter(start, end))
    return table.drop_columns([PARTITION_COLUMN])
