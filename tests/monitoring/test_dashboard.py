"""The Grafana dashboard and provisioning files: valid, four rows, and every queried series really exported."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from monitoring.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2] / "monitoring"
DASHBOARD = ROOT / "dashboards" / "distillery.json"


def _exported_names() -> set[str]:
    names: set[str] = set()
    for family in Metrics(process_collectors=True).registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
    return names


def _exprs(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return exprs + [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]


def test_dashboard_has_the_four_rows_in_order():
    dashboard = json.loads(DASHBOARD.read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Service health", "Cascade", "Score distributions", "Drift"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "distillery-overview"
    assert dashboard["templating"]["list"][0]["name"] == "filter"


def test_every_queried_distillery_series_is_exported():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported_names()
    used = {name for expr in _exprs(dashboard) for name in re.findall(r"\b((?:distillery|process)_[a-z0-9_]+)", expr)}
    assert used, "no queries found"
    assert used - exported == set(), f"dashboard queries series that no Metrics exports: {sorted(used - exported)}"
    # and the main families are all on the dashboard
    for name in ("distillery_drift_alerts_total", "distillery_escalation_rate", "distillery_score_bucket",
                 "distillery_stage_latency_seconds_bucket", "distillery_consumer_lag", "distillery_residual_mean"):
        assert name in used


def test_provisioning_points_grafana_and_prometheus_at_the_worker():
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    panel_uids = {p["datasource"]["uid"] for p in dashboard["panels"] if p["type"] != "row"}
    assert panel_uids == {uid}
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/distillery.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
    compose = yaml.safe_load((ROOT.parent / "docker-compose.yml").read_text())
    assert "./monitoring/dashboards:/var/lib/grafana/dashboards:ro" in compose["services"]["grafana"]["volumes"]
    prometheus = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "distillery")
    assert job["dns_sd_configs"][0] == {"names": ["worker"], "type": "A", "port": 9464, "refresh_interval": "30s"}
