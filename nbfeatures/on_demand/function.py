"""The one function of an on-demand family: compiled once, applied to a pandas DataFrame.

Training sets, the batch ``apply_on_demand`` and the feature server all call
``OnDemandFunction.apply``, so a request-time feature is computed by the same code everywhere.
The function takes one pandas DataFrame, one row per entity row, whose columns are:

- each request field, by its name (``amount``), cast to its declared type;
- each input feature as ``{family}__{feature}`` (``user_spend__spend``), the column name
  ``training_set`` gives it, null where no value was valid (absent, or older than the ttl).

It returns a DataFrame (extra columns are ignored), a dict of columns, or a Series when the
family has a single feature. Every column is given one canonical pandas dtype before the call
and after it (``canonical``), whichever path the values came from: that is what makes batch and
serving values equal. The body runs with ``pd``/``pandas`` and ``np``/``numpy`` imported and
nothing of Spark, so the server can run it. Errors are ``TransformationError`` naming the line
of the body.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.cell_body import body_functions, raised_at
from nbfeatures.definitions import FeatureFamily, FeatureRef, FeatureType
from nbfeatures.errors import DefinitionError, SchemaError, TransformationError

if TYPE_CHECKING:
    import pandas as pd

SEPARATOR = "__"


def input_column(ref: str | FeatureRef) -> str:
    """``user_spend:spend`` (or ``user_spend@v2:spend``) -> ``user_spend__spend``."""
    parsed = ref if isinstance(ref, FeatureRef) else FeatureRef.parse(ref)
    return f"{parsed.family}{SEPARATOR}{parsed.feature}"


def pandas_module() -> Any:
    # The server has no Spark; pandas is all an on-demand function needs.
    return require("pandas", "serving")


def canonical(values: Any, dtype: FeatureType) -> pd.Series:
    """``values`` as the one pandas dtype each feature type has here (nulls kept).

    Integers and booleans take pandas' nullable dtypes (``Int64``, ``boolean``), floats are
    ``float64`` (``float32`` for float32) with NaN, strings ``object`` with None, timestamps
    UTC-aware. A value that does not fit the type raises ``ValueError``/``TypeError``.
    """
    pd = pandas_module()
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    series = series.reset_index(drop=True)
    if dtype is FeatureType.INT32:
        return series.astype("Int32")
    if dtype is FeatureType.INT64:
        return series.astype("Int64")
    if dtype is FeatureType.FLOAT32:
        return series.astype("float32")
    if dtype is FeatureType.FLOAT64:
        return series.astype("float64")
    if dtype is FeatureType.BOOL:
        return series.astype("boolean")
    if dtype is FeatureType.TIMESTAMP:
        return pd.to_datetime(series, utc=True)
    return series.astype(object).where(series.notna(), None)


class OnDemandFunction:
    """An on-demand family's compiled function; thread-safe to ``apply`` concurrently."""

    def __init__(self, family: FeatureFamily) -> None:
        if not family.on_demand:
            raise DefinitionError("on_demand", f"family {family.name!r} is not on-demand")
        self.family = family
        self.filename = f"<feature {family.name}>"
        self.function = compile_function(family.name, family.transformation.text, self.filename)
        self.request_types = {f.name: f.dtype for f in family.request}
        self.input_columns = {input_column(ref): ref for ref in family.inputs}

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The family's features for each row of ``frame`` (request fields and input columns).

        ``frame`` must already hold canonical columns (``prepare`` builds them); the result
        has one column per feature of the family, in its order, with canonical dtypes.
        """
        family = self.family.name
        rows = len(frame)
        try:
            result = self.function(frame.reset_index(drop=True).copy())
        except Exception as exc:
            raise raised(family, self.filename, exc) from exc
        return _outputs(self.family, result, rows, self.function)


def prepare(
    family: str,
    request: Mapping[str, tuple[FeatureType, Any]],
    inputs: Mapping[str, tuple[FeatureType, Any]],
    rows: int,
) -> pd.DataFrame:
    """The function's input frame: each column given as ``name -> (type, values)``.

    ``request`` columns keep their names; ``inputs`` are keyed by ``{family}__{feature}``.
    Values may be lists, NumPy or Arrow arrays or pandas Series, with nulls where absent.
    A column whose values do not fit its type raises ``SchemaError`` naming it.
    """
    pd = pandas_module()
    columns: dict[str, Any] = {}
    for name, (dtype, values) in [*request.items(), *inputs.items()]:
        if hasattr(values, "to_pandas"):  # Arrow; integers with nulls stay exact (no float)
            values = values.to_pandas(integer_object_nulls=True)
        try:
            columns[name] = canonical(values, dtype)
        except (TypeError, ValueError) as exc:
            reason = f"cannot be read as {dtype.value}: {exc}".splitlines()[0]
            raise SchemaError(family, name, reason) from None
    return pd.DataFrame(columns, index=pd.RangeIndex(rows))


def compile_function(family: str, body: str, filename: str) -> Callable[..., Any]:
    """Execute ``body`` in a fresh namespace; return the one one-parameter function it defines."""
    pd = pandas_module()
    np = require("numpy", "serving")
    text = textwrap.dedent(body)
    namespace = {
        "__name__": f"nbfeatures_on_demand_{family}",
        "pd": pd,
        "pandas": pd,
        "np": np,
        "numpy": np,
    }
    found = body_functions(family, text, filename, namespace)
    if len(found) != 1:
        names = ", ".join(f.__name__ for f in found) or "none"
        raise TransformationError(
            family,
            f"an on-demand body defines exactly one function of one DataFrame; it defines {names}",
            found[1].__code__.co_firstlineno if len(found) > 1 else None,
        )
    function = found[0]
    parameters = list(inspect.signature(function).parameters.values())
    if len(parameters) != 1 or parameters[0].kind not in (
        parameters[0].POSITIONAL_ONLY,
        parameters[0].POSITIONAL_OR_KEYWORD,
    ):
        raise TransformationError(
            family,
            f"{function.__name__} must take one parameter: a DataFrame of the request fields "
            "and the input features (family__feature columns)",
            function.__code__.co_firstlineno,
        )
    return function


def _outputs(
    family: FeatureFamily, result: Any, rows: int, function: Callable[..., Any]
) -> pd.DataFrame:
    """The returned columns named by the family's features, checked and canonical."""
    pd = pandas_module()
    line = function.__code__.co_firstlineno
    if isinstance(result, pd.Series) and len(family.features) == 1:
        result = {family.features[0].name: result}
    if isinstance(result, pd.DataFrame):
        columns: Mapping[str, Any] = {str(c): result[c] for c in result.columns}
    elif isinstance(result, Mapping):
        columns = {str(k): v for k, v in result.items()}
    else:
        raise TransformationError(
            family.name,
            f"{function.__name__} returned {type(result).__name__}, not a DataFrame or a dict "
            "of columns",
            line,
        )
    missing = [f.name for f in family.features if f.name not in columns]
    if missing:
        raise TransformationError(
            family.name,
            f"{function.__name__} returned no column {', '.join(map(repr, missing))}; "
            f"it returned: {', '.join(columns) or 'nothing'}",
            line,
        )
    out: dict[str, Any] = {}
    for feature in family.features:
        values = columns[feature.name]
        if pd.api.types.is_scalar(values):
            values = [values] * rows
        if len(values) != rows:
            raise TransformationError(
                family.name,
                f"column {feature.name!r} has {len(values)} rows for {rows} input rows; "
                "return one value per row",
                line,
            )
        try:
            out[feature.name] = canonical(values, feature.dtype)
        except (TypeError, ValueError) as exc:
            raise TransformationError(
                family.name,
                f"column {feature.name!r} cannot be read as {feature.dtype.value}: {exc}",
                line,
            ) from None
    return pd.DataFrame(out, index=pd.RangeIndex(rows))


def raised(family: str, filename: str, exc: BaseException) -> TransformationError:
    """A TransformationError for ``exc`` at the deepest line of the body in its traceback."""
    return raised_at(family, filename, exc)
