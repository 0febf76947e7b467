"""Workspace settings: ``nbfeatures.yaml`` plus ``NBF_*`` environment variables.

Settings are read once, at the edge, with ``load_settings``: the CLI, the server's entry
point, the notebook extension and magics, a promotion notebook. Everything below receives a
``Settings`` value and reads no environment variable itself (the GCS emulator and Spark's
worker interpreter come in through ``Settings`` too). With nothing configured, everything lives
under ``./.nbfeatures/`` on the embedded defaults: MLflow on a SQLite file, Parquet offline
store, Spark in local mode, embedded Redis, online keys under ``nbf:``.

The rule for library calls given no settings: ``active_settings()`` returns what an edge
activated (``activate``), else ``None``; it never reads the environment. The public entry
points that take ``settings=None`` (``compute``, ``build_join_index``, ``training_set``)
then call ``activate(load_settings())`` themselves, visibly: that call is their edge.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from nbfeatures.errors import ConfigError
from nbfeatures.settings_fields import RECORDS_GIVEN, load_fields

CONFIG_FILE = "nbfeatures.yaml"
HOME_DIR = ".nbfeatures"
ENV_PREFIX = "NBF_"
DEFAULT_KEY_PREFIX = "nbf:"
# Settings whose usual variable belongs to another tool: read from it when neither the file
# nor ``NBF_<NAME>`` sets them, so nothing below the edge looks at the environment for them.
FALLBACK_VARIABLES = {
    "gcs_emulator": "STORAGE_EMULATOR_HOST",  # Google's client libraries
    "spark_python": "PYSPARK_PYTHON",
}


def _parse_monitoring(value: Any) -> dict[str, Any]:
    """The ``monitoring:`` mapping, refused now if a key or value is wrong."""
    from nbfeatures.monitoring.config import parse_monitoring

    parse_monitoring(value)
    return dict(value)


def _default_spark_memory() -> str:
    """A quarter of the machine's memory, between 1 and 8 GiB: room for the kernel too."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2g"
    gib = max(1, min(8, total // (4 * 1024**3)))
    return f"{gib}g"


@dataclass(frozen=True)
class Settings:
    """Where a workspace keeps its catalog, offline data and online store, and how to run Spark.

    Every field can be set in ``nbfeatures.yaml`` (same name) or as ``NBF_<NAME>``
    (``monitoring`` in the file only).
    """

    workspace: Path
    owner: str | None = None
    catalog_uri: str | None = None
    artifact_root: str | None = None
    offline_root: str | None = None
    spark_master: str = "local[2]"
    spark_memory: str = ""
    redis_url: str | None = None
    preview_limit: int = 100_000
    preview_rows: int = 20
    registered_model_prefix: str = "nbf."
    # Spark has Google's GCS connector: it writes and reads gs:// offline sets itself (a
    # local session loads the connector jar of the ``gcs`` extra). Otherwise pyarrow does.
    gcs_connector: bool = False
    # A GCS emulator's URL (tests, local development): pyarrow and Spark's connector talk to
    # it anonymously. Unset, ``load_settings`` takes ``$STORAGE_EMULATOR_HOST``.
    gcs_emulator: str | None = None
    # The interpreter of local Spark's Python workers (``$PYSPARK_PYTHON``; else this one).
    spark_python: str | None = None
    # Where the online store's keys live in Redis: promotion writes, and the server reads,
    # under this prefix, so several workspaces can share one Redis.
    key_prefix: str = DEFAULT_KEY_PREFIX
    # The ``monitoring:`` mapping of nbfeatures.yaml, checked when loaded; read it through
    # ``nbfeatures.monitoring.config.monitoring_config(settings)``. Not settable from the
    # environment: it is a nested mapping.
    monitoring: Mapping[str, Any] | None = field(
        default=None, hash=False, compare=False, metadata={"parse": _parse_monitoring}
    )
    # The names set in the file, the environment or overrides rather than defaulted, so a
    # check can tell a workspace that chose ``key_prefix: nbf:`` from one that said nothing.
    # Filled by ``load_settings``; not a setting itself.
    given: frozenset[str] = field(
        default=frozenset(),
        hash=False,
        compare=False,
        repr=False,
        metadata={RECORDS_GIVEN: True},
    )

    def __post_init__(self) -> None:
        for name in ("preview_limit", "preview_rows"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, "must be positive")
        if not self.key_prefix:
            raise ConfigError("key_prefix", "must not be empty")

    @property
    def home(self) -> Path:
        return self.workspace / HOME_DIR

    @property
    def catalog(self) -> str:
        """The MLflow tracking URI; the embedded default is a SQLite file in the workspace."""
        return self.catalog_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifacts(self) -> str:
        """Where MLflow writes artifacts for experiments this workspace creates."""
        return self.artifact_root or (self.home / "artifacts").as_uri()

    @property
    def offline(self) -> str:
        return self.offline_root or str(self.home / "offline")

    @property
    def spark_driver_memory(self) -> str:
        return self.spark_memory or _default_spark_memory()

    @property
    def uses_spark_connect(self) -> bool:
        return self.spark_master.startswith("sc://")


def load_settings(
    workspace: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read ``nbfeatures.yaml`` in the workspace, then ``NBF_*`` variables, then ``overrides``.

    The workspace is ``workspace``, else ``$NBF_WORKSPACE``, else the current directory.
    Unset by any of those, ``gcs_emulator`` and ``spark_python`` take the variables of
    ``FALLBACK_VARIABLES``.
    """
    env = os.environ if environ is None else environ
    root = Path(workspace or env.get(f"{ENV_PREFIX}WORKSPACE") or Path.cwd()).expanduser()
    root = root.resolve()
    loaded: Any = {}
    config_path = root / CONFIG_FILE
    if config_path.exists():
        try:
            loaded = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(str(config_path), f"is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(str(config_path), "must be a mapping of setting: value")
    settings = load_fields(
        Settings,
        label=str,
        env_prefix=ENV_PREFIX,
        environ=env,
        file_values=loaded,
        file_name=str(config_path),
        overrides=overrides,
        fixed={"workspace": root},
    )
    fallbacks: dict[str, Any] = {
        name: env[variable]
        for name, variable in FALLBACK_VARIABLES.items()
        if getattr(settings, name) is None and env.get(variable)
    }
    return replace(settings, **fallbacks) if fallbacks else settings


_active: Settings | None = None


def activate(settings: Settings) -> Settings:
    """Make ``settings`` what library calls use when they are not given any.

    The edges call this (``%nbf_config``, the CLI, a promotion notebook), so that
    ``nbfeatures.training_set(spine, ...)`` in a notebook reads the kernel's workspace.
    """
    global _active
    _active = settings
    return settings


def active_settings() -> Settings | None:
    """The settings an edge activated, if any; never read from the environment here."""
    return _active
