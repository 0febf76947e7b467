"""Running the Python body of a ``%%feature`` cell: compile, execute, find its functions.

Shared by batch families (``engine.python_body``, which adds Spark) and on-demand families
(``on_demand.function``, which the Spark-free server runs), so both report a body's errors
the same way: as ``TransformationError`` with the line in the cell.
"""

from __future__ import annotations

import inspect
import linecache
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from nbfeatures.errors import TransformationError


def body_functions(
    family: str, body: str, filename: str, namespace: Mapping[str, Any]
) -> list[Callable[..., Any]]:
    """Execute ``body`` with ``namespace`` pre-bound; return the functions it defines itself."""
    try:
        code = compile(body, filename, "exec")
    except SyntaxError as exc:
        raise TransformationError(
            family, f"{type(exc).__name__}: {exc.msg}", exc.lineno, exc.offset
        ) from None
    # Tracebacks (and ``raised_at``) then show the body's own lines.
    linecache.cache[filename] = (len(body), None, body.splitlines(keepends=True), filename)
    scope = dict(namespace)
    try:
        exec(code, scope)
    except Exception as exc:
        raise raised_at(family, filename, exc) from exc
    # Only functions written in the body count: imported ones come from other files.
    defined = {
        id(value): value
        for value in scope.values()
        if inspect.isfunction(value) and value.__code__.co_filename == filename
    }
    return list(defined.values())


def body_line(filename: str, exc: BaseException) -> int | None:
    """The deepest line of the body in ``exc``'s traceback, if the body is in it."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def raised_at(
    family: str, filename: str, exc: BaseException, reason: str | None = None
) -> TransformationError:
    """A TransformationError for ``exc`` at the deepest line of the body in its traceback."""
    reason = reason or f"{type(exc).__name__}: {exc}".splitlines()[0]
    return TransformationError(family, f"raised {reason}", body_line(filename, exc))
