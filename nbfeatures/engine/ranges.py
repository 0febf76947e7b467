"""Half-open UTC time ranges ``[start, end)``: normalizing, merging, finding gaps.

The offline store records which event-time ranges a family version covers as a merged list
of these; a read checks the requested range against it and names the first gap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from nbfeatures.errors import DefinitionError

TimeRange = tuple[dt.datetime, dt.datetime]
DAY = dt.timedelta(days=1)


def to_utc(value: dt.datetime, field: str = "timestamp") -> dt.datetime:
    """An aware UTC datetime; a naive value is taken as UTC (the store's one time zone)."""
    if not isinstance(value, dt.datetime):
        raise DefinitionError(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def check_range(start: dt.datetime, end: dt.datetime) -> TimeRange:
    """Normalize ``start`` and ``end`` to UTC and refuse an empty or reversed range."""
    start, end = to_utc(start, "start"), to_utc(end, "end")
    if end <= start:
        raise DefinitionError("end", f"{end.isoformat()} is not after start {start.isoformat()}")
    return start, end


def widen_to_days(start: dt.datetime, end: dt.datetime) -> TimeRange:
    """Widen ``[start, end)`` to whole UTC days, the unit the offline store replaces."""
    floor = start.replace(hour=0, minute=0, second=0, microsecond=0)
    ceil = end.replace(hour=0, minute=0, second=0, microsecond=0)
    if ceil < end:
        # The last day has no next midnight: its end stays the end of time.
        ceil = ceil + DAY if ceil.date() < dt.date.max else end
    return floor, ceil


def days_in(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """The UTC dates that ``[start, end)`` touches."""
    first, last = widen_to_days(start, end)
    count = (last - first) // DAY
    return [(first + i * DAY).date() for i in range(count)]


def merge(ranges: Iterable[TimeRange]) -> list[TimeRange]:
    """Sort and merge overlapping or touching ranges."""
    merged: list[TimeRange] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def gaps(covered: Iterable[TimeRange], start: dt.datetime, end: dt.datetime) -> list[TimeRange]:
    """The parts of ``[start, end)`` that ``covered`` does not cover, in order."""
    missing: list[TimeRange] = []
    cursor = start
    for c_start, c_end in merge(covered):
        if c_end <= cursor:
            continue
        if c_start >= end:
            break
        if c_start > cursor:
            missing.append((cursor, c_start))
        cursor = max(cursor, c_end)
        if cursor >= end:
            break
    if cursor < end:
        missing.append((cursor, end))
    return missing
