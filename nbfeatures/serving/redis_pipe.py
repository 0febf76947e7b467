"""One Redis connection shared by every request of the event loop, commands pipelined.

The server's hot path is one ``MGET`` per request. Through ``redis.asyncio`` each takes a
pooled connection, encodes its arguments one by one and waits for its own reply; here every
request writes its ready-encoded ``MGET`` to one connection at once and awaits a future, and
replies (parsed by hiredis) resolve the futures in order, several per socket read under load.
Redis answers a connection's commands in order, so matching by position is exact; a caller
that gives up (its deadline passed) leaves its future behind and its reply is dropped, with
no need to reset the connection.

Errors are redis-py's, so the server maps them as before: ``redis.ConnectionError`` when the
connection cannot be made or is lost (every pending command fails with it; the next call
reconnects), ``redis.TimeoutError`` when a reply takes longer than the timeout (the connection
is dropped, as its state is unknown), ``redis.ResponseError`` for an error reply.

Plain TCP and unix sockets, with AUTH and a database from the URL. Other URLs (TLS, Cluster)
have ``open_pipe`` return None and the server keeps using ``redis.asyncio``.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import redis

from nbfeatures.online import resp


class _Replies(list[Any]):
    """The replies gathered so far for commands sent together, and how many are due."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected


def _first_error(replies: list[Any]) -> Exception | None:
    for reply in replies:
        if isinstance(reply, Exception):
            return reply
    return None


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: RedisPipe, reader: Any) -> None:
        self._pipe = pipe
        self._reader = reader
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._pipe.current is not self.transport:
            return  # a connection already given up: its replies belong to no one now
        reader = self._reader
        reader.feed(data)
        pending = self._pipe.pending
        reply = reader.gets()
        while reply is not False:
            future, timer, many = pending[0]
            if many is not None:  # one of several commands sent together
                many.append(reply)
                if len(many) < many.expected:
                    reply = reader.gets()
                    continue
                reply = many
            pending.popleft()
            timer.cancel()
            if not future.done():
                failed = _first_error(reply) if many is not None else reply
                if isinstance(failed, Exception):  # hiredis.ReplyError
                    future.set_exception(redis.ResponseError(str(failed)))
                else:
                    future.set_result(reply)
            reply = reader.gets()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pipe.current is self.transport:
            self._pipe.lost(f"the connection to Redis was lost: {exc or 'closed'}")


class RedisPipe:
    """``await pipe.mget(keys)`` or ``pipe.many(...)`` over one pipelined connection (made on
    first use)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        timeout: float = 2.0,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._handshake = []
        if password:
            auth = [b"AUTH", password.encode()]
            if username:
                auth.insert(1, username.encode())
            self._handshake.append(resp.command(*auth))
        if db:
            self._handshake.append(resp.command(b"SELECT", str(db).encode()))
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Lock | None = None
        self.pending: collections.deque[
            tuple[asyncio.Future[Any], asyncio.TimerHandle, _Replies | None]
        ] = collections.deque()

    async def _connect(self) -> asyncio.Transport:
        import hiredis

        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._transport is not None and not self._transport.is_closing():
                return self._transport
            loop = asyncio.get_running_loop()

            def protocol() -> _Protocol:
                return _Protocol(self, hiredis.Reader())

            try:
                if self._path is not None:
                    made = loop.create_unix_connection(protocol, self._path)
                else:
                    made = loop.create_connection(protocol, self._host, self._port)
                transport, _ = await asyncio.wait_for(made, self._timeout)
            except (OSError, TimeoutError) as exc:
                raise redis.ConnectionError(f"cannot connect to Redis: {exc}") from None
            self._transport = transport
            try:
                for command in self._handshake:
                    await self._send(transport, command)
            except redis.ResponseError as exc:  # a wrong password, a missing database
                self.lost("handshake refused")
                raise redis.ConnectionError(f"Redis refused the connection: {exc}") from None
            return transport

    async def mget(self, keys: list[bytes]) -> list[bytes | None]:
        transport = self._transport
        if transport is None or transport.is_closing():
            transport = await self._connect()
        reply: list[bytes | None] = await self._send(transport, resp.command(b"MGET", *keys))
        return reply

    async def many(self, commands: bytes, count: int) -> list[Any]:
        """Send ``count`` ready-encoded commands in one write; their replies, in order.

        They share one entry in the queue, so a request of 100 ``HMGET``s costs one future.
        ``count`` 0: ``commands`` is one command, answered with its reply alone
        (``StoredKeys.read_wire`` says which).
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            transport = await self._connect()
        replies: list[Any] = await self._send(transport, commands, count)
        return replies

    @property
    def current(self) -> asyncio.BaseTransport | None:
        return self._transport

    def _send(
        self, transport: asyncio.Transport, command: bytes, count: int = 0
    ) -> asyncio.Future[Any]:
        """Write ``command``: one command, or ``count`` of them answered as one list."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        timer = loop.call_later(self._timeout, self._timed_out, future)
        self.pending.append((future, timer, _Replies(count) if count else None))
        transport.write(command)
        return future

    def _timed_out(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            # The connection's state is unknown: drop it, failing everything pending on it.
            self.lost("Redis did not answer in time", timeout=True)

    def lost(self, reason: str, *, timeout: bool = False) -> None:
        """Fail every pending command and forget the connection (the next call reconnects)."""
        transport, self._transport = self._transport, None
        pending, self.pending = self.pending, collections.deque()
        error = redis.TimeoutError if timeout else redis.ConnectionError
        for future, timer, _ in pending:
            timer.cancel()
            if not future.done():
                future.set_exception(error(reason))
        if transport is not None:
            transport.abort()

    def close(self) -> None:
        self.lost("closed")


def open_pipe(url: str, timeout: float) -> RedisPipe | None:
    """A pipe for a plain ``redis://`` or ``unix://`` URL; None for TLS, Cluster or no hiredis."""
    from redis.connection import parse_url

    try:
        import hiredis  # noqa: F401
    except ImportError:
        return None
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("redis", "unix"):
        return None
    options = parse_url(url)
    return RedisPipe(
        host=options.get("host") or "127.0.0.1",
        port=int(options.get("port") or 6379),
        path=options.get("path"),
        username=options.get("username"),
        password=options.get("password"),
        db=int(options.get("db") or 0),
        timeout=timeout,
    )
