"""Arrow key and time columns as numpy: key kinds, microsecond times, int64 values, key codes.

Shared by the in-process join (``arrow.match``) and the join index (``arrow.join_index``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.engine.pit_rules import TEXT, OutputColumns
from nbfeatures.errors import DefinitionError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Ints = npt.NDArray[np.int64]
    Bools = npt.NDArray[np.bool_]


# Integer keys whose range is at most this many times their count (or under DENSE_FLOOR)
# are coded by offset, through a lookup table of that size; others are hashed or searched.
# Spine keys in ``KeyCoder``, a join index's keys in ``join_index``.
DENSE_FACTOR = 8
DENSE_FLOOR = 1 << 22


@dataclass(frozen=True)
class ArrowFeatures(OutputColumns):
    """One family's rows as an Arrow table, with its key, time and feature columns."""

    name: str
    table: Any  # a pyarrow.Table, ParquetRows, another RowSource (``arrow.rows``), JoinIndex
    join_key: str
    timestamp: str
    features: tuple[str, ...]
    ttl: dt.timedelta | None = None


def arrow_key_kind(kind: Any) -> str | None:
    """The kind of an Arrow key type, named as ``spark.pit.spark_key_kind`` names Spark's."""
    pa = require("pyarrow", "spark")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return TEXT
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "floating point"
    return None if pa.types.is_null(kind) else str(kind)


def wider_type(left: Any, right: Any) -> Any:
    """The type Spark gives a column holding both: the later of int8 … int64, float, double."""
    pa = require("pyarrow", "spark")
    ladder = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64()]
    if left == right or left not in ladder or right not in ladder:
        return left
    return ladder[max(ladder.index(left), ladder.index(right))]


def to_micros(column: Any) -> tuple[Ints, Bools | None]:
    """Microseconds since the epoch (UTC) and a validity mask (``None``: no nulls).

    As Spark's cast gives them: naive timestamps are taken as UTC (the session time zone;
    Spark's INT96 Parquet reads back naive in pyarrow), dates are their UTC midnight, finer
    units are truncated.
    """
    pa = require("pyarrow", "spark")
    kind = column.type
    if pa.types.is_date(kind):
        column = column.cast(pa.timestamp("us"))
    elif not pa.types.is_timestamp(kind):
        raise DefinitionError(
            "timestamp", f"expected a timestamp or date column, got Arrow type {kind}"
        )
    micros = column.cast(pa.timestamp("us", tz=getattr(column.type, "tz", None)), safe=False)
    return int64_values(micros.cast(pa.int64()))


def int64_values(column: Any) -> tuple[Ints, Bools | None]:
    """An integer column as ``int64`` numpy values (nulls as 0) and its validity mask."""
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    if column.type != pa.int64():
        column = column.cast(pa.int64())
    if not column.null_count:
        return column.to_numpy(), None
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    return pc.fill_null(column, 0).to_numpy(), valid


@dataclass(frozen=True)
class KeyCoder:
    """Integer codes in ``[0, width]`` for one family's keys, shared with the spine.

    Integer keys over a dense spine range are coded by offset (``key - low``); others by
    their position in the spine's distinct keys. A spine key that is null gets ``-1``; a
    feature key that is null or not in the spine gets ``width`` (a sentinel slot of the
    per-entity tables in ``match_rows`` that matches nothing) or the code of a value in the
    spine's range that no spine row has (also empty there).
    """

    spine: Ints
    width: int
    low: int | None  # offset coding
    distinct: Any  # otherwise: the spine's distinct keys, a pyarrow.Array
    key_type: Any  # the spine key's Arrow type
    family: str

    @classmethod
    def build(cls, spine_key: Any, feature_type: Any, family: str) -> KeyCoder:
        np = require("numpy", "spark")
        pa = require("pyarrow", "spark")
        pc = require("pyarrow.compute", "spark")
        if pa.types.is_integer(spine_key.type) and pa.types.is_integer(feature_type):
            s, s_valid = int64_values(spine_key)
            valid_s = s if s_valid is None else s[s_valid]
            if valid_s.size == 0:
                return cls(np.full(len(s), -1, np.int64), 0, 0, None, spine_key.type, family)
            low, high = int(valid_s.min()), int(valid_s.max())
            width = high - low + 1
            if width <= max(DENSE_FACTOR * len(s), DENSE_FLOOR):
                codes = s - low
                if s_valid is not None:
                    codes[~s_valid] = -1
                return cls(codes, width, low, None, spine_key.type, family)
        distinct = pc.unique(spine_key.drop_null())
        codes = pc.fill_null(pc.index_in(spine_key, value_set=distinct), -1)
        as_numpy = codes.cast(pa.int64()).to_numpy(zero_copy_only=False)
        return cls(as_numpy, len(distinct), None, distinct, spine_key.type, family)

    def code(self, feature_key: Any) -> Ints:
        """The codes of a feature key column (a part of the family's rows)."""
        np = require("numpy", "spark")
        pa = require("pyarrow", "spark")
        pc = require("pyarrow.compute", "spark")
        if self.low is not None and pa.types.is_integer(feature_key.type):
            f, f_valid = int64_values(feature_key)
            codes = f - self.low
            # As unsigned, keys below the spine's range are huge too: one ``minimum`` sends
            # every key outside it to the sentinel. Keys inside it but absent from the spine
            # find the per-entity tables of ``match_rows`` empty.
            unsigned = codes.view(np.uint64)
            np.minimum(unsigned, np.uint64(self.width), out=unsigned)
            if f_valid is not None:
                codes[~f_valid] = self.width
            return codes
        if self.distinct is None:  # no spine key at all: nothing matches
            nothing: Ints = np.full(len(feature_key), self.width, np.int64)
            return nothing
        if feature_key.type != self.key_type:
            try:
                feature_key = feature_key.cast(self.key_type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DefinitionError(
                    f"{self.family}.join_key",
                    f"the spine's key column is {self.key_type} and family {self.family}'s "
                    f"is {feature_key.type}; they cannot be compared",
                ) from None
        codes = pc.fill_null(pc.index_in(feature_key, value_set=self.distinct), self.width)
        return codes.cast(pa.int64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]
