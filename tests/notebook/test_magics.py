"""The magics in a real IPython shell, on real Spark and a real SQLite-backed MLflow catalog."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from servers import free_port

from nbfeatures.config import Settings

pytestmark = pytest.mark.integration

SPEND_SQL = """\
SELECT user_id,
       date_trunc('DAY', ts) AS ts,
       count(*) AS txn_count,
       sum(amount) AS spend
FROM transactions
GROUP BY user_id, date_trunc('DAY', ts)
"""

SPEND_SQL_V2 = SPEND_SQL.replace(
    "sum(amount) AS spend", "sum(amount) AS spend,\n       max(amount) AS max_amount"
)


def _catalog(settings: Settings) -> Any:
    from nbfeatures.catalog import Catalog

    return Catalog.from_settings(settings)


def _html(captured: Any) -> str:
    return "\n".join(o.data.get("text/html", "") for o in captured.outputs)


def test_load_ext_registers_the_magics(shell: Any) -> None:
    magics = shell.magics_manager.magics
    assert {"nbf_config", "nbf_source", "nbf_register", "features"} <= set(magics["line"])
    assert "feature" in magics["cell"]


def test_feature_cell_previews_without_registering(kernel: Any, module_settings: Settings) -> None:
    with capture_output() as captured:
        kernel.run_cell_magic("feature", "preview_only --entity user_id --timestamp ts", SPEND_SQL)
    page = _html(captured)
    assert "preview_only" in page and "Feature statistics" in page
    assert "txn_count" in page and "spend" in page
    last = kernel.user_ns["_nbf_last"]
    assert last.family.name == "preview_only"
    assert last.family.owner == "tests"  # from settings.owner
    assert last.registration is None
    assert [s.name for s in last.family.sources] == ["transactions"]
    assert _catalog(module_settings).latest("preview_only") is None


def test_register_flag_then_changed_sql_shows_changes_and_button_registers_v2(
    kernel: Any, module_settings: Settings
) -> None:
    line = "user_spend --entity user_id --timestamp ts --ttl 7d --tags payments,demo"
    with capture_output() as first:
        kernel.run_cell_magic("feature", line + " --register", SPEND_SQL)
    assert "Registered user_spend v1" in _html(first)

    with capture_output() as again:
        kernel.run_cell_magic("feature", line + " --register", SPEND_SQL)
    assert "Already registered as user_spend v1" in _html(again)

    with capture_output() as second:
        kernel.run_cell_magic("feature", line, SPEND_SQL_V2)
    page = _html(second)
    assert "Changes vs v1" in page and "max_amount" in page
    widget = kernel.user_ns["_nbf_last"].widget
    widget.button.click()
    assert "Registered user_spend v2" in widget.status.value
    assert widget.button.disabled

    catalog = _catalog(module_settings)
    assert [v.version for v in catalog.history("user_spend")] == [1, 2] or [
        v.version for v in catalog.history("user_spend")
    ] == [2, 1]
    latest = catalog.latest("user_spend")
    assert latest is not None and "max_amount" in latest.family.feature_names
    assert latest.stats  # the preview statistics went into the catalog

    with capture_output() as listing:
        kernel.run_line_magic("features", "")
    assert "user_spend" in _html(listing) and "payments" in _html(listing)
    with capture_output() as history:
        kernel.run_line_magic("features", "user_spend")
    assert "v1" in _html(history) and "v2" in _html(history)
    assert latest.hash[:12] in _html(history)


def test_nbf_register_registers_the_last_preview(kernel: Any, module_settings: Settings) -> None:
    kernel.run_cell_magic("feature", "by_line --entity user_id --timestamp ts", SPEND_SQL)
    with capture_output() as captured:
        kernel.run_line_magic("nbf_register", "")
    assert "Registered by_line v1" in _html(captured)
    assert _catalog(module_settings).latest("by_line") is not None


def test_python_family(kernel: Any, module_settings: Settings) -> None:
    body = """
def user_countries(transactions):
    from pyspark.sql import functions as F
    return transactions.groupBy("user_id").agg(
        F.max("ts").alias("ts"), F.countDistinct("country").alias("countries")
    )
"""
    with capture_output() as captured:
        kernel.run_cell_magic(
            "feature", "user_countries --entity user_id --timestamp ts --python --register", body
        )
    assert "Registered user_countries v1" in _html(captured)
    assert _catalog(module_settings).latest("user_countries") is not None


# --- bad input: one UsageError, nothing registered, and the next cell still works ---------

BAD_CELLS = [
    (
        "sql_syntax",
        "--entity user_id --timestamp ts",
        "SELECT user_id,\n  ts,\n  amount\nFROM transactions\nWHERE amount >",
        r"line \d+",
    ),
    (
        "sql_line",
        "--entity user_id --timestamp ts",
        "SELECT user_id,\n       ts,\n       amount +* 2 AS x\nFROM transactions",
        r"line 3",
    ),
    (
        "no_entity",
        "--entity customer_id --timestamp ts",
        "SELECT user_id, ts, amount FROM transactions",
        "customer_id",
    ),
    (
        "no_timestamp",
        "--entity user_id --timestamp event_time",
        "SELECT user_id, ts, amount FROM transactions",
        "event_time",
    ),
    (
        "text_timestamp",
        "--entity user_id --timestamp ts",
        "SELECT user_id, 'yesterday' AS ts, amount FROM transactions",
        "ts",
    ),
    (
        "duplicates",
        "--entity user_id --timestamp ts",
        "SELECT user_id, ts, amount AS a, amount AS a FROM transactions",
        "a",
    ),
    (
        "unsupported",
        "--entity user_id --timestamp ts",
        "SELECT user_id, ts, array(amount) AS amounts FROM transactions",
        "amounts",
    ),
    (
        "unknown_source",
        "--entity user_id --timestamp ts",
        "SELECT user_id, ts, amount FROM no_such_source",
        "no_such_source",
    ),
    ("py_no_function", "--entity user_id --timestamp ts --python", "x = 1\n", "function"),
    (
        "py_raises",
        "--entity user_id --timestamp ts --python",
        "def broken(transactions):\n    raise RuntimeError('boom here')\n",
        "boom here",
    ),
    (
        "Bad-Name",
        "--entity user_id --timestamp ts",
        "SELECT user_id, ts, amount FROM transactions",
        "not a valid name",
    ),
]


@pytest.mark.parametrize(
    ("name", "options", "body", "message"), BAD_CELLS, ids=[c[0] for c in BAD_CELLS]
)
def test_bad_cells_raise_one_usage_error_and_register_nothing(
    kernel: Any, module_settings: Settings, name: str, options: str, body: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        kernel.run_cell_magic("feature", f"{name} {options} --register", body)
    if name.islower():
        assert _catalog(module_settings).latest(name) is None


def test_kernel_stays_usable_after_an_error(kernel: Any) -> None:
    bad = kernel.run_cell("%%feature broken_cell --entity user_id --timestamp ts\nSELEC nothing")
    assert isinstance(bad.error_in_exec, UsageError)
    good = kernel.run_cell(
        "%%feature after_error --entity user_id --timestamp ts\n"
        "SELECT user_id, ts, amount FROM transactions"
    )
    assert good.success
    assert kernel.user_ns["_nbf_last"].family.name == "after_error"


def test_sql_error_names_line_and_column(kernel: Any) -> None:
    body = "SELECT user_id,\n       ts,\n       amount FROM transactions WHERE (\n"
    with pytest.raises(UsageError) as raised:
        kernel.run_cell_magic("feature", "where_bad --entity user_id --timestamp ts", body)
    assert "line " in str(raised.value)
    assert "Traceback" not in str(raised.value)


def test_missing_owner_is_refused(shell: Any, spark: object, module_settings: Settings) -> None:
    from nbfeatures.notebook import configure

    configure(dataclasses.replace(module_settings, owner=None))
    try:
        with pytest.raises(UsageError, match="owner"):
            shell.run_cell_magic(
                "feature", "orphan --entity user_id --timestamp ts", "SELECT 1 AS user_id"
            )
    finally:
        configure(None)


def test_unknown_source_path_fails_at_nbf_source(kernel: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "events.parquet"
    with pytest.raises(UsageError, match="does not exist"):
        kernel.run_line_magic("nbf_source", f"events {missing}")
    from nbfeatures.notebook import current

    assert "events" not in current().sources


def test_unreachable_catalog_is_a_usage_error(
    shell: Any, spark: object, module_settings: Settings, transactions: Path
) -> None:
    from nbfeatures.notebook import configure

    port = free_port()
    configure(dataclasses.replace(module_settings, catalog_uri=f"http://127.0.0.1:{port}"))
    try:
        shell.run_line_magic("nbf_source", f"transactions {transactions}")
        with pytest.raises(UsageError, match="cannot be reached"):
            shell.run_cell_magic(
                "feature",
                "offline_catalog --entity user_id --timestamp ts --register",
                "SELECT user_id, ts, amount FROM transactions",
            )
        with pytest.raises(UsageError, match="cannot be reached"):
            shell.run_line_magic("features", "")
    finally:
        configure(None)


def test_nbf_config_points_the_kernel_at_a_workspace(shell: Any, tmp_path: Path) -> None:
    from nbfeatures.notebook import configure, current

    try:
        shell.run_line_magic("nbf_config", f"--workspace {tmp_path} --owner alice")
        settings = current().get_settings()
        assert settings.workspace == tmp_path.resolve()
        assert settings.owner == "alice"
    finally:
        configure(None)


def test_nbf_register_without_a_preview_is_a_usage_error(shell: Any) -> None:
    from nbfeatures.notebook import configure

    configure(None)
    with pytest.raises(UsageError, match="run a %%feature cell first"):
        shell.run_line_magic("nbf_register", "")


def test_on_demand_family_from_a_cell(kernel: Any, module_settings: Settings) -> None:
    kernel.run_cell_magic(
        "feature", "od_inputs --entity user_id --timestamp ts --register", SPEND_SQL
    )
    body = """
def txn_share(df):
    return pd.DataFrame({"share": df["amount"] / (df["od_inputs__spend"] + 1.0)})
"""
    line = (
        "txn_share --entity user_id --on-demand --inputs od_inputs:spend "
        "--request amount:float64 --register"
    )
    with capture_output() as captured:
        kernel.run_cell_magic("feature", line, body)
    assert "on-demand family txn_share: share (float64)" in captured.stdout
    assert "Registered txn_share v1" in _html(captured)
    stored = _catalog(module_settings).get("txn_share").family
    assert stored.on_demand and stored.inputs == ("od_inputs:spend",)
    assert [(f.name, f.dtype.value) for f in stored.request] == [("amount", "float64")]

    with pytest.raises(UsageError, match=r"od_inputs@v\d+:nope not found \(family od_inputs v"):
        kernel.run_cell_magic("feature", line.replace("od_inputs:spend", "od_inputs:nope"), body)
    with pytest.raises(UsageError, match="--timestamp COL is required"):
        kernel.run_cell_magic("feature", "no_ts --entity user_id", SPEND_SQL)


def test_rerun_with_another_ttl_updates_metadata_and_the_online_layout(
    kernel: Any, module_settings: Settings
) -> None:
    """Same body, new --ttl/--retention/--freshness: no new version, and the cell says so."""
    import datetime as dt

    from nbfeatures.online.embedded import stop_embedded
    from nbfeatures.online.store import FamilyLayout, OnlineStore

    line = "ttl_spend --entity user_id --timestamp ts --ttl 7d --register"
    with capture_output() as first:
        kernel.run_cell_magic("feature", line, SPEND_SQL)
    assert "Registered ttl_spend v1" in _html(first)
    catalog = _catalog(module_settings)
    store = OnlineStore.from_settings(module_settings)  # the workspace's embedded Redis
    try:
        store.write_layout(FamilyLayout.of(catalog.get("ttl_spend").family, 1))
        changed = line.replace("--ttl 7d", "--ttl 1d --retention 2d --freshness 1h")
        with capture_output() as again:
            kernel.run_cell_magic("feature", changed, SPEND_SQL)
        page = _html(again)
        assert "Same content as ttl_spend v1; metadata updated" in page
        assert "ttl 1w -&gt; 1d" in page and "retention none -&gt; 2d" in page
        assert [v.version for v in catalog.history("ttl_spend")] == [1]
        family = catalog.get("ttl_spend").family
        assert (family.ttl, family.retention, family.freshness) == (
            dt.timedelta(days=1), dt.timedelta(days=2), dt.timedelta(hours=1),
        )  # fmt: skip
        layout = store.layout("ttl_spend", 1)
        assert layout is not None
        assert (layout.ttl_seconds, layout.retention_seconds) == (86400, 172800)
    finally:
        store.delete_version("ttl_spend", 1)
        store.close()
        stop_embedded(module_settings)


def test_magic_arguments_are_read_as_a_shell_reads_them(kernel: Any) -> None:
    line = (
        "quoted_args --entity user_id --timestamp ts "
        '--description \'spend of a user\' --tags "payments,demo day" --owner "ana b"'
    )
    with capture_output():
        kernel.run_cell_magic("feature", line, SPEND_SQL)
    family = kernel.user_ns["_nbf_last"].family
    assert family.description == "spend of a user"
    assert family.tags == ("demo day", "payments")
    assert family.owner == "ana b"


def test_an_unbalanced_quote_is_a_usage_error_naming_it(kernel: Any) -> None:
    with pytest.raises(UsageError, match="No closing quotation") as raised:
        kernel.run_cell_magic(
            "feature", "unbalanced --entity user_id --timestamp ts --description 'a b", SPEND_SQL
        )
    assert "--description 'a b" in str(raised.value)


def test_promote_restore_of_a_family_never_in_production_names_it(
    kernel: Any, module_settings: Settings
) -> None:
    # --restore reaches the promotion: with no production version there is nothing to
    # restore, and the load step says so before anything runs.
    kernel.run_cell_magic(
        "feature", "never_live --entity user_id --timestamp ts --register", SPEND_SQL
    )
    with pytest.raises(UsageError, match="no production version of never_live to restore"):
        kernel.run_line_magic("promote", "never_live --restore")
    with pytest.raises(UsageError, match="not a version like v3"):
        kernel.run_line_magic("promote", "never_live latest --recompute")
