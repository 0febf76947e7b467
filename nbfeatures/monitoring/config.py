"""Monitoring settings: the ``monitoring:`` mapping of ``nbfeatures.yaml``, with defaults.

    monitoring:
      experiment: nbfeatures-monitoring   # the MLflow experiment reports are runs of
      report_root: gs://bucket/reports    # optional: a copy of every report goes here too
      webhook: https://hooks.example/nbf  # optional: POSTed the summary on alert
      defaults:                           # every family, unless it says otherwise
        reports: [drift, skew, freshness]
        schedule: "0 6 * * *"             # crontab; none means `monitor schedule` skips it
        window: 1d                        # served vectors of the last day
        reference_window: 7d              # offline rows of the week before, for drift
        drift: {numeric_method: psi, numeric_threshold: 0.2}
        skew: {sample: 10000, alert_rate: 0.01}
      families:
        user_spend:
          schedule: "*/30 * * * *"
          drift: {numeric_method: wasserstein, numeric_threshold: 0.1}

Methods are set, never left to Evidently's automatic choice (which changes with the
reference's size): PSI for numbers and Jensen-Shannon for categories unless a family says.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from nbfeatures.config import Settings
from nbfeatures.definitions import parse_duration
from nbfeatures.errors import ConfigError
from nbfeatures.monitoring.summary import REPORT_KINDS

# The drift methods we compute ourselves (``drift_stats``), named as Evidently names them so
# its page draws the same method. Only distances (higher is more drift): p-value tests (ks,
# chisquare, TVD) invert the threshold's meaning, and are left out.
NUMERIC_METHODS = ("psi", "wasserstein", "jensenshannon", "hellinger")
CATEGORICAL_METHODS = ("jensenshannon", "psi", "hellinger")


@dataclass(frozen=True)
class DriftSettings:
    """How drift is decided per feature, and when the report as a whole alerts."""

    numeric_method: str = "psi"
    numeric_threshold: float = 0.2  # PSI's customary limit; Evidently's default differs
    categorical_method: str = "jensenshannon"
    categorical_threshold: float = 0.1
    # The report alerts when at least this share of features drifted; one drifted feature warns.
    drift_share: float = 0.5
    # A feature whose share of nulls moved by more than this warns, drift or not.
    null_share_change: float = 0.1
    # Above this many rows (current or reference) the report samples, and says so.
    max_rows: int = 200_000


@dataclass(frozen=True)
class SkewSettings:
    """How many served vectors are recomputed offline, and what mismatch rate is bad."""

    sample: int = 10_000
    warn_rate: float = 0.001
    alert_rate: float = 0.01
    # Two floats are equal when |a - b| <= abs_tolerance + rel_tolerance * |b|.
    rel_tolerance: float = 1e-6
    abs_tolerance: float = 1e-9
    examples: int = 5


@dataclass(frozen=True)
class FamilyMonitoring:
    """What is reported for one family, how often, and over which window."""

    reports: tuple[str, ...] = REPORT_KINDS
    schedule: str | None = None
    window: dt.timedelta = dt.timedelta(days=1)
    reference_window: dt.timedelta = dt.timedelta(days=7)
    drift: DriftSettings = field(default_factory=DriftSettings)
    skew: SkewSettings = field(default_factory=SkewSettings)


@dataclass(frozen=True)
class MonitoringConfig:
    """The workspace's monitoring settings; ``for_family`` merges a family's over the defaults."""

    experiment: str = "nbfeatures-monitoring"
    report_root: str | None = None
    webhook: str | None = None
    defaults: FamilyMonitoring = field(default_factory=FamilyMonitoring)
    families: Mapping[str, FamilyMonitoring] = field(default_factory=dict)

    def for_family(self, family: str) -> FamilyMonitoring:
        return self.families.get(family, self.defaults)

    def scheduled(self) -> dict[str, FamilyMonitoring]:
        """Families named in ``families`` plus ``*`` for the defaults, when they have a schedule."""
        out = {name: m for name, m in self.families.items() if m.schedule}
        if self.defaults.schedule:
            out["*"] = self.defaults
        return out


def _number(where: str, value: Any, *, whole: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(where, f"{value!r} is not a number")
    if value < 0:
        raise ConfigError(where, "must not be negative")
    if whole:
        if int(value) != value or value == 0:
            raise ConfigError(where, f"{value!r} is not a positive whole number")
        return int(value)
    return float(value)


def _section(where: str, cls: type[Any], base: Any, raw: Any) -> Any:
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a mapping")
    known = {f.name: f for f in fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{where}.{key}", f"unknown; known: {', '.join(sorted(known))}")
        default = getattr(base, key)
        if isinstance(default, str):
            changes[key] = str(value)
        else:
            changes[key] = _number(f"{where}.{key}", value, whole=isinstance(default, int))
    result = replace(base, **changes)
    if cls is DriftSettings:
        if result.numeric_method not in NUMERIC_METHODS:
            raise ConfigError(
                f"{where}.numeric_method",
                f"{result.numeric_method!r} is not one of {', '.join(NUMERIC_METHODS)}",
            )
        if result.categorical_method not in CATEGORICAL_METHODS:
            raise ConfigError(
                f"{where}.categorical_method",
                f"{result.categorical_method!r} is not one of {', '.join(CATEGORICAL_METHODS)}",
            )
    if cls is SkewSettings and result.warn_rate > result.alert_rate:
        raise ConfigError(f"{where}.warn_rate", "must not be above alert_rate")
    return result


def _family(where: str, base: FamilyMonitoring, raw: Any) -> FamilyMonitoring:
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a mapping")
    known = {f.name for f in fields(FamilyMonitoring)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{where}.{key}", f"unknown; known: {', '.join(sorted(known))}")
        if key == "reports":
            kinds = [value] if isinstance(value, str) else list(value or ())
            bad = [k for k in kinds if k not in REPORT_KINDS]
            if bad or not kinds:
                raise ConfigError(
                    f"{where}.reports", f"{bad or kinds!r}: choose from {', '.join(REPORT_KINDS)}"
                )
            changes[key] = tuple(kinds)
        elif key == "schedule":
            changes[key] = _crontab(f"{where}.schedule", value)
        elif key in ("window", "reference_window"):
            try:
                changes[key] = parse_duration(str(value), f"{where}.{key}")
            except ValueError as exc:
                raise ConfigError(f"{where}.{key}", str(exc)) from None
        elif key == "drift":
            changes[key] = _section(f"{where}.drift", DriftSettings, base.drift, value)
        else:
            changes[key] = _section(f"{where}.skew", SkewSettings, base.skew, value)
    return replace(base, **changes)


def _crontab(where: str, value: Any) -> str | None:
    if value in (None, "", "none", "off"):
        return None
    text = str(value).strip()
    if len(text.split()) not in (5, 6):
        raise ConfigError(
            where, f"{text!r} is not a crontab (5 fields: minute hour day month weekday)"
        )
    return text


def parse_monitoring(raw: Any, where: str = "monitoring") -> MonitoringConfig:
    """Build a ``MonitoringConfig`` from the yaml mapping; a wrong key or value names its path."""
    if raw is None:
        return MonitoringConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a mapping")
    known = {"experiment", "report_root", "webhook", "defaults", "families"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}.{key}", f"unknown; known: {', '.join(sorted(known))}")
    defaults = _family(f"{where}.defaults", FamilyMonitoring(), raw.get("defaults"))
    families_raw = raw.get("families") or {}
    if not isinstance(families_raw, Mapping):
        raise ConfigError(f"{where}.families", "must be a mapping of family: settings")
    families = {
        str(name): _family(f"{where}.families.{name}", defaults, value)
        for name, value in families_raw.items()
    }
    return MonitoringConfig(
        experiment=str(raw.get("experiment") or "nbfeatures-monitoring"),
        report_root=str(raw["report_root"]) if raw.get("report_root") else None,
        webhook=str(raw["webhook"]) if raw.get("webhook") else None,
        defaults=defaults,
        families=families,
    )


def monitoring_config(settings: Settings) -> MonitoringConfig:
    """The workspace's monitoring settings (defaults when ``nbfeatures.yaml`` has none)."""
    return parse_monitoring(settings.monitoring)
