"""The entry points behind ``nbfeatures serve`` and ``nbfeatures logs flush``.

``serve`` is an edge: it receives the workspace settings and a ``ServerConfig`` read by the CLI,
connects to Redis, runs the server and stops it gracefully on SIGTERM or SIGINT (no new calls;
in-flight ones get ``grace_seconds`` to finish). ``processes`` > 1 runs that many servers on
the same port, one event loop each: the way to use more than one core. ``data_plane: native``
puts the C++ front of ``nbfeatures.serving.native`` on the port instead (one process, every
core).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from nbfeatures.errors import ConfigError

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.online import OnlineStore
    from nbfeatures.serving.config import ServerConfig
    from nbfeatures.serving.factory import Server


def open_store(settings: Settings, config: ServerConfig) -> OnlineStore:
    """The online store with short socket timeouts, so an outage fails calls fast."""
    from nbfeatures.online import OnlineStore
    from nbfeatures.online.connect import client_from_url
    from nbfeatures.serving.config import key_prefix

    prefix = key_prefix(settings, config)  # refused before anything connects
    url = settings.redis_url or OnlineStore.from_settings(settings).url or ""
    timeout = config.redis_timeout_seconds
    client = client_from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=5
    )
    return OnlineStore(client, prefix, url=url)


def serve(settings: Settings, config: ServerConfig) -> int:
    """Run a feature server until SIGTERM/SIGINT; return the exit code.

    With ``processes`` > 1 this process starts that many servers sharing the port
    (``SO_REUSEPORT``: the kernel spreads connections over them), forwards SIGTERM/SIGINT to
    them and exits 0 once every one has stopped gracefully.
    """
    if config.processes > 1 and config.data_plane == "native":
        raise ConfigError(
            "serve.processes",
            "the native data plane uses every core from one process; leave processes at 1",
        )
    if config.processes > 1:
        return _serve_processes(settings, config)
    stop = _StopSignals(_STOP_SIGNALS)
    server, store = _start(settings, config)
    metrics = f", metrics on :{server.metrics_port}" if server.metrics_port else ""
    print(
        f"nbfeatures serving on {config.host}:{server.port}{metrics}", file=sys.stderr, flush=True
    )
    stop.wait()
    print("stopping: finishing in-flight calls", file=sys.stderr, flush=True)
    server.stop()
    store.close()
    return 0


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


_SIGNAL_POLL_SECONDS = 0.5


class _StopSignals:
    """SIGTERM/SIGINT taken by the main thread, whichever thread the kernel gives them to.

    A Python handler alone runs only when the main thread runs Python: a signal the kernel
    gave to a gRPC or event-loop thread (as after the process was stopped and continued) set
    its flag while the main thread slept on an event, and the server never stopped. So the
    signals are blocked here, before any thread starts (threads inherit the mask), and taken
    with ``sigtimedwait``. The handler stays for what arrives unblocked: before ``block`` or
    after something unblocked them (``multiprocessing``'s resource tracker does, when it
    starts); the timeout of ``wait`` notices its flag.
    """

    def __init__(self, signals: set[signal.Signals], *, block: bool = True) -> None:
        self._signals = signals
        self._flag = threading.Event()
        for number in signals:
            signal.signal(number, lambda signum, frame: self._flag.set())
        if block:
            self.block()

    def block(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, self._signals)

    def wait(self, timeout: float | None = None) -> bool:
        """Whether a stop signal came, waiting up to ``timeout`` seconds (None: until one does)."""
        while not self._flag.is_set():
            step = _SIGNAL_POLL_SECONDS if timeout is None else min(timeout, _SIGNAL_POLL_SECONDS)
            if signal.sigtimedwait(self._signals, step) is not None:
                self._flag.set()
            elif timeout is not None:
                timeout -= step
                if timeout <= 0:
                    break
        return self._flag.is_set()


def _start(settings: Settings, config: ServerConfig) -> tuple[Server, OnlineStore]:
    from nbfeatures.serving.factory import create_server

    store = open_store(settings, config)
    server, _ = create_server(config, store)

    def draining() -> None:
        print("no new calls accepted", file=sys.stderr, flush=True)

    server.on_draining = draining
    server.start()
    return server, store


def _serve_one(settings: Settings, config: ServerConfig, ready: Any, index: int) -> None:
    """One of several server processes (``multiprocessing`` target): serve until SIGTERM."""
    # SIGINT reaches the whole process group from a terminal; the parent forwards it once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = _StopSignals({signal.SIGTERM})
    server, store = _start(settings, config)
    ready.put((index, server.metrics_port))
    stop.wait()
    server.stop()
    store.close()


def _serve_processes(settings: Settings, config: ServerConfig) -> int:
    import multiprocessing
    from dataclasses import replace

    if config.port == 0:
        raise ConfigError("serve.port", "several processes need a fixed port to share")
    # Blocked once the children run: starting them starts multiprocessing's resource tracker,
    # which unblocks SIGTERM and SIGINT.
    stop = _StopSignals(_STOP_SIGNALS, block=False)
    # Spawned, not forked: gRPC's core must not be copied into a child from a live parent.
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    children = []
    for index in range(config.processes):
        metrics_port = config.metrics_port
        if metrics_port:  # one metrics endpoint per process, on consecutive ports
            metrics_port += index
        own = replace(config, metrics_port=metrics_port)
        child = context.Process(
            target=_serve_one, args=(settings, own, ready, index), name=f"nbf-serve-{index}"
        )
        child.start()
        children.append(child)
    stop.block()
    stop_requested = False
    started = 0
    while started < len(children):
        if any(c.exitcode not in (None, 0) for c in children) or stop.wait(0):
            stop_requested = True
            break
        with contextlib.suppress(queue.Empty):
            ready.get(timeout=0.5)
            started += 1
    if started == len(children):
        print(
            f"nbfeatures serving on {config.host}:{config.port} with {len(children)} processes",
            file=sys.stderr,
            flush=True,
        )
    while not stop_requested and not stop.wait(0.5):
        if any(not c.is_alive() for c in children):
            break  # one died: stop the others rather than serve with fewer silently
    print("stopping: finishing in-flight calls", file=sys.stderr, flush=True)
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    for child in children:
        child.join()
    return 0 if all(c.exitcode == 0 for c in children) and started == len(children) else 1


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
