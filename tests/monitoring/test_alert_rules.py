"""The monitoring/ folder: the example schedule parses as monitoring settings, and the
Prometheus rules and Grafana dashboard use only metrics a real feature server exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from runner_fixtures import PromotedWorkspace

from nbfeatures.monitoring.config import parse_monitoring

FOLDER = Path(__file__).resolve().parents[2] / "monitoring"
METRIC = re.compile(r"\bnbf_[a-z_]+")


def _exposed(metrics_text: str) -> set[str]:
    """Sample names in a /metrics page (histograms as _bucket/_sum/_count, counters _total)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        sample.name
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


def test_example_schedule_is_valid_monitoring_settings() -> None:
    raw = yaml.safe_load((FOLDER / "schedule.example.yaml").read_text())
    config = parse_monitoring(raw["monitoring"])
    assert config.defaults.schedule == "0 6 * * *"
    assert config.for_family("user_spend").schedule == "*/30 * * * *"
    assert config.for_family("user_countries").reports == ("freshness",)
    assert config.for_family("legacy_scores").schedule is None
    assert set(config.scheduled()) == {"*", "user_spend", "user_countries"}


@pytest.mark.integration
def test_alert_rules_use_metrics_the_server_exposes(promoted_workspace: PromotedWorkspace) -> None:
    rules = yaml.safe_load((FOLDER / "prometheus" / "alerts.yaml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert all(rule.get("alert") for g in rules["groups"] for rule in g["rules"])
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    exposed = _exposed(promoted_workspace.metrics_text)
    assert {"nbf_serving_staleness_seconds", "nbf_serving_request_seconds_bucket"} <= used
    assert used <= exposed, f"not exposed by the server: {sorted(used - exposed)}"


@pytest.mark.integration
def test_dashboard_queries_use_metrics_the_server_exposes(
    promoted_workspace: PromotedWorkspace,
) -> None:
    dashboard = json.loads((FOLDER / "grafana" / "nbfeatures.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for query in queries for name in METRIC.findall(query)}
    exposed = _exposed(promoted_workspace.metrics_text)
    assert len(dashboard["panels"]) >= 6 and "nbf_serving_staleness_seconds" in used
    assert used <= exposed, f"not exposed by the server: {sorted(used - exposed)}"
