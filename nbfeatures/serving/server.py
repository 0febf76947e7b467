"""The Python gRPC feature server (``factory.create_server`` builds it), ``start`` runs it.

One ``grpc.aio`` server on one asyncio event loop (a thread of its own, so ``start`` and
``stop`` are plain calls), reading Redis with ``redis.asyncio``: a request costs its Python
work and nothing else, where a thread pool made every request contend for the GIL with the
others. Blocking work, which is rare (on-demand functions, listing families, first sight of
an on-demand definition), runs on a small thread pool (``workers`` threads).

Errors of the library become status codes here and nowhere else:

    InvalidRequest, a limit passed,     INVALID_ARGUMENT
    request bytes that do not parse
    FeatureNotFound                     NOT_FOUND (naming every unknown family and feature)
    Redis unreachable                   UNAVAILABLE, and health turns NOT_SERVING until a ping
                                        from the health watcher succeeds again
    deadline passed while reading       DEADLINE_EXCEEDED (the read is abandoned)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent import futures
from typing import TYPE_CHECKING, Any, cast

import grpc
import redis
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from nbfeatures.errors import (
    ConfigError,
    FeatureNotFound,
    InvalidRequest,
    NbfeaturesError,
    ServingError,
)
from nbfeatures.serving import convert
from nbfeatures.serving.auth import BearerTokenInterceptor, server_credentials
from nbfeatures.serving.lookup import (
    AsyncFeatureLookup,
    FamilyResult,
    FeatureLookup,
    OnlineQuery,
    ReadPlan,
    Status,
    micros_to_datetime,
    now_micros,
)
from nbfeatures.serving.metrics import ServingMetrics
from nbfeatures.serving.on_demand import OnDemandServing
from nbfeatures.serving.redis_pipe import open_pipe
from nbfeatures.serving.vector_log import VectorLogger

if TYPE_CHECKING:
    import redis.asyncio

    from nbfeatures.on_demand.publish import OnDemandLayout
    from nbfeatures.online import OnlineStore
    from nbfeatures.serving.config import ServerConfig

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, ConnectionError)
_STATUSES = tuple(Status)
_DEADLINE_MARGIN = 0.05
# Stopping: the longest wait for calls gRPC holds to reach a handler, and the time given to
# calls cut off at the end of the grace period to send their status.
_CATCH_UP_SECONDS = 1.0
_ABORT_SECONDS = 1.0
_PRESENT, _STALE = int(Status.PRESENT), int(Status.STALE)
# Metadata the native front adds to the calls it sampled for the served-vector log.
_LOG_MARK = "nbf-log-sample"


class _Aborted(Exception):
    """A status code and message to end the call with."""


def async_client(store: OnlineStore, timeout: float) -> redis.asyncio.Redis[Any]:
    """A ``redis.asyncio`` client to the store's Redis (same URL: TLS, AUTH, cluster)."""
    import redis.asyncio

    from nbfeatures.online.connect import _CLUSTER_SCHEMES

    if not store.url:
        raise ConfigError("serve.redis_url", "the server needs the online store's URL")
    scheme, _, rest = store.url.partition("://")
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if scheme.lower() in _CLUSTER_SCHEMES:
        plain = f"{_CLUSTER_SCHEMES[scheme.lower()]}://{rest}"
        cluster: Any = redis.asyncio.RedisCluster.from_url(plain, **options)
        return cast("redis.asyncio.Redis[Any]", cluster)  # the commands the lookup uses
    return redis.asyncio.Redis.from_url(store.url, **options)


class FeatureServicer:
    """Implements FeatureService; every method goes through ``convert`` for its messages."""

    def __init__(self, server: ServingServer) -> None:
        self._server = server
        self._config = server.config
        self._lookup = server.lookup
        self._metrics = server.metrics
        self._on_demand: dict[tuple[str, int], OnDemandLayout | None] = {}
        # Metric children cached: ``labels()`` takes a lock and builds a key on every call.
        self._calls: dict[tuple[str, str], Any] = {}
        self._latency: dict[str, Any] = {}
        self._values: dict[tuple[str, int], Any] = {}
        self._family_seconds: dict[str, Any] = {}
        self._staleness: dict[str, Any] = {}
        self._in_flight = self._metrics.in_flight

    # -- every call --------------------------------------------------------------------------

    async def _serve(
        self, method: str, context: grpc.aio.ServicerContext, work: Awaitable[Any]
    ) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        self._in_flight.inc()
        task = asyncio.current_task()
        server = self._server
        server.arrivals += 1
        handlers = server.handlers
        if task is not None:
            handlers.add(task)
        try:
            try:
                if server.gate is not None:  # stopping: see ``ServingServer._catch_up``
                    await server.gate.wait()
                return await work
            except Exception as exc:
                code, message = await self._status_of(exc)
            await context.abort(code, message)
        except asyncio.CancelledError:
            if server.grace_passed is not None:
                # Stopping, and the grace period ran out before this call finished: say so,
                # rather than the bare CANCELLED gRPC gives the calls it cuts off.
                code = grpc.StatusCode.UNAVAILABLE
                await context.abort(
                    code,
                    f"the server is stopping and its grace period ({server.grace_passed:g} s)"
                    " ended before this call finished; retry on another server",
                )
            # The client went away or the deadline passed; grpc cancels the handler. A client
            # cancels at its deadline a moment before the server's copy of it (set when the
            # call arrived) expires, hence the margin.
            code = grpc.StatusCode.CANCELLED
            remaining = context.time_remaining()
            if remaining is not None and remaining <= _DEADLINE_MARGIN:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
            raise
        finally:
            handlers.discard(task)
            self._in_flight.dec()
            self._account_call(method, code, time.perf_counter() - started)

    async def _status_of(self, exc: Exception) -> tuple[grpc.StatusCode, str]:
        if isinstance(exc, NbfeaturesError):
            # A ServingError here names the request, not a server: the client puts its own
            # "feature server ADDRESS:" in front, so only the reason is sent.
            return _code_of(exc), exc.reason if isinstance(exc, ServingError) else str(exc)
        if isinstance(exc, _REDIS_DOWN):
            self._metrics.redis_errors.inc()
            await self._server.set_health(False)
            return grpc.StatusCode.UNAVAILABLE, f"the online store cannot be reached: {exc}"
        if isinstance(exc, redis.RedisError):
            self._metrics.redis_errors.inc()
            return grpc.StatusCode.INTERNAL, f"the online store failed: {exc}"
        if isinstance(exc, _Aborted):
            code: grpc.StatusCode = exc.args[0]
            return code, str(exc.args[1])
        raise exc

    def _account_call(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        calls = self._calls.get((method, code.name))
        if calls is None:
            calls = self._calls[(method, code.name)] = self._metrics.requests.labels(
                method, code.name
            )
        calls.inc()
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = self._metrics.request_seconds.labels(method)
        latency.observe(seconds)

    # -- GetOnlineFeatures -------------------------------------------------------------------

    async def GetOnlineFeatures(self, data: bytes, context: grpc.aio.ServicerContext) -> Any:
        return await self._serve("GetOnlineFeatures", context, self._get(data, context))

    async def _get(self, data: bytes, context: grpc.aio.ServicerContext) -> Any:
        config = self._config
        size = len(data)
        if size > config.max_request_bytes:
            raise InvalidRequest(
                "request", f"{size} bytes is over the limit of {config.max_request_bytes}"
            )
        query = convert.request_to_query(convert.parse_request("GetOnlineFeatures", data))
        if query.row_count > config.max_entities:
            raise InvalidRequest(
                "request",
                f"{query.row_count} entity rows is over the limit of {config.max_entities}",
            )
        if len(query.refs) > config.max_features:
            raise InvalidRequest(
                "request", f"{len(query.refs)} features is over the limit of {config.max_features}"
            )
        now_us = now_micros()
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise _Aborted(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before reading")
        # When the deadline passes, gRPC cancels this handler's task: the pending Redis read is
        # abandoned (on the pipelined connection its reply is dropped when it arrives; a
        # redis.asyncio connection is dropped) and ``_serve`` records DEADLINE_EXCEEDED.
        results = await self._read(query, now_us)
        served = sum(len(r.columns) for r in results)
        if served > config.max_features:
            raise InvalidRequest(
                "request", f"{served} features (wildcards expanded) is over {config.max_features}"
            )
        self._account(results, now_us)
        if self._server.vector_log is not None and self._logs(context):
            self._server.vector_log.offer(query, results, micros_to_datetime(now_us))
        return convert.results_to_response(query, results, now_us)

    def _logs(self, context: grpc.aio.ServicerContext) -> bool:
        """Whether this call may be logged: behind the native front, only calls it sampled."""
        if not self._server.log_marked_only:
            return True
        return any(key == _LOG_MARK for key, _ in context.invocation_metadata() or ())

    async def _read(self, query: OnlineQuery, now_us: int) -> list[FamilyResult]:
        plans = await self._lookup.resolve(query.refs)
        if len(plans) == 1:
            return [await self._read_family(query, plans[0], now_us)]
        # Several families are read at once: on the pipelined connection their MGETs leave
        # together and share a round trip, where reading them in turn paid one each.
        reads = [self._read_family(query, plan, now_us) for plan in plans]
        return list(await asyncio.gather(*reads))

    async def _read_family(self, query: OnlineQuery, plan: ReadPlan, now_us: int) -> FamilyResult:
        started = time.perf_counter()
        definition = await self._definition(plan)
        if definition is None:
            one = await self._lookup.read_one(query, plan, now_us)
        else:
            one = await self._server.blocking(
                self._server.on_demand.compute, query, plan.layout, definition,
                list(plan.features), plan.pinned, micros_to_datetime(now_us),
            )  # fmt: skip
        family = plan.layout.family
        seconds = self._family_seconds.get(family)
        if seconds is None:
            seconds = self._family_seconds[family] = self._metrics.family_read_seconds.labels(
                family
            )
        seconds.observe(time.perf_counter() - started)
        return one

    async def _definition(self, plan: ReadPlan) -> OnDemandLayout | None:
        """The on-demand definition of the plan's version (cached; looked up once, blocking)."""
        key = (plan.layout.family, plan.layout.version)
        if key in self._on_demand:
            return self._on_demand[key]
        found: OnDemandLayout | None = await self._server.blocking(
            self._server.on_demand.definition, plan.layout
        )
        self._on_demand[key] = found
        return found

    def _account(self, results: list[FamilyResult], now_us: int) -> None:
        """Values by status and staleness: one ``bincount`` per family, no loop over values."""
        for result in results:
            family = result.family
            width = len(result.columns)
            counts = result.status_counts()
            for status in _STATUSES:
                if counts[status]:
                    child = self._values.get((family, status))
                    if child is None:
                        child = self._values[(family, status)] = self._metrics.values.labels(
                            family, status.name
                        )
                    child.inc(counts[status] * width)
            if counts[_PRESENT] or counts[_STALE]:
                newest = result.newest_event_us()
                if newest is not None:
                    gauge = self._staleness.get(family)
                    if gauge is None:
                        gauge = self._staleness[family] = self._metrics.staleness.labels(family)
                    gauge.set((now_us - newest) / 1e6)

    # -- listing -----------------------------------------------------------------------------

    async def ListFeatures(self, data: bytes, context: grpc.aio.ServicerContext) -> Any:
        return await self._serve("ListFeatures", context, self._list(data))

    async def _list(self, data: bytes) -> Any:
        convert.parse_request("ListFeatures", data)  # no fields; malformed bytes are refused
        return await self._server.blocking(self._server.list_features)

    async def DescribeFamily(self, data: bytes, context: grpc.aio.ServicerContext) -> Any:
        return await self._serve("DescribeFamily", context, self._describe(data))

    async def _describe(self, data: bytes) -> Any:
        request = convert.parse_request("DescribeFamily", data)
        family, version = convert.describe_request_fields(request)
        return await self._server.blocking(self._server.describe_family, family, version)


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

    def __init__(
        self, config: ServerConfig, store: OnlineStore, *, log_marked_only: bool = False
    ) -> None:
        self.config = config
        self.store = store
        # Behind the native front: log only the calls it marked as sampled.
        self.log_marked_only = log_marked_only
        self.sync_lookup = FeatureLookup(store, config.live_cache_seconds)
        self.on_demand = OnDemandServing(self.sync_lookup)
        self.metrics = ServingMetrics()
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
        self.metrics_port: int | None = None
        # Called on the loop once the server refuses new calls, while in-flight ones finish.
        self.on_draining: Callable[[], None] | None = None
        self._versions: dict[str, tuple[list[int], float]] = {}
        self._executor = futures.ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix="nbf-blocking"
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="nbf-serving", daemon=True
        )
        self._thread.start()
        self._watcher: asyncio.Task[None] | None = None
        # The tasks answering calls now (so a stop can wait for them), how many calls have
        # reached a handler, and the stop's state: while ``gate`` is set new handlers wait at
        # it; ``grace_passed`` is the grace period, once it is over.
        self.handlers: set[asyncio.Task[Any]] = set()
        self.arrivals = 0
        self.gate: asyncio.Event | None = None
        self.grace_passed: float | None = None
        self._stopped = threading.Event()
        try:
            self.port: int = self._on_loop(self._build())
        except BaseException:
            self._close_loop()
            raise

    def _on_loop(self, work: Awaitable[Any]) -> Any:
        async def run() -> Any:
            return await work

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    async def _build(self) -> int:
        config = self.config
        self.redis = async_client(self.store, config.redis_timeout_seconds)
        self.pipe = open_pipe(self.store.url or "", config.redis_timeout_seconds)
        self.lookup = AsyncFeatureLookup(
            self.store, self.redis, config.live_cache_seconds, self.pipe
        )
        self.health = health_async.HealthServicer()
        interceptors = [BearerTokenInterceptor(config.token)] if config.token else []
        # gRPC's own cap sits above ours so an oversized request gets our clear message.
        grpc_cap = config.max_request_bytes * 2 + 1024 * 1024
        self.grpc = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", grpc_cap),
                ("grpc.so_reuseport", 1 if config.processes > 1 else 0),
            ],
        )
        convert.add_feature_service(self.grpc, FeatureServicer(self))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            (convert.SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc
        )
        # A "unix:/path" host is a unix socket (the native front's private backend).
        unix = config.host.startswith("unix:")
        address = config.host if unix else f"{config.host}:{config.port}"
        if config.tls_cert and config.tls_key:
            credentials = server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca)
            return int(self.grpc.add_secure_port(address, credentials))
        return int(self.grpc.add_insecure_port(address))

    async def blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work (sync Redis, user functions) on the thread pool, not the loop."""
        return await self._loop.run_in_executor(self._executor, function, *args)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, metrics_host: str | None = None) -> None:
        """Serve; metrics on ``metrics_host`` (default: the server's host) when configured."""
        if self.config.metrics_port is not None:
            host = metrics_host or self.config.host
            self.metrics_port = self.metrics.serve(host, self.config.metrics_port)
        self._on_loop(self._start())

    async def _start(self) -> None:
        await self.set_health(await self._redis_answers())
        await self.grpc.start()
        self._watcher = asyncio.create_task(self._watch_redis())

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop accepting calls, let in-flight ones finish within ``grace`` seconds."""
        if not self._stopped.is_set():
            try:
                self._on_loop(self._stop(self.config.grace_seconds if grace is None else grace))
            finally:
                self._close_loop()
                self._executor.shutdown(wait=False)
                if self.vector_log is not None:
                    self.vector_log.close()
                self.metrics.stop()
                self._stopped.set()
        return self._stopped

    async def _stop(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        ends = loop.time() + grace
        await self.health.enter_graceful_shutdown()  # NOT_SERVING: balancers look elsewhere
        if self._watcher is not None:
            self._watcher.cancel()
        await self._catch_up(min(_CATCH_UP_SECONDS, grace / 2))
        # gRPC's stop shuts the listener and refuses new calls at once; it cancels the calls
        # still running when its grace ends, so ours (below) ends first, to answer them.
        stopping = asyncio.ensure_future(self.grpc.stop(grace + _ABORT_SECONDS))
        await asyncio.sleep(0)
        if self.on_draining is not None:
            self.on_draining()
        handlers = set(self.handlers)
        if handlers:
            _, late = await asyncio.wait(handlers, timeout=max(ends - loop.time(), 0.0))
            if late:
                self.grace_passed = grace
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=_ABORT_SECONDS)
        await stopping
        if self.pipe is not None:
            self.pipe.close()
        # aclose: redis-py 5+; the installed type stubs predate it.
        await self.redis.aclose()  # type: ignore[attr-defined]

    async def _catch_up(self, limit: float) -> None:
        """Take every call gRPC holds for this server before its stop refuses new ones.

        A call that has arrived waits in gRPC's core until the event loop asks for it (one at
        a time per method); the core cancels those still waiting when the server stops, so a
        busy loop lost calls it had received (CANCELLED a few milliseconds after SIGTERM).
        Here handlers that start wait at a gate instead of working, which leaves the loop free
        to take the waiting calls, until none has arrived for 50 ms (or ``limit`` seconds,
        under a stream of new calls that health NOT_SERVING has not yet turned away).
        """
        loop = asyncio.get_running_loop()
        self.gate = asyncio.Event()
        try:
            ends = loop.time() + limit
            seen, quiet = self.arrivals, 0
            while quiet < 10 and loop.time() < ends:
                await asyncio.sleep(0.005)
                quiet = quiet + 1 if self.arrivals == seen else 0
                seen = self.arrivals
        finally:
            self.gate.set()
            self.gate = None

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def wait(self) -> None:
        self._stopped.wait()

    # -- Redis health ----------------------------------------------------------------------

    async def _redis_answers(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (redis.RedisError, OSError):
            self.metrics.redis_errors.inc()
            return False

    async def set_health(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", convert.SERVICE_NAME):
            await self.health.set(service, status)

    async def _watch_redis(self) -> None:
        """Ping Redis on an interval; health follows, so recovery needs no restart."""
        while True:
            await asyncio.sleep(self.config.health_interval_seconds)
            await self.set_health(await self._redis_answers())

    # -- blocking calls (thread pool) --------------------------------------------------------

    def list_features(self) -> Any:
        items = []
        for family, live in sorted(self.store.live_versions().items()):
            layout = self.sync_lookup.layout(family, live)
            if layout is not None:
                items.append((layout, live, self.versions_held(family)))
        return convert.list_response(items)

    def describe_family(self, family: str, version: int | None) -> Any:
        live = self.store.live_version(family)
        wanted = version or live
        layout = self.sync_lookup.layout(family, wanted) if wanted else None
        if layout is None:
            raise FeatureNotFound(family, version, "not in the online store")
        return convert.describe_response(layout, live, self.versions_held(family))

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
