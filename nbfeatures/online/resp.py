"""Redis' wire protocol (RESP2) as bytes: commands one at a time, or a batch's as Arrow columns.

Every command this package writes to a socket itself is built here: the serving pipe's
``MGET``/``HMGET`` reads and handshake, and the materialization writers' ``SET``/``EVALSHA``
batches. A command is an array of bulk strings::

    *<count>\\r\\n  then per argument  $<length>\\r\\n<bytes>\\r\\n

The Arrow helpers build one such command per row of a batch with string kernels over whole
columns, so no Python code runs per row; ``joined`` hands back the batch's bytes without a
copy. Writers know every reply in advance (``OK`` for ``SET``), so replies are not parsed
here; ``error_text`` reads the first line of an unexpected one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

CRLF = b"\r\n"
# What ``SET`` answers.
OK_REPLY = b"+OK\r\n"


def bulk(value: bytes) -> bytes:
    """One bulk string: ``$<length>\\r\\n<value>\\r\\n``."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def bulk_head(length: int) -> bytes:
    """The start of a bulk string of ``length`` bytes (then the bytes and CRLF)."""
    return b"$%d\r\n" % length


def integer(value: int) -> bytes:
    """An integer reply, as a script answers."""
    return b":%d\r\n" % value


def array_head(count: int) -> bytes:
    """The start of a command of ``count`` arguments (its name included)."""
    return b"*%d\r\n" % count


def command(*parts: bytes) -> bytes:
    """One command: its name and arguments as bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)


def error_text(reply: bytes) -> str:
    """The message of an error reply (its first line without ``-``)."""
    return reply.split(CRLF, 1)[0].decode(errors="replace").lstrip("-")


# -- a batch of commands, one per row, built over Arrow columns ---------------------------------


@functools.lru_cache(maxsize=256)
def literal(value: bytes) -> pa.Scalar:
    """``value`` as an Arrow binary scalar to join with columns.

    Built from buffers: a Python ``bytes`` handed to a compute function goes through
    ``pa.scalar``, which loads pandas into the writer.
    """
    from nbfeatures.arrow_arrays import binary_scalar

    return binary_scalar(value)


def as_text(array: pa.Array) -> pa.Array:
    """Integers as their decimal text, binary (lengths, expiries, bucket numbers)."""
    import pyarrow as pa

    return array.cast(pa.string()).cast(pa.binary())


def bulk_columns(
    values: pa.Array | pa.Scalar, length: pa.Array | pa.Scalar | None = None
) -> list[Any]:
    """The pieces of one bulk string per row: ``$``, the length, CRLF, the bytes, CRLF.

    ``length`` is the values' lengths as text when the caller knows it (a fixed width, or one
    length shared by several columns); otherwise it is computed.
    """
    import pyarrow.compute as pc

    if length is None:
        length = as_text(pc.binary_length(values))
    crlf = literal(CRLF)
    return [literal(b"$"), length, crlf, values, crlf]


def joined(parts: list[Any], rows: int) -> tuple[memoryview, pa.Array]:
    """The rows' commands (``parts`` joined element-wise) as one contiguous buffer.

    Returns the bytes (a view, no copy) and the Arrow array they live in, which must be kept
    alive while the bytes are in use.
    """
    import pyarrow.compute as pc

    commands = pc.binary_join_element_wise(*parts, literal(b""))
    offsets = np.frombuffer(commands.buffers()[1], dtype=np.int32)
    start, end = int(offsets[commands.offset]), int(offsets[commands.offset + rows])
    return memoryview(commands.buffers()[2])[start:end], commands
