"""Workspace settings: ``nbfeatures.yaml`` plus ``NBF_*`` environment variables.

Settings are read once, at the edge (the CLI, the server's entry point, the notebook
extension) with ``load_settings``; everything below receives a ``Settings`` value. With
nothing configured, everything lives under ``./.nbfeatures/`` on the embedded defaults:
MLflow on a SQLite file, Parquet offline store, Spark in local mode, embedded Redis.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from nbfeatures.errors import ConfigError

CONFIG_FILE = "nbfeatures.yaml"
HOME_DIR = ".nbfeatures"
ENV_PREFIX = "NBF_"


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

    Every field can be set in ``nbfeatures.yaml`` (same name) or as ``NBF_<NAME>``.
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
    # The ``monitoring:`` mapping of nbfeatures.yaml, checked when loaded; read it through
    # ``nbfeatures.monitoring.config.monitoring_config(settings)``. Not settable from the
    # environment: it is a nested mapping.
    monitoring: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)

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


_INT_FIELDS = {"preview_limit", "preview_rows"}
_BOOL_FIELDS = {"gcs_connector"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _coerce(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ConfigError(key, f"{value!r} is not true or false")
    if key in _INT_FIELDS:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"{value!r} is not a whole number") from None
        if number <= 0:
            raise ConfigError(key, "must be positive")
        return number
    if key == "workspace":
        return Path(str(value)).expanduser().resolve()
    if key == "monitoring":
        from nbfeatures.monitoring.config import parse_monitoring

        parse_monitoring(value)  # refuse a wrong key or value when the workspace is read
        return dict(value)
    if not isinstance(value, str | int | float):
        raise ConfigError(key, f"expected text, got {type(value).__name__}")
    return str(value)


def load_settings(
    workspace: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read ``nbfeatures.yaml`` in the workspace, then ``NBF_*`` variables, then ``overrides``.

    The workspace is ``workspace``, else ``$NBF_WORKSPACE``, else the current directory.
    """
    env = os.environ if environ is None else environ
    root = Path(workspace or env.get(f"{ENV_PREFIX}WORKSPACE") or Path.cwd()).expanduser()
    root = root.resolve()
    known = {f.name for f in fields(Settings)} - {"workspace"}
    values: dict[str, Any] = {}

    config_path = root / CONFIG_FILE
    if config_path.exists():
        try:
            loaded = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(str(config_path), f"is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(str(config_path), "must be a mapping of setting: value")
        for key, value in loaded.items():
            if key not in known:
                raise ConfigError(
                    f"{config_path}:{key}", f"unknown setting; known: {', '.join(sorted(known))}"
                )
            values[key] = _coerce(key, value)

    for key in known - {"monitoring"}:
        env_value = env.get(ENV_PREFIX + key.upper())
        if env_value:
            values[key] = _coerce(key, env_value)

    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(key, f"unknown setting; known: {', '.join(sorted(known))}")
        if value is not None:
            values[key] = _coerce(key, value)

    return replace(Settings(workspace=root), **values)


_active: Settings | None = None


def activate(settings: Settings) -> Settings:
    """Make ``settings`` what library calls use when they are not given any.

    The edges call this (``%nbf_config``, the CLI, a promotion notebook), so that
    ``nbfeatures.training_set(spine, ...)`` in a notebook reads the kernel's workspace.
    """
    global _active
    _active = settings
    return settings


def active_settings() -> Settings:
    """The settings an edge activated, else those of the current folder, read once."""
    global _active
    if _active is None:
        _active = load_settings()
    return _active
