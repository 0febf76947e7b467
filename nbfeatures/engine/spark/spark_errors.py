"""Turn Spark's errors into short, located messages for notebook users.

Spark's messages carry an error class, a SQLSTATE, sometimes a whole logical plan and a
position in the SQL text. Users need the first sentence and the position; the rest is noise.
"""

from __future__ import annotations

import re

_ERROR_CLASS = re.compile(r"^\[[A-Z0-9_.]+\]\s*")
_SQLSTATE = re.compile(r"\s*SQLSTATE: \w+.*$")
# Parse errors say "(line 3, pos 5)", analysis errors "; line 3 pos 5;". Positions are 0-based.
_POSITION = re.compile(r"\bline (\d+),? pos (\d+)")


def spark_message(exc: BaseException) -> str:
    """The useful first line of a Spark error, without its error class, SQLSTATE and plan."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    first = _SQLSTATE.sub("", _ERROR_CLASS.sub("", first)).strip()
    return first or type(exc).__name__


def spark_position(exc: BaseException) -> tuple[int, int] | None:
    """The 1-based (line, column) in the SQL text that Spark points at, if it gives one."""
    match = _POSITION.search(str(exc))
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)) + 1


def error_condition(exc: BaseException) -> str:
    """Spark's error class (``TABLE_OR_VIEW_NOT_FOUND``...), or ``""`` when it has none."""
    get = getattr(exc, "getCondition", None)
    condition = get() if callable(get) else None
    return condition if isinstance(condition, str) else ""


def message_parameters(exc: BaseException) -> dict[str, str]:
    """The named values Spark fills into its message (``relationName``...), if any."""
    get = getattr(exc, "getMessageParameters", None)
    params = get() if callable(get) else None
    return dict(params) if isinstance(params, dict) else {}
