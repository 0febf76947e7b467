"""Build an on-demand ``FeatureFamily`` from a ``%%feature --on-demand`` cell.

The body is compiled and called once on an empty frame holding the typed request fields and
input columns: a body that does not parse, names a column that is not there or raises fails
here with the line, before anything is registered. The features are the columns the function
returns (other than its input columns), typed from the result's dtypes, as batch families take
theirs from the Spark schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from nbfeatures.definitions import (
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Transformation,
    TransformationKind,
    check_name,
    parse_refs,
)
from nbfeatures.errors import DefinitionError, SchemaError
from nbfeatures.on_demand.function import (
    OnDemandFunction,
    compile_function,
    input_column,
    pandas_module,
    prepare,
    raised,
)

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_TIMESTAMP = "event_timestamp"


def define_on_demand(
    name: str,
    body: str,
    *,
    entity_key: str,
    inputs: Mapping[str, FeatureType | str],
    request: Mapping[str, FeatureType | str],
    owner: str,
    timestamp: str = DEFAULT_TIMESTAMP,
    description: str = "",
    tags: Iterable[str] = (),
) -> FeatureFamily:
    """The on-demand family of ``body``; ``inputs`` maps ``family:feature`` to its type.

    Raises ``TransformationError`` (with the body's line) for a body that does not parse,
    defines no single one-parameter function, raises, or returns no usable columns;
    ``DefinitionError`` for bad names or references.
    """
    from nbfeatures.engine.spark.transform import entity_name

    check_name(name, "name")
    refs = [str(ref) for ref in parse_refs(inputs)]
    input_types = {ref: FeatureType(kind) for ref, kind in zip(refs, inputs.values(), strict=True)}
    request_types = {check_name(k, "request"): FeatureType(v) for k, v in request.items()}
    filename = f"<feature {name}>"
    function = compile_function(name, body, filename)
    empty = prepare(
        name,
        {field: (kind, []) for field, kind in request_types.items()},
        {input_column(ref): (kind, []) for ref, kind in input_types.items()},
        0,
    )
    try:
        result = function(empty.copy())
    except Exception as exc:
        raise raised(name, filename, exc) from exc
    features = _infer_features(name, result, set(empty.columns), function.__name__)
    family = FeatureFamily(
        name=name,
        entity=Entity(name=entity_name(entity_key), join_key=entity_key),
        timestamp=timestamp,
        features=features,
        transformation=Transformation(kind=TransformationKind.PYTHON, text=body),
        owner=owner,
        description=description,
        tags=tuple(tags),
        on_demand=True,
        inputs=tuple(refs),
        request=tuple(Feature(n, t) for n, t in request_types.items()),
    )
    OnDemandFunction(family).apply(empty)  # the same checks every later call makes
    return family


def _infer_features(
    family: str, result: Any, input_columns: set[str], function: str
) -> tuple[Feature, ...]:
    pd = pandas_module()
    if isinstance(result, pd.Series):
        if result.name is None:
            raise SchemaError(
                family, "(unnamed)", f"{function} returned an unnamed Series; name it or "
                "return a DataFrame of the features",
            )  # fmt: skip
        result = result.to_frame()
    if isinstance(result, Mapping):
        result = pd.DataFrame({str(k): v for k, v in result.items()})
    if not isinstance(result, pd.DataFrame):
        raise SchemaError(
            family,
            "(result)",
            f"{function} returned {type(result).__name__}, not a DataFrame or dict of columns",
        )
    features = []
    for column in result.columns:
        if str(column) in input_columns:
            continue  # df.assign(...) returns its inputs too; they are not features
        try:
            features.append(Feature(str(column), _feature_type(family, result[column])))
        except DefinitionError as exc:
            raise SchemaError(family, str(column), exc.reason) from None
    if not features:
        raise SchemaError(family, "(result)", f"{function} returned no feature columns")
    return tuple(features)


def _feature_type(family: str, values: pd.Series) -> FeatureType:
    """The feature type of a result column's pandas dtype."""
    pd = pandas_module()
    dtype = values.dtype
    kind = pd.api.types
    if kind.is_bool_dtype(dtype):
        return FeatureType.BOOL
    if kind.is_integer_dtype(dtype):
        return FeatureType.INT64 if dtype.itemsize > 4 else FeatureType.INT32
    if kind.is_float_dtype(dtype):
        return FeatureType.FLOAT32 if dtype.itemsize == 4 else FeatureType.FLOAT64
    if kind.is_datetime64_any_dtype(dtype):
        return FeatureType.TIMESTAMP
    if kind.is_string_dtype(dtype) or kind.is_object_dtype(dtype):
        return FeatureType.STRING
    raise SchemaError(
        family,
        str(values.name),
        f"dtype {dtype} is not supported; features are ints, floats, bools, strings or timestamps",
    )
