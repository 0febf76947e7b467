"""What a feature server needs beyond the workspace settings: ports, limits, security, logging.

Read once at the edge (``nbfeatures serve --config serving.yaml``); every field can also be set
as ``NBF_SERVE_<NAME>`` in the environment, which wins over the file. See
``serving/example.yaml`` for a commented example. Loaded by ``nbfeatures.settings_fields``, as
the workspace settings are; this module imports no pandas, Spark, MLflow or IPython.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from nbfeatures.errors import ConfigError
from nbfeatures.settings_fields import load_fields

if TYPE_CHECKING:
    from nbfeatures.config import Settings

ENV_PREFIX = "NBF_SERVE_"


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one feature server; the defaults suit a laptop."""

    host: str = "127.0.0.1"
    port: int = 6566
    # Threads for blocking work (on-demand functions, listing); requests run on one event loop.
    workers: int = 4
    # Server processes sharing the port (SO_REUSEPORT, Linux), each with its own event loop.
    processes: int = 1
    # Prometheus endpoint on its own port; None turns it off, 0 picks a free port.
    metrics_port: int | None = 9464
    max_entities: int = 1000
    max_features: int = 200
    max_request_bytes: int = 4 * 1024 * 1024
    # How long a family's live version is trusted before it is read again from Redis.
    live_cache_seconds: float = 0.5
    # How often Redis is pinged to drive the health status.
    health_interval_seconds: float = 0.5
    redis_timeout_seconds: float = 2.0
    grace_seconds: float = 10.0
    # A bearer token every call except health checks must carry (``authorization`` metadata).
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    # With a client CA, clients must present a certificate it signed (mutual TLS).
    tls_client_ca: str | None = None
    # Share of requests whose vectors go to the served-vector log (0 turns it off).
    log_sample_rate: float = 0.0
    log_stream: str = "nbf:served"
    log_max_entries: int = 1_000_000
    log_queue_size: int = 10_000
    # The online store's key prefix; None (the default): the workspace's ``key_prefix``.
    key_prefix: str | None = None
    # "python": this package's grpc.aio server; "native": the C++ front (nbfeatures.serving
    # .native) answering materialized reads, with the Python server behind it for the rest.
    data_plane: str = "python"
    # The native front's binary; by default nbf-serve-native on PATH or native/build/.
    native_binary: str | None = None

    def __post_init__(self) -> None:
        for name in ("workers", "processes", "max_entities", "max_features", "max_request_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"serve.{name}", "must be positive")
        if self.data_plane not in ("python", "native"):
            raise ConfigError(
                "serve.data_plane", f"{self.data_plane!r} is not one of: python, native"
            )
        if not 0.0 <= self.log_sample_rate <= 1.0:
            raise ConfigError("serve.log_sample_rate", "must be between 0 and 1")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("serve.tls_cert", "tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("serve.tls_client_ca", "client certificates need tls_cert too")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def load_server_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ServerConfig:
    """The YAML file at ``path`` (if any), then ``NBF_SERVE_*`` variables, then ``overrides``."""
    env = os.environ if environ is None else environ
    loaded: Any = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError("serve.config", f"cannot read {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError("serve.config", f"{path} is not a mapping")
    return load_fields(
        ServerConfig,
        label=lambda name: f"serve.{name}",
        env_prefix=ENV_PREFIX,
        environ=env,
        file_values=loaded,
        file_name=str(path),
        overrides=overrides,
    )


def key_prefix(settings: Settings, config: ServerConfig) -> str:
    """The prefix the server reads keys under: the workspace's, unless the server's config
    names one. Both named (the workspace set ``key_prefix``, even to the default) and
    different: refused, since the server would read keys that promotion never wrote."""
    from nbfeatures.config import DEFAULT_KEY_PREFIX

    if config.key_prefix is None or config.key_prefix == settings.key_prefix:
        return settings.key_prefix
    if "key_prefix" in settings.given or settings.key_prefix != DEFAULT_KEY_PREFIX:
        raise ConfigError(
            "serve.key_prefix",
            f"{config.key_prefix!r} differs from the workspace's key_prefix "
            f"{settings.key_prefix!r}; promotion writes under the workspace's, so drop the "
            "server's or make them equal",
        )
    return config.key_prefix
