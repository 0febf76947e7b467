"""Which server answers the port: ``create_server`` picks the data plane, ``Server`` is its face.

The Python server (``server``) and the native front (``native``) know nothing of each other:
the front takes its Python backend from here, so neither module imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from nbfeatures.online import OnlineStore
    from nbfeatures.serving.config import ServerConfig


class Server(Protocol):
    """What ``nbfeatures serve`` and tests use of a server, whichever data plane runs it."""

    port: int
    metrics_port: int | None
    # Called once the server refuses new calls, while in-flight ones finish.
    on_draining: Callable[[], None] | None

    def start(self) -> None: ...

    def stop(self, grace: float | None = None) -> threading.Event: ...

    def wait(self) -> None: ...


def create_server(config: ServerConfig, store: OnlineStore) -> tuple[Server, int]:
    """A server for ``store`` bound as ``config`` says (not started); returns it and its port.

    With ``data_plane: native`` the port is the native front's (``nbfeatures.serving.native``),
    with a Python server on a private unix socket behind it.
    """
    from nbfeatures.serving.server import ServingServer

    if config.data_plane == "native":
        from nbfeatures.serving.native import NativeServer

        def backend(backend_config: ServerConfig) -> ServingServer:
            return ServingServer(backend_config, store, log_marked_only=True)

        native = NativeServer(config, store, backend)
        return native, native.port
    server = ServingServer(config, store)
    return server, server.port
