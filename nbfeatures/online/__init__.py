"""The online store owns Redis: values per family version, the live pointer, embedded Redis.

``OnlineStore`` talks to Redis (standalone, TLS/AUTH, or Cluster; see ``connect``); values are
encoded by ``codec``; keys are laid out as ``layout`` documents (a family without strings
packed several entities to a Redis hash, as ``packing`` documents); ``stored.StoredVersion``
is one version's stored form (its keys, read and write commands, decoding), the one place
that knows keyed from packed; commands are RESP bytes from ``resp``; with no ``redis_url`` the
workspace runs its own server (``embedded``). Spark writes into it with ``materialize``.
"""

from __future__ import annotations

from nbfeatures.online.layout import FamilyLayout, KeySpace
from nbfeatures.online.rows import OnlineRows
from nbfeatures.online.store import OnlineStore, WriteTarget

__all__ = ["FamilyLayout", "KeySpace", "OnlineRows", "OnlineStore", "WriteTarget"]
