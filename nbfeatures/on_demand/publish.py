"""Make an on-demand family version servable: its definition in Redis beside its layout.

An on-demand family has no values to materialize. Publishing writes two keys and may flip
the live pointer:

    nbf:ondemand:{family}:vN    this ``OnDemandLayout`` as JSON: the version's full definition
                                (function source, inputs, request fields, features)
    nbf:layout:{family}:vN      the usual ``FamilyLayout`` (features and types), so listing,
                                describing, pinning and flipping work as for any family

The definition is written before the layout: a server that finds the layout always finds the
definition, so it can cache "not on-demand" for a version for good. The server compiles the
function once per version; it never reads the catalog. It runs code from Redis, so whoever
can write the catalog or the online store can run code in the server: serve trusted ones only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbfeatures.definitions import FeatureFamily
from nbfeatures.errors import DefinitionError, OnlineStoreError
from nbfeatures.online.layout import FamilyLayout

if TYPE_CHECKING:
    from nbfeatures.online import OnlineStore


def on_demand_key(store: OnlineStore, family: str, version: int) -> str:
    """Where a version's definition lives; ``{family}`` is the hash tag its other keys share."""
    return f"{store.prefix}ondemand:{{{family}}}:v{version}"


@dataclass(frozen=True)
class OnDemandLayout:
    """An on-demand family version as the server needs it: the definition and its number."""

    version: int
    family: FeatureFamily

    def __post_init__(self) -> None:
        if not self.family.on_demand:
            raise DefinitionError("on_demand", f"family {self.family.name!r} is not on-demand")

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "definition": self.family.to_dict()})

    @classmethod
    def from_json(cls, text: str | bytes) -> OnDemandLayout:
        data: dict[str, Any] = json.loads(text)
        family = FeatureFamily.from_dict(data["definition"])
        stored = data["definition"].get("hash")
        if stored != family.version_hash:
            # A definition edited in Redis (or written by another release) is not what the
            # catalog registered; serving it would break "same code everywhere".
            raise DefinitionError(
                "hash", f"{family.name} v{data['version']}: the stored definition's hash differs"
            )
        return cls(version=int(data["version"]), family=family)


def publish_on_demand(
    store: OnlineStore, family: FeatureFamily, version: int, *, live: bool = True
) -> FamilyLayout:
    """Write ``family`` (registered as ``version``) for the server; flip to it when ``live``.

    Compiles the function first, so a body that no longer compiles is never published.
    Returns the layout written. Raises ``LiveVersionChanged`` if another flip raced this one.
    """
    from nbfeatures.on_demand.function import OnDemandFunction

    OnDemandFunction(family)
    layout = FamilyLayout.of(family, version)
    store.client.set(
        on_demand_key(store, family.name, version), OnDemandLayout(version, family).to_json()
    )
    store.write_layout(layout)
    if live:
        store.flip(family.name, version, store.live_version(family.name))
    return layout


def load_on_demand(store: OnlineStore, family: str, version: int) -> OnDemandLayout | None:
    """The published definition of ``family`` v``version``, or None for a batch family."""
    raw = store.client.get(on_demand_key(store, family, version))
    if raw is None:
        return None
    try:
        return OnDemandLayout.from_json(raw)
    except (DefinitionError, KeyError, ValueError) as exc:
        raise OnlineStoreError(
            f"{family} v{version}", f"unreadable on-demand definition: {exc}"
        ) from None
