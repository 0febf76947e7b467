"""The one place an engine is chosen: ``ENGINES``, the ``auto`` rule and ``choose_engine``.

``auto`` picks the in-process Arrow engine where Spark's executors would be this machine's
processes anyway (a local master) and the input is stored Parquet pyarrow reads; else Spark.
The purpose refines it, on purpose:

- ``training`` (a pandas spine): Arrow also needs the stored rows to read, counted from the
  manifests (``stored_rows``), to be at most ``ARROW_MAX_ROWS``; a Spark Connect session or
  settings naming one are never local; a Spark spine is joined by the engine named, ``auto``
  meaning Spark. An unknown name is a ``DefinitionError``.
- ``materialize``: the source must be a Parquet path pyarrow reads (local, ``file://``,
  ``gs://``); a DataFrame is Spark's (``arrow`` with one is refused), an unknown master
  (``None``) counts as local. An unknown name is a ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from nbfeatures.engine.arrow.join_index import MAX_ROWS
from nbfeatures.errors import ConfigError, DefinitionError

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.engine.port import Engine

Purpose = Literal["training", "materialize"]
ENGINES = ("auto", "spark", "arrow")
# ``auto`` joins in this process up to this many stored feature rows in all (about 1 GB per
# 10M rows of ten float64 features, plus sort arrays); beyond it, on Spark. Versions up to it
# get a join index when computed.
ARROW_MAX_ROWS = MAX_ROWS


def check_engine(name: str, purpose: Purpose) -> None:
    """Refuse a name not in ``ENGINES``, with each caller's error."""
    if name in ENGINES:
        return
    if purpose == "training":
        raise DefinitionError("engine", f"is {name!r}; choose one of {', '.join(ENGINES)}")
    raise ConfigError("engine", f"{name!r} is not one of {', '.join(ENGINES)}")


def readable_by_arrow(uri: str) -> bool:
    """Whether pyarrow reads ``uri`` here: a local path, ``file://`` or ``gs://``."""
    return "://" not in uri or uri.startswith(("file://", "gs://"))


def is_local(master: str | None) -> bool:
    """A local Spark master; ``None`` (not known) counts as local, ``""`` (Connect) does not."""
    return master is None or master.startswith("local")


def master_of(purpose: Purpose, spark: Any, settings: Settings | None) -> str | None:
    """The Spark master ``auto`` looks at: the session's, else the settings'."""
    from nbfeatures.engine.spark.latest import session_master

    if purpose == "materialize":
        if spark is not None:
            return session_master(spark)
        return settings.spark_master if settings is not None else None
    from nbfeatures.engine.spark.spark_api import is_connect

    if spark is not None:
        return "" if is_connect(spark) else str(spark.sparkContext.master)
    if settings is None:
        return None
    return "" if settings.uses_spark_connect else settings.spark_master


def engine_name(
    name: str,
    purpose: Purpose,
    *,
    master: str | None,
    source: Any = None,
    stored_rows: Callable[[], int | None] | None = None,
) -> str:
    """``"spark"`` or ``"arrow"`` for ``name``: the ``auto`` rule (see the module docstring).

    ``source``: for ``materialize`` the path or DataFrame to write; for ``training`` a Spark
    spine, or ``None`` for a pandas one. ``stored_rows`` counts what a pandas spine's join
    would read (``None``: nothing stored, so Spark raises its usual error).
    """
    check_engine(name, purpose)
    if purpose == "materialize":
        if not isinstance(source, str):
            if name == "arrow":
                raise ConfigError(
                    "engine",
                    "the arrow engine reads the offline Parquet; pass its path, not a DataFrame",
                )
            return "spark"
        if name != "auto":
            return name
        return "arrow" if readable_by_arrow(source) and is_local(master) else "spark"
    if name != "auto":
        return name
    if source is not None or master is None or not is_local(master):
        return "spark"
    rows = stored_rows() if stored_rows is not None else None
    return "arrow" if rows is not None and rows <= ARROW_MAX_ROWS else "spark"


def create(name: str, settings: Settings | None = None, spark: Any = None) -> Engine:
    """The engine called ``name`` (``"spark"`` or ``"arrow"``)."""
    if name == "arrow":
        from nbfeatures.engine.arrow.adapter import ArrowEngine

        return ArrowEngine(settings.gcs_emulator if settings is not None else None)
    if name == "spark":
        from nbfeatures.engine.spark.adapter import SparkEngine

        return SparkEngine(settings, spark)
    raise ConfigError("engine", f"{name!r} is not one of spark, arrow")


def choose_engine(
    name: str,
    settings: Settings | None = None,
    *,
    purpose: Purpose,
    spark: Any = None,
    source: Any = None,
    master: str | None = None,
    stored_rows: Callable[[], int | None] | None = None,
) -> Engine:
    """The engine for ``name`` (``auto``, ``spark`` or ``arrow``) and ``purpose``.

    ``master``, when given, is the one ``auto`` looks at; else ``master_of``.
    """
    if master is None:
        master = master_of(purpose, spark, settings)
    chosen = engine_name(name, purpose, master=master, source=source, stored_rows=stored_rows)
    return create(chosen, settings, spark)
