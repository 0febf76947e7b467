"""The entry points behind ``nbfeatures serve`` and ``nbfeatures logs flush``.

``serve`` is an edge: it receives the workspace settings and a ``ServerConfig`` read by the CLI,
connects to Redis, runs the server and stops it gracefully on SIGTERM or SIGINT (no new calls;
in-flight ones get ``grace_seconds`` to finish).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.online import OnlineStore
    from nbfeatures.serving.config import ServerConfig


def open_store(settings: Settings, config: ServerConfig) -> OnlineStore:
    """The online store with short socket timeouts, so an outage fails calls fast."""
    from nbfeatures.online import OnlineStore
    from nbfeatures.online.connect import client_from_url

    url = settings.redis_url or OnlineStore.from_settings(settings).url or ""
    timeout = config.redis_timeout_seconds
    client = client_from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=5
    )
    return OnlineStore(client, config.key_prefix, url=url)


def serve(settings: Settings, config: ServerConfig) -> int:
    """Run a feature server until SIGTERM/SIGINT; return the exit code."""
    from nbfeatures.serving.server import create_server

    store = open_store(settings, config)
    server, port = create_server(config, store)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    metrics = f", metrics on :{server.metrics_port}" if server.metrics_port else ""
    print(f"nbfeatures serving on {config.host}:{port}{metrics}", file=sys.stderr, flush=True)
    stop_requested.wait()
    print("stopping: finishing in-flight calls", file=sys.stderr, flush=True)
    server.stop()
    store.close()
    return 0


def flush_logs(settings: Settings, config: ServerConfig) -> int:
    """Move the served-vector stream into Parquet under the offline store; print a summary."""
    from nbfeatures.serving.vector_log import flush_served_log

    store = open_store(settings, config)
    try:
        moved, files = flush_served_log(store.client, config.log_stream, settings.offline)
    finally:
        store.close()
    where = f"{settings.offline}/_served"
    print(f"{moved} served vectors written to {len(files)} file(s) under {where}")
    return 0
