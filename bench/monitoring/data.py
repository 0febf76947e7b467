"""Deterministic inputs of the monitoring benchmark: a workspace as production leaves it.

``prepare()`` builds, once, under ``bench/.data/monitoring/`` (not committed):

- ``source/activity.parquet``: the family's source, ``user_id`` (int64), ``event_time`` (UTC,
  µs) and ten features of mixed types (four float64, two int64, one int32, three strings),
  ~1.5 rows per user and day over the 14 days before the served window and the window's
  day itself, for ``USERS`` users. On the window's day ``score`` moves up by half a standard
  deviation and ``device`` shifts its mix: what a drift report must flag.
- ``workspace/``: an nbfeatures workspace whose embedded MLflow catalog holds the family
  ``user_activity`` (v1, ttl 3 days) with the ``production`` alias, and its offline feature
  set computed by ``compute_offline`` on Spark over the whole source range (date partitions,
  manifest and join index, as the engine writes them).
- ``workspace/offline/_served/date=…/served-<first>-<last>.parquet``: ``VECTORS`` served
  vectors over the window's day, in the exact long schema ``flush_served_log`` writes (one
  row per served value, values as JSON text, one file per 5,000 stream entries, named by
  the entries' stream ids). Requests carry 1 to 19 users. Each served value is what the
  offline set holds for that user as of the request time (the latest row at or before it,
  within the ttl), except planted faults: ``STALE_SHARE`` of vectors carry the user's
  previous row (an online store a refresh behind), ``VALUE_SHARE`` carry ``spend_7d`` off by
  1% (a bug), and users with no row in the ttl are ``NOT_FOUND`` with null values.

Everything is drawn from fixed seeds, so every run measures the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nbfeatures.serving.vector_log import served_log_schema

DATA = Path(__file__).resolve().parent.parent / ".data" / "monitoring"
FAMILY = "user_activity"
ENTITY_KEY = "user_id"
TIMESTAMP = "event_time"
TTL = dt.timedelta(days=3)
USERS = 100_000
VECTORS = 1_000_000
ROWS_PER_USER_DAY = 1.5
WINDOW_START = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
WINDOW_END = WINDOW_START + dt.timedelta(days=1)
SOURCE_START = WINDOW_START - dt.timedelta(days=14)
REFERENCE_START = WINDOW_START - dt.timedelta(days=7)
STALE_SHARE = 0.005
VALUE_SHARE = 0.001
ENTRIES_PER_FILE = 5000  # flush_served_log writes one file per XRANGE batch of 5,000
SEED = 20261130

# (name, feature type) in definition order: the order the server lists a family's values.
FEATURES: tuple[tuple[str, str], ...] = (
    ("spend_7d", "float64"),
    ("score", "float64"),
    ("ratio", "float64"),
    ("latency_ms", "float64"),
    ("txn_count", "int64"),
    ("age", "int64"),
    ("days_active", "int32"),
    ("country", "string"),
    ("device", "string"),
    ("segment", "string"),
)
NUMERIC = tuple(n for n, t in FEATURES if t != "string")
CATEGORICAL = tuple(n for n, t in FEATURES if t == "string")
COUNTRIES = tuple(f"c{i:02d}" for i in range(20))
DEVICES = ("ios", "android", "web", "tv")
SEGMENTS = tuple(f"seg_{i}" for i in range(8))
# The served-log schema, as flush_served_log writes it.
LOG_SCHEMA = served_log_schema()


@dataclass(frozen=True)
class Prepared:
    """Where the prepared inputs are, and what they hold."""

    workspace: Path
    source: Path
    served: Path
    facts: dict[str, Any]


def _micros(when: dt.datetime) -> int:
    return int(when.timestamp()) * 1_000_000


def _source_table(rng: np.random.Generator) -> pa.Table:
    """The family's source rows; the window's day carries the planted drift."""
    days = (WINDOW_END - SOURCE_START).days
    n = int(USERS * days * ROWS_PER_USER_DAY)
    start_us, end_us = _micros(SOURCE_START), _micros(WINDOW_END)
    users = rng.integers(0, USERS, size=n, dtype=np.int64)
    times = rng.integers(start_us, end_us, size=n, dtype=np.int64)
    in_window = times >= _micros(WINDOW_START)
    score = rng.standard_normal(n) + np.where(in_window, 0.5, 0.0)
    ratio = rng.beta(2.0, 5.0, size=n)
    ratio_nulls = rng.random(n) < 0.05
    usual = np.array([0.45, 0.35, 0.15, 0.05])
    shifted = np.array([0.30, 0.45, 0.15, 0.10])
    device = np.where(
        in_window,
        rng.choice(len(DEVICES), size=n, p=shifted),
        rng.choice(len(DEVICES), size=n, p=usual),
    )
    country_p = 1.0 / np.arange(1, len(COUNTRIES) + 1)
    segment = rng.integers(0, len(SEGMENTS), size=n)
    segment_nulls = rng.random(n) < 0.02
    columns = {
        ENTITY_KEY: pa.array(users),
        TIMESTAMP: pa.array(times).cast(pa.timestamp("us", tz="UTC")),
        "spend_7d": pa.array(np.round(rng.lognormal(3.0, 1.0, size=n), 2)),
        "score": pa.array(score),
        "ratio": pa.array(ratio, mask=ratio_nulls),
        "latency_ms": pa.array(rng.exponential(40.0, size=n)),
        "txn_count": pa.array(rng.poisson(5.0, size=n).astype(np.int64)),
        "age": pa.array(rng.integers(18, 91, size=n, dtype=np.int64)),
        "days_active": pa.array(rng.integers(0, 366, size=n).astype(np.int32)),
        "country": pa.array(np.array(COUNTRIES, dtype=object)[
            rng.choice(len(COUNTRIES), size=n, p=country_p / country_p.sum())
        ]),
        "device": pa.array(np.array(DEVICES, dtype=object)[device]),
        "segment": pa.array(np.array(SEGMENTS, dtype=object)[segment], mask=segment_nulls),
    }  # fmt: skip
    return pa.table(columns)


def _register_and_compute(workspace: Path, source: Path) -> dict[str, Any]:
    """The family registered in the workspace's catalog, computed offline, made production."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import load_settings
    from nbfeatures.definitions import Entity, Feature, FeatureFamily, Source, Transformation
    from nbfeatures.engine.spark.offline import compute_offline
    from nbfeatures.engine.spark.session import get_spark, stop_spark

    settings = load_settings(workspace, environ={}, owner="bench", spark_memory="3g")
    names = ", ".join(n for n, _ in FEATURES)
    family = FeatureFamily(
        name=FAMILY,
        entity=Entity("user", ENTITY_KEY),
        timestamp=TIMESTAMP,
        features=tuple(Feature(n, t) for n, t in FEATURES),  # type: ignore[arg-type]
        transformation=Transformation(
            "sql", f"SELECT {ENTITY_KEY}, {TIMESTAMP}, {names} FROM activity"
        ),
        sources=(Source.infer("activity", str(source)),),
        owner="bench",
        ttl=TTL,
        freshness=dt.timedelta(days=1),
    )
    catalog = Catalog.from_settings(settings)
    version = catalog.register(family).version
    spark = get_spark(settings)
    manifest = compute_offline(spark, settings, version, SOURCE_START, WINDOW_END)
    stop_spark()
    catalog.set_alias(FAMILY, "production", version.version)
    return {"offline_rows": manifest.rows, "version": version.version}


def _as_of(table: pa.Table, users: np.ndarray, at_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query (user, time): the source row in effect (latest at or before, within the
    ttl; -1 if none) and the row before it for the same user (-1 if none)."""
    keys = table[ENTITY_KEY].to_numpy()
    # Times as offsets from the source's start, so user * span + offset fits in an int64.
    times = table[TIMESTAMP].cast(pa.int64()).to_numpy() - _micros(SOURCE_START)
    at_us = at_us - _micros(SOURCE_START)
    order = np.lexsort((times, keys))
    sorted_keys, sorted_times = keys[order], times[order]
    span = int(sorted_times.max()) + 1
    composite = sorted_keys * span + sorted_times
    found = np.searchsorted(composite, users * span + at_us, side="right") - 1
    ok = (found >= 0) & (sorted_keys[np.maximum(found, 0)] == users)
    ok &= sorted_times[np.maximum(found, 0)] >= at_us - TTL // dt.timedelta(microseconds=1)
    previous = found - 1
    has_previous = ok & (previous >= 0) & (sorted_keys[np.maximum(previous, 0)] == users)
    return (
        np.where(ok, order[np.maximum(found, 0)], -1),
        np.where(has_previous, order[np.maximum(previous, 0)], -1),
    )


def _json_texts(column: pa.Array, rows: np.ndarray) -> np.ndarray:
    """The JSON text the server's log holds for each chosen row (``null`` for none)."""
    values = column.take(pa.array(np.maximum(rows, 0))).to_pylist()
    texts = np.empty(len(rows), dtype=object)
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        texts[i] = "null" if row < 0 else json.dumps(value)
    return texts


def _served_vectors(table: pa.Table, rng: np.random.Generator) -> dict[str, Any]:
    """Per served vector: its request, user, status, event time and the source row served."""
    sizes: list[int] = []
    total = 0
    while total < VECTORS:
        size = min(int(rng.integers(1, 20)), VECTORS - total)
        sizes.append(size)
        total += size
    entries = len(sizes)
    entry_times = np.sort(rng.integers(_micros(WINDOW_START), _micros(WINDOW_END), size=entries))
    entry_of = np.repeat(np.arange(entries), sizes)
    users = rng.integers(0, USERS, size=VECTORS, dtype=np.int64)
    at_us = entry_times[entry_of]
    current, previous = _as_of(table, users, at_us)
    stale = (rng.random(VECTORS) < STALE_SHARE) & (previous >= 0)
    served = np.where(stale, previous, current)
    buggy = (rng.random(VECTORS) < VALUE_SHARE) & (served >= 0) & ~stale
    return {
        "sizes": np.array(sizes),
        "entry_times": entry_times,
        "entry_of": entry_of,
        "users": users,
        "served": served,
        "stale": stale,
        "buggy": buggy,
    }


def _stream_ids(entry_times: np.ndarray) -> list[str]:
    """Redis stream ids for entries added at these times: ``millis-seq``, increasing."""
    ids, last_ms, seq = [], -1, 0
    for micros in entry_times.tolist():
        ms = micros // 1000
        seq = seq + 1 if ms == last_ms else 0
        last_ms = ms
        ids.append(f"{ms}-{seq}")
    return ids


def _write_log(table: pa.Table, vectors: dict[str, Any], served_root: Path) -> dict[str, Any]:
    """The long served-log files, one per 5,000 entries, as ``flush_served_log`` names them."""
    sizes, entry_of = vectors["sizes"], vectors["entry_of"]
    served, users = vectors["served"], vectors["users"]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    stream_ids = _stream_ids(vectors["entry_times"])
    event_us = table[TIMESTAMP].cast(pa.int64()).to_numpy()
    statuses = np.where(served >= 0, "PRESENT", "NOT_FOUND").astype(object)
    texts = {}
    for name, _ in FEATURES:
        texts[name] = _json_texts(table[name].combine_chunks(), served)
    buggy = np.flatnonzero(vectors["buggy"])
    spend = table["spend_7d"].take(pa.array(served[buggy])).to_numpy()
    texts["spend_7d"][buggy] = [json.dumps(float(v) * 1.01) for v in spend]
    files = []
    for first in range(0, len(sizes), ENTRIES_PER_FILE):
        last = min(first + ENTRIES_PER_FILE, len(sizes)) - 1
        v0, v1 = int(starts[first]), int(starts[last] + sizes[last])
        k = sizes[entry_of[v0:v1]]
        position = np.arange(v0, v1) - starts[entry_of[v0:v1]]
        base = (starts[entry_of[v0:v1]] - v0) * len(FEATURES)
        n = (v1 - v0) * len(FEATURES)
        vector_of_row = np.empty(n, dtype=np.int64)
        feature_of_row = np.empty(n, dtype=np.int64)
        value = np.empty(n, dtype=object)
        for f, (name, _) in enumerate(FEATURES):
            rows = base + f * k + position
            vector_of_row[rows] = np.arange(v0, v1)
            feature_of_row[rows] = f
            value[rows] = texts[name][v0:v1]
        entry_rows = entry_of[vector_of_row]
        row_served = served[vector_of_row]
        event = np.where(row_served >= 0, event_us[np.maximum(row_served, 0)], 0)
        log = pa.table(
            {
                "log_id": pa.array(np.array(stream_ids, dtype=object)[entry_rows]),
                "request_id": pa.array([f"req-{e:07d}" for e in entry_rows.tolist()]),
                "request_time": pa.array(vectors["entry_times"][entry_rows]).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "entity_key": pa.array(np.full(n, ENTITY_KEY, dtype=object)),
                "entity": pa.array(users[vector_of_row].astype(str).astype(object)),
                "family": pa.array(np.full(n, FAMILY, dtype=object)),
                "version": pa.array(np.ones(n, dtype=np.int64)),
                "feature": pa.array(
                    np.array([name for name, _ in FEATURES], dtype=object)[feature_of_row]
                ),
                "status": pa.array(statuses[vector_of_row]),
                "event_time": pa.array(event, mask=row_served < 0).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "value": pa.array(value),
            },
            schema=LOG_SCHEMA,
        )
        first_id, last_id = stream_ids[first], stream_ids[last]
        day = dt.datetime.fromtimestamp(int(first_id.split("-")[0]) / 1000, dt.UTC).date()
        folder = served_root / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"served-{first_id}-{last_id}.parquet"
        pq.write_table(log, path)
        files.append(path)
    return {
        "served_entries": len(sizes),
        "served_vectors": len(served),
        "served_values": len(served) * len(FEATURES),
        "served_files": len(files),
        "served_bytes": sum(p.stat().st_size for p in files),
        "not_found_vectors": int((served < 0).sum()),
        "planted_stale_vectors": int(vectors["stale"].sum()),
        "planted_value_bugs_spend_7d": int(vectors["buggy"].sum()),
    }


def prepare(rebuild_log: bool = False) -> Prepared:
    """Build the inputs unless a finished build exists; return where they are.

    Two stages, each kept once done: the source and the computed workspace (Spark), then the
    served log (``rebuild_log`` writes the log again over the same workspace).
    """
    from nbfeatures.config import load_settings

    workspace, source = DATA / "workspace", DATA / "source" / "activity.parquet"
    computed, done = DATA / "computed.json", DATA / "ready.json"
    rng = np.random.default_rng(SEED)
    table = None
    if not computed.exists():
        if DATA.exists():  # a build that died halfway: start over
            shutil.rmtree(DATA)
        source.parent.mkdir(parents=True)
        workspace.mkdir(parents=True)
        table = _source_table(rng)
        pq.write_table(table, source, row_group_size=1_000_000)
        facts: dict[str, Any] = {"source_rows": table.num_rows, "users": USERS}
        facts.update(_register_and_compute(workspace, source))
        computed.write_text(json.dumps(facts, indent=2) + "\n")
    settings = load_settings(workspace, environ={}, owner="bench")
    served = Path(settings.offline) / "_served"
    if done.exists() and not rebuild_log:
        return Prepared(workspace, source, served, json.loads(done.read_text()))
    if table is None:
        rng = np.random.default_rng(SEED)
        table = _source_table(rng)  # the same draws again: the generator state moves on
    shutil.rmtree(served, ignore_errors=True)
    facts = json.loads(computed.read_text())
    facts.update(_write_log(table, _served_vectors(table, rng), served))
    facts.update(
        {
            "family": FAMILY,
            "features": {n: t for n, t in FEATURES},
            "ttl_days": TTL.days,
            "window": [WINDOW_START.isoformat(), WINDOW_END.isoformat()],
            "reference": [REFERENCE_START.isoformat(), WINDOW_START.isoformat()],
            "seed": SEED,
        }
    )
    done.write_text(json.dumps(facts, indent=2) + "\n")
    return Prepared(workspace, source, served, facts)


if __name__ == "__main__":
    import sys

    print(json.dumps(prepare(rebuild_log="--rebuild-log" in sys.argv).facts, indent=2))
