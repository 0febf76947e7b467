"""Verification: the new keyspace holds exactly the offline set's latest row per entity.

Three checks, all before anything is flipped:

* counts: the offline set's entities (one latest row each) against ``count_keys``. With a
  ``ttl``, entities whose latest value is already older than ttl + retention are not kept
  online, so they are left out; values that expire while verification runs make a small band
  of tolerance.
* something worth serving: a keyspace with no entities, or one where more than
  ``max_expired_share`` of the offline entities are past their ttl (they would read STALE or
  NOT_FOUND), is refused unless the caller opts in with ``allow_expired``: promoting old data
  used to make a version live that served nothing.
* values: for a random sample of entities, every feature read back from Redis equals the
  offline value: exactly for integers, strings, booleans and timestamps; for floats after
  rounding the offline value to the feature's type (a ``float32`` feature is compared as
  ``float32``), with NaN equal to NaN. Absent and null must agree too.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.definitions import FeatureFamily, FeatureType
from nbfeatures.engine.spark.spark_api import functions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from nbfeatures.online.store import FamilyLayout, OnlineStore

#: Values expiring within this many seconds of the count may or may not still be counted.
_EXPIRY_BAND_SECONDS = 120
_SAMPLE_SEED = 20240101
_MAX_LISTED = 5
#: Refuse a keyspace where more than this share of the offline entities is past the ttl.
MAX_EXPIRED_SHARE = 0.5
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class Mismatch:
    entity: str | int
    feature: str
    offline: Any
    online: Any

    def __str__(self) -> str:
        return f"{self.entity}.{self.feature}: offline {self.offline!r} != online {self.online!r}"


@dataclass
class VerifyReport:
    """What verification found; ``ok`` when counts and every sampled value agree."""

    offline_entities: int
    expected_low: int
    expected_high: int
    online_keys: int
    sampled: int
    missing: list[str | int] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    # Offline entities whose latest value is past the ttl (STALE or gone online).
    expired: int = 0
    newest: dt.datetime | None = None
    ttl_seconds: int | None = None
    allow_expired: bool = False
    max_expired_share: float = MAX_EXPIRED_SHARE

    @property
    def counts_ok(self) -> bool:
        return self.expected_low <= self.online_keys <= self.expected_high

    @property
    def expired_share(self) -> float:
        return self.expired / self.offline_entities if self.offline_entities else 0.0

    @property
    def serves_enough(self) -> bool:
        """Whether the keyspace holds entities and most of them within their ttl."""
        if self.allow_expired:
            return True
        return self.online_keys > 0 and self.expired_share <= self.max_expired_share

    @property
    def ok(self) -> bool:
        return self.counts_ok and self.serves_enough and not self.missing and not self.mismatches

    def reason(self) -> str:
        parts = []
        if not self.serves_enough:
            parts.append(self._expired_reason())
        if not self.counts_ok:
            expected = (
                str(self.expected_high)
                if self.expected_low == self.expected_high
                else f"{self.expected_low}..{self.expected_high}"
            )
            parts.append(f"online keys {self.online_keys} != offline entities {expected}")
        if self.missing:
            shown = ", ".join(map(str, self.missing[:_MAX_LISTED]))
            parts.append(f"{len(self.missing)} sampled entities missing online ({shown})")
        if self.mismatches:
            shown = "; ".join(map(str, self.mismatches[:_MAX_LISTED]))
            parts.append(
                f"{len(self.mismatches)} of {self.sampled} sampled entities differ: {shown}"
            )
        return "; ".join(parts) or "verified"

    def _expired_reason(self) -> str:
        ttl = "no ttl" if self.ttl_seconds is None else f"ttl {_duration(self.ttl_seconds)}"
        newest = self.newest.isoformat() if self.newest is not None else "none"
        what = (
            "the online keyspace holds no entities"
            if self.online_keys == 0
            else f"{self.expired} of {self.offline_entities} entities "
            f"({self.expired_share:.0%}) are past their {ttl}"
        )
        return (
            f"{what} ({self.offline_entities} entities offline, {self.expired} past the "
            f"{ttl}, newest event time {newest}); promoting it would serve stale or nothing. "
            "Recompute newer data, or opt in with --allow-expired (allow_expired=True)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "offline_entities": self.offline_entities,
            "online_keys": self.online_keys,
            "entities_online": self.online_keys,
            "newest_event_time": self.newest.isoformat() if self.newest is not None else None,
            "expired": self.expired,
            "expired_share": round(self.expired_share, 4),
            "ttl_seconds": self.ttl_seconds,
            "allow_expired": self.allow_expired,
            "sampled": self.sampled,
            "missing": len(self.missing),
            "mismatches": len(self.mismatches),
            "reason": self.reason(),
        }


def latest_per_entity(frame: DataFrame, family: FeatureFamily) -> DataFrame:
    """One row per entity: the one with the newest event time (ties: any one of them)."""
    F = functions(frame)
    window = require("pyspark.sql.window", "spark").Window
    key, ts = family.entity.join_key, family.timestamp
    ordered = window.partitionBy(key).orderBy(F.col(ts).desc())
    return (
        frame.withColumn("_nbf_rank", F.row_number().over(ordered))
        .where(F.col("_nbf_rank") == 1)
        .drop("_nbf_rank")
    )


def verify_keyspace(
    store: OnlineStore,
    layout: FamilyLayout,
    family: FeatureFamily,
    latest: DataFrame,
    sample_size: int,
    *,
    now: dt.datetime | None = None,
    allow_expired: bool = False,
    max_expired_share: float = MAX_EXPIRED_SHARE,
) -> VerifyReport:
    """Check ``layout``'s keyspace against ``latest`` (``latest_per_entity`` of the offline set).

    ``allow_expired`` accepts an empty or mostly-expired keyspace (more than
    ``max_expired_share`` of the entities past the ttl), which is refused otherwise.
    """
    F = functions(latest)
    now = now or dt.datetime.now(dt.UTC)
    key, ts = family.entity.join_key, family.timestamp
    served = latest
    # Spark's session time zone is UTC, so naive literals compare as UTC.
    measures = [
        F.count(F.lit(1)).alias("n"),
        F.unix_micros(F.max(F.col(ts).cast("timestamp"))).alias("newest"),
    ]
    kept, ttl = layout.kept_seconds, layout.ttl_seconds
    if kept is not None and ttl is not None:
        cutoff = (now - dt.timedelta(seconds=kept)).replace(tzinfo=None)
        band = cutoff + dt.timedelta(seconds=_EXPIRY_BAND_SECONDS)
        stale = (now - dt.timedelta(seconds=ttl)).replace(tzinfo=None)
        measures += [
            F.sum((F.col(ts) > F.lit(band)).cast("int")).alias("sure"),
            F.sum((F.col(ts) > F.lit(cutoff)).cast("int")).alias("maybe"),
            F.sum((F.col(ts) <= F.lit(stale)).cast("int")).alias("expired"),
        ]
        served = latest.where(F.col(ts) > F.lit(band))
    counted = latest.agg(*measures).collect()[0]
    entities = int(counted["n"] or 0)
    expected_low = expected_high = entities
    if kept is not None:
        expected_low, expected_high = int(counted["sure"] or 0), int(counted["maybe"] or 0)
    sample: Any = served.orderBy(F.rand(_SAMPLE_SEED)).limit(sample_size).toPandas()
    keys = [_plain(k) for k in sample[key].tolist()]
    online_keys = store.count_keys(layout.family, layout.version)
    report = VerifyReport(entities, expected_low, expected_high, online_keys, len(keys))
    report.expired = int(counted["expired"] or 0) if kept is not None else 0
    if counted["newest"] is not None:
        report.newest = _EPOCH + dt.timedelta(microseconds=int(counted["newest"]))
    report.ttl_seconds = ttl
    report.allow_expired = allow_expired
    report.max_expired_share = max_expired_share
    if not keys:
        return report
    rows = store.read(layout, keys)
    present = [bool(p) for p in _as_list(rows.present)]
    for name, kind in zip(layout.feature_names, layout.feature_types, strict=True):
        online_values = _as_list(rows.columns[name])
        for i, entity in enumerate(keys):
            if not present[i]:
                continue
            offline_value = _plain(sample[name].iloc[i])
            if not values_equal(kind, offline_value, _plain(online_values[i])):
                report.mismatches.append(
                    Mismatch(entity, name, offline_value, _plain(online_values[i]))
                )
    report.missing = [k for k, p in zip(keys, present, strict=True) if not p]
    return report


def values_equal(kind: FeatureType, offline: Any, online: Any) -> bool:
    """Equality as the codec defines it; see the module docstring."""
    if _is_null(offline) or _is_null(online):
        return _is_null(offline) and _is_null(online)
    if kind in (FeatureType.FLOAT32, FeatureType.FLOAT64):
        np = require("numpy", "spark")
        cast = np.float32 if kind is FeatureType.FLOAT32 else np.float64
        left, right = cast(offline), cast(online)
        return bool(left == right or (math.isnan(left) and math.isnan(right)))
    if kind is FeatureType.TIMESTAMP:
        return bool(_micros(offline) == _micros(online))
    if kind in (FeatureType.INT32, FeatureType.INT64):
        return int(offline) == int(online)
    if kind is FeatureType.BOOL:
        return bool(offline) == bool(online)
    return str(offline) == str(online)


def _as_list(values: Any) -> list[Any]:
    if hasattr(values, "to_pylist"):
        return list(values.to_pylist())
    if hasattr(values, "tolist"):
        return list(values.tolist())
    return list(values)


def _plain(value: Any) -> Any:
    """numpy/pandas scalars as Python values; pandas' missing markers as None."""
    if _is_null(value):
        return None
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True  # pandas turns a null of a numeric column into NaN
    try:
        pd = require("pandas", "spark")
        return bool(value is pd.NaT or value is pd.NA)
    except Exception:
        return False


def _duration(seconds: int) -> str:
    from nbfeatures.definitions import format_duration

    return format_duration(dt.timedelta(seconds=seconds)) or f"{seconds}s"


def _micros(value: Any) -> int:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return round(aware.timestamp() * 1_000_000)
    if hasattr(value, "value"):  # a pandas Timestamp: nanoseconds
        return int(value.value) // 1000
    return int(value)
