"""The alert webhook against a real HTTP server in a thread: what is sent, when, and how a
failing receiver is recorded without failing the report."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from report_fixtures import Receiver, unique_family, with_monitoring
from servers import free_port

from nbfeatures.config import Settings
from nbfeatures.monitoring.store import (
    TAG_WEBHOOK,
    TAG_WEBHOOK_ERROR,
    ReportDeliveryWarning,
    ReportStore,
)
from nbfeatures.monitoring.summary import ReportResult, ReportSummary, Status
from nbfeatures.monitoring.webhook import post_json

Make = Callable[..., ReportResult]


@pytest.fixture
def hook(receiver: Receiver) -> Iterator[Receiver]:
    receiver.clear()
    yield receiver
    receiver.clear()


def _store(settings: Settings, url: str) -> ReportStore:
    return ReportStore.from_settings(with_monitoring(settings, webhook=url))


def test_an_alert_posts_its_summary(
    hook: Receiver, report_workspace: Settings, make_result: Make
) -> None:
    store = _store(report_workspace, hook.url)
    family = unique_family()
    result = make_result(family, "skew", Status.ALERT, version=3)

    record = store.save(result)

    assert len(hook.requests) == 1
    sent = hook.requests[0]
    assert sent["path"] == "/hooks/nbf" and sent["content_type"] == "application/json"
    body = sent["json"]
    assert {k: body[k] for k in ("family", "kind", "version", "status", "report_id")} == {
        "family": family,
        "kind": "skew",
        "version": 3,
        "status": "alert",
        "report_id": record.id,
    }
    assert ReportSummary.from_dict(body["summary"]) == result.summary
    tags = store._connection.client.get_run(record.id).data.tags
    assert tags[TAG_WEBHOOK].startswith("sent ") and TAG_WEBHOOK_ERROR not in tags


def test_ok_and_warn_reports_post_nothing(
    hook: Receiver, report_workspace: Settings, make_result: Make
) -> None:
    store = _store(report_workspace, hook.url)
    family = unique_family()
    for status in (Status.OK, Status.WARN):
        record = store.save(make_result(family, "drift", status))
        assert TAG_WEBHOOK not in store._connection.client.get_run(record.id).data.tags
    assert hook.requests == []


def test_a_server_error_is_retried_once(
    hook: Receiver, report_workspace: Settings, make_result: Make
) -> None:
    hook.answers.extend([503])
    record = _store(report_workspace, hook.url).save(
        make_result(unique_family(), status=Status.ALERT)
    )
    assert [r["json"]["report_id"] for r in hook.requests] == [record.id, record.id]
    assert record.webhook_error is None


def test_a_refusal_is_not_retried_and_is_recorded(
    hook: Receiver, report_workspace: Settings, make_result: Make
) -> None:
    hook.answers.extend([400, 400])
    store = _store(report_workspace, hook.url)
    with pytest.warns(ReportDeliveryWarning, match="answered 400"):
        record = store.save(make_result(unique_family(), status=Status.ALERT))
    assert len(hook.requests) == 1
    assert record.webhook_error is not None and "answered 400" in record.webhook_error


def test_a_dead_webhook_does_not_fail_the_save(
    report_workspace: Settings, make_result: Make
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    store = _store(report_workspace, dead)
    family = unique_family()

    with pytest.warns(ReportDeliveryWarning, match="alert webhook failed"):
        record = store.save(make_result(family, "freshness", Status.ALERT))

    assert store.get(record.id).status is Status.ALERT
    error = store._connection.client.get_run(record.id).data.tags[TAG_WEBHOOK_ERROR]
    assert dead in error and "after 2 attempts" in error
    assert [r.id for r in store.list(family=family)] == [record.id]


def test_post_json_never_raises_on_a_malformed_url() -> None:
    problem = post_json("not a url", {"a": 1}, attempts=1)
    assert problem is not None and "not a url" in problem
