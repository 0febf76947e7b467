"""The batch side of on-demand features: apply the function to pandas or Spark rows.

``apply_on_demand`` computes a family's features for a pandas frame of request fields and
``family__feature`` input columns. ``add_on_demand_columns`` is what ``training_set`` calls
after its point-in-time join: pandas frames are computed on the driver, Spark frames with
``mapInPandas`` (each Python worker compiles the function once per partition). Both go through
``OnDemandFunction.apply``, as the server does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbfeatures.definitions import FeatureFamily, FeatureType
from nbfeatures.errors import SpineError
from nbfeatures.on_demand.function import SEPARATOR, OnDemandFunction, input_column, prepare

if TYPE_CHECKING:
    import pandas as pd

_SPARK_TYPES = {
    FeatureType.INT32: "int",
    FeatureType.INT64: "bigint",
    FeatureType.FLOAT32: "float",
    FeatureType.FLOAT64: "double",
    FeatureType.STRING: "string",
    FeatureType.BOOL: "boolean",
    FeatureType.TIMESTAMP: "timestamp",
}


def apply_on_demand(
    family: FeatureFamily,
    frame: pd.DataFrame,
    input_types: Mapping[str, FeatureType | str],
    *,
    function: OnDemandFunction | None = None,
) -> pd.DataFrame:
    """``family``'s features (one column each, by feature name) for every row of ``frame``.

    ``frame`` holds the request fields and the inputs as ``family__feature`` columns (what
    ``training_set`` returns); ``input_types`` maps each input reference or column to its type.
    A missing column raises ``SpineError`` naming it.
    """
    function = function or OnDemandFunction(family)
    types = {_column_of(key): FeatureType(kind) for key, kind in input_types.items()}
    present = tuple(str(c) for c in frame.columns)
    for column in [*function.request_types, *function.input_columns]:
        if column not in present:
            raise SpineError(
                column, f"is missing (on-demand family {family.name} reads it)", present
            )
    rows = len(frame)
    request = {
        name: (kind, frame[name].reset_index(drop=True))
        for name, kind in function.request_types.items()
    }
    inputs = {
        column: (types.get(column, FeatureType.FLOAT64), frame[column].reset_index(drop=True))
        for column in function.input_columns
    }
    return function.apply(prepare(family.name, request, inputs, rows))


def _column_of(key: str) -> str:
    return input_column(key) if ":" in key else key


def output_column(family: str, feature: str) -> str:
    return f"{family}{SEPARATOR}{feature}"


def add_on_demand_columns(
    frame: Any,
    families: Sequence[tuple[FeatureFamily, Sequence[str]]],
    input_types: Mapping[str, FeatureType],
    drop: Sequence[str] = (),
) -> Any:
    """``frame`` (pandas or Spark) plus ``{family}__{feature}`` for each family's features.

    ``drop`` names columns to remove afterwards (inputs fetched only for the functions).
    """
    if hasattr(frame, "sparkSession"):
        return _add_spark(frame, families, dict(input_types), list(drop))
    out = frame.copy()
    for family, features in families:
        values = apply_on_demand(family, out, input_types)
        for feature in features:
            out[output_column(family.name, feature)] = values[feature].set_axis(out.index)
    return out.drop(columns=[c for c in drop if c in out.columns])


def _add_spark(
    frame: Any,
    families: Sequence[tuple[FeatureFamily, Sequence[str]]],
    input_types: dict[str, FeatureType],
    drop: list[str],
) -> Any:
    for family, _ in families:  # fail on the driver, with the spine's columns, not in a task
        missing = [
            c
            for c in [f.name for f in family.request] + [input_column(r) for r in family.inputs]
            if c not in frame.columns
        ]
        if missing:
            raise SpineError(
                missing[0],
                f"is missing (on-demand family {family.name} reads it)",
                tuple(frame.columns),
            )
    new = [
        f"`{output_column(family.name, name)}` {_SPARK_TYPES[family.feature(name).dtype]}"
        for family, features in families
        for name in features
    ]
    schema = ", ".join(
        [f"`{field.name}` {field.dataType.simpleString()}" for field in frame.schema.fields] + new
    )
    definitions = [(family.to_dict(), list(features)) for family, features in families]

    def compute(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # Runs in the Python workers: rebuild and compile once per partition.
        built = [(FeatureFamily.from_dict(data), features) for data, features in definitions]
        functions = [(family, OnDemandFunction(family), features) for family, features in built]
        for batch in batches:
            out = batch.reset_index(drop=True)
            for family, function, features in functions:
                values = apply_on_demand(family, out, input_types, function=function)
                for feature in features:
                    out[output_column(family.name, feature)] = values[feature].set_axis(out.index)
            yield out

    result = frame.mapInPandas(compute, schema)
    return result.drop(*[c for c in drop if c in result.columns])
