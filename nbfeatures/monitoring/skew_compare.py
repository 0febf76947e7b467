"""Compare served values with their offline recomputation, value by value, and name each cause.

Inputs are aligned row by row: row ``i`` of the served window and row ``i`` of the recomputed
set describe the same entity at the same request time. For one feature a row matches when

- neither side has a value (served not PRESENT, offline found no row in the ttl), or
- both have one and the values are equal: floats within ``abs_tolerance + rel_tolerance *
  |offline|``, everything else exactly; a null equals a null.

Every other row is a mismatch, with the first cause that applies, in this order:

- ``version``: the vector was served by another version than the reference;
- ``stale``: the served value's event time is older than the offline value's (the online store
  was not refreshed with what offline had at the request time);
- ``missing``: nothing served (NOT_FOUND, STALE past the ttl, ERROR) where offline has a value;
- ``extra``: a value served where offline has none;
- ``offline_behind``: the served value is newer than the offline one (the offline set lags);
- ``value``: same version, same event time, different value: a real bug.

Everything is vectorized over numpy arrays: a report may compare a million served vectors.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nbfeatures.definitions import FeatureType
from nbfeatures.monitoring.config import SkewSettings
from nbfeatures.monitoring.summary import FeatureCheck, Status

CAUSES = ("version", "stale", "missing", "extra", "offline_behind", "value")
FLOAT_TYPES = (FeatureType.FLOAT32, FeatureType.FLOAT64)


@dataclass(frozen=True)
class Aligned:
    """The two sides of a comparison, row by row (all arrays have the same length)."""

    served: pd.DataFrame  # one column per feature, as read_served typed them
    offline: pd.DataFrame  # one column per feature, by feature name
    served_present: np.ndarray  # the server answered PRESENT
    offline_present: np.ndarray  # the point-in-time join found a row (on-demand: always)
    served_event_us: np.ndarray  # int64 micros, with served_event_known
    served_event_known: np.ndarray
    offline_event_us: np.ndarray
    offline_event_known: np.ndarray
    other_version: np.ndarray  # served by a version other than the reference
    context: pd.DataFrame  # entity, request_time, version, status, event_time (for examples)
    offline_event_time: pd.Series


@dataclass
class FeatureSkew:
    """One feature's comparison: how many rows, which mismatched and why."""

    feature: str
    dtype: FeatureType
    compared: int
    causes: np.ndarray  # per row: -1 for a match, else the index of its cause in CAUSES
    smape: float | None
    served_null_share: float | None
    offline_null_share: float | None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def mismatches(self) -> int:
        return int((self.causes >= 0).sum())

    @property
    def rate(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0

    def cause_rate(self, cause: str) -> float:
        return self.counts.get(cause, 0) / self.compared if self.compared else 0.0


def time_micros(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """UTC timestamps (any pandas form) as int64 micros and a known-mask."""
    times = pd.to_datetime(values, utc=True)
    known = times.notna().to_numpy()
    micros = np.zeros(len(times), dtype=np.int64)
    if known.any():
        micros[known] = (
            times[known].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("<M8[us]")
        ).astype(np.int64)
    return micros, known


def _nulls(values: pd.Series) -> np.ndarray:
    return np.asarray(values.isna().to_numpy(dtype=bool), dtype=bool)


def _equal(
    served: pd.Series, offline: pd.Series, dtype: FeatureType, settings: SkewSettings
) -> np.ndarray:
    """Per row, whether two non-null values are equal (rows with a null are not looked at)."""
    if dtype.is_numeric:
        a = pd.to_numeric(served, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        b = pd.to_numeric(offline, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            if dtype in FLOAT_TYPES:
                return np.asarray(
                    np.abs(a - b) <= settings.abs_tolerance + settings.rel_tolerance * np.abs(b)
                )
            # Integers compare exactly: a relative tolerance would make 1e9 equal to 1e9+900.
            return np.asarray(a == b)
    if dtype is FeatureType.TIMESTAMP:
        a_us, _ = time_micros(served)
        b_us, _ = time_micros(offline)
        return np.asarray(a_us == b_us)
    if dtype is FeatureType.BOOL:
        a_bool = served.astype("boolean").fillna(False).to_numpy(dtype=bool)
        b_bool = offline.astype("boolean").fillna(False).to_numpy(dtype=bool)
        return np.asarray(a_bool == b_bool)
    a_text = served.astype(object).where(served.notna(), "").astype(str).to_numpy()
    b_text = offline.astype(object).where(offline.notna(), "").astype(str).to_numpy()
    return np.asarray(a_text == b_text)


def _smape(served: pd.Series, offline: pd.Series, rows: np.ndarray) -> float | None:
    """Symmetric mean absolute percentage error (0-200) over ``rows``; 0/0 counts as 0."""
    if not rows.any():
        return None
    a = pd.to_numeric(served, errors="coerce").to_numpy(dtype=float, na_value=np.nan)[rows]
    b = pd.to_numeric(offline, errors="coerce").to_numpy(dtype=float, na_value=np.nan)[rows]
    scale = (np.abs(a) + np.abs(b)) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(scale == 0, 0.0, np.abs(a - b) / scale)
    return float(100.0 * terms.mean())


def compare_feature(
    aligned: Aligned, feature: str, dtype: FeatureType, settings: SkewSettings
) -> FeatureSkew:
    """Match or cause, per row, of one feature."""
    served = aligned.served[feature].reset_index(drop=True)
    offline = aligned.offline[feature].reset_index(drop=True)
    s_null, o_null = _nulls(served), _nulls(offline)
    both = aligned.served_present & aligned.offline_present
    neither = ~aligned.served_present & ~aligned.offline_present
    values_equal = (s_null & o_null) | (
        ~s_null & ~o_null & _equal(served, offline, dtype, settings)
    )
    match = neither | (both & values_equal)
    known = aligned.served_event_known & aligned.offline_event_known
    older = known & (aligned.served_event_us < aligned.offline_event_us)
    newer = known & (aligned.served_event_us > aligned.offline_event_us)
    cause = np.select(
        [
            aligned.other_version,
            older,
            ~aligned.served_present & aligned.offline_present,
            aligned.served_present & ~aligned.offline_present,
            newer,
        ],
        [0, 1, 2, 3, 4],
        default=5,
    )
    causes = np.where(match, -1, cause).astype(np.int8)
    numbers = both & ~s_null & ~o_null
    smape = _smape(served, offline, numbers) if dtype.is_numeric else None
    rows = len(causes)
    served_rows = int(aligned.served_present.sum())
    offline_rows = int(aligned.offline_present.sum())
    result = FeatureSkew(
        feature=feature,
        dtype=dtype,
        compared=rows,
        causes=causes,
        smape=smape,
        served_null_share=(
            float((s_null & aligned.served_present).sum() / served_rows) if served_rows else None
        ),
        offline_null_share=(
            float((o_null & aligned.offline_present).sum() / offline_rows) if offline_rows else None
        ),
    )
    counted = np.bincount(causes[causes >= 0], minlength=len(CAUSES))
    result.counts = {name: int(counted[i]) for i, name in enumerate(CAUSES)}
    return result


def feature_status(skew: FeatureSkew, settings: SkewSettings) -> Status:
    """alert: the ``value`` cause (a real bug) above ``alert_rate``; warn: any mismatch above
    ``warn_rate``; else ok. The report adds its overall rule (``overall_status``)."""
    if skew.cause_rate("value") > settings.alert_rate:
        return Status.ALERT
    if skew.rate > settings.warn_rate:
        return Status.WARN
    return Status.OK


def overall_status(
    features: Sequence[FeatureSkew], statuses: Sequence[Status], settings: SkewSettings
) -> tuple[Status, float]:
    """The report's status and the overall mismatch rate (mismatched values / compared values).

    alert when any feature alerts or the overall rate is above ``alert_rate``; warn when any
    feature warns or the overall rate is above ``warn_rate``; else ok.
    """
    compared = sum(f.compared for f in features)
    mismatched = sum(f.mismatches for f in features)
    rate = mismatched / compared if compared else 0.0
    status = Status.worst(statuses)
    if rate > settings.alert_rate:
        status = Status.ALERT
    elif rate > settings.warn_rate:
        status = Status.worst([status, Status.WARN])
    return status, rate


def check_of(skew: FeatureSkew, settings: SkewSettings) -> FeatureCheck:
    """The feature's verdict as the summary carries it."""
    return FeatureCheck(
        feature=skew.feature,
        status=feature_status(skew, settings),
        metric="mismatch_rate",
        value=skew.rate,
        threshold=settings.alert_rate,
        detail={
            "compared": skew.compared,
            "mismatches": skew.mismatches,
            "by_cause": dict(skew.counts),
            "value_rate": skew.cause_rate("value"),
            "smape": skew.smape,
            "served_null_share": skew.served_null_share,
            "offline_null_share": skew.offline_null_share,
        },
    )


def json_value(value: Any) -> Any:
    """A pandas/numpy scalar as JSON-ready Python (NaN, NA and NaT become None)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime().isoformat()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return json_value(value.item())
    return value


def examples(
    aligned: Aligned, features: Sequence[FeatureSkew], reference_version: int, limit: int
) -> dict[str, list[dict[str, Any]]]:
    """Up to ``limit`` mismatches of each cause (features in order, rows in order)."""
    found: dict[str, list[dict[str, Any]]] = {cause: [] for cause in CAUSES}
    context = aligned.context
    for skew in features:
        for index, cause in enumerate(CAUSES):
            room = limit - len(found[cause])
            if room <= 0:
                continue
            for row in np.flatnonzero(skew.causes == index)[:room]:
                found[cause].append(
                    {
                        "feature": skew.feature,
                        "entity": json_value(context["entity"].iat[row]),
                        "request_time": json_value(context["request_time"].iat[row]),
                        "served_value": json_value(aligned.served[skew.feature].iat[row]),
                        "served_status": json_value(context["status"].iat[row]),
                        "served_event_time": json_value(context["event_time"].iat[row]),
                        "served_version": json_value(context["version"].iat[row]),
                        "offline_value": json_value(aligned.offline[skew.feature].iat[row])
                        if aligned.offline_present[row]
                        else None,
                        "offline_event_time": json_value(aligned.offline_event_time.iat[row]),
                        "offline_version": reference_version,
                    }
                )
    return {cause: rows for cause, rows in found.items() if rows}


def cause_totals(features: Sequence[FeatureSkew]) -> Mapping[str, int]:
    return {cause: sum(f.counts.get(cause, 0) for f in features) for cause in CAUSES}
