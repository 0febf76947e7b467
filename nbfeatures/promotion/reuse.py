"""Whether a promotion reuses the version's offline set or computes it again.

Computing is most of a promotion's time, and right after ``nbfeatures compute`` it would
write the same rows again. The version's manifest (``engine.offline_store.Manifest``) says what
its folder holds, so the offline set is reused when it is current:

* it was computed from this definition (the manifest's hash is the version's);
* the sources have not changed since it was last written: the newest run's snapshot of
  every source it read (files, sizes, modification times) equals the sources now. A table
  source records only its name, so whether it changed cannot be seen: it is recomputed;
* it covers what the promotion needs: the requested ``[start, end)``, or, without a range,
  everything the sources hold: a run since the sources last changed computed the full
  range (a promotion without a range, or ``compute`` without ``--start``/``--end``).

``recompute`` always computes. A restore (``restore``) reuses any offline set of this
definition as it is, sources changed or not: it puts back what production served, and
computes only when there is none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbfeatures.definitions import Source
    from nbfeatures.engine.offline_store import Manifest

#: The start of ``nbfeatures compute``'s default range: a run from there to after it ran
#: computed everything the sources held.
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class OfflineChoice:
    """Reuse the offline set (``reuse``) or compute it; ``reason`` says why, for the output."""

    reuse: bool
    reason: str


def _time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def is_full(run: dict[str, Any]) -> bool:
    """Whether a manifest run computed everything its sources held."""
    if run.get("full") is True:
        return True
    try:
        start, end = (_time(t) for t in run["requested"])
        return start <= _EARLIEST and end >= _time(run["started_at"])
    except (KeyError, TypeError, ValueError):
        return False


def _changed(
    recorded: list[dict[str, Any]],
    sources: Sequence[Source],
    snapshot: Callable[[Source], dict[str, Any]],
) -> str | None:
    """Why the sources differ from a run's snapshots, or None when they are the same."""
    by_name = {source.name: source for source in sources}
    for seen in recorded:
        name = seen.get("name")
        if name not in by_name:
            return f"source {name!r} is no longer one of the definition's sources"
        if "table" in seen:
            return f"source {name!r} is a table, whose changes cannot be seen"
        if snapshot(by_name[name]) != seen:
            return f"source {name!r} changed since the offline set was computed"
    return None


def choose_offline(
    manifest: Manifest | None,
    version_hash: str,
    sources: Sequence[Source],
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    *,
    recompute: bool = False,
    restore: bool = False,
) -> OfflineChoice:
    """Whether the offline set ``manifest`` describes can be promoted as it is."""
    from nbfeatures.engine.offline_store import source_snapshot

    if recompute:
        return OfflineChoice(False, "asked to recompute")
    if manifest is None:
        return OfflineChoice(False, "no offline set was computed for this version")
    if manifest.hash != version_hash:
        return OfflineChoice(
            False,
            f"the offline set was computed from another definition (hash "
            f"{manifest.hash[:12]}, the version's is {version_hash[:12]})",
        )
    if not manifest.runs or not manifest.covered:
        return OfflineChoice(False, "the offline set records no computation")
    if restore:
        return OfflineChoice(True, "restoring what production served")
    newest = manifest.runs[-1]
    changed = _changed(list(newest.get("sources", [])), sources, source_snapshot)
    if changed is not None:
        return OfflineChoice(False, changed)
    if start is not None and end is not None:
        gaps = manifest.missing(start, end)
        if gaps:
            return OfflineChoice(
                False, f"the offline set does not cover [{gaps[0][0]}, {gaps[0][1]})"
            )
        return OfflineChoice(True, "current and covering the requested range")
    same = [run for run in manifest.runs if run.get("sources") == newest.get("sources")]
    if not any(is_full(run) for run in same):
        return OfflineChoice(
            False, "the offline set was computed for part of the sources' range only"
        )
    return OfflineChoice(True, "current and covering everything the sources hold")


def covered_text(manifest: Manifest) -> str:
    """``[a, b)`` (or several) in UTC, for the promotion's output."""
    return ", ".join(f"[{s:%Y-%m-%d %H:%M}, {e:%Y-%m-%d %H:%M})" for s, e in manifest.covered)


def offline_line(results: dict[str, Any]) -> str | None:
    """What a promotion did with the offline set, from its compute step's results."""
    compute = results.get("compute")
    if not isinstance(compute, dict) or "offline" not in compute:
        return None
    return str(compute["offline"])
