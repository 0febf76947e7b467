"""Run a Python ``%%feature`` body: one function from source DataFrames to a DataFrame.

The body runs in a fresh namespace with ``pd``/``pandas`` and ``F`` (``pyspark.sql.functions``)
imported. Its one function's parameter names are the sources it reads. Annotating a parameter
or the return with ``pd.DataFrame`` asks for pandas: the sources are collected to the driver
and the result converted back, so pandas bodies suit previews and modest data only.

The body is compiled under the file name ``<feature NAME>`` and put in ``linecache``, so a
traceback shows the body's own lines and errors can name the line of the body that failed.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.cell_body import body_functions, raised_at
from nbfeatures.definitions import Source
from nbfeatures.engine.spark.sources import read_source
from nbfeatures.engine.spark.spark_errors import spark_message
from nbfeatures.errors import SourceError, TransformationError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_PANDAS_NAMES = {"pd.DataFrame", "pandas.DataFrame"}


def run_python(
    spark: SparkSession,
    family: str,
    body: str,
    sources: Mapping[str, Source],
    limit: int | None,
) -> tuple[DataFrame, tuple[Source, ...]]:
    """Define the body's function, call it on the sources it names, return a Spark DataFrame."""
    pd = require("pandas", "spark")
    sql = require("pyspark.sql", "spark")
    errors = require("pyspark.errors", "spark")
    filename = f"<feature {family}>"
    function = _define(family, textwrap.dedent(body), filename)
    used = _parameters(family, function, sources)
    wants_pandas = _wants_pandas(function)
    inputs: dict[str, Any] = {}
    for source in used:
        frame = read_source(spark, source, limit)
        inputs[source.name] = frame.toPandas() if wants_pandas else frame
    try:
        result = function(**inputs)
    except Exception as exc:
        raise _raised(family, filename, exc) from exc
    if isinstance(result, pd.DataFrame):
        return _from_pandas(spark, family, result), used
    if not isinstance(result, sql.DataFrame):
        raise TransformationError(
            family,
            f"{function.__name__} returned {type(result).__name__}, not a DataFrame",
            function.__code__.co_firstlineno,
        )
    try:
        result.schema  # noqa: B018  Spark Connect analyzes lazily; fail here, not at first use.
    except errors.AnalysisException as exc:
        raise TransformationError(family, spark_message(exc)) from None
    return result, used


def _define(family: str, body: str, filename: str) -> Callable[..., Any]:
    """Execute the body and return the one function it defines."""
    functions_module = require("pyspark.sql.functions", "spark")
    pd = require("pandas", "spark")
    namespace = {
        "__name__": f"nbfeatures_feature_{family}",
        "pd": pd,
        "pandas": pd,
        "F": functions_module,
    }
    functions = body_functions(family, body, filename, namespace)
    if not functions:
        raise TransformationError(
            family,
            "the body defines no function; define one function whose parameters are the "
            "sources it reads and which returns a DataFrame",
        )
    if len(functions) > 1:
        names = ", ".join(f.__name__ for f in functions)
        raise TransformationError(
            family,
            f"the body defines {len(functions)} functions: {names}; define exactly one",
            functions[1].__code__.co_firstlineno,
        )
    return functions[0]


def _parameters(
    family: str, function: Callable[..., Any], sources: Mapping[str, Source]
) -> tuple[Source, ...]:
    """The sources named by the function's parameters, in parameter order."""
    used: list[Source] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TransformationError(
                family,
                f"{function.__name__} takes *{parameter.name}; name each source it reads "
                "as a parameter instead",
                function.__code__.co_firstlineno,
            )
        if parameter.name not in sources:
            registered = ", ".join(sorted(sources)) or "none"
            raise SourceError(parameter.name, f"unknown source; registered sources: {registered}")
        used.append(sources[parameter.name])
    return tuple(used)


def _wants_pandas(function: Callable[..., Any]) -> bool:
    """True when a parameter or the return is annotated as a pandas DataFrame."""
    pd = require("pandas", "spark")
    for annotation in function.__annotations__.values():
        if annotation is pd.DataFrame:
            return True
        if isinstance(annotation, str) and annotation.replace(" ", "") in _PANDAS_NAMES:
            return True
    return False


def _from_pandas(spark: SparkSession, family: str, frame: Any) -> DataFrame:
    """A Spark DataFrame of the returned pandas one, a named index kept as columns."""
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    try:
        return spark.createDataFrame(frame)
    except Exception as exc:
        raise TransformationError(
            family,
            f"the returned pandas DataFrame cannot be converted to Spark: {spark_message(exc)}",
        ) from exc


def _raised(family: str, filename: str, exc: BaseException) -> TransformationError:
    """As ``raised_at``, with Spark's own errors trimmed to their useful message."""
    pyspark_errors = require("pyspark.errors", "spark")
    if isinstance(exc, pyspark_errors.PySparkException):
        return raised_at(family, filename, exc, spark_message(exc))
    return raised_at(family, filename, exc)
