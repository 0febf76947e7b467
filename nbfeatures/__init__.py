"""nbfeatures: define a feature in a notebook cell, and serve that exact definition.

``import nbfeatures`` loads no Spark, MLflow, gRPC or Jupyter: heavy parts load when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Bound here, not lazily: importing the submodule ``nbfeatures.compute`` sets the package
# attribute ``compute`` to that module, which replaced the function after its first use.
# Importing the function now makes the name the function for good (the module is light;
# it loads Spark and MLflow inside the call).
from nbfeatures.compute import compute
from nbfeatures.config import Settings, load_settings
from nbfeatures.definitions import (
    Deprecation,
    Entity,
    Feature,
    FeatureFamily,
    FeatureRef,
    FeatureType,
    Source,
    Transformation,
)
from nbfeatures.errors import NbfeaturesError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "Deprecation",
    "Entity",
    "Feature",
    "FeatureClient",
    "FeatureFamily",
    "FeatureRef",
    "FeatureType",
    "NbfeaturesError",
    "Settings",
    "Source",
    "Transformation",
    "__version__",
    "compute",
    "load_ipython_extension",
    "load_settings",
    "training_set",
]


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext nbfeatures``: register the ``%%feature`` family of magics."""
    from nbfeatures.notebook import load_ipython_extension as load

    load(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the built Features panel (``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "nbfeatures-labextension"}]


def __getattr__(name: str) -> Any:
    # Public entry points that need heavy dependencies are imported on first access.
    if name == "training_set":
        from nbfeatures.training import training_set

        return training_set
    if name == "FeatureClient":
        from nbfeatures.client import FeatureClient

        return FeatureClient
    if name == "Catalog":
        from nbfeatures.catalog import Catalog

        return Catalog
    raise AttributeError(f"module 'nbfeatures' has no attribute {name!r}")
