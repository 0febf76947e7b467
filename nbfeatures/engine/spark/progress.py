"""Show Spark's progress while a long job runs: a widget in a notebook, log lines elsewhere.

Local sessions are polled through ``statusTracker()`` from a daemon thread; Spark Connect
sessions push progress to a registered handler. Both feed one small reporter. Everything
here is best effort: a failure to report never fails the job.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from nbfeatures.engine.spark.spark_api import is_connect

log = logging.getLogger(__name__)
_POLL_SECONDS = 0.5


class _Reporter:
    """Renders done/total tasks as an ipywidgets bar inside IPython, else as log lines."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.widget: Any = None
        self.last: tuple[int, int] = (-1, -1)
        try:
            from IPython import get_ipython

            shell = get_ipython()
            if shell is not None and "Kernel" in type(shell).__name__:
                import ipywidgets
                from IPython.display import display

                self.widget = ipywidgets.IntProgress(value=0, max=1, description=label)
                display(self.widget)  # type: ignore[no-untyped-call]
        except ImportError:
            self.widget = None

    def update(self, done: int, total: int) -> None:
        if (done, total) == self.last or total <= 0:
            return
        self.last = (done, total)
        if self.widget is not None:
            self.widget.max, self.widget.value = total, done
        else:
            log.info("%s: %d/%d tasks", self.label, done, total)

    def close(self) -> None:
        if self.widget is not None:
            self.widget.bar_style = "success"


def _poll(spark: Any, reporter: _Reporter, stop: threading.Event) -> None:
    tracker = spark.sparkContext.statusTracker()
    while not stop.wait(_POLL_SECONDS):
        with contextlib.suppress(Exception):
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            stages = [s for s in stages if s is not None]
            reporter.update(
                sum(s.numCompletedTasks for s in stages), sum(s.numTasks for s in stages)
            )


@contextlib.contextmanager
def spark_progress(spark: Any, label: str, enabled: bool = True) -> Iterator[None]:
    """Report the progress of Spark jobs run inside the ``with`` block."""
    if not enabled:
        yield
        return
    reporter = _Reporter(label)
    if is_connect(spark):

        def handler(stages: Any, inflight_tasks: int, **_: Any) -> None:
            reporter.update(
                sum(s.num_completed_tasks for s in stages), sum(s.num_tasks for s in stages)
            )

        spark.registerProgressHandler(handler)
        try:
            yield
        finally:
            spark.removeProgressHandler(handler)
            reporter.close()
        return
    stop = threading.Event()
    thread = threading.Thread(target=_poll, args=(spark, reporter, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        reporter.close()
