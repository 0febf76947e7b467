"""The served-vector log: a sample of requests and what they got, kept for skew and drift checks.

The server hands each sampled request to ``VectorLogger.offer``, which only puts it on a
bounded queue (dropping it, and counting the drop, when the queue is full), so logging never
delays an answer. A background thread encodes entries as JSON and appends them to a Redis
stream capped with ``XADD MAXLEN ~``. ``flush_served_log`` (``nbfeatures logs flush``) moves
the stream into Parquet under ``<offline>/_served/`` and trims what it wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

    from nbfeatures.serving.lookup import Column, FamilyResult, OnlineQuery
    from nbfeatures.serving.metrics import ServingMetrics

_FLUSH_BATCH = 5000


@dataclass(frozen=True)
class _Entry:
    query: OnlineQuery
    results: Sequence[FamilyResult]
    request_time: dt.datetime


def _json_values(column: Column) -> list[Any]:
    values = column.python_values()
    return [v.isoformat() if isinstance(v, dt.datetime) else v for v in values]


def encode_entry(entry: _Entry) -> str:
    """One stream entry: the request, and per family its version, statuses, times, values."""
    return json.dumps(
        {
            "request_id": entry.query.request_id,
            "request_time": entry.request_time.isoformat(),
            "entities": {k: list(v) for k, v in entry.query.entities.items()},
            "families": [
                {
                    "family": r.family,
                    "version": r.version,
                    "entity_key": r.entity_key,
                    "statuses": r.statuses.tolist(),
                    "event_us": r.event_us.tolist(),
                    "values": {name: _json_values(c) for name, c in r.columns.items()},
                }
                for r in entry.results
            ],
        },
        separators=(",", ":"),
    )


class VectorLogger:
    """Samples requests onto a bounded queue; a daemon thread writes them to a Redis stream."""

    def __init__(
        self,
        client: redis.Redis[Any] | redis.RedisCluster[Any],
        stream: str,
        *,
        sample_rate: float,
        max_entries: int,
        queue_size: int,
        metrics: ServingMetrics,
    ) -> None:
        self._client = client
        self._stream = stream
        self._rate = sample_rate
        self._max_entries = max_entries
        self._metrics = metrics
        self._queue: queue.Queue[_Entry | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="nbf-vector-log", daemon=True)
        self._thread.start()

    def offer(
        self, query: OnlineQuery, results: Sequence[FamilyResult], request_time: dt.datetime
    ) -> None:
        """Queue the request if it is sampled; never blocks."""
        if self._rate <= 0.0 or (self._rate < 1.0 and random.random() >= self._rate):
            return
        try:
            self._queue.put_nowait(_Entry(query, results, request_time))
        except queue.Full:
            self._metrics.log_dropped.inc()

    def _run(self) -> None:
        import redis

        while True:
            entry = self._queue.get()
            if entry is None:
                return
            try:
                self._client.xadd(
                    self._stream,
                    {"v": encode_entry(entry)},
                    maxlen=self._max_entries,
                    approximate=True,
                )
                self._metrics.log_written.inc()
            except redis.RedisError:
                # The log is best effort: an outage must not stall or crash serving.
                self._metrics.log_dropped.inc()
                self._metrics.redis_errors.inc()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (within ``timeout``), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


def _rows(entry_id: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per served value: request, entity row, family version, feature, status, value."""
    from nbfeatures.serving.lookup import Status

    rows = []
    request_time = dt.datetime.fromisoformat(payload["request_time"])
    for family in payload["families"]:
        keys = payload["entities"].get(family["entity_key"], [])
        for name, values in family["values"].items():
            for i, value in enumerate(values):
                event_us = family["event_us"][i]
                status = Status(family["statuses"][i])
                rows.append(
                    {
                        "log_id": entry_id,
                        "request_id": payload["request_id"],
                        "request_time": request_time,
                        "entity_key": family["entity_key"],
                        "entity": keys[i] if i < len(keys) else None,
                        "family": family["family"],
                        "version": family["version"],
                        "feature": name,
                        "status": status.name,
                        "event_time": (
                            dt.datetime.fromtimestamp(event_us / 1e6, dt.UTC)
                            if status in (Status.PRESENT, Status.STALE)
                            else None
                        ),
                        "value": json.dumps(value),
                    }
                )
    return rows


def _next_id(entry_id: str) -> str:
    millis, _, seq = entry_id.partition("-")
    return f"{millis}-{int(seq or 0) + 1}"


def served_log_schema() -> Any:
    """The served-vector log's Parquet schema: one row per served value (pyarrow loaded here)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("log_id", pa.string()), ("request_id", pa.string()),
            ("request_time", pa.timestamp("us", tz="UTC")), ("entity_key", pa.string()),
            ("entity", pa.string()), ("family", pa.string()), ("version", pa.int64()),
            ("feature", pa.string()), ("status", pa.string()),
            ("event_time", pa.timestamp("us", tz="UTC")), ("value", pa.string()),
        ]
    )  # fmt: skip


def flush_served_log(
    client: redis.Redis[Any] | redis.RedisCluster[Any], stream: str, offline_root: str
) -> tuple[int, list[str]]:
    """Write the stream to Parquet under ``offline_root/_served/date=…``; trim what was written.

    Returns how many entries were moved and the files written. Values are JSON text (features
    of every type share one column); ``request_time`` and ``event_time`` are UTC timestamps.
    """
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    schema = served_log_schema()
    filesystem, base = pafs.FileSystem.from_uri(
        offline_root if "://" in offline_root else f"file://{offline_root}"
    )
    moved = 0
    written: list[str] = []
    start = "-"
    while True:
        entries = client.xrange(stream, min=start, max="+", count=_FLUSH_BATCH)
        if not entries:
            break
        rows: list[dict[str, Any]] = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            text = fields.get(b"v", fields.get("v"))
            rows.extend(_rows(entry_id, json.loads(text)))
        first = entries[0][0].decode() if isinstance(entries[0][0], bytes) else entries[0][0]
        last = entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0]
        day = dt.datetime.fromtimestamp(int(first.split("-")[0]) / 1000, dt.UTC).date()
        folder = f"{base.rstrip('/')}/_served/date={day.isoformat()}"
        filesystem.create_dir(folder, recursive=True)
        path = f"{folder}/served-{first}-{last}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, filesystem=filesystem)
        written.append(path)
        # Trim only after the file is written: a failed write leaves the entries in place.
        client.xtrim(stream, minid=_next_id(last))
        moved += len(entries)
        start = _next_id(last)
    return moved, written
