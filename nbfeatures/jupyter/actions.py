"""The work of the panel's promotion jobs: the same library calls as ``nbfeatures promote``
and ``nbfeatures rollback``, with progress turned into the job's lines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nbfeatures.errors import PromotionFailed
from nbfeatures.jupyter.jobs import JobFailed, Outcome, Work
from nbfeatures.jupyter.notebooks import openable_path

if TYPE_CHECKING:
    from collections.abc import Callable

    from nbfeatures.config import Settings
    from nbfeatures.promotion import StepEvent


def promotion(settings: Settings, root: Path, family: str, version: int) -> Work:
    """Promote ``family`` ``version``; the job's notebook is the executed template."""

    def work(report: Callable[[str], None]) -> Outcome:
        from nbfeatures import promotion

        def progress(event: StepEvent) -> None:
            report(event.line())

        try:
            record = promotion.promote(settings, family, version, progress=progress)
        except PromotionFailed as exc:
            notebook = openable_path(exc.notebook, root) if exc.notebook else None
            raise JobFailed(str(exc), notebook) from exc
        before = f"v{record.previous}" if record.previous is not None else "nothing"
        lines = [
            f"{record.family} v{record.version} is live (was {before}) after {record.seconds:.1f} s"
        ]
        if record.keyspace_line():
            lines.append(f"{record.family} v{record.version}: {record.keyspace_line()}")
        # An on-demand family is published without a notebook run: its record has none.
        notebook = openable_path(record.notebook, root) if record.notebook else None
        return Outcome(record.version, notebook, tuple(lines))

    return work


def rollback(settings: Settings, family: str) -> Work:
    """Make the version live before the current one live again (pointer and alias)."""

    def work(report: Callable[[str], None]) -> Outcome:
        from nbfeatures import promotion

        report(f"rolling back {family}")
        version = promotion.rollback(settings, family)
        return Outcome(version, None, (f"{family} rolled back: v{version} is live",))

    return work
