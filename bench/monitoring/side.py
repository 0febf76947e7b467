"""One measurement of the monitoring benchmark, in this fresh process; prints one JSON line.

Usage: ``python -m bench.monitoring.side SYSTEM`` with SYSTEM one of ``SYSTEMS``. Each first
runs a warm-up on the window's first hour (~42k served vectors: imports, Evidently's and
Arrow's first calls), then times the same work on the whole window (1M served vectors).

- ``read-log``: the machine's floor, reading the window's served-log Parquet as
  ``flush_served_log`` wrote it (10M long rows, every column) into Arrow, nothing else;
- ``read-log-dict``: the same read as ``read_served`` does it (its columns, filter and
  dictionary-encoded text columns), into Arrow: the floor of the reports' first step;
- ``read-served``: ``read_served`` over the window (the long log turned into 1M typed wide
  rows), the first step of both reports;
- ``drift``: ``drift_report`` with the workspace's defaults (it samples above
  ``DriftSettings.max_rows``, and says so in its summary); ``drift-full``: the same with
  ``max_rows`` raised so every one of the 1M rows is used;
- ``skew``: ``skew_report`` over every served vector (``sample`` = 1M: each one recomputed by
  the point-in-time join, Arrow engine); ``skew-default``: with the default sample (10k);
- ``evidently``: the baseline: the same 1M served vectors (read with ``read_served``) and the
  same reference (the offline set's rows of the 7 days before the window, read with pyarrow),
  then Evidently's ``DataDriftPreset`` with an explicit ``DataDefinition`` and the same
  methods and thresholds as our defaults (PSI 0.2 for numbers, Jensen-Shannon 0.1 for
  categories), ``run`` and ``save_html``: what a team would write by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.monitoring.data import (
    CATEGORICAL,
    FAMILY,
    NUMERIC,
    REFERENCE_START,
    WINDOW_END,
    WINDOW_START,
    prepare,
)

WARMUP_END = WINDOW_START + dt.timedelta(hours=1)
SYSTEMS = (
    "read-log",
    "read-log-dict",
    "read-served",
    "drift",
    "drift-full",
    "skew",
    "skew-default",
    "evidently",
)


def _settings() -> Any:
    from nbfeatures.config import load_settings

    return load_settings(prepare().workspace, environ={}, owner="bench")


def read_log(end: dt.datetime) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.dataset as ds

    folder = prepare().served
    dataset = ds.dataset(
        folder,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive"),
    )
    upper = pa.scalar(end, pa.timestamp("us", "UTC"))
    table = dataset.to_table(filter=ds.field("request_time") < upper)
    return {"long_rows": table.num_rows}


def read_log_dictionary(end: dt.datetime) -> dict[str, Any]:
    """The floor of ``read_served``'s own read: the same columns, filter and dictionary
    columns as its ``_long_table``, into Arrow, nothing else."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.monitoring.served import _long_table

    settings = _settings()
    Catalog.from_settings(settings)  # the same imports and start as the other sides
    table = _long_table(settings, FAMILY, WINDOW_START, end)
    return {"long_rows": table.num_rows}


def read_served_window(end: dt.datetime) -> dict[str, Any]:
    from nbfeatures.catalog import Catalog
    from nbfeatures.monitoring.served import read_served

    settings = _settings()
    family = Catalog.from_settings(settings).get(FAMILY, alias="production").family
    window = read_served(settings, family, WINDOW_START, end)
    return {"vectors": window.rows}


def _monitoring(**changes: Any) -> Any:
    from dataclasses import replace

    from nbfeatures.monitoring.config import monitoring_config

    base = monitoring_config(_settings()).for_family(FAMILY)
    return replace(base, **changes)


def _report(kind: str, end: dt.datetime, config: Any, out: Path) -> dict[str, Any]:
    from nbfeatures.monitoring.kinds import report_function

    result = report_function(kind)(
        _settings(), FAMILY, output_dir=out, start=WINDOW_START, end=end, config=config
    )
    summary = result.summary
    return {
        "report_status": summary.status.value,
        "rows": summary.rows,
        "rows_total": summary.rows_total,
        "html_bytes": result.html.stat().st_size,
        "checks": {c.feature: [c.status.value, c.metric, c.value] for c in summary.checks},
        "notes": list(summary.notes),
        "detail_keys": sorted(summary.detail),
        "by_cause": summary.detail.get("by_cause"),
    }


def drift(end: dt.datetime, out: Path, full: bool) -> dict[str, Any]:
    from dataclasses import replace

    config = _monitoring()
    if full:
        config = replace(config, drift=replace(config.drift, max_rows=10_000_000))
    return _report("drift", end, config, out)


def skew(end: dt.datetime, out: Path, full: bool) -> dict[str, Any]:
    from dataclasses import replace

    config = _monitoring()
    if full:
        config = replace(config, skew=replace(config.skew, sample=10_000_000))
    return _report("skew", end, config, out)


def evidently_preset(end: dt.datetime, out: Path) -> dict[str, Any]:
    """Evidently's preset on the same current and reference data, timed in its parts."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from nbfeatures.catalog import Catalog
    from nbfeatures.engine.offline_store import arrow_dataset, date_filter, version_path
    from nbfeatures.monitoring.served import read_served

    started = time.perf_counter()
    settings = _settings()
    fv = Catalog.from_settings(settings).get(FAMILY, alias="production")
    columns = [*NUMERIC, *CATEGORICAL]
    current = read_served(settings, fv.family, WINDOW_START, end).frame[columns]
    # The reference: the 7 days before the window (the hour before it for the warm-up), read
    # as the engine reads offline sets with Arrow (date partitions pruned, then exact times).
    reference_start = REFERENCE_START if end == WINDOW_END else WINDOW_START - dt.timedelta(hours=1)
    offline = arrow_dataset(version_path(settings, FAMILY, fv.version))
    stored = offline.to_table(filter=date_filter(reference_start, WINDOW_START))
    times = stored["event_time"].cast(pa.timestamp("us", "UTC"))
    keep = pc.and_(
        pc.greater_equal(times, pa.scalar(reference_start, pa.timestamp("us", "UTC"))),
        pc.less(times, pa.scalar(WINDOW_START, pa.timestamp("us", "UTC"))),
    )
    reference = stored.filter(keep).select(columns).to_pandas()
    loaded = time.perf_counter()
    definition = DataDefinition(
        numerical_columns=list(NUMERIC), categorical_columns=list(CATEGORICAL)
    )
    preset = DataDriftPreset(
        num_method="psi", num_threshold=0.2, cat_method="jensenshannon", cat_threshold=0.1
    )
    snapshot = Report([preset]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    ran = time.perf_counter()
    snapshot.save_html(str(out / "evidently.html"))
    done = time.perf_counter()
    return {
        "current_rows": len(current),
        "reference_rows": len(reference),
        "load_seconds": loaded - started,
        "preset_run_seconds": ran - loaded,
        "save_html_seconds": done - ran,
        "html_bytes": (out / "evidently.html").stat().st_size,
    }


def _work(system: str) -> Callable[[dt.datetime, Path], dict[str, Any]]:
    works: dict[str, Callable[[dt.datetime, Path], dict[str, Any]]] = {
        "read-log": lambda end, out: read_log(end),
        "read-log-dict": lambda end, out: read_log_dictionary(end),
        "read-served": lambda end, out: read_served_window(end),
        "drift": lambda end, out: drift(end, out, full=False),
        "drift-full": lambda end, out: drift(end, out, full=True),
        "skew": lambda end, out: skew(end, out, full=True),
        "skew-default": lambda end, out: skew(end, out, full=False),
        "evidently": evidently_preset,
    }
    return works[system]


def main(system: str) -> None:
    work = _work(system)
    with tempfile.TemporaryDirectory(prefix="nbf-bench-monitoring-") as tmp:
        warm, timed = Path(tmp) / "warmup", Path(tmp) / "timed"
        warm.mkdir()
        timed.mkdir()
        started = time.perf_counter()
        work(WARMUP_END, warm)
        warmup = time.perf_counter() - started
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        facts = work(WINDOW_END, timed)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "warmup_seconds": warmup,
                "user_seconds": after.ru_utime - before.ru_utime,
                "system_seconds": after.ru_stime - before.ru_stime,
                "ru_maxrss_bytes": after.ru_maxrss * 1024,
                **facts,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SYSTEMS:
        raise SystemExit(f"usage: python -m bench.monitoring.side {{{','.join(SYSTEMS)}}}")
    main(sys.argv[1])
