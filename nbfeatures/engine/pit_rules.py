"""Point-in-time rules both engines check alike: output names, spine columns, key kinds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from nbfeatures._deps import require
from nbfeatures.errors import DefinitionError

SEPARATOR = "__"
# The column recording a pandas spine's row order while an engine joins it.
ROW_COLUMN = "__nbf_row"


class OutputColumns:
    """The output column names of one family in a join, for both engines' family classes."""

    name: str

    def column(self, feature: str) -> str:
        """The output column of ``feature``: ``{family}__{feature}``."""
        return f"{self.name}{SEPARATOR}{feature}"

    @property
    def event_time_column(self) -> str:
        """The output column holding the event time of the value used (when asked for)."""
        return f"{self.name}{SEPARATOR}event_time"


class _Family(Protocol):
    """What the column checks need of a family (``FeatureFrame`` and the Arrow one both fit)."""

    @property
    def join_key(self) -> str: ...

    @property
    def features(self) -> tuple[str, ...]: ...

    @property
    def event_time_column(self) -> str: ...

    def column(self, feature: str) -> str: ...


_F = TypeVar("_F", bound=_Family)


def check_columns(
    present: Sequence[str],
    families: Sequence[_Family],
    timestamp_column: str,
    include_event_times: bool,
) -> None:
    """Refuse a spine missing a needed column, or an output name that would appear twice."""
    needed = [timestamp_column, *(f.join_key for f in families)]
    for column in needed:
        if column not in present:
            raise DefinitionError(
                "spine", f"has no column {column!r}; its columns are {', '.join(present)}"
            )
    outputs: set[str] = set()
    for family in families:
        names = [family.column(f) for f in family.features]
        if include_event_times:
            names.append(family.event_time_column)
        for name in names:
            if name in present or name in outputs:
                raise DefinitionError(
                    "features", f"output column {name!r} would appear twice; rename it"
                )
            outputs.add(name)


# Kinds of key column types: a join compares keys of one kind only. Text keys against
# numbers would match "1" with 1 (and "01" with 1) where the cast works and fail on "u1"
# where it does not, differently on each engine; so the mismatch is refused up front.
TEXT = "string"


def check_key_kinds(family: str, key: str, spine_kind: str | None, family_kind: str) -> None:
    """Refuse a text key against a non-text one; both engines call this with their types.

    ``spine_kind`` is ``None`` for a column of nulls only (no type to compare).
    """
    if spine_kind is None or (spine_kind == TEXT) == (family_kind == TEXT):
        return
    raise DefinitionError(
        f"{family}.join_key",
        f"the spine's key column {key!r} is {spine_kind} and family {family}'s is "
        f"{family_kind}; they cannot be compared: give the spine's column the family's type",
    )


def group_by_key(families: Sequence[_F]) -> dict[str, list[_F]]:
    """Families by join key, keys in first-seen order: this order gives the output columns."""
    groups: dict[str, list[_F]] = {}
    for family in families:
        groups.setdefault(family.join_key, []).append(family)
    return groups


def times_in_utc(out: Any) -> Any:
    """``out`` with every datetime column tz-aware in UTC (naive ones are taken as UTC)."""
    pd = require("pandas", "spark")
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            series = out[column]
            out[column] = (
                series.dt.tz_localize("UTC")
                if series.dt.tz is None
                else series.dt.tz_convert("UTC")
            )
    return out
