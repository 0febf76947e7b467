"""Human-readable semantic differences between two versions of a family.

Only the fields that make a version (see ``FeatureFamily.semantic_fields``) are compared:
metadata changes never make a new version, so they are never listed here.
"""

from __future__ import annotations

from nbfeatures.definitions import FeatureFamily, Source


def describe_changes(old: FeatureFamily, new: FeatureFamily) -> tuple[str, ...]:
    """What changed from ``old`` to ``new``, one sentence per difference, in a stable order."""
    changes: list[str] = []
    changes.extend(_feature_changes(old, new))
    if old.transformation.kind != new.transformation.kind:
        changes.append(
            f"transformation changed from {old.transformation.kind.value} "
            f"to {new.transformation.kind.value}"
        )
    elif old.transformation.normalized != new.transformation.normalized:
        changes.append(f"transformation changed ({new.transformation.kind.value})")
    changes.extend(_source_changes(old.sources, new.sources))
    if old.entity != new.entity:
        changes.append(
            f"entity changed from {old.entity.name}({old.entity.join_key}) "
            f"to {new.entity.name}({new.entity.join_key})"
        )
    if old.timestamp != new.timestamp:
        changes.append(f"timestamp column changed from {old.timestamp} to {new.timestamp}")
    if old.on_demand != new.on_demand:
        changes.append("now computed on demand" if new.on_demand else "no longer on demand")
    return tuple(changes)


def _feature_changes(old: FeatureFamily, new: FeatureFamily) -> list[str]:
    before = {f.name: f.dtype for f in old.features}
    after = {f.name: f.dtype for f in new.features}
    out = [f"feature added: {name} ({after[name].value})" for name in after if name not in before]
    out += [f"feature removed: {name}" for name in before if name not in after]
    out += [
        f"feature retyped: {name} {before[name].value} -> {after[name].value}"
        for name in after
        if name in before and before[name] != after[name]
    ]
    return out


def _source_changes(old: tuple[Source, ...], new: tuple[Source, ...]) -> list[str]:
    before = {s.name: s for s in old}
    after = {s.name: s for s in new}
    out = [f"source added: {name} ({after[name].location})" for name in after if name not in before]
    out += [f"source removed: {name}" for name in before if name not in after]
    for name, source in after.items():
        previous = before.get(name)
        if previous is None or previous == source:
            continue
        parts = [
            f"{field} {getattr(previous, field)} -> {getattr(source, field)}"
            for field in ("location", "format", "timestamp")
            if getattr(previous, field) != getattr(source, field)
        ]
        out.append(f"source changed: {name} ({', '.join(parts)})")
    return out
