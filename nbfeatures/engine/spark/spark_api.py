"""The right ``functions`` module and ``Window`` class for a local or a Connect session.

``pyspark.sql.functions`` builds local (classic) columns unless the whole process is in
Connect mode, so a process holding a local session and a Connect session at once (a notebook
talking to a cluster, the test suite) must pick the modules that match the DataFrame.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def is_connect(obj: Any) -> bool:
    """True for Spark Connect sessions and DataFrames."""
    return type(obj).__module__.startswith("pyspark.sql.connect")


def functions(obj: Any) -> ModuleType:
    """``pyspark.sql.functions`` for ``obj``'s kind of session."""
    if is_connect(obj):
        from pyspark.sql.connect import functions as connect_functions

        return connect_functions
    from pyspark.sql import functions as classic_functions

    return classic_functions


def window(obj: Any) -> Any:
    """The ``Window`` class for ``obj``'s kind of session."""
    if is_connect(obj):
        from pyspark.sql.connect.window import Window as ConnectWindow

        return ConnectWindow
    from pyspark.sql import Window

    return Window
