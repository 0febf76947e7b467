"""The report kinds by name, imported only when one runs (each pulls in Evidently).

Every kind is a function of one shape, so the runner, the scheduler and the notebook
template call them alike:

    report(settings, family, *, output_dir, start=None, end=None, version=None,
           catalog=None, config=None) -> ReportResult

``start``/``end`` default to the family's window ending now; ``version`` to the production
version; ``config`` to the family's monitoring settings from the workspace.
"""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nbfeatures.errors import ConfigError
from nbfeatures.monitoring.summary import REPORT_KINDS, ReportResult

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import Settings
    from nbfeatures.monitoring.config import FamilyMonitoring


class ReportFunction(Protocol):
    def __call__(
        self,
        settings: Settings,
        family: str,
        *,
        output_dir: Path,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        version: int | None = None,
        catalog: Catalog | None = None,
        config: FamilyMonitoring | None = None,
    ) -> ReportResult: ...


_FUNCTIONS = {
    "drift": ("nbfeatures.monitoring.drift", "drift_report"),
    "skew": ("nbfeatures.monitoring.skew", "skew_report"),
    "freshness": ("nbfeatures.monitoring.freshness", "freshness_report"),
}


def report_function(kind: str) -> ReportFunction:
    """The function that makes a ``kind`` report; an unknown kind names the known ones."""
    if kind not in _FUNCTIONS:
        raise ConfigError("report kind", f"{kind!r} is not one of {', '.join(REPORT_KINDS)}")
    module, name = _FUNCTIONS[kind]
    function: ReportFunction = getattr(importlib.import_module(module), name)
    return function
