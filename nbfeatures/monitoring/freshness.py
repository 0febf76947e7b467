"""Freshness report: how old a family's values are, online and as served, against its SLA.

    freshness_report(settings, "user_spend", output_dir=Path("out"))

Two ages, both measured from event times (when the data happened), never from when a job ran:

- *materialized*: now minus the newest event time the live version holds in the online store
  (``version_stats``). Older than the SLA means the refresh stopped: **alert**.
- *served*: for each served PRESENT/STALE vector in the window, its request time minus its
  event time; p50, p95, max and the share older than the SLA.

The SLA is the family's ``freshness``; a family without one is held to its ``ttl`` (a value
older than that is served STALE anyway; the notes say the ttl stood in); with neither, the
report is ``ok`` and says there is nothing to hold it to.

History: the window is cut into ``BUCKETS`` buckets (an hour each for the default day). A
bucket breaches when its served p95 age exceeds the SLA, or when the newest event time served
by the bucket's end is older than the SLA at that end (the online store keeps no history, so
what was served stands in for what was materialized then). Breaches go to
``summary.detail["breaches"]`` (start, end, worst age); any breach **warns**.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures._deps import require
from nbfeatures.definitions import FeatureFamily, format_duration
from nbfeatures.monitoring.config import FamilyMonitoring
from nbfeatures.monitoring.drift import SERVED_STATUSES, titled
from nbfeatures.monitoring.scope import family_config, report_window, resolve_version
from nbfeatures.monitoring.served import read_served
from nbfeatures.monitoring.summary import FeatureCheck, ReportResult, ReportSummary, Status

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog, FamilyVersion
    from nbfeatures.config import Settings
    from nbfeatures.online.store import OnlineStore

BUCKETS = 24


def service_level(family: FeatureFamily) -> tuple[dt.timedelta | None, str | None]:
    """The SLA a family is held to, and where it comes from (``freshness`` or ``ttl``)."""
    if family.freshness is not None:
        return family.freshness, "freshness"
    if family.ttl is not None:
        return family.ttl, "ttl"
    return None, None


def served_ages(frame: Any) -> Any:
    """Per served PRESENT/STALE vector: request time and age in seconds (pandas)."""
    pd = require("pandas", "monitoring")
    served = frame[frame["status"].isin(SERVED_STATUSES)]
    ages = (served["request_time"] - served["event_time"]) / pd.Timedelta(seconds=1)
    return pd.DataFrame(
        {
            "request_time": served["request_time"].to_numpy(),
            "event_time": served["event_time"].to_numpy(),
            "age_seconds": ages.astype("float64").to_numpy(),
        }
    )


def breaches(
    ages: Any, start: dt.datetime, end: dt.datetime, sla_seconds: float
) -> tuple[list[dict[str, Any]], float]:
    """The buckets of ``[start, end)`` that breached the SLA, and the bucket length (s)."""
    pd = require("pandas", "monitoring")
    size = (end - start) / BUCKETS
    found: list[dict[str, Any]] = []
    times = pd.to_datetime(ages["request_time"], utc=True)
    events = pd.to_datetime(ages["event_time"], utc=True)
    for index in range(BUCKETS):
        low, high = start + index * size, start + (index + 1) * size
        inside = ((times >= low) & (times < high)).to_numpy()
        seen = (times < high).to_numpy()
        if not seen.any():
            continue  # nothing served yet: no evidence either way
        newest = events[seen].max().to_pydatetime()
        newest_age = (high - newest).total_seconds()
        p95 = float(np.percentile(ages["age_seconds"][inside], 95)) if inside.any() else None
        served_breach = p95 is not None and p95 > sla_seconds
        if served_breach or newest_age > sla_seconds:
            found.append(
                {
                    "start": low.isoformat(),
                    "end": high.isoformat(),
                    "worst_age_seconds": max(newest_age, p95 or 0.0),
                    "served_p95_seconds": p95,
                    "newest_served_age_seconds": newest_age,
                    "cause": "served" if served_breach else "newest",
                }
            )
    return found, size.total_seconds()


def _live_version(
    store: OnlineStore, catalog: Catalog, family: str, version: int | None
) -> FamilyVersion:
    if version is None:
        version = store.live_version(family)
    return resolve_version(catalog, family, version)


def freshness_report(
    settings: Settings,
    family: str,
    *,
    output_dir: Path,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    version: int | None = None,
    catalog: Catalog | None = None,
    config: FamilyMonitoring | None = None,
    store: OnlineStore | None = None,
) -> ReportResult:
    """The ages of ``family``'s values against its SLA; writes ``output_dir/freshness.html``.

    ``version`` defaults to the live version in the online store (else production).
    """
    from nbfeatures.catalog import Catalog
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.online.version_stats import version_stats

    monitoring = family_config(settings, family, config)
    window = report_window(monitoring, start, end)
    catalog = catalog or Catalog.from_settings(settings)
    own_store = store is None
    store = store or OnlineStore.from_settings(settings)
    try:
        fv = _live_version(store, catalog, family, version)
        stats = version_stats(store, family, fv.version)
    finally:
        if own_store:
            store.close()
    now = dt.datetime.now(dt.UTC)
    sla, sla_source = service_level(fv.family)
    window_frame = read_served(settings, fv.family, *window, version=fv.version).frame
    ages = served_ages(window_frame)
    newest = stats.newest if stats is not None else None
    materialized_age = (now - newest).total_seconds() if newest is not None else None

    notes: list[str] = []
    checks: list[FeatureCheck] = []
    found: list[dict[str, Any]] = []
    bucket_seconds = ((window[1] - window[0]) / BUCKETS).total_seconds()
    status = Status.OK
    stopped = False
    sla_seconds = sla.total_seconds() if sla is not None else None
    if sla_seconds is None:
        notes.append(f"{family} has no freshness SLA and no ttl: nothing to hold ages to")
    else:
        if sla_source == "ttl":
            notes.append(f"no freshness SLA: held to the ttl ({format_duration(sla)})")
        found, bucket_seconds = breaches(ages, *window, sla_seconds)
        stopped = materialized_age is None or materialized_age > sla_seconds
        if stats is None or newest is None:
            notes.append(f"{family} v{fv.version} holds no values online")
        elif stopped:
            notes.append(
                f"newest value online is {format_age(materialized_age)} old, over the SLA of "
                f"{format_duration(sla)}: the refresh looks stopped"
            )
        if found:
            notes.append(f"{len(found)} of {BUCKETS} buckets breached the SLA")
        status = Status.ALERT if stopped else Status.WARN if found else Status.OK
    checks.append(
        FeatureCheck(
            feature="newest_materialized",
            status=Status.ALERT if stopped else Status.OK,
            metric="age_seconds",
            value=materialized_age,
            threshold=sla_seconds,
            detail={"newest_event_time": newest.isoformat() if newest else None},
        )
    )
    served_detail = _percentiles(ages["age_seconds"].to_numpy(), sla_seconds)
    checks.append(
        FeatureCheck(
            feature="served_values",
            status=Status.WARN if found else Status.OK,
            metric="p95_age_seconds",
            value=served_detail["p95_seconds"],
            threshold=sla_seconds,
            detail=served_detail,
        )
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    html = output_dir / "freshness.html"
    _page(ages, materialized_age, sla_seconds, html, f"Freshness of {family} v{fv.version}")
    summary = ReportSummary(
        kind="freshness",
        family=family,
        version=fv.version,
        status=status,
        created_at=now,
        window_start=window[0],
        window_end=window[1],
        rows=len(ages),
        rows_total=len(ages),
        checks=tuple(checks),
        notes=tuple(notes),
        detail={
            "sla_seconds": sla_seconds,
            "sla_source": sla_source,
            "newest_event_time": newest.isoformat() if newest else None,
            "materialized_age_seconds": materialized_age,
            "online_entities": stats.entities if stats is not None else 0,
            "served": served_detail,
            "bucket_seconds": bucket_seconds,
            "breaches": found,
        },
    )
    return ReportResult(summary, html)


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return format_duration(dt.timedelta(seconds=int(seconds))) or "0s"


def _percentiles(ages: np.ndarray, sla_seconds: float | None) -> dict[str, Any]:
    if len(ages) == 0:
        return {"rows": 0, "p50_seconds": None, "p95_seconds": None, "max_seconds": None,
                "share_over_sla": None}  # fmt: skip
    return {
        "rows": len(ages),
        "p50_seconds": float(np.percentile(ages, 50)),
        "p95_seconds": float(np.percentile(ages, 95)),
        "max_seconds": float(ages.max()),
        "share_over_sla": float((ages > sla_seconds).mean()) if sla_seconds is not None else None,
    }


def _page(
    ages: Any, materialized_age: float | None, sla_seconds: float | None, html: Path, title: str
) -> None:
    """Evidently's page of the served ages, each held to the SLA by a test."""
    from nbfeatures.monitoring.drift import plain_page

    evidently = require("evidently", "monitoring")
    metrics = require("evidently.metrics", "monitoring")
    tests = require("evidently.tests", "monitoring")
    pd = require("pandas", "monitoring")
    frame = pd.DataFrame({"served_age_seconds": ages["age_seconds"].astype("float64")})
    if len(frame) == 0:
        if materialized_age is None:
            html.write_text(plain_page(title, "no served values and nothing online"))
            return
        # Nothing served in the window: the page shows the online age alone.
        frame = pd.DataFrame({"served_age_seconds": [materialized_age]})
    limit = [tests.lte(sla_seconds)] if sla_seconds is not None else []
    report = evidently.Report(
        [
            metrics.MaxValue(column="served_age_seconds", tests=limit),
            metrics.QuantileValue(column="served_age_seconds", quantile=0.95, tests=limit),
            metrics.MedianValue(column="served_age_seconds"),
        ],
        include_tests=True,
    )
    definition = evidently.DataDefinition(numerical_columns=["served_age_seconds"])
    snapshot = report.run(evidently.Dataset.from_pandas(frame, data_definition=definition), None)
    snapshot.save_html(str(html))
    titled(html, title)
