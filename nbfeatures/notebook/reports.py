"""The reports widget: saved monitoring reports in a table, one shown inline, and a review box.

A thin shell over ``ReportStore``: every button calls one store method and redraws from what
the store returns, so the widget shows exactly what ``nbfeatures reports`` and MLflow show.
``reports_widget()`` builds it for the kernel's workspace; ``ReportsWidget(store)`` takes any
store (tests build it on a real one and click it from Python).
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING, Any

from nbfeatures.errors import MissingDependency, NbfeaturesError
from nbfeatures.notebook import display

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.monitoring.store import ReportRecord, ReportStore

try:
    import ipywidgets as _widgets
except ImportError:  # pragma: no cover - the notebook extra brings it
    raise MissingDependency("notebook", "ipywidgets") from None

HEADERS = ["created (UTC)", "family", "version", "kind", "status", "owner", "review", "id"]
# Evidently's page is a whole HTML document with its own scripts and styles: an iframe keeps
# them from touching the notebook's page.
PAGE_HEIGHT = 700


def reports_table(records: list[ReportRecord]) -> str:
    """The reports as an HTML table (also the widget's static copy for saved notebooks)."""
    if not records:
        return display.standalone("No reports.")
    rows = [
        [
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.family,
            f"v{r.version}" if r.version is not None else None,
            r.kind,
            r.status.value,
            r.owner,
            f"{r.review.reviewer}, {r.review.at:%Y-%m-%d}" if r.review is not None else "pending",
            r.id,
        ]
        for r in records
    ]
    return display.standalone(display.table(HEADERS, rows, text_columns=range(len(HEADERS))))


def _label(record: ReportRecord) -> str:
    version = f" v{record.version}" if record.version is not None else ""
    reviewed = "reviewed" if record.review is not None else "not reviewed"
    return (
        f"{record.created_at:%Y-%m-%d %H:%M} {record.family}{version} {record.kind} "
        f"{record.status.value} ({reviewed})"
    )


class ReportsWidget(_widgets.VBox):  # type: ignore[misc]
    """Reports of ``family`` (or all), newest first; pick one to show it or mark it reviewed."""

    def __init__(
        self,
        store: ReportStore,
        *,
        family: str | None = None,
        reviewer: str = "",
        limit: int = 50,
    ) -> None:
        self.store = store
        self.family = family
        self.limit = limit
        self.records: list[ReportRecord] = []
        self.table = _widgets.HTML()
        self.unreviewed = _widgets.Checkbox(value=False, description="unreviewed only")
        self.refresh_button = _widgets.Button(description="Refresh", icon="refresh")
        self.choice = _widgets.Dropdown(options=[], description="Report", layout={"width": "60%"})
        self.show_button = _widgets.Button(description="Show report", icon="eye")
        self.page = _widgets.HTML()
        self.reviewer = _widgets.Text(value=reviewer, description="Reviewer")
        self.comment = _widgets.Textarea(value="", description="Comment", layout={"width": "60%"})
        self.review_button = _widgets.Button(
            description="Mark reviewed", button_style="success", icon="check"
        )
        self.status = _widgets.HTML()
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.unreviewed.observe(lambda _change: self.refresh(), names="value")
        self.show_button.on_click(lambda _b: self.show())
        self.review_button.on_click(lambda _b: self.mark_reviewed())
        super().__init__(
            children=[
                _widgets.HBox([self.refresh_button, self.unreviewed]),
                self.table,
                _widgets.HBox([self.choice, self.show_button]),
                _widgets.HBox([self.reviewer, self.review_button]),
                self.comment,
                self.status,
                self.page,
            ]
        )
        self.refresh()

    @property
    def selected(self) -> str | None:
        """The id of the report picked in the dropdown."""
        value = self.choice.value
        return str(value) if value else None

    def refresh(self) -> None:
        """Read the reports again (keeping the picked one picked when it is still listed)."""
        picked = self.selected
        try:
            self.records = self.store.list(
                family=self.family,
                reviewed=False if self.unreviewed.value else None,
                limit=self.limit,
            )
        except Exception as exc:  # a click has no caller to raise to: show it
            self._error(exc)
            return
        self.table.value = reports_table(self.records)
        options = [(_label(r), r.id) for r in self.records]
        ids = [r.id for r in self.records]
        self.choice.options = options
        self.choice.value = picked if picked in ids else (ids[0] if ids else None)

    def show(self) -> None:
        """Show the picked report's Evidently page inline."""
        if self.selected is None:
            return
        try:
            page = self.store.html(self.selected).read_text()
        except Exception as exc:
            self._error(exc)
            return
        self.page.value = (
            f'<iframe srcdoc="{html.escape(page, quote=True)}" '
            f'style="width: 100%; height: {PAGE_HEIGHT}px; border: 1px solid #d0d7de;"></iframe>'
        )
        self.status.value = ""

    def mark_reviewed(self) -> ReportRecord | None:
        """Record the review of the picked report by the name and comment typed in."""
        if self.selected is None:
            return None
        try:
            record = self.store.review(self.selected, self.reviewer.value, self.comment.value)
        except Exception as exc:
            self._error(exc)
            return None
        review = record.review
        who = review.reviewer if review is not None else self.reviewer.value
        self.status.value = (
            f'<span class="nbf-ok">{html.escape(record.family)} {html.escape(record.kind)} '
            f"report reviewed by {html.escape(who)}</span>"
        )
        self.comment.value = ""
        self.refresh()  # the table's review column; the report stays picked if still listed
        return record

    def _error(self, exc: Exception) -> None:
        text = str(exc) if isinstance(exc, NbfeaturesError) else f"{type(exc).__name__}: {exc}"
        self.status.value = display.error_html(text)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live widget plus the table as ``text/html`` for viewers without a kernel."""
        bundle: dict[str, Any] = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = reports_table(self.records)
        return bundle


def reports_widget(settings: Settings | None = None, family: str | None = None) -> ReportsWidget:
    """The reports of the kernel's workspace (or ``settings``'), of ``family`` or all.

    The reviewer's name starts as the workspace owner, else the login name; it can be edited.
    """
    from nbfeatures.monitoring.store import ReportStore
    from nbfeatures.notebook.state import current

    settings = settings or current().get_settings()
    reviewer = settings.owner or os.environ.get("USER", "")
    return ReportsWidget(ReportStore.from_settings(settings), family=family, reviewer=reviewer)
