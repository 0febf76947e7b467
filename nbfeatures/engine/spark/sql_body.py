"""Run a SQL ``%%feature`` body with its sources visible under their own names.

Each source the SQL names is bound as a common table expression (``WITH transactions AS
(SELECT * FROM <source DataFrame>)``) put in front of the body on a line of its own. The
DataFrames reach Spark through ``spark.sql(query, **dataframes)``: classic Spark gives them
throwaway view names and drops them as soon as the query is analyzed; Spark Connect sends
them with the query. So no temporary view outlives the call, two families reading different
``transactions`` never see each other's, and a user's own view of that name is untouched.
Because the prefix is one line, Spark's positions map to the cell body by subtracting one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from nbfeatures._deps import require
from nbfeatures.definitions import Source
from nbfeatures.engine.spark.sources import read_source
from nbfeatures.engine.spark.spark_errors import (
    error_condition,
    message_parameters,
    spark_message,
    spark_position,
)
from nbfeatures.engine.spark.sql_guard import check_read_only
from nbfeatures.errors import NbfeaturesError, SourceError, TransformationError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Strings, comments, `quoted` identifiers and bare words, in the order Spark's lexer sees them.
_TOKEN = re.compile(
    r"""(?P<skip>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|--[^\n]*|/\*.*?\*/)
      | `(?P<quoted>(?:``|[^`])*)`
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)""",
    re.DOTALL | re.VERBOSE,
)
_LEADING_SPACE = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)
_WITH = re.compile(r"with(\s+recursive)?\b", re.IGNORECASE)


def referenced_names(sql: str) -> set[str]:
    """Lowercased names used as bare relation-like identifiers in ``sql``.

    Words in strings and comments, function names (``sum(``), qualified parts (``db.t``,
    ``t.col``) are skipped. The result may hold a column that shares a source's name, never
    misses a source that the SQL reads.
    """
    names: set[str] = set()
    for match in _TOKEN.finditer(sql):
        if match.group("skip") is not None:
            continue
        quoted = match.group("quoted")
        name = quoted.replace("``", "`") if quoted is not None else match.group("word")
        before = sql[: match.start()].rstrip()[-1:]
        after = sql[match.end() :].lstrip()[:1]
        if before != "." and after not in ("(", "."):
            names.add(name.lower())
    return names


def run_sql(
    spark: SparkSession,
    family: str,
    body: str,
    sources: Mapping[str, Source],
    limit: int | None,
) -> tuple[DataFrame, tuple[Source, ...]]:
    """Analyze ``body`` over the sources it names; return the DataFrame and those sources."""
    errors = require("pyspark.errors", "spark")
    # Nothing may run before the check: not even reading a source.
    check_read_only(spark, family, body)
    names = referenced_names(body)
    used = tuple(source for name, source in sources.items() if name in names)
    query = _with_sources(body, [s.name for s in used]) if used else body
    if used:  # the text Spark parses, its placeholders as the names they stand for
        placeholders = {f"nbf_source_{i}": f"`nbf_source_{i}`" for i in range(len(used))}
        check_read_only(spark, family, query.format(**placeholders), prefix_lines=1)
    frames = {f"nbf_source_{i}": read_source(spark, s, limit) for i, s in enumerate(used)}
    try:
        df = spark.sql(query, None, **frames)
        df.schema  # noqa: B018  Spark Connect analyzes lazily; fail here, not at first use.
    except errors.AnalysisException as exc:
        raise _failure(family, exc, 1 if used else 0, sources) from None
    return df, used


def _with_sources(body: str, names: list[str]) -> str:
    """``body`` with one leading line binding each source name to its DataFrame placeholder."""
    bindings = ", ".join(
        f"`{name}` AS (SELECT * FROM {{nbf_source_{i}}})" for i, name in enumerate(names)
    )
    # spark.sql formats the query with str.format: the body's own braces must stay literal.
    escaped = body.replace("{", "{{").replace("}", "}}")
    start = _LEADING_SPACE.match(escaped)
    offset = start.end() if start else 0
    own_with = _WITH.match(escaped, offset)
    if own_with is None:
        return f"WITH {bindings}\n{escaped}"
    # The body has its own WITH: join the lists, blanking its keyword so columns do not move.
    keyword = "WITH RECURSIVE" if own_with.group(1) else "WITH"
    blank = re.sub(r"\S", " ", own_with.group(0))
    return f"{keyword} {bindings},\n{escaped[:offset]}{blank}{escaped[own_with.end() :]}"


def _failure(
    family: str, exc: Exception, prefix_lines: int, sources: Mapping[str, Source]
) -> NbfeaturesError:
    if error_condition(exc).startswith("TABLE_OR_VIEW_NOT_FOUND"):
        name = message_parameters(exc).get("relationName", "").replace("`", "")
        registered = ", ".join(sorted(sources)) or "none"
        return SourceError(name or "?", f"unknown source; registered sources: {registered}")
    position = spark_position(exc)
    if position is None or position[0] <= prefix_lines:
        return TransformationError(family, spark_message(exc))
    return TransformationError(family, spark_message(exc), position[0] - prefix_lines, position[1])
