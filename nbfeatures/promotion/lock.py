"""A per-family promotion lock in Redis: ``SET NX PX`` with a token, renewed while held.

Only one promotion or rollback of a family runs at a time. The lock is one key,
``{prefix}lock:promote:{family}``, whose value is a token naming the holder (user, host, pid),
its ``ttl`` and when it was taken, so ``nbfeatures status`` can tell a lock whose holder died
(``promotion.leftovers``). It expires after ``ttl`` seconds unless renewed; a thread renews it
every ``ttl / 3`` while the holder runs, so a long Spark job keeps it, and a killed holder (no
more renewals) loses it within ``ttl``.
Renewing and releasing compare the token first (one Lua script each), so a holder whose lock
expired can never extend or delete the next holder's lock.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from nbfeatures.errors import PromotionInProgress

if TYPE_CHECKING:
    from nbfeatures.online.connect import RedisClient

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Polling interval while waiting for a busy lock (only with ``wait > 0``).
_WAIT_POLL_SECONDS = 0.2


def lock_key(prefix: str, family: str) -> str:
    """The lock's key; the family in a hash tag keeps it in one cluster slot."""
    return f"{prefix}lock:promote:{{{family}}}"


def _holder() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"


def node_id() -> str:
    """This machine's boot and pid namespace: two containers may share a host name, never
    both (``-`` where Linux's ``/proc`` does not say)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return f"{boot.read().strip()}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return "-"


def holder_of(token: str) -> str:
    """The ``user@host pid N`` part of a lock's token."""
    return token.split(" token ")[0].split(" ttl ")[0]


class PromotionLock:
    """The lock of one family. Use ``with lock.hold(): ...``; ``holder`` reads who has it."""

    def __init__(self, client: RedisClient, prefix: str, family: str, ttl: float) -> None:
        self.client = client
        # redis-py types ``eval`` on standalone clients only; a cluster client has it too.
        self._eval: Any = client.eval  # type: ignore[union-attr]
        self.family = family
        self.key = lock_key(prefix, family)
        self.ttl_ms = max(1000, int(ttl * 1000))
        # What a reader needs to tell a dead holder: who, the renewal period, since when.
        self.token = (
            f"{_holder()} ttl {self.ttl_ms} since {time.time():.0f} node {node_id()} "
            f"token {uuid.uuid4().hex}"
        )
        self.lost = threading.Event()  # set when a renewal found the lock taken or gone

    def holder(self) -> tuple[str, float | None] | None:
        """Who holds the lock and how many seconds it has left, or None when it is free."""
        value: Any = self.client.get(self.key)
        if value is None:
            return None
        left_ms: Any = self.client.pttl(self.key)
        text = value.decode() if isinstance(value, bytes) else str(value)
        return holder_of(text), (
            left_ms / 1000 if isinstance(left_ms, int) and left_ms > 0 else None
        )

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; ``PromotionInProgress`` otherwise."""
        deadline = time.monotonic() + wait
        while True:
            if self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
                return
            if time.monotonic() >= deadline:
                held = self.holder()
                if held is None:  # released between our SET and GET: try once more
                    continue
                raise PromotionInProgress(self.family, held[0], held[1])
            time.sleep(_WAIT_POLL_SECONDS)

    def renew(self) -> bool:
        """Extend the lock to a full ``ttl``; False when it is no longer ours."""
        done: Any = self._eval(_RENEW, 1, self.key, self.token, self.ttl_ms)
        return bool(done)

    def release(self) -> None:
        """Delete the lock if it is still ours; a Redis that is down only leaves it to expire."""
        try:
            self._eval(_RELEASE, 1, self.key, self.token)
        except Exception as exc:  # the run's own error matters more; the lock expires anyway
            log.warning("could not release the promotion lock of %s: %s", self.family, exc)

    @contextmanager
    def hold(self, wait: float = 0.0) -> Iterator[PromotionLock]:
        """Acquire, renew from a daemon thread while the body runs, release after."""
        self.acquire(wait)
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew_until, args=(stop,), name=f"nbf-lock-{self.family}", daemon=True
        )
        renewer.start()
        try:
            yield self
        finally:
            stop.set()
            renewer.join(timeout=5)
            self.release()

    def _renew_until(self, stop: threading.Event) -> None:
        interval = self.ttl_ms / 3000
        while not stop.wait(interval):
            try:
                if not self.renew():
                    self.lost.set()
                    log.warning("the promotion lock of %s was lost", self.family)
                    return
            except Exception as exc:  # Redis down: keep trying; the run itself will fail
                log.warning("could not renew the promotion lock of %s: %s", self.family, exc)


def release_dead(client: RedisClient, key: str, token: str) -> bool:
    """Delete the lock at ``key`` only if it still holds ``token`` (a holder seen to be dead)."""
    run: Any = client.eval  # type: ignore[union-attr]
    return bool(run(_RELEASE, 1, key, token))
