"""The report store on a real MLflow tracking server backed by PostgreSQL, as in production:
artifacts go through the server (``mlflow-artifacts:``), not the local disk."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from report_fixtures import PAGE, unique_family

from nbfeatures.monitoring.store import ReportStore
from nbfeatures.monitoring.summary import ReportResult, Status

pytestmark = pytest.mark.integration


def test_save_list_review_and_read_through_a_tracking_server(
    server_backend: object, make_result: Callable[..., ReportResult]
) -> None:
    uri = server_backend.tracking_uri  # type: ignore[attr-defined]
    store = ReportStore(uri, None, "nbfeatures-monitoring", model_prefix="nbf.")
    family = unique_family()

    saved = store.save(make_result(family, "skew", Status.ALERT, version=2), owner="ana")
    store.review(saved.id, "bo", "value skew: the on-demand bug, fixed in v3")

    fresh = ReportStore(uri, None, "nbfeatures-monitoring")
    [listed] = fresh.list(family=family, reviewed=True)
    assert (listed.id, listed.kind, listed.version, listed.owner) == (saved.id, "skew", 2, "ana")
    assert listed.review is not None and listed.review.reviewer == "bo"
    experiment = fresh._connection.client.get_experiment_by_name("nbfeatures-monitoring")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert fresh.html(saved.id).read_text() == PAGE.format(family=family, kind="skew")
