"""The served-vector log of one family over a window, one row per served entity vector.

``nbfeatures logs flush`` writes the log as long Parquet (one row per served value, values as
JSON text) under ``<offline>/_served/date=YYYY-MM-DD/``. Reports want it wide: per served
vector its request time, entity, version, status, event time and one typed column per
feature. Values are decoded with Arrow kernels, not per value in Python: a million vectors of
ten features is ten million values.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from nbfeatures._deps import require
from nbfeatures.config import Settings
from nbfeatures.definitions import FeatureFamily, FeatureType
from nbfeatures.engine.gcs import arrow_filesystem

SERVED_FOLDER = "_served"
# The log's columns a window needs, and those read as dictionaries (their text repeats).
_LONG_COLUMNS = (
    "log_id", "request_id", "request_time", "entity", "version", "feature", "status",
    "event_time", "value",
)  # fmt: skip
_DICTIONARY_COLUMNS = ("log_id", "request_id", "entity", "feature", "status")
# Columns of a served window besides one per feature.
VECTOR_COLUMNS = (
    "log_id",
    "request_id",
    "request_time",
    "entity",
    "version",
    "status",
    "event_time",
)


@dataclass(frozen=True)
class ServedWindow:
    """Served vectors of one family in ``[start, end)``: ``frame`` (pandas) holds ``rows`` of
    the ``rows_total`` the window had (fewer when sampled, chosen uniformly with a fixed seed)."""

    family: str
    start: dt.datetime
    end: dt.datetime
    frame: Any
    rows: int
    rows_total: int

    @property
    def sampled(self) -> bool:
        return self.rows < self.rows_total


def served_root(settings: Settings) -> str:
    return f"{settings.offline.rstrip('/')}/{SERVED_FOLDER}"


def _utc(value: dt.datetime) -> dt.datetime:
    # Naive times are UTC, as everywhere in nbfeatures.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _long_table(settings: Settings, family: str, start: dt.datetime, end: dt.datetime) -> Any:
    pa = require("pyarrow", "spark")
    ds = require("pyarrow.dataset", "spark")
    pafs = require("pyarrow.fs", "spark")
    fs, root = arrow_filesystem(served_root(settings), emulator=settings.gcs_emulator)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return None
    # Partition as text: "2026-03-10" would otherwise be read as a date and compared as one.
    partitioning = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
    # Ids, entities, feature names and statuses repeat (a request's ids once per value, a
    # feature's name once per vector): read as dictionaries, 10M log rows decode and group
    # without making 10M strings of each.
    parquet = ds.ParquetFileFormat(
        read_options=ds.ParquetReadOptions(dictionary_columns=list(_DICTIONARY_COLUMNS))
    )
    dataset = ds.dataset(root, format=parquet, filesystem=fs, partitioning=partitioning)
    # A flushed batch goes to the folder of its FIRST entry's logging day, so a folder may
    # hold requests of later days (a batch across midnight, or days of entries flushed at
    # once): no lower bound on the folder. Requests are logged as they are answered, so no
    # request is in a folder of a day after the next one: that bound prunes safely.
    last_day = (end + dt.timedelta(days=1)).date().isoformat()
    wanted = (ds.field("family") == family) & (ds.field("date") <= last_day)
    wanted &= (ds.field("request_time") >= pa.scalar(start, pa.timestamp("us", "UTC"))) & (
        ds.field("request_time") < pa.scalar(end, pa.timestamp("us", "UTC"))
    )
    return dataset.to_table(columns=list(_LONG_COLUMNS), filter=wanted).unify_dictionaries()


def _ranks(column: Any) -> Any:
    """Per row of a dictionary column, the rank of its text among the column's texts."""
    pc = require("pyarrow.compute", "spark")
    combined = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    ranks = pc.rank(combined.dictionary, sort_keys="ascending", tiebreaker="first")
    return pc.take(ranks, combined.indices), len(combined.dictionary)


def _feature_runs(part: Any) -> tuple[Any, dict[str, tuple[int, int]]]:
    """Row order grouping ``part`` by feature, then by log entry (each entry's rows keep
    their order: the sort is stable), and each feature's ``(start, stop)`` in that order.

    One sort of an integer key replaces a sort of the log ids' text and a filter of the
    whole log per feature."""
    np = require("numpy", "spark")
    pc = require("pyarrow.compute", "spark")
    log_rank, logs = _ranks(part["log_id"])
    feature_rank, _ = _ranks(part["feature"])
    key = pc.add(pc.multiply(feature_rank, logs + 1), log_rank)
    order = pc.sort_indices(key)
    grouped = pc.take(feature_rank, order).to_numpy()
    names = pc.take(part["feature"], order)
    runs: dict[str, tuple[int, int]] = {}
    bounds = np.flatnonzero(np.diff(grouped)) + 1
    for begin, stop in zip([0, *bounds.tolist()], [*bounds.tolist(), len(grouped)], strict=True):
        runs[str(names[begin].as_py())] = (begin, stop)
    return order, runs


def _text(column: Any) -> Any:
    """A dictionary column as plain text (reports and pandas want strings, not categories)."""
    pa = require("pyarrow", "spark")
    return column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column


def _decode(values: Any, dtype: FeatureType) -> Any:
    """JSON text -> a typed Arrow array (``null`` and missing become nulls)."""
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    values = pc.if_else(pc.equal(values, "null"), pa.scalar(None, pa.string()), values)
    if dtype.is_numeric:
        target = pa.int64() if dtype in (FeatureType.INT32, FeatureType.INT64) else pa.float64()
        return pc.cast(values, target)
    if dtype is FeatureType.BOOL:
        return pc.equal(values, "true")
    # Strings and timestamps are JSON strings: drop the quotes; unescape the rare escaped one.
    text = pc.utf8_slice_codeunits(values, 1, -1)
    if dtype is FeatureType.TIMESTAMP:
        return pc.cast(pc.cast(text, pa.timestamp("us", "UTC")), pa.timestamp("us", "UTC"))
    escaped = pc.match_substring(values, "\\")
    if pc.any(escaped).as_py():
        import json

        fixed = [json.loads(v) if v is not None else None for v in values.to_pylist()]
        return pa.array(fixed, pa.string())
    return text


def read_served(
    settings: Settings,
    family: FeatureFamily,
    start: dt.datetime,
    end: dt.datetime,
    *,
    version: int | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> ServedWindow:
    """The family's served vectors with request time in ``[start, end)``, at most ``limit``.

    ``frame`` has ``VECTOR_COLUMNS`` then one column per feature of ``family`` (typed from the
    definition; a feature a version did not serve is null). ``version`` keeps one version.
    """
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    start, end = _utc(start), _utc(end)
    long = _long_table(settings, family.name, start, end)
    if long is not None and version is not None:
        long = long.filter(pc.equal(long["version"], version))
    if long is None or long.num_rows == 0:
        return ServedWindow(family.name, start, end, _empty(family).to_pandas(), 0, 0)
    # Within one log entry a feature lists every entity of the request in order, so the
    # rows of one feature line up, position by position, with those of any other feature.
    pieces = []
    versions = pc.unique(long["version"]).to_pylist()
    for served_version in versions:
        # One version (the usual case): no filter, which would copy the whole log.
        part = (
            long if len(versions) == 1 else long.filter(pc.equal(long["version"], served_version))
        )
        order, runs = _feature_runs(part)
        begin, stop = next(iter(runs.values()))
        lead = part.select(list(VECTOR_COLUMNS)).take(order[begin:stop])
        columns: dict[str, Any] = {name: _text(lead[name]) for name in VECTOR_COLUMNS}
        values = part["value"]
        for feature in family.features:
            if feature.name in runs:
                begin, stop = runs[feature.name]
                column = pc.take(values, order[begin:stop])
                columns[feature.name] = _decode(column.combine_chunks(), feature.dtype)
            else:
                columns[feature.name] = pa.nulls(lead.num_rows, _arrow_type(feature.dtype))
        pieces.append(pa.table(columns).cast(_empty(family).schema))
    wide = pa.concat_tables(pieces)
    total = wide.num_rows
    if limit is not None and total > limit:
        picked = sorted(random.Random(seed).sample(range(total), limit))
        wide = wide.take(pa.array(picked))
    return ServedWindow(family.name, start, end, wide.to_pandas(), wide.num_rows, total)


def _arrow_type(dtype: FeatureType) -> Any:
    """The Arrow type a feature's decoded values have (whole numbers widen to int64)."""
    pa = require("pyarrow", "spark")
    if dtype in (FeatureType.INT32, FeatureType.INT64):
        return pa.int64()
    if dtype.is_numeric:
        return pa.float64()
    if dtype is FeatureType.BOOL:
        return pa.bool_()
    if dtype is FeatureType.TIMESTAMP:
        return pa.timestamp("us", "UTC")
    return pa.string()


def _empty(family: FeatureFamily) -> Any:
    """A window with no vectors, typed as a full one (reports then need no special case)."""
    pa = require("pyarrow", "spark")
    timestamp = pa.timestamp("us", "UTC")
    schema = pa.schema(
        [
            ("log_id", pa.string()), ("request_id", pa.string()),
            ("request_time", timestamp), ("entity", pa.string()),
            ("version", pa.int64()), ("status", pa.string()), ("event_time", timestamp),
            *[(f.name, _arrow_type(f.dtype)) for f in family.features],
        ]
    )  # fmt: skip
    return schema.empty_table()
