"""Served-vector logs for the monitoring tests, written the way the server writes them.

``log_requests`` builds each request's log entry with the server's own ``encode_entry``,
appends it to a real Redis stream (``XADD``) and moves the stream to Parquet with the real
``flush_served_log``: the reports read exactly what ``nbfeatures logs flush`` writes.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import redis

from nbfeatures.definitions import FeatureFamily, FeatureRef, FeatureType
from nbfeatures.serving.lookup import Column, FamilyResult, OnlineQuery, Status
from nbfeatures.serving.vector_log import _Entry, encode_entry, flush_served_log

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Served:
    """One served entity vector: its values (feature -> value, None for null), status, time."""

    entity: str
    values: Mapping[str, Any]
    event_time: dt.datetime | None
    status: Status = Status.PRESENT


def _micros(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(microseconds=1)


def entry(
    family: FeatureFamily,
    version: int,
    request_time: dt.datetime,
    rows: Sequence[Served],
    *,
    features: Sequence[str] | None = None,
) -> str:
    """The stream payload of one request for ``rows`` of one family version (``features``:
    what the version serves, by default all of the family's)."""
    names = list(features or family.feature_names)
    columns = {}
    for name in names:
        kind = family.feature(name).dtype if name in family.feature_names else FeatureType.FLOAT64
        values = [r.values.get(name) for r in rows]
        if kind is FeatureType.TIMESTAMP:
            values = [None if v is None else v for v in values]
        columns[name] = Column.from_arrow(kind, pa.array(values, _arrow(kind)))
    result = FamilyResult(
        family=family.name,
        version=version,
        pinned=False,
        entity_key=family.entity.join_key,
        statuses=np.array([int(r.status) for r in rows], dtype=np.int64),
        event_us=np.array([_micros(r.event_time) if r.event_time else 0 for r in rows]),
        columns=columns,
    )
    query = OnlineQuery(
        entities={family.entity.join_key: [r.entity for r in rows]},
        refs=(FeatureRef(family=family.name, feature="*"),),
        request_id=uuid.uuid4().hex[:12],
    )
    return encode_entry(_Entry(query, [result], request_time))


def _arrow(kind: FeatureType) -> pa.DataType:
    return {
        FeatureType.INT32: pa.int32(),
        FeatureType.INT64: pa.int64(),
        FeatureType.FLOAT32: pa.float32(),
        FeatureType.FLOAT64: pa.float64(),
        FeatureType.STRING: pa.string(),
        FeatureType.BOOL: pa.bool_(),
        FeatureType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    }[kind]


def log_requests(
    client: redis.Redis, offline_root: str, payloads: Sequence[str], *, stream: str | None = None
) -> int:
    """XADD every payload to a fresh stream, flush it to ``offline_root``; return entries moved.

    Each entry's stream id is its request time (as if logged at once), so requests of past
    days land in the folders the server would have written them to then.
    """
    name = stream or f"nbf-test-served-{uuid.uuid4().hex[:8]}"
    pipe = client.pipeline(transaction=False)
    last = (0, -1)
    ordered = sorted(payloads, key=lambda p: json.loads(p)["request_time"])
    for payload in ordered:
        when = dt.datetime.fromisoformat(json.loads(payload)["request_time"])
        millis = (when - EPOCH) // dt.timedelta(milliseconds=1)
        last = (millis, last[1] + 1) if millis == last[0] else (millis, 0)
        pipe.xadd(name, {"v": payload}, id=f"{last[0]}-{last[1]}")
    pipe.execute()
    moved, _ = flush_served_log(client, name, offline_root)
    client.delete(name)
    return moved
