"""One error tree for nbfeatures, each error carrying the fields that locate the problem.

    NbfeaturesError
    ├── DefinitionError(field, reason)            a definition that cannot be built
    ├── ConfigError(key, reason, source)          a setting that cannot be used, and where it is set
    ├── MissingDependency(extra, module)          an optional part is not installed
    ├── SourceError(source, reason)               a source that is unknown or unreadable
    ├── TransformationError(family, reason, line, column)
    │                                             SQL that does not parse or run, a Python
    │                                             body that defines no function or raises
    ├── SchemaError(family, column, reason)       output without the entity/timestamp column,
    │                                             a bad timestamp, an unsupported type
    ├── CatalogError                              anything the catalog refuses
    │   ├── CatalogUnavailable(uri, reason)       the catalog cannot be reached
    │   ├── FeatureNotFound(name, version, feature) no such family, version or feature
    │   ├── RegistrationConflict(name, reason)    a concurrent registration could not settle
    │   ├── RegistrationFailed(name, step, reason) a registration failed and was rolled back
    │   └── FamilySunset(name, version, sunset)   deprecated and past its sunset date
    ├── OfflineDataMissing(family, version, start, end)
    ├── SpineError(column, reason, columns)       a training spine without a needed column
    ├── OnlineStoreError(target, reason)          the online store (Redis) refused or failed
    │   ├── OnlineStoreUnavailable(target, reason) it cannot be reached or authenticated
    │   └── LiveVersionChanged(family, expected, actual)
    │                                             a flip lost a race with another flip
    ├── PromotionFailed(family, version, step, notebook, cell)
    ├── PromotionInProgress(family, holder, expires_in)
    │                                             another promotion of the family holds its lock
    ├── ServingError(target, reason)              the feature server refused or failed a call
    │   ├── InvalidRequest(target, reason)        too many entities or features, a bad reference
    │   ├── Unauthenticated(target, reason)       no token, or a wrong one
    │   └── ServingUnavailable(target, reason)    the server or its online store is unreachable
    ├── MonitoringError                           anything a report or its storage refuses
    │   ├── ReportNotFound(report_id)             no report (monitoring run) with that id
    │   ├── ReportFailed(family, kind, reason)    a report could not be made or saved
    │   └── ReviewRefused(report_id, reason)      a review without a reviewer's name
    └── InvalidInput(field, reason)               a field of a request to an HTTP API (the
                                                  JupyterLab panel's) that cannot be used

The core raises these; the edges translate them: magics into ``UsageError``, the CLI into a
message and exit code, the server into gRPC status codes. This module imports nothing of ours
so every other module, ``definitions`` included, can use it.
"""

from __future__ import annotations

import datetime as dt


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's text (its type when empty), cut to ``limit``: what an
    error or a record says about a cause without pasting a whole traceback into it."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]


class NbfeaturesError(Exception):
    """Base of every error nbfeatures raises on purpose."""


class DefinitionError(NbfeaturesError, ValueError):
    """A definition field is invalid. ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class ConfigError(NbfeaturesError, ValueError):
    """A workspace setting (``nbfeatures.yaml`` key or environment variable) is unusable."""

    def __init__(self, key: str, reason: str, *, source: str | None = None) -> None:
        self.key = key
        self.reason = reason
        # Where the bad value came from: ``/ws/nbfeatures.yaml:key``, ``NBF_KEY``, ``override``.
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"setting {key}: {reason}{where}")


class MissingDependency(NbfeaturesError, ImportError):
    """An optional part is used but its extra is not installed."""

    def __init__(self, extra: str, module: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f'{module} is not installed; install it with: pip install "nbfeatures[{extra}]"'
        )


class SourceError(NbfeaturesError, ValueError):
    """A source is unknown, or its path or table cannot be read."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"source {source!r}: {reason}")


class TransformationError(NbfeaturesError, ValueError):
    """A transformation does not parse or fails when run.

    ``line`` and ``column`` are 1-based positions in the cell body when known.
    """

    def __init__(
        self, family: str, reason: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.family = family
        self.reason = reason
        self.line = line
        self.column = column
        where = f" (line {line}" + (f", column {column}" if column else "") + ")" if line else ""
        super().__init__(f"feature family {family!r}{where}: {reason}")


class SchemaError(NbfeaturesError, ValueError):
    """The transformation's output does not fit the definition."""

    def __init__(self, family: str, column: str, reason: str) -> None:
        self.family = family
        self.column = column
        self.reason = reason
        super().__init__(f"feature family {family!r}, column {column!r}: {reason}")


class CatalogError(NbfeaturesError):
    """Base of what the catalog refuses."""


class CatalogUnavailable(CatalogError, ConnectionError):
    """The catalog (MLflow tracking store) cannot be reached."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(f"catalog at {uri} cannot be reached: {reason}")


class FeatureNotFound(CatalogError, LookupError):
    """No family of that name, or no such version, alias or feature in it.

    ``version`` is a number (shown ``@v3``) or an alias. With ``feature`` the family and
    version exist and ``known`` lists the features they have. ``message``, when given, is the
    whole text (a server's answer, several missing names at once), said once.
    """

    def __init__(
        self,
        name: str,
        version: int | str | None = None,
        detail: str = "",
        *,
        feature: str | None = None,
        known: tuple[str, ...] = (),
        message: str | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.feature = feature
        self.known = known
        if message is None:
            message = missing_text(name, version, feature, known)
            message += f": {detail}" if detail else ""
        super().__init__(message)


def missing_text(
    name: str,
    version: int | str | None = None,
    feature: str | None = None,
    known: tuple[str, ...] = (),
) -> str:
    """``feature family x@v2 not found``, or ``feature x@v2:f not found (family x v2 has: ...)``."""
    pin = "" if version is None else f"@v{version}" if isinstance(version, int) else f"@{version}"
    if feature is None:
        return f"feature family {name}{pin} not found"
    where = f"family {name}" + (f" v{version}" if isinstance(version, int) else "")
    has = f" ({where} has: {', '.join(known)})" if known else ""
    return f"feature {name}{pin}:{feature} not found{has}"


class RegistrationConflict(CatalogError):
    """A registration could not complete because another one held the family too long."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"registration of {name!r} did not complete: {reason}")


class RegistrationFailed(CatalogError):
    """A registration failed at ``step``; what it had written was removed again."""

    def __init__(self, name: str, step: str, reason: str) -> None:
        self.name = name
        self.step = step
        self.reason = reason
        super().__init__(
            f"registration of {name!r} failed while {step}: {reason}; nothing was registered"
        )


class FamilySunset(CatalogError):
    """A deprecated family version is past its sunset date and refused for new work."""

    def __init__(self, name: str, version: int, sunset: dt.date, replacement: str | None) -> None:
        self.name = name
        self.version = version
        self.sunset = sunset
        self.replacement = replacement
        hint = f"; use {replacement} instead" if replacement else ""
        super().__init__(
            f"feature family {name} v{version} was deprecated and its sunset date "
            f"{sunset.isoformat()} has passed{hint}"
        )


class OfflineDataMissing(NbfeaturesError, LookupError):
    """A family version has no offline data for the requested range."""

    def __init__(self, family: str, version: int, start: dt.datetime, end: dt.datetime) -> None:
        self.family = family
        self.version = version
        self.start = start
        self.end = end
        super().__init__(
            f"feature family {family} v{version} has no offline data for "
            f"{start.isoformat()} .. {end.isoformat()}; compute that range first"
        )


class SpineError(NbfeaturesError, ValueError):
    """A training-set spine lacks a column or holds timestamps that cannot be made UTC."""

    def __init__(self, column: str, reason: str, columns: tuple[str, ...] = ()) -> None:
        self.column = column
        self.reason = reason
        self.columns = columns
        present = f"; the spine's columns are: {', '.join(columns)}" if columns else ""
        super().__init__(f"spine column {column!r}: {reason}{present}")


class OnlineStoreError(NbfeaturesError):
    """The online store refused an operation or answered something unexpected."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"online store {target}: {reason}")


class OnlineStoreUnavailable(OnlineStoreError, ConnectionError):
    """The online store cannot be reached, or refused the credentials given."""


class LiveVersionChanged(OnlineStoreError):
    """A flip expected the live version ``expected`` but found ``actual``; nothing changed."""

    def __init__(self, family: str, expected: int | None, actual: int | None) -> None:
        self.family = family
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"live pointer of {family!r}",
            f"expected {_version_label(expected)} but it is {_version_label(actual)}; another "
            "promotion or rollback changed it, so nothing was flipped",
        )


def _version_label(version: int | None) -> str:
    return "no live version" if version is None else f"v{version}"


class PromotionFailed(NbfeaturesError):
    """A promotion stopped; production still serves what it served before."""

    def __init__(
        self,
        family: str,
        version: int,
        step: str,
        reason: str,
        notebook: str | None = None,
        cell: int | None = None,
    ) -> None:
        self.family = family
        self.version = version
        self.step = step
        self.reason = reason
        self.notebook = notebook
        self.cell = cell
        where = f" (cell {cell} of {notebook})" if notebook and cell is not None else ""
        super().__init__(
            f"promotion of {family} v{version} failed at step {step!r}{where}: {reason}; "
            "production is unchanged"
        )


class PromotionInProgress(NbfeaturesError):
    """Another promotion (or rollback) of the same family holds its lock; nothing was changed.

    ``holder`` describes who holds it (user, host, process); ``expires_in`` is how many seconds
    the lock has left unless its holder renews it (a killed holder's lock simply expires).
    """

    def __init__(self, family: str, holder: str, expires_in: float | None) -> None:
        self.family = family
        self.holder = holder
        self.expires_in = expires_in
        left = f"; its lock expires in {expires_in:.0f} s unless renewed" if expires_in else ""
        super().__init__(
            f"another promotion of {family} is running ({holder}){left}; try again when it ends"
        )


class ServingError(NbfeaturesError):
    """The feature server refused or failed a call; ``target`` is the server's address."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"feature server {target}: {reason}")


class InvalidRequest(ServingError, ValueError):
    """The server refused the request itself: a limit, a reference or entity column it rejects."""


class Unauthenticated(ServingError, PermissionError):
    """The server wants a bearer token, or refused the one sent."""


class ServingUnavailable(ServingError, ConnectionError):
    """The server, or the online store behind it, cannot be reached (retries were exhausted)."""


class MonitoringError(NbfeaturesError):
    """Base of what monitoring reports, their storage and their review refuse."""


class ReportNotFound(MonitoringError, LookupError):
    """No report with this id in the monitoring experiment (``nbfeatures reports list``)."""

    def __init__(self, report_id: str) -> None:
        self.report_id = report_id
        super().__init__(
            f"report {report_id!r} not found in the monitoring experiment; "
            "`nbfeatures reports list` shows the ids"
        )


class ReportFailed(MonitoringError):
    """A ``kind`` report on ``family`` could not be made or saved; ``reason`` says why."""

    def __init__(self, family: str, kind: str, reason: str) -> None:
        self.family = family
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind} report on {family}: {reason}")


class ReviewRefused(MonitoringError, ValueError):
    """A review of ``report_id`` was refused (no reviewer named); nothing was recorded."""

    def __init__(self, report_id: str, reason: str) -> None:
        self.report_id = report_id
        self.reason = reason
        super().__init__(f"review of report {report_id}: {reason}; nothing was recorded")


class InvalidInput(NbfeaturesError, ValueError):
    """A field of a request to one of our HTTP APIs cannot be used; nothing was changed."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")
