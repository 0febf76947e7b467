"""One MLflow client per catalog: created lazily, quiet, fail-fast, errors translated.

MLflow's HTTP client reads its retry and timeout settings from environment variables at
request time (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``..._TIMEOUT``, ``..._BACKOFF_FACTOR``);
its defaults retry for minutes, which makes a closed port look like a hang. For http(s)
tracking URIs this module sets those variables to the catalog's own, small values only
while one of the catalog's calls runs (under a process-wide lock) and restores the previous
values afterwards, so nothing is left behind in ``os.environ``. Other MLflow users in the
same process that run at the very same moment on another thread would see the catalog's
values for that call; that is the price of MLflow offering no per-client setting.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from nbfeatures._deps import require
from nbfeatures.errors import CatalogUnavailable, first_line

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")
_ENV_LOCK = threading.RLock()
_QUIET_LOGGERS = ("mlflow", "alembic")


def redact(uri: str) -> str:
    """The URI without a password, fit for error messages and logs."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _quiet_mlflow() -> None:
    """MLflow and its migrations log at INFO; keep notebooks quiet unless someone opted in.

    MLflow sets its own logger to INFO on import unless ``MLFLOW_LOGGING_LEVEL`` is set, so
    that variable is what opting in means here.
    """
    if os.environ.get("MLFLOW_LOGGING_LEVEL"):
        return
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def _scoped_environ(values: dict[str, str]) -> Iterator[None]:
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the store could not be reached (not that it refused a request)."""
    message = str(exc)
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    kind = type(exc).__module__ + "." + type(exc).__name__
    if kind.startswith("requests.") or kind.startswith("urllib3."):
        return True
    if kind.startswith("sqlalchemy.") and "OperationalError" in kind:
        return True
    return message.startswith("API request to")


class Connection:
    """A lazily created ``MlflowClient`` and the rules for calling it."""

    def __init__(self, uri: str, timeout: float, retries: int) -> None:
        self.uri = uri
        self.timeout = timeout
        self.retries = retries
        self.is_remote = uri.startswith(("http://", "https://"))
        self._client: MlflowClient | None = None
        self._http_env = {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout))),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        }

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> MlflowClient:
        # MLflow 3 sends usage telemetry unless told not to. A catalog should not phone home,
        # and where the network is closed each attempt stalls a registration for seconds.
        # Anyone who wants it sets MLFLOW_DISABLE_TELEMETRY=false themselves.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        mlflow = require("mlflow", "catalog")
        _quiet_mlflow()
        if self.is_remote:
            self._probe_health()
        try:
            with self.scope():
                client: MlflowClient = mlflow.MlflowClient(
                    tracking_uri=self.uri, registry_uri=self.uri
                )
                # The first call creates or migrates an embedded database: fail here, not later.
                client.search_experiments(max_results=1)
        except CatalogUnavailable:
            raise
        except Exception as exc:
            # Whatever stops the store from opening (a bad path, an unknown scheme, a
            # database that refuses us) makes the catalog unusable, not the caller's request.
            raise CatalogUnavailable(redact(self.uri), first_line(exc)) from exc
        return client

    def _probe_health(self) -> None:
        """A plain GET with a short timeout, so a closed port fails in well under a second."""
        url = self.uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise CatalogUnavailable(redact(self.uri), f"health check answered {exc.code}") from exc
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CatalogUnavailable(redact(self.uri), str(reason)) from exc
        if status != 200:
            raise CatalogUnavailable(redact(self.uri), f"health check answered {status}")

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Run MLflow calls with this catalog's HTTP limits; translate unreachability."""
        try:
            if self.is_remote:
                with _scoped_environ(self._http_env):
                    yield
            else:
                yield
        except CatalogUnavailable:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                raise CatalogUnavailable(redact(self.uri), first_line(exc)) from exc
            raise

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` inside ``scope()``."""
        with self.scope():
            return fn(*args, **kwargs)

    def search_all(self, fn: Callable[..., Any], **kwargs: Any) -> list[Any]:
        """Every page of an MLflow search (``search_model_versions`` and the like)."""
        results: list[Any] = []
        token: str | None = None
        while True:
            page = self.call(fn, page_token=token, **kwargs)
            results.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return results


def ensure_experiment(
    connection: Connection, name: str, artifact_location: str | None
) -> str | None:
    """The id of experiment ``name``, created with ``artifact_location`` if it does not exist.

    A deleted experiment is restored (its name cannot be reused otherwise). Another process
    creating it at the same moment is fine: its experiment is used. None only if the
    experiment could be neither created nor found.
    """
    client = connection.client
    experiment = connection.call(client.get_experiment_by_name, name)
    if experiment is None:
        try:
            return str(
                connection.call(client.create_experiment, name, artifact_location=artifact_location)
            )
        except Exception as exc:
            if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = connection.call(client.get_experiment_by_name, name)
    if experiment is None:
        return None
    if experiment.lifecycle_stage == "deleted":
        connection.call(client.restore_experiment, experiment.experiment_id)
    return str(experiment.experiment_id)


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code (``RESOURCE_ALREADY_EXISTS``...) of an ``MlflowException``."""
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) else None
