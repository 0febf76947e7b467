"""What a read of the online store found: values aligned with the entities asked for."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["OnlineRows", "utc"]


@dataclass(frozen=True)
class OnlineRows:
    """What a read found, aligned with the keys asked for.

    ``present[i]`` says whether key ``i`` had a value; ``event_time`` is NaT where absent;
    ``columns`` are Arrow arrays, null where absent or where the feature itself was null.
    """

    keys: tuple[str | int, ...]
    present: np.ndarray
    event_time: np.ndarray
    columns: dict[str, pa.Array]
    ttl_seconds: int | None

    def __len__(self) -> int:
        return len(self.keys)

    def stale(self, now: dt.datetime) -> np.ndarray:
        """True where a present value is older than the family's ttl at ``now`` (aware UTC)."""
        if self.ttl_seconds is None:
            return np.zeros(len(self.keys), dtype=bool)
        now_us = np.datetime64(utc(now).replace(tzinfo=None), "us")
        limit = np.timedelta64(self.ttl_seconds * 1_000_000, "us")
        return self.present & (self.event_time + limit <= now_us)

    def to_arrow(self) -> pa.Table:
        """Entity keys, ``present``, ``event_time`` and the feature columns as one table."""
        import pyarrow as pa

        event = pa.array(self.event_time, mask=~self.present).cast(pa.timestamp("us", tz="UTC"))
        data: dict[str, Any] = {
            "key": pa.array([str(k) for k in self.keys]),
            "present": pa.array(self.present),
            "event_time": event,
        }
        data.update(self.columns)
        return pa.table(data)


def utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)
