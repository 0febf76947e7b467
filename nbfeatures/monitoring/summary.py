"""What every report returns: a verdict per feature and one overall status, as JSON.

``ReportSummary`` is the machine-readable half of a report (the Evidently page is the other):
the CLI's exit code, the webhook, the review list and the JupyterLab panel all read it, so its
JSON form (``to_dict``/``from_dict``) is a contract: add fields, never rename them.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORT_KINDS = ("drift", "skew", "freshness")
SUMMARY_FORMAT = 1


class Status(enum.StrEnum):
    """A report's or a check's verdict; ``worst`` orders them ok < warn < alert."""

    OK = "ok"
    WARN = "warn"
    ALERT = "alert"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @staticmethod
    def worst(statuses: Iterable[Status]) -> Status:
        return max(statuses, key=lambda s: s.rank, default=Status.OK)


_RANK = {Status.OK: 0, Status.WARN: 1, Status.ALERT: 2}


@dataclass(frozen=True)
class FeatureCheck:
    """One feature's verdict in one report.

    ``metric`` names what ``value`` measures (``psi``, ``mismatch_rate``, ``age_seconds``...)
    and ``threshold`` the limit it was held to; ``detail`` carries what the kind adds (null
    shares, mismatches by cause, percentiles), JSON-ready.
    """

    feature: str
    status: Status
    metric: str
    value: float | None
    threshold: float | None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "status": self.status.value,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "detail": dict(self.detail),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureCheck:
        return cls(
            feature=str(data["feature"]),
            status=Status(data["status"]),
            metric=str(data["metric"]),
            value=data.get("value"),
            threshold=data.get("threshold"),
            detail=dict(data.get("detail") or {}),
        )


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class ReportSummary:
    """The verdict of one report on one family version over one window.

    ``rows`` is what the report used and ``rows_total`` what the window held: fewer means it
    sampled, and ``notes`` says so in words. ``status`` is the worst of the checks unless the
    kind has a rule of its own (drift alerts on the share of drifted features).
    """

    kind: str
    family: str
    version: int | None
    status: Status
    created_at: dt.datetime
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    rows: int
    rows_total: int
    checks: tuple[FeatureCheck, ...] = ()
    notes: tuple[str, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        return self.rows < self.rows_total

    def check(self, feature: str) -> FeatureCheck:
        for item in self.checks:
            if item.feature == feature:
                return item
        raise KeyError(f"{self.kind} report on {self.family} has no check of {feature!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SUMMARY_FORMAT,
            "kind": self.kind,
            "family": self.family,
            "version": self.version,
            "status": self.status.value,
            "created_at": _time(self.created_at),
            "window_start": _time(self.window_start),
            "window_end": _time(self.window_end),
            "rows": self.rows,
            "rows_total": self.rows_total,
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
            "detail": dict(self.detail),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportSummary:
        created = _parse_time(data.get("created_at"))
        return cls(
            kind=str(data["kind"]),
            family=str(data["family"]),
            version=data.get("version"),
            status=Status(data["status"]),
            created_at=created or dt.datetime.now(dt.UTC),
            window_start=_parse_time(data.get("window_start")),
            window_end=_parse_time(data.get("window_end")),
            rows=int(data.get("rows", 0)),
            rows_total=int(data.get("rows_total", 0)),
            checks=tuple(FeatureCheck.from_dict(c) for c in data.get("checks", ())),
            notes=tuple(str(n) for n in data.get("notes", ())),
            detail=dict(data.get("detail") or {}),
        )

    @classmethod
    def from_json(cls, text: str) -> ReportSummary:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class ReportResult:
    """A finished report: its summary and the Evidently page written to ``html``."""

    summary: ReportSummary
    html: Path
