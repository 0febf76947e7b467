"""The online store: Redis keys and values per family version, the live pointer, embedded Redis.

``OnlineStore`` talks to Redis (standalone, TLS/AUTH, or Cluster; see ``connect``); values are
encoded by ``codec``; keys are laid out as ``layout`` documents; with no ``redis_url`` the
workspace runs its own server (``embedded``). Spark writes into it with ``materialize``.
"""

from __future__ import annotations

from nbfeatures.online.layout import FamilyLayout, KeySpace
from nbfeatures.online.store import OnlineRows, OnlineStore

__all__ = ["FamilyLayout", "KeySpace", "OnlineRows", "OnlineStore"]
