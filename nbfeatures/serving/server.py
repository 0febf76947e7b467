"""The gRPC feature server: ``create_server(config, store)`` builds it, ``start`` runs it.

Errors of the library become status codes here and nowhere else:

    InvalidRequest, a limit passed      INVALID_ARGUMENT
    FeatureNotFound                     NOT_FOUND (naming every unknown family and feature)
    Redis unreachable                   UNAVAILABLE, and health turns NOT_SERVING until a ping
                                        from the health watcher succeeds again
    deadline passed while reading       DEADLINE_EXCEEDED
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import grpc
import redis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from nbfeatures.errors import FeatureNotFound, InvalidRequest, NbfeaturesError
from nbfeatures.serving import convert
from nbfeatures.serving.auth import BearerTokenInterceptor, server_credentials
from nbfeatures.serving.lookup import FeatureLookup, Status
from nbfeatures.serving.metrics import ServingMetrics
from nbfeatures.serving.on_demand import OnDemandServing
from nbfeatures.serving.vector_log import VectorLogger

if TYPE_CHECKING:
    from nbfeatures.online import OnlineStore
    from nbfeatures.serving.config import ServerConfig

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, ConnectionError)


class _Aborted(Exception):
    """Raised by ``_abort`` so the handler's accounting sees the status code."""


class FeatureServicer:
    """Implements FeatureService; every method goes through ``convert`` for its messages."""

    def __init__(self, server: ServingServer) -> None:
        self._server = server
        self._config = server.config
        self._lookup = server.lookup
        self._on_demand = server.on_demand
        self._metrics = server.metrics

    @contextmanager
    def _call(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            yield
        except NbfeaturesError as exc:
            code = _code_of(exc)
            context.abort(code, str(exc))
        except _REDIS_DOWN as exc:
            code = grpc.StatusCode.UNAVAILABLE
            self._metrics.redis_errors.inc()
            self._server.mark_unavailable()
            context.abort(code, f"the online store cannot be reached: {exc}")
        except redis.RedisError as exc:
            code = grpc.StatusCode.INTERNAL
            self._metrics.redis_errors.inc()
            context.abort(code, f"the online store failed: {exc}")
        except _Aborted as exc:
            code = exc.args[0]
            context.abort(code, exc.args[1])
        finally:
            self._metrics.requests.labels(method, code.name).inc()
            self._metrics.request_seconds.labels(method).observe(time.perf_counter() - started)

    def GetOnlineFeatures(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._call("GetOnlineFeatures", context):
            config = self._config
            size = convert.request_size(request)
            if size > config.max_request_bytes:
                raise InvalidRequest(
                    "request", f"{size} bytes is over the limit of {config.max_request_bytes}"
                )
            query = convert.request_to_query(request)
            if query.row_count > config.max_entities:
                raise InvalidRequest(
                    "request",
                    f"{query.row_count} entity rows is over the limit of {config.max_entities}",
                )
            if len(query.refs) > config.max_features:
                raise InvalidRequest(
                    "request",
                    f"{len(query.refs)} features is over the limit of {config.max_features}",
                )
            now = dt.datetime.now(dt.UTC)
            _check_deadline(context)
            results = []
            for layout, features, pinned in self._lookup.resolve(query.refs):
                _check_deadline(context)
                started = time.perf_counter()
                definition = self._on_demand.definition(layout)
                if definition is not None:
                    one = self._on_demand.compute(query, layout, definition, features, pinned, now)
                else:
                    one = self._lookup.read_one(query, layout, features, pinned, now)
                elapsed = time.perf_counter() - started
                self._metrics.family_read_seconds.labels(layout.family).observe(elapsed)
                results.append(one)
            served = sum(len(r.columns) for r in results)
            if served > config.max_features:
                raise InvalidRequest(
                    "request",
                    f"{served} features (wildcards expanded) is over {config.max_features}",
                )
            self._account(results, now)
            if self._server.vector_log is not None:
                self._server.vector_log.offer(query, results, now)
            return convert.results_to_response(query, results, now)

    def _account(self, results: list[Any], now: dt.datetime) -> None:
        now_us = (now - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
        for result in results:
            width = len(result.columns)
            for status in Status:
                count = int((result.statuses == status).sum()) * width
                if count:
                    self._metrics.values.labels(result.family, status.name).inc(count)
            newest = result.newest_event_us()
            if newest is not None:
                self._metrics.staleness.labels(result.family).set((now_us - newest) / 1e6)

    def ListFeatures(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._call("ListFeatures", context):
            store = self._lookup.store
            items = []
            for family, live in sorted(store.live_versions().items()):
                layout = self._lookup.layout(family, live)
                if layout is not None:
                    items.append((layout, live, self._server.versions_held(family)))
            return convert.list_response(items)

    def DescribeFamily(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._call("DescribeFamily", context):
            family, version = convert.describe_request_fields(request)
            live = self._lookup.store.live_version(family)
            wanted = version or live
            layout = self._lookup.layout(family, wanted) if wanted else None
            if layout is None:
                raise FeatureNotFound(family, version, "not in the online store")
            return convert.describe_response(layout, live, self._server.versions_held(family))


def _check_deadline(context: grpc.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise _Aborted(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed while reading")


def _code_of(exc: NbfeaturesError) -> grpc.StatusCode:
    from nbfeatures.errors import OnlineStoreUnavailable

    if isinstance(exc, InvalidRequest):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, FeatureNotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, OnlineStoreUnavailable):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


class ServingServer:
    """A gRPC server with health, reflection, metrics, the vector log and a Redis watcher."""

    def __init__(self, config: ServerConfig, store: OnlineStore) -> None:
        self.config = config
        self.store = store
        self.lookup = FeatureLookup(store, config.live_cache_seconds)
        self.on_demand = OnDemandServing(self.lookup)
        self.metrics = ServingMetrics()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.vector_log: VectorLogger | None = None
        if config.log_sample_rate > 0:
            self.vector_log = VectorLogger(
                store.client,
                config.log_stream,
                sample_rate=config.log_sample_rate,
                max_entries=config.log_max_entries,
                queue_size=config.log_queue_size,
                metrics=self.metrics,
            )
        interceptors = [BearerTokenInterceptor(config.token)] if config.token else []
        # gRPC's own cap sits above ours so an oversized request gets our clear message.
        grpc_cap = config.max_request_bytes * 2 + 1024 * 1024
        self.grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="nbf-rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", grpc_cap),
                ("grpc.so_reuseport", 0),
            ],
        )
        convert.add_feature_service(self.grpc, FeatureServicer(self))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            (convert.SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc
        )
        address = f"{config.host}:{config.port}"
        if config.tls_cert and config.tls_key:
            credentials = server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca)
            self.port = self.grpc.add_secure_port(address, credentials)
        else:
            self.port = self.grpc.add_insecure_port(address)
        self.metrics_port: int | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch_redis, name="nbf-health", daemon=True)
        self._versions: dict[str, tuple[list[int], float]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.config.host, self.config.metrics_port)
        self._set_health(self._redis_answers())
        self.grpc.start()
        self._watcher.start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop accepting calls, let in-flight ones finish within ``grace`` seconds."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        done: threading.Event = self.grpc.stop(
            self.config.grace_seconds if grace is None else grace
        )
        done.wait()
        if self.vector_log is not None:
            self.vector_log.close()
        self.metrics.stop()
        return done

    def wait(self) -> None:
        self.grpc.wait_for_termination()

    # -- Redis health ----------------------------------------------------------------------

    def _redis_answers(self) -> bool:
        try:
            return bool(self.store.client.ping())
        except (redis.RedisError, OSError):
            self.metrics.redis_errors.inc()
            return False

    def _set_health(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", convert.SERVICE_NAME):
            self.health.set(service, status)

    def mark_unavailable(self) -> None:
        self._set_health(False)

    def _watch_redis(self) -> None:
        """Ping Redis on an interval; health follows, so recovery needs no restart."""
        while not self._stopping.wait(self.config.health_interval_seconds):
            self._set_health(self._redis_answers())

    # -- what is held ----------------------------------------------------------------------

    def versions_held(self, family: str) -> list[int]:
        """Versions with a layout in Redis (a ``SCAN``, cached like live versions)."""
        cached = self._versions.get(family)
        now = time.monotonic()
        if cached is not None and now - cached[1] < self.config.live_cache_seconds:
            return cached[0]
        pattern = self.store.keys.layout(family, 0)[: -len("0")] + "*"
        found = sorted(
            int(key.decode().rsplit(":v", 1)[1] if isinstance(key, bytes) else key.rsplit(":v")[1])
            for key in self.store.client.scan_iter(match=pattern, count=1000)
        )
        self._versions[family] = (found, now)
        return found


def create_server(config: ServerConfig, store: OnlineStore) -> tuple[ServingServer, int]:
    """A server for ``store`` bound as ``config`` says (not started); returns it and its port."""
    server = ServingServer(config, store)
    return server, server.port
