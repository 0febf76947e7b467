"""When a promotion reuses a version's offline set (``promotion.reuse``), and how a dead lock
holder is told (``promotion.leftovers.why_dead``): real files and processes, no services."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

from nbfeatures.definitions import Source
from nbfeatures.engine.offline_store import Manifest, source_snapshot
from nbfeatures.promotion.leftovers import why_dead
from nbfeatures.promotion.lock import holder_of, node_id
from nbfeatures.promotion.reuse import choose_offline, is_full

UTC = dt.UTC
HASH = "a" * 64
T0 = dt.datetime(2026, 1, 5, 12, tzinfo=UTC)


def _source(tmp_path: Path) -> Source:
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1 not really parquet, only its size and time are read")
    return Source.infer("events", str(path), "ts")


def _manifest(source: Source, *, requested: tuple[str, str], full: bool = False) -> Manifest:
    run = {
        "started_at": T0.isoformat(),
        "finished_at": T0.isoformat(),
        "requested": list(requested),
        "stored": list(requested),
        "rows": 10,
        "sources": [source_snapshot(source)],
        **({"full": True} if full else {}),
    }
    start, end = (dt.datetime.fromisoformat(t) for t in requested)
    return Manifest(
        family="fam",
        version=1,
        hash=HASH,
        entity_key="user_id",
        timestamp="ts",
        spark_version="4",
        created_at=T0,
        updated_at=T0,
        covered=[(start, end)],
        partitions={"2026-01-01": {"rows": 10, "entities": 3}},
        entities=3,
        runs=[run],
    )


def test_a_current_full_offline_set_is_reused(tmp_path: Path) -> None:
    source = _source(tmp_path)
    # What `nbfeatures compute` writes without a range: from 1970 to after it ran.
    manifest = _manifest(
        source, requested=("1970-01-01T00:00:00+00:00", "2026-01-06T00:00:00+00:00")
    )
    assert is_full(manifest.runs[0])
    choice = choose_offline(manifest, HASH, (source,))
    assert choice.reuse, choice.reason
    assert not choose_offline(manifest, HASH, (source,), recompute=True).reuse


def test_another_definition_hash_is_not_reused(tmp_path: Path) -> None:
    source = _source(tmp_path)
    manifest = _manifest(
        source, requested=("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"), full=True
    )
    choice = choose_offline(manifest, "b" * 64, (source,))
    assert not choice.reuse and "another definition" in choice.reason
    # Not even to restore: the rows would be another definition's.
    assert not choose_offline(manifest, "b" * 64, (source,), restore=True).reuse


def test_changed_sources_or_a_partial_range_are_recomputed(tmp_path: Path) -> None:
    source = _source(tmp_path)
    partial = _manifest(
        source, requested=("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00")
    )
    assert not is_full(partial.runs[0])
    choice = choose_offline(partial, HASH, (source,))
    assert not choice.reuse and "part of the sources' range" in choice.reason
    # ... but it does cover an explicit range inside it.
    inside = choose_offline(
        partial,
        HASH,
        (source,),
        dt.datetime(2026, 1, 1, 3, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 9, tzinfo=UTC),
    )
    assert inside.reuse, inside.reason
    outside = choose_offline(
        partial,
        HASH,
        (source,),
        dt.datetime(2026, 1, 1, tzinfo=UTC),
        dt.datetime(2026, 1, 3, tzinfo=UTC),
    )
    assert not outside.reuse and "does not cover" in outside.reason

    full = _manifest(
        source, requested=("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"), full=True
    )
    assert choose_offline(full, HASH, (source,)).reuse
    Path(source.location).write_bytes(b"new rows arrived")
    changed = choose_offline(full, HASH, (source,))
    assert not changed.reuse and "source 'events' changed" in changed.reason
    # A restore puts back what production served: the offline set as it is.
    assert choose_offline(full, HASH, (source,), restore=True).reuse
    assert not choose_offline(None, HASH, (source,), restore=True).reuse


def test_a_table_source_cannot_be_seen_to_be_current(tmp_path: Path) -> None:
    table = Source.infer("events", "warehouse_events")
    manifest = _manifest(
        table, requested=("1970-01-01T00:00:00+00:00", "2026-01-06T00:00:00+00:00")
    )
    choice = choose_offline(manifest, HASH, (table,))
    assert not choice.reuse and "is a table" in choice.reason


def test_a_lock_holder_on_this_host_whose_process_is_gone_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = socket.gethostname()
    dead = f"ana@{host} pid {child.pid} ttl 60000 since 1767614400 token abc"
    assert holder_of(dead) == f"ana@{host} pid {child.pid}"
    assert why_dead(dead, 50_000) == f"process {child.pid} no longer exists on {host}, where it ran"
    alive = f"ana@{host} pid {os.getpid()} ttl 60000 since 1767614400 token abc"
    assert why_dead(alive, 1_000) is None


def test_a_pid_of_another_pid_namespace_is_not_judged_by_this_host() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = socket.gethostname()
    # Same host name, another container: its pid means nothing here, only its renewals do.
    token = f"ana@{host} pid {child.pid} ttl 60000 since 1767614400 node other/1 token abc"
    assert why_dead(token, 50_000) is None
    assert why_dead(token.replace("other/1", node_id()), 50_000) is not None


def test_a_lock_holder_elsewhere_is_dead_once_it_missed_its_renewals() -> None:
    token = "ana@another-host.invalid pid 4121 ttl 60000 since 1767614400 token abc"
    assert why_dead(token, 45_000) is None  # renewed 15 s ago: every 20 s is its period
    reason = why_dead(token, 10_000)
    assert reason == "not renewed for 50 s, it renews every 20 s"
    # A token without its ttl (an older holder) cannot be judged from another host.
    assert why_dead("ana@another-host.invalid pid 4121 token abc", 1_000) is None
