"""What killed promotions leave behind, and removing it: dead locks and orphan keyspaces.

A promotion killed before its end leaves two things nothing else would report:

* its family's lock (``promotion.lock``), held until its ttl runs out. The lock's token names
  the holder (``user@host pid N``), its ttl and when it was taken. A holder is dead when it
  ran on this host (same host name, boot and pid namespace) and its process no longer
  exists; on another host, when the lock missed
  its renewals: a live holder renews every ttl/3, so a lock not renewed for more than two
  thirds of its ttl has missed two in a row.
* the keyspace it was writing: a version with a layout or packing record in Redis that is
  neither live nor in the family's live history, while no live promotion holds the family's
  lock. No promotion will use it: promoting that version again writes it anew.

``find_leftovers`` reports them (``nbfeatures status``); ``clean_leftovers`` releases dead
locks (only while the lock still holds the dead holder's token) and deletes orphan keyspaces
with ``OnlineStore.delete_version``, under the family's lock (``nbfeatures cleanup``). The
live version and the versions of the live history are never touched.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbfeatures.errors import PromotionInProgress

if TYPE_CHECKING:
    from nbfeatures.online.store import OnlineStore

_TOKEN = re.compile(
    r"^(?P<holder>\S*@(?P<host>\S+) pid (?P<pid>\d+))"
    r"(?: ttl (?P<ttl>\d+) since (?P<since>\d+))?(?: node (?P<node>\S+))? token "
)
# Seconds of slack on the renewal clock, for a holder's thread that runs a little late.
_RENEWAL_SLACK = 1.0


@dataclass(frozen=True)
class HeldLock:
    """A family's promotion lock and what can be told about its holder.

    ``dead`` says how the holder is known to be dead, or is None while it may be running.
    """

    family: str
    key: str
    token: str
    holder: str
    left_seconds: float | None
    held_since: dt.datetime | None
    dead: str | None

    def line(self) -> str:
        left = f"; it expires in {self.left_seconds:.0f} s" if self.left_seconds else ""
        if self.dead is None:
            since = f" since {self.held_since:%H:%M:%S} UTC" if self.held_since else ""
            return f"{self.family}: being promoted by {self.holder}{since}{left}"
        return (
            f"{self.family}: promotion lock held by {self.holder}, which is no longer running "
            f"({self.dead}){left}; `nbfeatures cleanup` releases it"
        )


@dataclass(frozen=True)
class OrphanKeyspace:
    """A version's keyspace no promotion will use: not live, not in the history, no promotion
    of the family running. ``written`` is when a promotion started writing it, if recorded."""

    family: str
    version: int
    entities: int
    written: dt.datetime | None

    def line(self) -> str:
        when = f", written {self.written:%Y-%m-%d %H:%M:%S} UTC" if self.written else ""
        return (
            f"{self.family} v{self.version}: orphan keyspace ({self.entities} entities{when}): "
            "neither live nor in the live history and no promotion is running; "
            "`nbfeatures cleanup` deletes it"
        )


@dataclass(frozen=True)
class Leftovers:
    locks: tuple[HeldLock, ...]
    orphans: tuple[OrphanKeyspace, ...]

    @property
    def dead_locks(self) -> tuple[HeldLock, ...]:
        return tuple(lock for lock in self.locks if lock.dead is not None)

    def lines(self) -> list[str]:
        return [lock.line() for lock in self.locks] + [o.line() for o in self.orphans]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _family_of(key: str, head: str) -> str:
    return key[len(head) :].strip("{}")


def why_dead(token: str, left_ms: int | None) -> str | None:
    """How a lock holder is known to be dead, or None while it may be running."""
    match = _TOKEN.match(token)
    if match is None:
        return None  # a token of another form: nothing can be told
    from nbfeatures.promotion.lock import node_id

    pid, host = int(match["pid"]), match["host"]
    node = match["node"]
    # Its pid is only meaningful here: same host name and, when recorded, same boot and pid
    # namespace (containers may share a host name).
    if host == socket.gethostname() and (node is None or node == "-" or node == node_id()):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"process {pid} no longer exists on {host}, where it ran"
        except PermissionError:
            return None  # exists, under another user
        return None
    if match["ttl"] is None or left_ms is None or left_ms < 0:
        return None
    ttl = int(match["ttl"]) / 1000
    silent = ttl - left_ms / 1000
    if silent > 2 * ttl / 3 + _RENEWAL_SLACK:
        return f"not renewed for {silent:.0f} s, it renews every {ttl / 3:.0f} s"
    return None


def held_locks(store: OnlineStore) -> list[HeldLock]:
    """Every family's promotion lock currently held."""
    from nbfeatures.promotion.lock import holder_of, lock_key

    head = lock_key(store.prefix, "")[: -len("{}")]
    found = []
    for raw in store.client.scan_iter(match=f"{head}*", count=1000):
        key = _text(raw)
        value, left = store.client.get(key), store.client.pttl(key)
        if value is None:
            continue  # released meanwhile
        token = _text(value)
        left_ms = left if isinstance(left, int) and left >= 0 else None
        match = _TOKEN.match(token)
        since = None
        if match is not None and match["since"] is not None:
            since = dt.datetime.fromtimestamp(int(match["since"]), dt.UTC)
        found.append(
            HeldLock(
                family=_family_of(key, head),
                key=key,
                token=token,
                holder=holder_of(token),
                left_seconds=left_ms / 1000 if left_ms else None,
                held_since=since,
                dead=why_dead(token, left_ms),
            )
        )
    return sorted(found, key=lambda lock: lock.family)


def keyspace_versions(store: OnlineStore) -> set[tuple[str, int]]:
    """Every (family, version) with a layout or packing record in Redis."""
    pattern = re.compile(
        rf"^{re.escape(store.prefix)}(?:layout|pack):\{{(?P<family>[^}}]+)\}}:v(?P<v>\d+)$"
    )
    found = set()
    for kind in ("layout", "pack"):
        for raw in store.client.scan_iter(match=f"{store.prefix}{kind}:*", count=1000):
            match = pattern.match(_text(raw))
            if match is not None:
                found.add((match["family"], int(match["v"])))
    return found


def _kept(store: OnlineStore, family: str) -> set[int]:
    """The versions no cleanup may delete: the live one and those of the live history."""
    live = store.live_version(family)
    return {*store.live_history(family), *([live] if live is not None else [])}


def find_leftovers(store: OnlineStore) -> Leftovers:
    """The promotion locks held (dead or not) and the orphan keyspaces."""
    from nbfeatures.promotion.bookkeeping import KeyspaceAges

    locks = held_locks(store)
    busy = {lock.family for lock in locks if lock.dead is None}
    orphans = []
    kept: dict[str, set[int]] = {}
    for family, version in sorted(keyspace_versions(store)):
        if family in busy:
            continue  # its promotion may be writing this very keyspace
        if family not in kept:
            kept[family] = _kept(store, family)
        if version in kept[family]:
            continue
        written = KeyspaceAges(store.client, store.prefix, family).all().get(version, {})
        entities = store.count_keys(family, version)
        orphans.append(OrphanKeyspace(family, version, entities, written.get("written")))
    return Leftovers(tuple(locks), tuple(orphans))


def clean_leftovers(store: OnlineStore, *, dry_run: bool = False) -> list[str]:
    """Release dead locks and delete orphan keyspaces; one line per thing done (or that
    would be done, with ``dry_run``)."""
    from nbfeatures.promotion.bookkeeping import KeyspaceAges
    from nbfeatures.promotion.lock import PromotionLock, release_dead

    found = find_leftovers(store)
    lines = []
    for lock in found.dead_locks:
        if dry_run:
            lines.append(f"would release the promotion lock of {lock.family} ({lock.dead})")
        elif release_dead(store.client, lock.key, lock.token):
            lines.append(
                f"released the promotion lock of {lock.family} held by {lock.holder} ({lock.dead})"
            )
    for orphan in found.orphans:
        what = f"{orphan.family} v{orphan.version}"
        if dry_run:
            lines.append(f"would delete the orphan keyspace of {what} ({orphan.entities} entities)")
            continue
        try:
            # Under the family's lock, and checked again: a promotion may have started.
            with PromotionLock(store.client, store.prefix, orphan.family, 60).hold():
                if orphan.version in _kept(store, orphan.family):
                    continue
                deleted = store.delete_version(orphan.family, orphan.version)
                KeyspaceAges(store.client, store.prefix, orphan.family).forget(orphan.version)
        except PromotionInProgress as busy:
            lines.append(f"kept the keyspace of {what}: {busy}")
            continue
        lines.append(f"deleted the orphan keyspace of {what} ({deleted} entities)")
    return lines


def status_lines(store: OnlineStore) -> list[str]:
    """For ``nbfeatures status``: held locks and orphan keyspaces, one line each."""
    try:
        return find_leftovers(store).lines()
    except Exception as exc:  # status still reports what it could read
        return [f"could not check promotion leftovers: {exc}"]


def lock_is_dead(store: OnlineStore, family: str) -> bool:
    """Whether ``family``'s lock is held by a holder known to be dead."""
    from nbfeatures.promotion.lock import lock_key

    key = lock_key(store.prefix, family)
    value, left = store.client.get(key), store.client.pttl(key)
    if value is None:
        return False
    left_ms = left if isinstance(left, int) and left >= 0 else None
    return why_dead(_text(value), left_ms) is not None
