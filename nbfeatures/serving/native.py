"""The native data plane: ``nbf-serve-native`` (C++, ``native/``) in front of this package's server.

With ``data_plane: native`` the port clients call is served by the C++ binary. It answers
``GetOnlineFeatures`` for materialized families itself: the same reference grammar, live
versions cached for ``live_cache_seconds``, layouts, packed and keyed values read in one Redis
round trip per request, the same statuses, staleness, metrics, health, reflection, token and
TLS. Every other call goes, unchanged, to a Python ``ServingServer`` listening on a unix socket
in a private folder (mode 0700): listing and describing, on-demand families, request data,
calls sampled for the served-vector log (marked, so the Python server logs exactly those) and
every request the fast path would refuse or cannot read, so errors and their messages are the
Python server's own. One process uses every core (gRPC's thread pool): ``processes`` stays 1.

The binary is looked up as ``native_binary`` (setting), then ``nbf-serve-native`` on ``PATH``,
then ``native/build/`` of a source checkout (``make native`` builds it there).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nbfeatures.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from nbfeatures.online import OnlineStore
    from nbfeatures.serving.config import ServerConfig


class Backend(Protocol):
    """The Python server behind the front (``factory.create_server`` builds it)."""

    metrics_port: int | None

    def start(self, metrics_host: str | None = None) -> None: ...

    def stop(self, grace: float | None = None) -> threading.Event: ...


BINARY_NAME = "nbf-serve-native"
_SOURCE_BUILD = Path(__file__).resolve().parents[2] / "native" / "build" / BINARY_NAME
_STARTUP_SECONDS = 30.0


def find_binary(configured: str | None) -> Path:
    """The native server binary; ``ConfigError`` saying how to build it when there is none."""
    if configured:
        path = Path(configured)
        if not os.access(path, os.X_OK):
            raise ConfigError("serve.native_binary", f"{path} is not an executable file")
        return path
    found = shutil.which(BINARY_NAME)
    if found:
        return Path(found)
    if os.access(_SOURCE_BUILD, os.X_OK):
        return _SOURCE_BUILD
    raise ConfigError(
        "serve.data_plane",
        f"the native data plane needs the {BINARY_NAME} binary: run `make native` in a source "
        "checkout (it needs Debian's libgrpc++-dev, protobuf-compiler-grpc and "
        "nlohmann-json3-dev) or set native_binary",
    )


def redis_flags(url: str) -> tuple[list[str], dict[str, str]]:
    """The binary's Redis flags for ``url``, and the environment carrying the password.

    The native reader speaks plain RESP over TCP or a unix socket, with AUTH and SELECT; a TLS
    (``rediss://``) or cluster URL is refused here, naming the setting.
    """
    from redis.connection import parse_url

    if not url:
        raise ConfigError(
            "serve.redis_url", "the native data plane needs the online store's URL (NBF_REDIS_URL)"
        )
    scheme = url.partition("://")[0].lower()
    if scheme not in ("redis", "unix"):
        raise ConfigError(
            "serve.data_plane",
            f"the native data plane reads Redis over redis:// or unix:// URLs, not {scheme}://; "
            "use data_plane: python for TLS or Redis Cluster",
        )
    options: dict[str, Any] = parse_url(url)
    flags = [f"--redis-db={int(options.get('db') or 0)}"]
    if options.get("path"):
        flags.append(f"--redis-unix={options['path']}")
    else:
        flags += [
            f"--redis-host={options.get('host') or '127.0.0.1'}",
            f"--redis-port={int(options.get('port') or 6379)}",
        ]
    if options.get("username"):
        flags.append(f"--redis-username={options['username']}")
    env = {"NBF_NATIVE_REDIS_PASSWORD": str(options["password"])} if options.get("password") else {}
    return flags, env


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ScrapedRegistry:
    """``get_sample_value`` over the native server's ``/metrics``, like a prometheus registry."""

    def __init__(self, port_of: Callable[[], int | None]) -> None:
        self._port_of = port_of

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        from prometheus_client.parser import text_string_to_metric_families

        port = self._port_of()
        if port is None:
            return None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        wanted = labels or {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return float(sample.value)
        return None


class ScrapedMetrics:
    def __init__(self, server: NativeServer) -> None:
        self.registry = ScrapedRegistry(lambda: server.metrics_port)


class NativeServer:
    """The native front and its Python backend: a ``factory.Server`` like ``ServingServer``."""

    def __init__(
        self,
        config: ServerConfig,
        store: OnlineStore,
        backend: Callable[[ServerConfig], Backend],
    ) -> None:
        """``backend(config)`` builds the Python server that answers what the front passes on."""
        if config.processes != 1:
            raise ConfigError(
                "serve.processes",
                "the native data plane uses every core from one process; leave processes at 1",
            )
        self.config = config
        self.binary = find_binary(config.native_binary)
        self._redis_flags, self._redis_env = redis_flags(store.url or "")
        self._folder = tempfile.mkdtemp(prefix="nbf-native-")  # mode 0700: only this user
        self._socket = os.path.join(self._folder, "backend.sock")
        backend_config = replace(
            config,
            host=f"unix:{self._socket}",
            port=0,
            token=None,
            tls_cert=None,
            tls_key=None,
            tls_client_ca=None,
            # The backend's own endpoint only feeds the served-vector log's counters to the
            # front's /metrics; loopback, a free port.
            metrics_port=0 if config.metrics_port is not None else None,
            log_sample_rate=1.0 if config.log_sample_rate > 0 else 0.0,
            data_plane="python",
        )
        self.backend = backend(backend_config)
        self.store = store
        self.port = config.port or _free_port(config.host)
        self.metrics_port: int | None = None
        self.metrics = ScrapedMetrics(self)
        self.on_draining: Callable[[], None] | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._stopped = threading.Event()

    def _command(self) -> list[str]:
        config = self.config
        flags = [
            str(self.binary),
            f"--listen={config.host}:{self.port}",
            f"--backend=unix:{self._socket}",
            f"--prefix={self.store.prefix}",
            f"--redis-timeout={config.redis_timeout_seconds}",
            f"--live-cache={config.live_cache_seconds}",
            f"--health-interval={config.health_interval_seconds}",
            f"--grace={config.grace_seconds}",
            f"--max-entities={config.max_entities}",
            f"--max-features={config.max_features}",
            f"--max-request-bytes={config.max_request_bytes}",
            f"--log-sample-rate={config.log_sample_rate}",
            *self._redis_flags,
        ]
        if config.metrics_port is not None:
            flags.append(f"--metrics={config.host}:{config.metrics_port}")
            if self.backend.metrics_port:
                flags.append(f"--backend-metrics=127.0.0.1:{self.backend.metrics_port}")
        if config.tls_cert and config.tls_key:
            flags += [f"--tls-cert={config.tls_cert}", f"--tls-key={config.tls_key}"]
            if config.tls_client_ca:
                flags.append(f"--tls-client-ca={config.tls_client_ca}")
        return flags

    def start(self) -> None:
        self.backend.start(metrics_host="127.0.0.1")
        env = {**os.environ, **self._redis_env}
        if self.config.token:
            env["NBF_NATIVE_TOKEN"] = self.config.token
        self._proc = subprocess.Popen(
            self._command(), stdout=subprocess.PIPE, env=env, text=True, start_new_session=True
        )
        ready = self._read_ready()
        if ready is None:
            code = self._proc.wait(timeout=10) if self._proc.poll() is None else self._proc.poll()
            self.stop(grace=0)
            raise ConfigError(
                "serve.data_plane",
                f"{self.binary.name} did not start (exit code {code}); its error is above",
            )
        port, metrics_port = ready
        self.port = port
        self.metrics_port = metrics_port or None

    def _read_ready(self) -> tuple[int, int] | None:
        """The front's "ready <port> <metrics port>" line; ``None`` (front killed) without it."""
        assert self._proc is not None and self._proc.stdout is not None
        readable, _, _ = select.select([self._proc.stdout], [], [], _STARTUP_SECONDS)
        parts = self._proc.stdout.readline().split() if readable else []
        if len(parts) != 3 or parts[0] != "ready":
            if self._proc.poll() is None:
                self._proc.kill()
            return None
        return int(parts[1]), int(parts[2])

    def stop(self, grace: float | None = None) -> threading.Event:
        """SIGTERM to the front (no new calls, in-flight ones finish), then the backend."""
        if self._stopped.is_set():
            return self._stopped
        grace = self.config.grace_seconds if grace is None else grace
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout=grace + 10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self.backend.stop(grace)
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._stopped.set()
        return self._stopped

    def wait(self) -> None:
        self._stopped.wait()
