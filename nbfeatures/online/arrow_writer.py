"""The online store's side of an Arrow materialization: batches of latest rows into Redis.

The engine (``engine.arrow.latest``) hands over each entity's latest row in Arrow batches;
this writes them with the store's ``PipelinedWriter`` on ``writers`` threads, each on its own
connection. For a packed version the rows are first regrouped by bucket
(``nbfeatures.online.bucket_order``), so each bucket is written by one command.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from nbfeatures.online.bucket_order import by_bucket

if TYPE_CHECKING:
    import pyarrow as pa

    from nbfeatures.online.layout import FamilyLayout
    from nbfeatures.online.store import OnlineStore, WriteTarget

__all__ = ["write_batches"]


def write_batches(
    store: OnlineStore,
    layout: FamilyLayout,
    target: WriteTarget,
    batches: Iterator[pa.RecordBatch],
    *,
    entities: int,
    batch_rows: int,
    writers: int = 2,
) -> int:
    """Write ``batches`` (one row per entity, ``entities`` in all) into ``target``; the count.

    A packed version's rows are regrouped by bucket first, about ``batch_rows`` at a time.
    """
    if target.packing is not None:
        batches = by_bucket(batches, layout.entity_key, target.packing, entities, batch_rows)
    return _write_batches(store, layout, target, batches, writers)


def _write_batches(
    store: OnlineStore,
    layout: FamilyLayout,
    target: WriteTarget,
    batches: Iterator[pa.RecordBatch],
    writers: int,
) -> int:
    """Write ``batches`` with ``writers`` threads, each on its own pipelined connection.

    Reading Parquet, encoding and building the commands run in pyarrow and numpy kernels that
    release the GIL, so a second thread keeps Redis fed while the first builds its next
    batch. Every entity is in exactly one batch, so the order between threads is irrelevant.
    The queue holds two batches per thread: memory stays a few batches.
    """
    import queue
    import threading

    if writers <= 1:
        with store.pipelined_writer(layout, target) as writer:
            for batch in batches:
                writer.write(batch)
        return writer.written
    work: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=2 * writers)
    failed = threading.Event()
    errors: list[BaseException] = []
    counts: list[int] = []

    def run() -> None:
        try:
            with store.pipelined_writer(layout, target) as writer:
                while (batch := work.get()) is not None:
                    if not failed.is_set():
                        writer.write(batch)
            counts.append(writer.written)
        except BaseException as exc:  # handed to the caller's thread below
            errors.append(exc)
            failed.set()
            while work.get() is not None:  # drain, so the producer never blocks
                pass

    threads = [threading.Thread(target=run, name=f"nbf-writer-{i}") for i in range(writers)]
    for thread in threads:
        thread.start()
    try:
        for batch in batches:
            if failed.is_set():
                break
            work.put(batch)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return sum(counts)
