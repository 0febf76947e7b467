"""The copy of each report under ``report_root``: a local folder, ``gs://`` on the real GCS
emulator, and a copy that fails without losing the MLflow run."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from offline_fixtures import gcs_emulator
from report_fixtures import PAGE, unique_family, with_monitoring

from nbfeatures.config import Settings
from nbfeatures.engine.gcs import arrow_filesystem
from nbfeatures.monitoring.store import TAG_COPY_ERROR, ReportDeliveryWarning, ReportStore
from nbfeatures.monitoring.summary import ReportResult, Status

Make = Callable[..., ReportResult]


def _read(uri: str) -> bytes:
    fs, path = arrow_filesystem(uri, emulator=gcs_emulator())
    with fs.open_input_stream(path) as stream:
        data: bytes = stream.read()
    return data


def _expected_folder(root: str, family: str, kind: str, record_id: str, created: object) -> str:
    stamp = created.strftime("%Y%m%dT%H%M%SZ")  # type: ignore[attr-defined]
    return f"{root.rstrip('/')}/{family}/{kind}/{stamp}-{record_id}"


def test_a_report_is_copied_to_a_local_report_root(
    report_workspace: Settings, make_result: Make, tmp_path: Path
) -> None:
    root = tmp_path / "reports"
    store = ReportStore.from_settings(with_monitoring(report_workspace, report_root=str(root)))
    family = unique_family()
    notebook = tmp_path / "run.ipynb"
    notebook.write_text('{"cells": []}')

    record = store.save(make_result(family, "skew", Status.WARN), notebook=notebook)

    folder = Path(_expected_folder(str(root), family, "skew", record.id, record.created_at))
    assert record.copy_uri == str(folder) and record.copy_error is None
    assert sorted(p.name for p in folder.iterdir()) == [
        "report.html",
        "report.ipynb",
        "summary.json",
    ]
    assert (folder / "report.html").read_text() == PAGE.format(family=family, kind="skew")
    assert json.loads((folder / "summary.json").read_text())["status"] == "warn"
    assert (folder / "report.ipynb").read_text() == '{"cells": []}'


def test_a_report_is_copied_to_gcs(
    gcs_root: str, report_workspace: Settings, make_result: Make
) -> None:
    root = f"{gcs_root}/reports"
    on_gcs = dataclasses.replace(report_workspace, gcs_emulator=gcs_emulator())
    store = ReportStore.from_settings(with_monitoring(on_gcs, report_root=root))
    family = unique_family()

    record = store.save(make_result(family, "drift", Status.ALERT))

    folder = _expected_folder(root, family, "drift", record.id, record.created_at)
    assert record.copy_uri == folder and folder.startswith("gs://")
    assert _read(f"{folder}/report.html").decode() == PAGE.format(family=family, kind="drift")
    assert json.loads(_read(f"{folder}/summary.json"))["family"] == family
    fs, path = arrow_filesystem(folder, emulator=gcs_emulator())
    from pyarrow.fs import FileSelector

    names = sorted(info.base_name for info in fs.get_file_info(FileSelector(path)))
    assert names == ["report.html", "summary.json"]  # no notebook: none was given


def test_a_failed_copy_keeps_the_run_records_why_and_warns(
    report_workspace: Settings, make_result: Make, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the report root should be")
    store = ReportStore.from_settings(with_monitoring(report_workspace, report_root=str(blocker)))
    family = unique_family()

    with pytest.warns(ReportDeliveryWarning, match="is saved, but copy to .* failed"):
        record = store.save(make_result(family, "freshness", Status.OK))

    again = store.get(record.id)
    assert again.copy_uri is None
    assert again.copy_error is not None and str(blocker) in again.copy_error
    tags = store._connection.client.get_run(record.id).data.tags
    assert tags[TAG_COPY_ERROR] == again.copy_error
    assert store.html(record.id).read_text() == PAGE.format(family=family, kind="freshness")
    assert [r.id for r in store.list(family=family)] == [record.id]
