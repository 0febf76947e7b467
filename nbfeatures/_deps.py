"""Import optional dependencies by name, failing with the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from nbfeatures.errors import MissingDependency


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise ``MissingDependency`` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(extra, module) from None
