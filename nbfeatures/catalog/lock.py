"""A per-family mutex made from MLflow itself, so it works across processes and machines.

Registering is "look for the hash, then create a version": two callers doing that at once
would both miss and both create. The lock is a registered model named
``{prefix}{family}.lock`` (a name no family can take, since family names have no dots).
Creating a registered model succeeds for exactly one caller on every MLflow backend (the name
is the store's primary key); the others get ``RESOURCE_ALREADY_EXISTS`` (or, when the holder
released it at that moment, ``RESOURCE_DOES_NOT_EXIST``) and retry with jittered exponential
backoff.

A holder that crashed leaves its lock behind, so a lock is *stale*, and broken, when it is
older than ``stale_after`` seconds by its creation time, or when a waiter has seen the same
holder token for ``stale_after`` seconds on its own monotonic clock (which does not depend on
the clocks of other machines agreeing). A registration takes well under a second, so the
default of 120 s only matters after a crash. Breaking re-reads the lock and deletes it only
if the stale holder still owns it; the registration re-checks for duplicates after creating
its version, which covers the narrow window in which a lock could be broken twice.
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nbfeatures.catalog.connection import Connection, error_code
from nbfeatures.errors import RegistrationConflict

TAG_HOLDER = "nbfeatures.lock.holder"
TAG_KIND = "nbfeatures.kind"
LOCK_SUFFIX = ".lock"
_CONTENDED = ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST")


class FamilyLock:
    """Acquire with ``with lock.hold(family): ...``; the context releases it."""

    def __init__(
        self,
        connection: Connection,
        prefix: str,
        timeout: float = 60.0,
        stale_after: float = 120.0,
    ) -> None:
        self._connection = connection
        self._prefix = prefix
        self.timeout = timeout
        self.stale_after = stale_after

    def lock_name(self, family: str) -> str:
        return f"{self._prefix}{family}{LOCK_SUFFIX}"

    @contextmanager
    def hold(self, family: str) -> Iterator[str]:
        token = self._acquire(family)
        try:
            yield token
        finally:
            self._release(family, token)

    def _acquire(self, family: str) -> str:
        client = self._connection.client
        name = self.lock_name(family)
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        deadline = time.monotonic() + self.timeout
        seen_holder: str | None = None
        seen_since = time.monotonic()
        attempt = 0
        while True:
            try:
                self._connection.call(
                    client.create_registered_model,
                    name,
                    tags={TAG_HOLDER: token, TAG_KIND: "lock"},
                    description=f"Held while a version of {family} is registered.",
                )
                return token
            except Exception as exc:
                # A lost race may also say RESOURCE_DOES_NOT_EXIST: MLflow's SQL store answers
                # a duplicate name by reading the existing model to word its error, and the
                # holder may release (delete) it in between. Either way: someone held it.
                if error_code(exc) not in _CONTENDED:
                    raise
            holder = self._holder(name)
            if holder is not None:
                holder_token, created_ms = holder
                if holder_token != seen_holder:
                    seen_holder, seen_since = holder_token, time.monotonic()
                age = time.time() - created_ms / 1000
                watched = time.monotonic() - seen_since
                if max(age, watched) > self.stale_after:
                    self._break(name, holder_token)
                    continue
            if time.monotonic() > deadline:
                raise RegistrationConflict(
                    family,
                    f"another registration held the lock {name!r} for over {self.timeout:.0f}s "
                    f"(holder {seen_holder})",
                )
            attempt += 1
            # Jittered exponential backoff keeps waiters from stampeding the store in step.
            time.sleep(min(0.025 * 2 ** min(attempt, 6), 1.0) * random.uniform(0.5, 1.5))

    def _holder(self, name: str) -> tuple[str, int] | None:
        """The current holder's token and the lock's creation time, or None if just released."""
        try:
            model: Any = self._connection.call(self._connection.client.get_registered_model, name)
        except Exception as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return str(model.tags.get(TAG_HOLDER, "")), int(model.creation_timestamp or 0)

    def _break(self, name: str, stale_token: str) -> None:
        holder = self._holder(name)
        if holder is not None and holder[0] == stale_token:
            self._delete(name)

    def _release(self, family: str, token: str) -> None:
        name = self.lock_name(family)
        holder = self._holder(name)
        if holder is not None and holder[0] == token:
            self._delete(name)

    def _delete(self, name: str) -> None:
        try:
            self._connection.call(self._connection.client.delete_registered_model, name)
        except Exception as exc:
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise
