"""Sending a batch of write commands to Redis and checking every reply in one step.

``StoredVersion.write_batch`` builds a batch's commands (``SET`` per entity, or one script
call per bucket of a packed version) as one Arrow buffer; here they are sent on one
connection and their replies, all known in advance, are read as raw bytes and compared at
once. ``PipelinedWriter`` keeps one batch in flight while the next is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.errors import OnlineStoreError
from nbfeatures.online.resp import error_text

if TYPE_CHECKING:
    import pyarrow as pa
    import redis

    from nbfeatures.online.stored import BuiltBatch, StoredVersion


def _read_fixed_replies(connection: Any, built: BuiltBatch) -> str | None:
    """Read a batch's replies; ``None`` if all were the expected ones, else the first error.

    Parsing 10,000 identical ``+OK`` replies one by one costs more than building and sending
    the batch, so they are read as raw bytes from the socket and compared in one step. Any
    other reply (an error is longer than any expected one) leaves the stream out of step: the
    connection is dropped and the first error is reported.
    """
    head, unit, count = built.head, built.unit, built.commands
    sock = getattr(connection, "_sock", None)
    if sock is None or _parser_holds_data(getattr(connection, "_parser", None)):
        return _read_replies_parsed(connection, count + (1 if head else 0))
    expected = len(head) + len(unit) * count
    received = bytearray(expected)
    view = memoryview(received)
    filled = 0
    while filled < expected:
        got = sock.recv_into(view[filled:], expected - filled)
        if got == 0:
            raise OSError("the server closed the connection while replying")
        filled += got
    if received == head + unit * count:
        return None
    connection.disconnect()
    if received[: len(head)] != head:
        return error_text(bytes(received))
    replies = np.frombuffer(received, dtype=np.uint8, offset=len(head)).reshape(count, len(unit))
    first_bad = int((replies != np.frombuffer(unit, dtype=np.uint8)).any(axis=1).argmax())
    return error_text(bytes(received[len(head) + first_bad * len(unit) :]))


def _parser_holds_data(parser: Any) -> bool:
    """Whether redis-py's parser already buffered bytes the socket will not return again.

    The pure-Python parser keeps them in a ``SocketBuffer`` (``_buffer.unread_bytes()``);
    the hiredis parser in its ``hiredis.Reader`` (``_reader.has_data()``; its ``_buffer`` is
    only a scratch ``bytearray`` for ``recv_into``). Anything unknown counts as holding data,
    which only costs the slower parsed path.
    """
    if parser is None:
        return False
    buffer = getattr(parser, "_buffer", None)
    if buffer is not None and hasattr(buffer, "unread_bytes"):
        return bool(buffer.unread_bytes())
    reader = getattr(parser, "_reader", None)
    if reader is not None:
        has_data = getattr(reader, "has_data", None)
        return True if has_data is None else bool(has_data())
    return buffer is not None and not isinstance(buffer, bytearray)


def _read_replies_parsed(connection: Any, count: int) -> str | None:
    import redis

    failure: str | None = None
    for _ in range(count):
        try:
            connection.read_response()
        except redis.ResponseError as exc:
            failure = failure or str(exc)  # keep reading: the stream must stay in step
    return failure


def send_batch(client: redis.Redis[Any], built: BuiltBatch, where: str) -> None:
    """Send a batch's commands and check every reply; on error drop the connection."""
    import redis

    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command(built.parts, check_health=False)
        refusal = _read_fixed_replies(connection, built)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        connection.disconnect()
        raise OnlineStoreError(where, f"writing values failed: {exc}") from None
    finally:
        pool.release(connection)
    if refusal is not None:
        raise OnlineStoreError(where, f"Redis refused a write: {refusal}")


class PipelinedWriter:
    """Writes batches on one connection with the previous batch's replies still unread.

    ``OnlineStore.write_rows`` sends a batch and waits for all its replies, so Redis idles
    while the caller reads and encodes the next one. Here batch k+1 is sent before the
    replies of batch k are read: Redis always has a batch to work on while this process
    reads its replies and encodes the next batch. The bytes sent are those of
    ``write_rows``: ``stored`` builds them, and ``client`` is the client of the node holding
    the version's slot (the version's keys share one). Use it as a context manager; leaving
    reads the last replies, and any refusal or connection error is raised as
    ``OnlineStoreError``.
    """

    def __init__(self, client: redis.Redis[Any], stored: StoredVersion) -> None:
        self.client = client
        self.stored = stored
        self.where = stored.where
        self._pool: Any = None
        self._connection: Any = None
        self._unread: BuiltBatch | None = None
        self.written = 0

    def __enter__(self) -> PipelinedWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is None:
            self._drain()
        elif self._connection is not None:
            self._connection.disconnect()  # replies still queued: the stream is out of step
        self._release()

    def write(self, batch: pa.RecordBatch) -> int:
        """Send ``batch``'s ``SET``s, then read the previous batch's replies; return its rows."""
        import redis

        built = self.stored.write_batch(batch)
        if built is None:
            return 0
        if self._connection is None:
            self._pool = self.client.connection_pool
            self._connection = self._pool.get_connection()
        try:
            self._connection.send_packed_command(built.parts, check_health=False)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._connection.disconnect()
            raise OnlineStoreError(self.where, f"writing values failed: {exc}") from None
        self._drain()
        self._unread = built
        return built.rows

    def _drain(self) -> None:
        import redis

        if self._unread is None:
            return
        built, self._unread = self._unread, None
        try:
            refusal = _read_fixed_replies(self._connection, built)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._connection.disconnect()
            raise OnlineStoreError(self.where, f"writing values failed: {exc}") from None
        if refusal is not None:
            raise OnlineStoreError(self.where, f"Redis refused a write: {refusal}")
        self.written += built.rows

    def _release(self) -> None:
        if self._connection is not None:
            self._pool.release(self._connection)
            self._connection = None
