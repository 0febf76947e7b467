"""When each keyspace of a family was written and when it stopped being live.

``cleanup`` needs ages that the online store does not keep, so promotion keeps them beside
it, in one Redis hash per family: ``{prefix}promotion:{family}`` with fields
``v{N}:written`` and ``v{N}:retired`` (ISO-8601, UTC). The ``{family}`` hash tag keeps it in
the slot of the family's live pointer.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbfeatures.online.connect import RedisClient


def bookkeeping_key(prefix: str, family: str) -> str:
    return f"{prefix}promotion:{{{family}}}"


class KeyspaceAges:
    """Reads and writes the ``written``/``retired`` times of a family's keyspaces."""

    def __init__(self, client: RedisClient, prefix: str, family: str) -> None:
        self.client = client
        self.key = bookkeeping_key(prefix, family)

    def mark(self, version: int, event: str, when: dt.datetime | None = None) -> None:
        """Record ``event`` (``written`` or ``retired``) for ``version``."""
        stamp = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat()
        self.client.hset(self.key, f"v{version}:{event}", stamp)

    def forget(self, version: int) -> None:
        self.client.hdel(self.key, f"v{version}:written", f"v{version}:retired")

    def all(self) -> dict[int, dict[str, dt.datetime]]:
        """``{version: {"written": t, "retired": t}}`` for every recorded keyspace."""
        raw: Any = self.client.hgetall(self.key)
        ages: dict[int, dict[str, dt.datetime]] = {}
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            text = value.decode() if isinstance(value, bytes) else str(value)
            label, _, event = name.partition(":")
            if not label.startswith("v") or not label[1:].isdigit():
                continue
            ages.setdefault(int(label[1:]), {})[event] = dt.datetime.fromisoformat(text)
        return ages
