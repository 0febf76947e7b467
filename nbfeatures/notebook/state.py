"""What one kernel remembers between cells: its settings, named sources and the last family.

Settings are read once per kernel (the notebook is an edge) on first use, or set explicitly
with ``configure(settings)`` / ``%nbf_config`` so tests and users can point the kernel at a
workspace without environment variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nbfeatures.config import Settings, activate, load_settings

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog, Registration
    from nbfeatures.definitions import FeatureFamily, Source
    from nbfeatures.engine.spark.preview import Preview
    from nbfeatures.notebook.widgets import PreviewWidget


@dataclass
class FeatureCell:
    """The outcome of the last ``%%feature`` cell; also bound to ``_nbf_last`` in the notebook."""

    family: FeatureFamily
    preview: Preview
    registration: Registration | None = None
    widget: PreviewWidget | None = None


@dataclass
class KernelState:
    """Mutable per-kernel state behind the magics."""

    settings: Settings | None = None
    sources: dict[str, Source] = field(default_factory=dict)
    last: FeatureCell | None = None
    _catalog: Catalog | None = None

    def get_settings(self) -> Settings:
        """The kernel's settings, read from ``nbfeatures.yaml`` and ``NBF_*`` on first use."""
        if self.settings is None:
            self.settings = activate(load_settings())
        return self.settings

    def catalog(self) -> Catalog:
        """The catalog for the kernel's settings, built once (MLflow loads on first use)."""
        if self._catalog is None:
            from nbfeatures.catalog import Catalog

            self._catalog = Catalog.from_settings(self.get_settings())
        return self._catalog


_state = KernelState()


def current() -> KernelState:
    """The kernel's state."""
    return _state


def configure(settings: Settings | None = None) -> KernelState:
    """Start over with ``settings`` (or re-read them on next use): no sources, no last family."""
    global _state
    if settings is not None:
        # Library calls made from this kernel (training_set, compute) use these settings too.
        activate(settings)
    _state = KernelState(settings=settings)
    return _state
