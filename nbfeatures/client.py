"""``FeatureClient``: what a model uses to read features from ``nbfeatures serve``.

    with FeatureClient("features.internal:6566", token=TOKEN, tls="ca.pem") as client:
    # mutual TLS: FeatureClient(target, tls="ca.pem", client_cert="me.pem", client_key="me.key")
        row = client.get_online_features({"user_id": [42, 7]}, ["user_stats:*"])
        row["user_stats:clicks_7d"]          # [12, None]  (None: not found or null)
        row.statuses["user_stats:clicks_7d"] # ["PRESENT", "NOT_FOUND"]
        frame = row.to_pandas()

The channel is opened once and reused. Calls failing with UNAVAILABLE, or CANCELLED by the
server (a server stopping cancels the calls it had received but not yet started), are retried
with exponential backoff while the deadline (``timeout``) allows: every call only reads. gRPC
errors become the library's: NOT_FOUND -> ``FeatureNotFound``, INVALID_ARGUMENT ->
``InvalidRequest``, UNAUTHENTICATED -> ``Unauthenticated``, UNAVAILABLE, DEADLINE_EXCEEDED and
CANCELLED -> ``ServingUnavailable``, others -> ``ServingError``.
``AsyncFeatureClient`` offers the same calls for asyncio.
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nbfeatures._deps import require
from nbfeatures.errors import (
    ConfigError,
    FeatureNotFound,
    InvalidRequest,
    ServingError,
    ServingUnavailable,
    Unauthenticated,
)

if TYPE_CHECKING:
    import grpc
    import pandas as pd

__all__ = ["AsyncFeatureClient", "FeatureClient", "OnlineFeatures"]

Entities = Mapping[str, Sequence[str | int]] | Mapping[str, str | int] | Sequence[Mapping[str, Any]]
T = TypeVar("T")
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 1.0
# The family a server's NOT_FOUND text names first ("feature x@v1:f ...", "family x ...").
_NAMED = re.compile(r"(?:feature family |feature |family )([a-z][a-z0-9_]*)")


class OnlineFeatures(dict[str, list[Any]]):
    """Join-key columns and one list of values per feature (``family:feature`` keys).

    ``statuses`` and ``event_times`` have the same keys as the features; ``versions`` maps
    each family (``family@vN`` when pinned) to the version served; ``errors`` maps a family
    whose values are all ERROR (an on-demand function raised) to the server's message.
    """

    def __init__(self, served: Sequence[Any], entities: Mapping[str, Sequence[Any]]) -> None:
        super().__init__({name: list(values) for name, values in entities.items()})
        self.statuses: dict[str, list[str]] = {}
        self.event_times: dict[str, list[dt.datetime | None]] = {}
        self.versions: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        for family in served:
            label = f"{family.family}@v{family.version}" if family.pinned else family.family
            self.versions[label] = family.version
            if family.error:
                self.errors[label] = family.error
            for name, values in family.values.items():
                key = family.ref(name)
                self[key] = values
                self.statuses[key] = family.statuses
                self.event_times[key] = family.event_times

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(dict(self))


def _normalize(entities: Entities) -> dict[str, list[Any]]:
    """Rows (a list of dicts), one row (scalars) or columns, as columns."""
    if isinstance(entities, Mapping):
        columns: dict[str, list[Any]] = {}
        for name, value in entities.items():
            if isinstance(value, Sequence) and not isinstance(value, str | bytes):
                columns[name] = list(value)
            else:
                columns[name] = [value]
        return columns
    rows = list(entities)
    names = list(rows[0]) if rows else []
    return {name: [row[name] for row in rows] for name in names}


def _retryable(exc: grpc.RpcError) -> bool:
    """Whether another try may answer: the server was unavailable, or it was stopping.

    A gRPC server that stops cancels the calls it had received but no handler had taken yet:
    the caller sees CANCELLED, though nothing ran (gRPC core issue 41785). These clients never
    cancel a call themselves (a deadline is DEADLINE_EXCEEDED), so a CANCELLED here came from
    the server, and every call of theirs only reads: trying again is safe.
    """
    import grpc

    return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


def _error(target: str, exc: grpc.RpcError) -> Exception:
    import grpc

    code = exc.code()
    detail = exc.details() or code.name
    if code == grpc.StatusCode.NOT_FOUND:
        # The server's text already says what is missing; it is kept as it is, said once.
        named = _NAMED.match(detail)
        return FeatureNotFound(named.group(1) if named else "", message=detail)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequest(target, detail)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(target, detail)
    if code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,  # by a stopping server: see ``_retryable``
    ):
        return ServingUnavailable(target, f"{code.name}: {detail}")
    return ServingError(target, f"{code.name}: {detail}")


def _pem(value: str | bytes) -> bytes:
    """PEM bytes given as such, or read from a path."""
    return value if isinstance(value, bytes) else Path(value).read_bytes()


def _credentials(
    tls: bool | str | bytes | None,
    client_cert: str | bytes | None = None,
    client_key: str | bytes | None = None,
) -> grpc.ChannelCredentials | None:
    """Channel credentials: ``tls`` True (system CAs) or a CA (path or PEM bytes); a client
    certificate and key (mutual TLS) imply TLS."""
    import grpc

    if (client_cert is None) != (client_key is None):
        raise ConfigError("client.client_cert", "client_cert and client_key go together")
    if (tls is None or tls is False) and client_cert is None:
        return None
    root = None if tls is None or isinstance(tls, bool) else _pem(tls)
    return grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=None if client_key is None else _pem(client_key),
        certificate_chain=None if client_cert is None else _pem(client_cert),
    )


def _backoff(attempt: int) -> float:
    """Exponential with full jitter, so many clients do not retry in step."""
    return random.uniform(0, min(_MAX_BACKOFF, _FIRST_BACKOFF * 2**attempt))


class _Base(abc.ABC):
    """What both clients share: options, credentials, metadata and one reused channel."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: bool | str | bytes | None = None,
        timeout: float = 5.0,
        options: Sequence[tuple[str, Any]] = (),
        client_cert: str | bytes | None = None,
        client_key: str | bytes | None = None,
    ) -> None:
        require("grpc", "serving")
        from nbfeatures.serving import convert

        self.target = target
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        credentials = _credentials(tls, client_cert, client_key)
        channels = self._channels()
        if credentials is None:
            self._channel = channels.insecure_channel(target, options=list(options))
        else:
            self._channel = channels.secure_channel(target, credentials, options=list(options))
        self._convert = convert
        self._stub = convert.feature_stub(self._channel)

    @staticmethod
    @abc.abstractmethod
    def _channels() -> Any:
        """The module whose ``insecure_channel``/``secure_channel`` make this client's channel."""

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)


class FeatureClient(_Base):
    """A blocking client on one reused channel; use it as a context manager or ``close`` it."""

    @staticmethod
    def _channels() -> Any:
        import grpc

        return grpc

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        import grpc

        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            try:
                return method(request, timeout=max(left, 0.001), metadata=self._metadata)
            except grpc.RpcError as exc:
                pause = _backoff(attempt)
                if not _retryable(exc) or time.monotonic() + pause >= deadline:
                    raise _error(self.target, exc) from None
                time.sleep(pause)  # backoff between retries of an unavailable server
                attempt += 1

    def get_online_features(
        self,
        entities: Entities,
        features: Sequence[str],
        *,
        timeout: float | None = None,
        request_id: str = "",
        request_data: Mapping[str, Sequence[Any] | Any] | None = None,
    ) -> OnlineFeatures:
        """Values of ``features`` for ``entities`` (columns, rows or a single row).

        ``request_data`` carries the request fields of on-demand families, one value per
        entity row (or a scalar for a single row), e.g. ``{"amount": [12.5, 80.0]}``.
        """
        columns = _normalize(entities)
        request = self._convert.build_request(
            columns, features, request_id, _normalize(request_data) if request_data else None
        )
        response = self._call(self._stub.GetOnlineFeatures, request, timeout)
        return OnlineFeatures(self._convert.response_to_families(response), columns)

    def list_features(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every live family: versions held, features and types."""
        response = self._call(self._stub.ListFeatures, self._convert.list_request(), timeout)
        families: list[dict[str, Any]] = self._convert.list_to_dicts(response)
        return families

    def describe_family(
        self, family: str, version: int | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        request = self._convert.describe_request(family, version)
        response = self._call(self._stub.DescribeFamily, request, timeout)
        description: dict[str, Any] = self._convert.describe_to_dict(response)
        return description

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> FeatureClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncFeatureClient(_Base):
    """The asyncio twin of ``FeatureClient`` (``grpc.aio`` channel, same retries and errors)."""

    @staticmethod
    def _channels() -> Any:
        from grpc import aio

        return aio

    async def _call(
        self, method: Callable[..., Awaitable[T]], request: Any, timeout: float | None
    ) -> T:
        import grpc

        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            try:
                return await method(request, timeout=max(left, 0.001), metadata=self._metadata)
            except grpc.aio.AioRpcError as exc:
                pause = _backoff(attempt)
                if not _retryable(exc) or time.monotonic() + pause >= deadline:
                    raise _error(self.target, exc) from None
                await asyncio.sleep(pause)
                attempt += 1

    async def get_online_features(
        self,
        entities: Entities,
        features: Sequence[str],
        *,
        timeout: float | None = None,
        request_id: str = "",
        request_data: Mapping[str, Sequence[Any] | Any] | None = None,
    ) -> OnlineFeatures:
        columns = _normalize(entities)
        request = self._convert.build_request(
            columns, features, request_id, _normalize(request_data) if request_data else None
        )
        response = await self._call(self._stub.GetOnlineFeatures, request, timeout)
        return OnlineFeatures(self._convert.response_to_families(response), columns)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncFeatureClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
