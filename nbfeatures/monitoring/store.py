"""Reports kept in MLflow: one run per report in the monitoring experiment, reviewed there too.

    experiment <monitoring.experiment>            (default nbfeatures-monitoring)
      run <family>-<kind>-v<N>
        tags   nbf.report.kind / family / version / status / owner
               nbf.report.summary                 the summary's JSON, when it fits in a tag
               nbf.review.state                   pending | reviewed (what `reviewed=` filters)
               nbf.review.by / at / comment       who reviewed it, when (UTC), what they said
               nbf.report.copy / copy_error       where the report_root copy went, or why not
               nbf.report.webhook / webhook_error the alert webhook was called, or why it failed
        artifacts report.html  summary.json  report.ipynb (when the report ran as a notebook)

The MLflow UI therefore shows every report, filterable by these tags, without anything of
ours. Saving is one MLflow run written completely before anything is delivered elsewhere: a
copy to ``report_root`` or a webhook that fails is recorded on the run and warned about, it
never loses the report.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbfeatures.catalog.connection import Connection, ensure_experiment, error_code, redact
from nbfeatures.catalog.records import utc_from_millis
from nbfeatures.definitions import NAME_PATTERN
from nbfeatures.errors import (
    CatalogUnavailable,
    ConfigError,
    FeatureNotFound,
    MonitoringError,
    ReportFailed,
    ReportNotFound,
    ReviewRefused,
    first_line,
)
from nbfeatures.monitoring.report_copy import copy_folder, copy_report
from nbfeatures.monitoring.summary import REPORT_KINDS, ReportResult, ReportSummary, Status
from nbfeatures.monitoring.webhook import alert_payload, post_json

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import Settings

log = logging.getLogger(__name__)

TAG_KIND = "nbf.report.kind"
TAG_FAMILY = "nbf.report.family"
TAG_VERSION = "nbf.report.version"
TAG_STATUS = "nbf.report.status"
TAG_OWNER = "nbf.report.owner"
TAG_SUMMARY = "nbf.report.summary"
TAG_NOTEBOOK = "nbf.report.notebook"
TAG_COPY = "nbf.report.copy"
TAG_COPY_ERROR = "nbf.report.copy_error"
TAG_WEBHOOK = "nbf.report.webhook"
TAG_WEBHOOK_ERROR = "nbf.report.webhook_error"
TAG_REVIEW_STATE = "nbf.review.state"
TAG_REVIEW_BY = "nbf.review.by"
TAG_REVIEW_AT = "nbf.review.at"
TAG_REVIEW_COMMENT = "nbf.review.comment"
REVIEW_PENDING = "pending"
REVIEW_DONE = "reviewed"

HTML_ARTIFACT = "report.html"
SUMMARY_ARTIFACT = "summary.json"
NOTEBOOK_ARTIFACT = "report.ipynb"

# MLflow refuses run tag values longer than this (mlflow.utils.validation.MAX_TAG_VAL_LENGTH).
MAX_TAG_VALUE = 8000


class ReportDeliveryWarning(UserWarning):
    """A saved report could not be copied to ``report_root`` or announced to the webhook."""


@dataclass(frozen=True)
class Review:
    """Who marked a report reviewed, when (UTC) and what they said."""

    reviewer: str
    at: dt.datetime
    comment: str

    def to_dict(self) -> dict[str, Any]:
        return {"reviewer": self.reviewer, "at": self.at.isoformat(), "comment": self.comment}


@dataclass(frozen=True)
class ReportRecord:
    """One saved report as the list, the CLI, the widget and the JupyterLab panel see it."""

    id: str  # the MLflow run id
    kind: str
    family: str
    version: int | None
    status: Status
    created_at: dt.datetime
    owner: str | None  # the family's owner (catalog) when the report was saved
    review: Review | None
    summary: ReportSummary
    copy_uri: str | None  # where the copy under report_root went (gs://... or a path)
    copy_error: str | None = None
    webhook_error: str | None = None
    has_notebook: bool = False

    @property
    def reviewed(self) -> bool:
        return self.review is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "family": self.family,
            "version": self.version,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "owner": self.owner,
            "review": self.review.to_dict() if self.review is not None else None,
            "summary": self.summary.to_dict(),
            "copy_uri": self.copy_uri,
            "copy_error": self.copy_error,
            "webhook_error": self.webhook_error,
            "has_notebook": self.has_notebook,
        }


class ReportStore:
    """Save, find and review reports; MLflow is the system of record.

    ``report_root`` (a folder or ``gs://bucket/prefix``) receives a copy of each report and
    ``webhook`` is POSTed the summary of each report in alert. Nothing is contacted until the
    first call.
    """

    def __init__(
        self,
        tracking_uri: str,
        artifact_location: str | None,
        experiment_name: str,
        *,
        report_root: str | None = None,
        webhook: str | None = None,
        model_prefix: str = "nbf.",
        catalog: Catalog | None = None,
        timeout: float = 10.0,
        retries: int = 1,
        gcs_emulator: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location
        self.experiment_name = experiment_name
        self.report_root = report_root
        self.webhook = webhook
        self.model_prefix = model_prefix
        self.gcs_emulator = gcs_emulator  # for a gs:// report_root
        self._catalog = catalog
        self._connection = Connection(tracking_uri, timeout=timeout, retries=retries)
        self._experiment_id: str | None = None
        self._downloads: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportStore:
        """The workspace's store: its catalog's MLflow, the monitoring experiment and options."""
        from nbfeatures.monitoring.config import monitoring_config

        config = monitoring_config(settings)
        settings.home.mkdir(parents=True, exist_ok=True)
        return cls(
            settings.catalog,
            settings.artifacts,
            config.experiment,
            report_root=config.report_root,
            webhook=config.webhook,
            model_prefix=settings.registered_model_prefix,
            gcs_emulator=settings.gcs_emulator,
        )

    def __repr__(self) -> str:
        return f"ReportStore({redact(self.tracking_uri)!r}, experiment={self.experiment_name!r})"

    # ----------------------------------------------------------------- saving

    def save(
        self, result: ReportResult, *, notebook: Path | None = None, owner: str | None = None
    ) -> ReportRecord:
        """Save ``result`` as one run, then copy it to ``report_root`` and call the webhook.

        ``owner`` defaults to the family's owner in the catalog. A missing page or notebook
        raises ``ReportFailed`` before anything is written; MLflow failing midway removes the
        half-written run and raises ``ReportFailed`` (or ``CatalogUnavailable``).
        """
        summary = result.summary
        _require_file(summary, result.html, "page")
        if notebook is not None:
            _require_file(summary, notebook, "notebook")
        if owner is None:
            owner = self._owner_of(summary.family, summary.version)
        client = self._connection.client
        run = self._connection.call(
            client.create_run,
            self._experiment(create=True),
            run_name=f"{summary.family}-{summary.kind}"
            + (f"-v{summary.version}" if summary.version is not None else ""),
            tags=_report_tags(summary, owner, notebook is not None),
        )
        run_id = str(run.info.run_id)
        with tempfile.TemporaryDirectory(prefix="nbf-report-") as tmp:
            files = _stage(Path(tmp), result, notebook)
            try:
                self._connection.call(client.log_artifacts, run_id, tmp)
                with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints run links
                    self._connection.call(client.set_terminated, run_id, "FINISHED")
            except BaseException as exc:
                self._discard(run_id)
                if isinstance(exc, CatalogUnavailable) or not isinstance(exc, Exception):
                    raise
                raise ReportFailed(
                    summary.family, summary.kind, f"saving it in MLflow failed: {first_line(exc)}"
                ) from exc
            created = utc_from_millis(run.info.start_time)
            self._deliver(summary, run_id, created, files)
        return self.get(run_id)

    def _deliver(
        self, summary: ReportSummary, run_id: str, created: dt.datetime, files: dict[str, Path]
    ) -> None:
        """Copy to ``report_root``, call the webhook; a failure of either is a tag and a warning."""
        tags: dict[str, str] = {}
        if self.report_root:
            folder = copy_folder(self.report_root, summary.family, summary.kind, created, run_id)
            try:
                tags[TAG_COPY] = copy_report(folder, files, self.gcs_emulator)
            except Exception as exc:  # the run is complete: a copy that failed loses nothing
                tags[TAG_COPY_ERROR] = _tag_text(f"copy to {folder} failed: {first_line(exc)}")
        if self.webhook and summary.status is Status.ALERT:
            problem = post_json(self.webhook, alert_payload(summary, run_id))
            if problem is None:
                tags[TAG_WEBHOOK] = "sent " + dt.datetime.now(dt.UTC).isoformat()
            else:
                tags[TAG_WEBHOOK_ERROR] = _tag_text(f"alert webhook failed: {problem}")
        if tags:
            self._set_tags(run_id, tags)
        for key in (TAG_COPY_ERROR, TAG_WEBHOOK_ERROR):
            if key in tags:
                message = (
                    f"report {run_id} ({summary.family} {summary.kind}) is saved, but {tags[key]}"
                )
                log.warning(message)
                warnings.warn(message, ReportDeliveryWarning, stacklevel=3)

    def _discard(self, run_id: str) -> None:
        """Best effort: a run whose artifacts could not be written is not a report."""
        try:
            self._connection.call(self._connection.client.delete_run, run_id)
        except Exception:
            log.warning("could not delete the incomplete report run %s", run_id)

    def _owner_of(self, family: str, version: int | None) -> str | None:
        if self._catalog is None:
            from nbfeatures.catalog import Catalog

            self._catalog = Catalog(self.tracking_uri, self.artifact_location, self.model_prefix)
        try:
            return self._catalog.get(family, version).family.owner or None
        except FeatureNotFound:
            return None  # a report on a family the catalog does not know still saves

    # ----------------------------------------------------------------- reading

    def list(
        self,
        *,
        family: str | None = None,
        kind: str | None = None,
        status: Status | str | None = None,
        reviewed: bool | None = None,
        limit: int = 50,
    ) -> builtins.list[ReportRecord]:
        """Reports matching every given filter, newest first, at most ``limit``."""
        experiment = self._experiment(create=False)
        if experiment is None or limit <= 0:
            return []
        if family is not None and not NAME_PATTERN.match(family):
            return []  # no report can be on a family that cannot exist
        clauses = [f"tags.`{TAG_KIND}` != ''"]
        if family is not None:
            clauses.append(f"tags.`{TAG_FAMILY}` = '{family}'")
        if kind is not None:
            if kind not in REPORT_KINDS:
                raise ConfigError(
                    "report kind", f"{kind!r} is not one of {', '.join(REPORT_KINDS)}"
                )
            clauses.append(f"tags.`{TAG_KIND}` = '{kind}'")
        if status is not None:
            clauses.append(f"tags.`{TAG_STATUS}` = '{_status(status).value}'")
        if reviewed is not None:
            state = REVIEW_DONE if reviewed else REVIEW_PENDING
            clauses.append(f"tags.`{TAG_REVIEW_STATE}` = '{state}'")
        client = self._connection.client
        runs: builtins.list[Any] = []
        token: str | None = None
        while len(runs) < limit:
            page = self._connection.call(
                client.search_runs,
                [experiment],
                filter_string=" and ".join(clauses),
                max_results=min(limit - len(runs), 1000),
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            runs.extend(page)
            token = getattr(page, "token", None)
            if not token:
                break
        return [self._record(run) for run in runs[:limit]]

    def get(self, report_id: str) -> ReportRecord:
        """The report with this id; ``ReportNotFound`` for any id that is not one."""
        return self._record(self._run(report_id))

    def latest(self, family: str) -> dict[str, ReportRecord]:
        """The newest report of each kind on ``family`` (kinds never reported are absent)."""
        found: dict[str, ReportRecord] = {}
        for kind in REPORT_KINDS:
            newest = self.list(family=family, kind=kind, limit=1)
            if newest:
                found[kind] = newest[0]
        return found

    def html(self, report_id: str) -> Path:
        """A local copy of the report's Evidently page (downloaded once per store)."""
        path = self._download(report_id, HTML_ARTIFACT)
        if path is None:
            raise ReportNotFound(report_id)
        return path

    def notebook(self, report_id: str) -> Path | None:
        """A local copy of the executed report notebook, or None if it ran without one."""
        run = self._run(report_id)
        if not run.data.tags.get(TAG_NOTEBOOK):
            return None
        return self._download(report_id, NOTEBOOK_ARTIFACT)

    # ----------------------------------------------------------------- review

    def review(self, report_id: str, reviewer: str, comment: str = "") -> ReportRecord:
        """Mark the report reviewed by ``reviewer`` now (UTC); a later review replaces it."""
        name = (reviewer or "").strip()
        if not name:
            raise ReviewRefused(report_id, "the reviewer's name is empty")
        if len(name) > MAX_TAG_VALUE or len(comment) > MAX_TAG_VALUE:
            raise ReviewRefused(
                report_id, f"the name and the comment must be at most {MAX_TAG_VALUE} characters"
            )
        self._run(report_id)  # ReportNotFound before anything is written
        self._set_tags(
            report_id,
            {
                TAG_REVIEW_STATE: REVIEW_DONE,
                TAG_REVIEW_BY: name,
                TAG_REVIEW_AT: dt.datetime.now(dt.UTC).isoformat(),
                TAG_REVIEW_COMMENT: comment,
            },
        )
        return self.get(report_id)

    # ----------------------------------------------------------------- MLflow records

    def _experiment(self, *, create: bool) -> str | None:
        if self._experiment_id is not None:
            return self._experiment_id
        if create:
            found = ensure_experiment(
                self._connection, self.experiment_name, self.artifact_location
            )
            if found is None:
                raise MonitoringError(
                    f"the monitoring experiment {self.experiment_name!r} could not be created "
                    f"in {redact(self.tracking_uri)}"
                )
            self._experiment_id = found
            return found
        client = self._connection.client
        experiment = self._connection.call(client.get_experiment_by_name, self.experiment_name)
        if experiment is None or experiment.lifecycle_stage == "deleted":
            return None  # reading never creates it: no experiment, no reports
        self._experiment_id = str(experiment.experiment_id)
        return self._experiment_id

    def _run(self, report_id: str) -> Any:
        """The MLflow run of a report: active, in the monitoring experiment, with report tags."""
        experiment = self._experiment(create=False)
        if experiment is None or not report_id:
            raise ReportNotFound(report_id)
        client = self._connection.client
        try:
            run = self._connection.call(client.get_run, report_id)
        except Exception as exc:
            if error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise ReportNotFound(report_id) from None
            raise
        if (
            str(run.info.experiment_id) != experiment
            or run.info.lifecycle_stage == "deleted"
            or not run.data.tags.get(TAG_KIND)
        ):
            raise ReportNotFound(report_id)
        return run

    def _record(self, run: Any) -> ReportRecord:
        tags: Mapping[str, str] = run.data.tags
        run_id = str(run.info.run_id)
        raw = tags.get(TAG_SUMMARY)
        if raw:
            summary = ReportSummary.from_json(raw)
        else:
            path = self._download(run_id, SUMMARY_ARTIFACT)
            if path is None:
                raise ReportNotFound(run_id)
            summary = ReportSummary.from_json(path.read_text())
        review = None
        if tags.get(TAG_REVIEW_STATE) == REVIEW_DONE:
            review = Review(
                reviewer=tags.get(TAG_REVIEW_BY, ""),
                at=dt.datetime.fromisoformat(tags[TAG_REVIEW_AT]),
                comment=tags.get(TAG_REVIEW_COMMENT, ""),
            )
        version = tags.get(TAG_VERSION)
        return ReportRecord(
            id=run_id,
            kind=tags[TAG_KIND],
            family=tags.get(TAG_FAMILY, summary.family),
            version=int(version) if version else None,
            status=Status(tags.get(TAG_STATUS, summary.status.value)),
            created_at=utc_from_millis(run.info.start_time),
            owner=tags.get(TAG_OWNER) or None,
            review=review,
            summary=summary,
            copy_uri=tags.get(TAG_COPY) or None,
            copy_error=tags.get(TAG_COPY_ERROR) or None,
            webhook_error=tags.get(TAG_WEBHOOK_ERROR) or None,
            has_notebook=bool(tags.get(TAG_NOTEBOOK)),
        )

    def _set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        client = self._connection.client
        batch = [RunTag(key, value) for key, value in tags.items()]
        self._connection.call(client.log_batch, run_id, tags=batch)

    def _download(self, run_id: str, artifact: str) -> Path | None:
        """``artifact`` of ``run_id`` in this store's download folder; None if it has none."""
        if self._downloads is None:
            self._downloads = Path(tempfile.mkdtemp(prefix="nbf-reports-"))
            # Removed with the store, so reading many reports leaves no files behind.
            weakref.finalize(self, shutil.rmtree, self._downloads, ignore_errors=True)
        target = self._downloads / run_id
        local = target / artifact
        if local.is_file():
            return local
        target.mkdir(parents=True, exist_ok=True)
        # MLflow draws a progress bar on stderr for every download; `reports show` and the
        # widget should be quiet. Anyone who wants the bar sets the variable themselves.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        client = self._connection.client
        try:
            path = self._connection.call(client.download_artifacts, run_id, artifact, str(target))
        except CatalogUnavailable:
            raise
        except Exception as exc:
            if error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            if isinstance(exc, OSError):  # a local artifact store answers with the file system
                return None
            raise
        return Path(path)


def _report_tags(summary: ReportSummary, owner: str | None, has_notebook: bool) -> dict[str, str]:
    tags = {
        TAG_KIND: summary.kind,
        TAG_FAMILY: summary.family,
        TAG_STATUS: summary.status.value,
        TAG_REVIEW_STATE: REVIEW_PENDING,
    }
    if summary.version is not None:
        tags[TAG_VERSION] = str(summary.version)
    if owner:
        tags[TAG_OWNER] = owner
    if has_notebook:
        tags[TAG_NOTEBOOK] = NOTEBOOK_ARTIFACT
    # A copy of the summary in a tag lets `list` read everything in one search.
    compact = json.dumps(summary.to_dict(), separators=(",", ":"), default=str)
    if len(compact) <= MAX_TAG_VALUE:
        tags[TAG_SUMMARY] = compact
    return tags


def _stage(folder: Path, result: ReportResult, notebook: Path | None) -> dict[str, Path]:
    """The run's artifacts under their fixed names, whatever the report function called them."""
    files = {HTML_ARTIFACT: folder / HTML_ARTIFACT, SUMMARY_ARTIFACT: folder / SUMMARY_ARTIFACT}
    shutil.copyfile(result.html, files[HTML_ARTIFACT])
    files[SUMMARY_ARTIFACT].write_text(result.summary.to_json())
    if notebook is not None:
        files[NOTEBOOK_ARTIFACT] = folder / NOTEBOOK_ARTIFACT
        shutil.copyfile(notebook, files[NOTEBOOK_ARTIFACT])
    return files


def _require_file(summary: ReportSummary, path: Path, what: str) -> None:
    if not Path(path).is_file():
        raise ReportFailed(summary.family, summary.kind, f"the {what} {path} does not exist")


def _status(value: Status | str) -> Status:
    try:
        return Status(value)
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise ConfigError("report status", f"{value!r} is not one of {choices}") from None


def _tag_text(text: str) -> str:
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 1] + "…"
