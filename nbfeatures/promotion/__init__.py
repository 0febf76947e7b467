"""Promotion owns making a family version what production serves (and taking it back).

    promote(settings, family, version=None, *, progress=None, options=None) -> PromotionRecord
    rollback(settings, family) -> int
    cleanup(settings, family, now=None, *, grace=24h) -> list[int]
    refresh(settings, family, *, force=False) -> RefreshResult | None

``promote`` runs the template notebook ``nbfeatures/templates/promote.ipynb`` with papermill:
load, compute, materialize, verify, flip, record; see ``runner`` for the failure guarantees.
Importing this package loads no Spark, MLflow, Redis or Jupyter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbfeatures.promotion.records import (
    PROMOTION_EXPERIMENT,
    STEPS,
    PromotionOptions,
    PromotionRecord,
    StepEvent,
)

if TYPE_CHECKING:
    from nbfeatures.promotion.incremental import RefreshResult, refresh
    from nbfeatures.promotion.runner import promote
    from nbfeatures.promotion.switch import cleanup, rollback

__all__ = [
    "PROMOTION_EXPERIMENT",
    "STEPS",
    "PromotionOptions",
    "PromotionRecord",
    "RefreshResult",
    "StepEvent",
    "cleanup",
    "promote",
    "refresh",
    "rollback",
]

_LAZY = {
    "promote": "nbfeatures.promotion.runner",
    "rollback": "nbfeatures.promotion.switch",
    "cleanup": "nbfeatures.promotion.switch",
    "refresh": "nbfeatures.promotion.incremental",
    "RefreshResult": "nbfeatures.promotion.incremental",
}


def __getattr__(name: str) -> Any:
    # The entry points import the catalog (MLflow) and the online store (redis) at module
    # level; they load on first use only.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbfeatures.promotion' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
