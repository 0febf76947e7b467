"""The catalog owns families and their versions in MLflow: owner, aliases, status, deprecation.

Importing this package does not import MLflow; the first catalog call does.
"""

from nbfeatures.catalog.records import (
    FamilyDeprecatedWarning,
    FamilySummary,
    FamilyVersion,
    Registration,
)
from nbfeatures.catalog.store import Catalog

__all__ = [
    "Catalog",
    "FamilyDeprecatedWarning",
    "FamilySummary",
    "FamilyVersion",
    "Registration",
]
