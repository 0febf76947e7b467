"""``promote``: run the promotion notebook with papermill, under the family's lock.

The caller's process holds the lock, creates the MLflow run, runs the template in a fresh
kernel (which starts its own Spark) and reports each step as it starts and ends. Whatever
stops the run (an error in a cell, Redis or MLflow going away, the kernel dying) becomes one
``PromotionFailed`` naming the step, the cell and the executed notebook; production is not
touched before the ``flip`` step, and ``flip`` moves pointer and alias together or not at all.
If this process itself is killed, the kernel stops with it (ipykernel watches its parent),
the flip cell is never sent, and the lock expires ``lock_ttl`` seconds later; the next
promotion of the family (or ``nbfeatures status``) then ends the dead run as ``KILLED`` (or as
succeeded, when it was killed after its flip) and, had the kill fallen between the pointer and
the alias update, moves the alias to the live version (``repair``).

Promoting the version that is already live is refused at once, before any run starts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.errors import PromotionFailed, PromotionInProgress, first_line
from nbfeatures.promotion.records import (
    STEPS,
    ProgressCallback,
    PromotionOptions,
    PromotionRecord,
    StepEvent,
)

if TYPE_CHECKING:
    from nbfeatures.config import Settings

log = logging.getLogger(__name__)

ENGINE_NAME = "nbfeatures-promotion"
TEMPLATE = "promote.ipynb"


def template_path() -> Path:
    """The template notebook shipped inside the package."""
    return Path(str(resources.files("nbfeatures.templates").joinpath(TEMPLATE)))


def log_progress(event: StepEvent) -> None:
    """The default progress report: one log line per step start and end."""
    log.info("%s", event.line())


class StepObserver:
    """Turns papermill's cell start/end into ``StepEvent``s for the tagged step cells."""

    def __init__(self, callback: ProgressCallback) -> None:
        self.callback = callback
        self.current: str | None = None
        self.durations: dict[str, float] = {}
        self._started = 0.0

    def attach(self, manager: Any) -> None:
        """Wrap a papermill ``NotebookExecutionManager``'s cell hooks (one run only)."""
        cell_start, cell_complete = manager.cell_start, manager.cell_complete

        def on_start(cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
            cell_start(cell, cell_index, **kwargs)
            step = step_of(cell)
            if step is not None:
                self.current, self._started = step, time.perf_counter()
                self._emit(StepEvent(step, STEPS.index(step) + 1, len(STEPS)))

        def on_complete(cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
            cell_complete(cell, cell_index, **kwargs)
            step = step_of(cell)
            if step is not None:
                seconds = time.perf_counter() - self._started
                ok = cell.metadata.get("papermill", {}).get("status") != "failed"
                self.durations[step] = round(seconds, 3)
                index = STEPS.index(step) + 1
                self._emit(StepEvent(step, index, len(STEPS), seconds, ok))

        manager.cell_start, manager.cell_complete = on_start, on_complete

    def _emit(self, event: StepEvent) -> None:
        try:
            self.callback(event)
        except Exception as exc:  # a broken progress display must not break a promotion
            log.warning("progress callback failed: %s", exc)


def step_of(cell: Any) -> str | None:
    """The step a template cell runs: its tag that names a step."""
    tags = cell.get("metadata", {}).get("tags", [])
    return next((t for t in tags if t in STEPS), None)


# The error banner and the anchor papermill inserts into a notebook whose cell failed.
_PAPERMILL_ADDED_CELLS = 2


def _register_engine() -> None:
    """Register (once, idempotently) the papermill engine that reports steps."""
    engines = require("papermill.engines", "notebook")

    class ObservedEngine(engines.NBClientEngine):  # type: ignore[misc, name-defined]
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            observer = kwargs.pop("step_observer", None)
            if observer is not None:
                observer.attach(nb_man)
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    if ENGINE_NAME not in engines.papermill_engines._engines:
        engines.papermill_engines.register(ENGINE_NAME, ObservedEngine)


def _overrides(settings: Settings) -> dict[str, Any]:
    """The caller's settings that differ from the defaults, so the kernel uses the same."""
    from nbfeatures.config import Settings
    from nbfeatures.settings_fields import RECORDS_GIVEN

    defaults = Settings(workspace=settings.workspace)
    return {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        # Not settings to hand on: the kernel has its workspace, and records what it was given.
        if f.name != "workspace"
        and not f.metadata.get(RECORDS_GIVEN)
        and getattr(settings, f.name) is not None
        and getattr(settings, f.name) != getattr(defaults, f.name)
    }


def promote(
    settings: Settings,
    family: str,
    version: int | None = None,
    *,
    progress: ProgressCallback | None = None,
    options: PromotionOptions | None = None,
) -> PromotionRecord:
    """Compute, materialize, verify and make ``family`` ``version`` (default: latest) live.

    ``progress`` receives a ``StepEvent`` as each step starts and ends (default: log lines
    ``step 3/6 materialize: 12.3 s``). Raises ``PromotionInProgress`` when another promotion
    of the family runs, and ``PromotionFailed(family, version, step, reason, notebook, cell)``
    when a step fails or the version is already live; production serves what it served before.

    With ``options.restore`` the catalog's production version is put back into the online
    store (after data loss): its offline set is reused (computed only if missing), verified,
    and the live pointer set; the ``production`` alias is left as it is.
    """
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.promotion.lock import PromotionLock

    options = options or PromotionOptions()
    label = version if version is not None else 0
    try:
        store = OnlineStore.from_settings(settings)
        lock = PromotionLock(store.client, store.prefix, family, options.lock_ttl)
        holding = lock.hold(options.lock_wait)
        holding.__enter__()
    except PromotionInProgress:
        raise
    except Exception as exc:  # Redis unreachable: nothing started, nothing changed
        raise PromotionFailed(family, label, "lock", first_line(exc, 500)) from exc
    try:
        from nbfeatures.promotion.repair import repair_family

        # Under the lock, before this run's own MLflow run exists: a RUNNING run of the
        # family now belongs to a dead process, and a pointer/alias split to an
        # interrupted flip. Both are set right first.
        repair_family(settings, store, family)
        target = _target(settings, family, version, options.restore)
        if target is not None:
            _refuse_live(store, family, target.version, options.restore)
            version = target.version
            if target.family.on_demand:
                return _publish(settings, store, target, progress or log_progress)
        return _run(settings, family, version, progress or log_progress, options)
    finally:
        holding.__exit__(None, None, None)


def _target(settings: Settings, family: str, version: int | None, restore: bool) -> Any:
    """The catalog version to promote, or None when the catalog cannot say (the template's
    load step then reports it with its cell). A restore takes the production version."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.catalog.records import PRODUCTION_ALIAS
    from nbfeatures.errors import FeatureNotFound

    if not restore:
        try:
            return Catalog.from_settings(settings).get(family, version=version)
        except Exception:
            return None
    label = version if version is not None else 0
    try:
        found = Catalog.from_settings(settings).get(family, alias=PRODUCTION_ALIAS)
    except FeatureNotFound:
        raise PromotionFailed(
            family, label, "load", f"the catalog has no production version of {family} to restore"
        ) from None
    except Exception as exc:
        raise PromotionFailed(family, label, "load", first_line(exc, 500)) from exc
    if version is not None and version != found.version:
        raise PromotionFailed(
            family,
            version,
            "load",
            f"a restore puts back the production version, v{found.version}, not v{version}",
        )
    return found


def _refuse_live(store: Any, family: str, version: int, restore: bool) -> None:
    """Refuse, before anything runs, to promote (or restore) the version already live."""
    if store.live_version(family) == version:
        raise PromotionFailed(
            family,
            version,
            "load",
            f"{family} v{version} is already live (the online store's live pointer names it); "
            + ("nothing to restore" if restore else "nothing to promote"),
        )


def _publish(
    settings: Settings, store: Any, fv: Any, progress: ProgressCallback
) -> PromotionRecord:
    """Promote an on-demand family: nothing to compute or materialize, so no notebook run.

    Its definition is published to Redis for the server, then the live pointer and the
    ``production`` alias move together, as for any family.
    """
    from nbfeatures.catalog import Catalog
    from nbfeatures.on_demand import publish_on_demand
    from nbfeatures.promotion.switch import flip_together

    started_at = dt.datetime.now(dt.UTC)
    began = time.perf_counter()
    progress(StepEvent("publish", 1, 1, None))
    try:
        expected = store.live_version(fv.name)
        publish_on_demand(store, fv.family, fv.version, live=False)
        previous = flip_together(
            store, Catalog.from_settings(settings), fv.name, fv.version, expected
        )
    except Exception as exc:
        progress(StepEvent("publish", 1, 1, time.perf_counter() - began, ok=False))
        raise PromotionFailed(fv.name, fv.version, "publish", first_line(exc, 500)) from exc
    seconds = time.perf_counter() - began
    progress(StepEvent("publish", 1, 1, seconds))
    return PromotionRecord(
        family=fv.name,
        version=fv.version,
        previous=previous,
        run_id="",
        notebook="",
        started_at=started_at,
        seconds=seconds,
        steps={"publish": seconds},
    )


def _run(
    settings: Settings,
    family: str,
    version: int | None,
    progress: ProgressCallback,
    options: PromotionOptions,
) -> PromotionRecord:
    from nbfeatures.promotion.tracking import finish_run, start_run

    papermill = require("papermill", "notebook")
    pm_exceptions = require("papermill.exceptions", "notebook")
    started_at = dt.datetime.now(dt.UTC)
    label = version if version is not None else 0
    run_dir = (
        settings.home
        / "promotions"
        / (f"{family}-{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}")
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    notebook = run_dir / TEMPLATE
    results_path = run_dir / "results.json"
    try:
        run_id = start_run(
            settings,
            family,
            version,
            "restore" if options.restore else "promotion",
            # Where a repair finds what this run did if its process dies (``repair``).
            tags={"nbfeatures.results": str(results_path), "nbfeatures.notebook": str(notebook)},
        )
    except Exception as exc:
        raise PromotionFailed(family, label, "record", first_line(exc, 500)) from exc

    observer = StepObserver(progress)
    _register_engine()
    failure: PromotionFailed | None = None
    began = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(template_path()),
            str(notebook),
            parameters={
                "workspace": str(settings.workspace),
                "family": family,
                "version": version,
                "run_id": run_id,
                "results_path": str(results_path),
                "settings_overrides": _overrides(settings),
                "start": options.start.isoformat() if options.start else None,
                "end": options.end.isoformat() if options.end else None,
                "sample_size": options.sample_size,
                "engine": options.engine,
                "allow_expired": options.allow_expired,
                "recompute": options.recompute,
                "restore": options.restore,
            },
            engine_name=ENGINE_NAME,
            kernel_name=options.kernel_name,
            cwd=str(settings.workspace),
            progress_bar=False,
            step_observer=observer,
        )
    except pm_exceptions.PapermillExecutionError as exc:
        step = observer.current or "load"
        # papermill saves a failed notebook with two cells added in front of the failing
        # one (an error banner at the top and an anchor just before it), after it computed
        # `cell_index`; the cell a person opens is therefore two further down. Computed,
        # not looked up in the file, which may be read before papermill's last write.
        failure = PromotionFailed(
            family,
            _version(results_path, label),
            step,
            _reason(exc),
            str(notebook),
            exc.cell_index + _PAPERMILL_ADDED_CELLS,
        )
    except Exception as exc:  # the kernel died or could not start: no banner is added
        step = observer.current or "load"
        failure = PromotionFailed(
            family,
            _version(results_path, label),
            step,
            first_line(exc, 500),
            str(notebook),
            _cell_of(notebook, step),
        )
    results = _read(results_path)
    seconds = time.perf_counter() - began
    if failure is not None and failure.step == "record" and "flip" in results:
        # The flip happened: the promotion stands, only its record is incomplete.
        log.warning("%s is live but recording the promotion failed: %s", family, failure.reason)
        failure = None
    tags = {"outcome": "failed" if failure else "succeeded"}
    if failure is not None:
        tags.update(failed_step=failure.step, reason=failure.reason[:5000])
    try:
        finish_run(
            settings, run_id, notebook=str(notebook) if notebook.exists() else None,
            tags=tags, failed=failure is not None,
        )  # fmt: skip
    except Exception as exc:
        log.warning("could not finish the MLflow run of the promotion of %s: %s", family, exc)
    if failure is not None:
        raise failure
    load = results.get("load", {})
    return PromotionRecord(
        family=family,
        version=int(load["version"]),
        previous=load.get("live_before"),
        run_id=run_id,
        notebook=str(notebook),
        started_at=started_at,
        seconds=seconds,
        steps=dict(observer.durations),
        results=results,
    )


def _cell_of(notebook: Path, step: str) -> int | None:
    """The index of ``step``'s cell in a saved notebook papermill added no cells to."""
    try:
        cells = json.loads(notebook.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return None
    found = [i for i, cell in enumerate(cells) if step_of(cell) == step]
    return found[0] if found else None


def _read(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _version(results_path: Path, fallback: int) -> int:
    version = _read(results_path).get("load", {}).get("version")
    return int(version) if isinstance(version, int) else fallback


def _reason(exc: Any) -> str:
    """The cell's error in one line; our own errors without their class name."""
    name, value = str(getattr(exc, "ename", "")), str(getattr(exc, "evalue", ""))
    if name == "PromotionFailed" and "failed at step" in value:
        value = value.split(": ", 1)[-1].removesuffix("; production is unchanged")
        return value
    return f"{name}: {value}" if value else name
