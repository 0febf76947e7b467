"""Accept only a read-only query as a SQL ``%%feature`` body, checked on Spark's parsed plan.

``spark.sql`` runs commands at once, so a body is checked before anything executes: at
preview, at registration and at every compute. The check looks at Spark's own parse of the
text (an unresolved ``LogicalPlan``), never at its words: ``BEGIN ... END`` scripts,
``FROM t INSERT OVERWRITE DIRECTORY ...`` and ``WITH a AS (...) INSERT ...`` all begin like
queries.

It is an allow-list. The statement (the root, or the body under its ``WITH``) must be a query
node, and every node of the tree, its common table expressions and the plans of its
subqueries included, must be a known read-only relational operator. A deny-list of commands
would let through whatever a newer Spark adds (scripts, ``EXECUTE IMMEDIATE``, ``CALL``,
``DECLARE``, ``TRANSFORM ... USING 'shell command'``); an unknown read-only operator is
refused by name instead, which costs a rewrite, never data.

Where the plan comes from: a classic (local or cluster) session hands its own parser over
py4j. A Spark Connect session has no JVM handle, and asking the server (``EXPLAIN``) would
analyze the statement there, which is not safe for every statement; so the body is parsed
by Spark's parser in a small local JVM started once per process (the ``pyspark`` package
ships the jars; Java 17 is needed, as for local mode).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from nbfeatures.engine.spark.spark_errors import spark_message, spark_position
from nbfeatures.errors import ConfigError, TransformationError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Read-only relational operators as Spark's parser builds them (simple class names).
_QUERY_NODES = frozenset(
    {
        "Aggregate", "CTERelationDef", "CTERelationRef", "Deduplicate", "Distinct", "Except",
        "Expand", "Filter", "Generate", "GlobalLimit", "Intersect", "Join", "LateralJoin",
        "LocalLimit", "LocalRelation", "Offset", "OneRowRelation", "PipeOperator", "Pivot",
        "Project", "Range", "RebalancePartitions", "Repartition", "RepartitionByExpression",
        "Sample", "Sort", "SubqueryAlias", "Tail", "Union", "UnresolvedHaving",
        "UnresolvedHint", "UnresolvedInlineTable", "UnresolvedQualify", "UnresolvedRelation",
        "UnresolvedSubqueryColumnAliases", "UnresolvedTVFAliases",
        "UnresolvedTableValuedFunction", "UnresolvedWith", "Unpivot", "Window", "WithCTE",
        "WithWindowDefinition",
    }
)  # fmt: skip
# Allowed below a query node only: in a relation's place `IDENTIFIER(...)` names a table;
# as the statement it may build any command.
_RELATION_ONLY = frozenset({"PlanWithUnresolvedIdentifier"})
# Functions that call any static Java method (``reflect('java.lang.System', 'setProperty',
# ...)``): a query made only of read-only operators could still change or stop the JVM with
# them. Spark prints an unresolved function call as ``'name(`` (a string literal has no
# leading quote), possibly qualified (``'system.builtin.reflect(``).
_JAVA_CALL = re.compile(r"'(?:[\w`]+\.)*`?(reflect|java_method|try_reflect)`?\(", re.IGNORECASE)
_gateway_lock = threading.Lock()
_gateway_parser: Any = None


def check_read_only(
    spark: SparkSession | None, family: str, text: str, prefix_lines: int = 0
) -> None:
    """Raise ``TransformationError`` unless ``text`` parses as one read-only query.

    ``spark`` supplies the parser (``None``: the local parser JVM). Parse errors are
    reported with Spark's message and position, less ``prefix_lines`` lines put in front of
    the cell body; nothing is run either way.
    """
    parser = _session_parser(spark) if spark is not None else None
    if parser is None:
        parser = _local_parser()
    try:
        plan = parser.parsePlan(text)
    except Exception as exc:  # ParseException, raw or converted by PySpark
        raise _parse_failure(family, exc, prefix_lines) from None
    refused = _refused_node(plan)
    if refused is not None:
        node, what = refused
        line, column = _origin(node, prefix_lines)
        raise TransformationError(family, f"{what}: refused, nothing was run", line, column)


def _refused_node(plan: Any) -> tuple[Any, str] | None:
    """The first node that makes ``plan`` more than a read-only query, and why; or None.

    One walk over the tree (subquery plans included) checks each node's operator and the
    function calls it prints.
    """
    statement = plan
    while _name(statement) == "UnresolvedWith":  # WITH ... <statement>: check the statement
        statement = statement.child()
    if _name(statement) not in _QUERY_NODES:
        return statement, _not_a_query(statement)
    stack = [plan]
    while stack:
        node = stack.pop()
        name = _name(node)
        if name not in _QUERY_NODES and name not in _RELATION_ONLY:
            return node, _not_a_query(node)
        called = _JAVA_CALL.search(str(node.simpleString(1_000_000)))
        if called is not None:
            return (
                node,
                f"the body calls {called.group(1).lower()}(), which runs any static Java method",
            )
        for nested in ("children", "innerChildren", "subqueries"):
            stack.extend(_seq(getattr(node, nested)()))
    return None


def _not_a_query(node: Any) -> str:
    return (
        "the body must be a query that only reads (SELECT ..., WITH ... SELECT ...); "
        f"Spark parses it as {_describe(_name(node))}"
    )


def _origin(node: Any, prefix_lines: int) -> tuple[int | None, int | None]:
    """The 1-based line and column in the cell body where Spark saw ``node`` begin."""
    try:
        origin = node.origin()
        line, start = origin.line(), origin.startPosition()
        if not line.isDefined() or int(line.get()) <= prefix_lines:
            return None, None
        column = int(start.get()) + 1 if start.isDefined() else None
        return int(line.get()) - prefix_lines, column
    except Exception:  # a node without an origin: the message alone still names it
        return None, None


def _describe(name: str) -> str:
    hints = {
        "CompoundBody": "a script (BEGIN ... END or several statements)",
        "InsertIntoDir": "a write to a directory (INSERT OVERWRITE DIRECTORY)",
        "InsertIntoStatement": "a write (INSERT)",
        "ScriptTransformation": "a script transform (TRANSFORM ... USING)",
    }
    return f"{name} ({hints[name]})" if name in hints else name


def _name(node: Any) -> str:
    return str(node.getClass().getSimpleName())


def _seq(values: Any) -> list[Any]:
    """A Scala ``Seq`` from py4j as a Python list."""
    return [values.apply(i) for i in range(values.length())]


def _session_parser(spark: SparkSession) -> Any:
    """A classic session's own parser (its settings, e.g. ANSI mode), or None over Connect."""
    jsession = getattr(spark, "_jsparkSession", None)
    if jsession is None:
        return None
    return jsession.sessionState().sqlParser()


def _local_parser() -> Any:
    """Spark's SQL parser in a local JVM without a Spark context, started on first use."""
    global _gateway_parser
    with _gateway_lock:
        if _gateway_parser is None:
            from nbfeatures.engine.spark.session import check_java

            check_java()
            try:
                from pyspark.java_gateway import launch_gateway

                gateway = launch_gateway()  # type: ignore[no-untyped-call]
            except Exception as exc:
                raise ConfigError(
                    "spark",
                    "checking that a SQL body is read-only needs Spark's parser locally "
                    f"(pip install 'nbfeatures[spark]' and Java 17): {exc}",
                ) from exc
            _gateway_parser = gateway.jvm.org.apache.spark.sql.execution.SparkSqlParser()
        return _gateway_parser


def _parse_failure(family: str, exc: Exception, prefix_lines: int) -> TransformationError:
    java = getattr(exc, "java_exception", None)
    detail = Exception(str(java.getMessage()) if java is not None else str(exc))
    position = spark_position(detail)
    if position is None or position[0] <= prefix_lines:
        return TransformationError(family, spark_message(detail))
    return TransformationError(
        family, spark_message(detail), position[0] - prefix_lines, position[1]
    )
