"""What every handler of the panel shares: the workspace's settings (read once, when the
extension loads), the server's root, one catalog client and the job registry."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nbfeatures.errors import ConfigError, NbfeaturesError
from nbfeatures.jupyter.jobs import JobRegistry

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import Settings
    from nbfeatures.monitoring.store import ReportStore


@dataclass
class Panel:
    """The extension's state in one server. ``settings`` is None when the workspace could
    not be read; every call then fails with that error (the server itself keeps running)."""

    root: Path
    settings: Settings | None
    settings_error: NbfeaturesError | None = None
    jobs: JobRegistry = field(default_factory=JobRegistry)
    _catalog: Catalog | None = None
    _reports: ReportStore | None = None

    def require_settings(self) -> Settings:
        if self.settings is None:
            raise self.settings_error or ConfigError("workspace", "not loaded")
        return self.settings

    @property
    def catalog(self) -> Catalog:
        """The workspace's catalog, one client for all requests (MLflow's is thread-safe)."""
        if self._catalog is None:
            from nbfeatures.catalog import Catalog

            self._catalog = Catalog.from_settings(self.require_settings())
        return self._catalog

    @property
    def reports(self) -> ReportStore:
        """The workspace's report store, kept for the server's life: it keeps the pages it
        downloaded (until it is dropped), so a page is fetched from MLflow once."""
        if self._reports is None:
            from nbfeatures.monitoring.store import ReportStore

            self._reports = ReportStore.from_settings(self.require_settings())
        return self._reports


def load_panel(root_dir: str | Path, environ: dict[str, str] | None = None) -> Panel:
    """The panel of a server rooted at ``root_dir``; the workspace is ``$NBF_WORKSPACE``, else
    that root. A workspace that cannot be read is kept as the error every call reports."""
    from nbfeatures.config import load_settings

    env = dict(os.environ) if environ is None else environ
    root = Path(root_dir).expanduser().resolve()
    try:
        settings = load_settings(env.get("NBF_WORKSPACE") or root, environ=env)
    except NbfeaturesError as exc:
        return Panel(root, None, exc)
    return Panel(root, settings)
