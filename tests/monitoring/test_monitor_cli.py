"""`distillery monitor report`: reads a state file or replays records; clear errors otherwise; demo summary lines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from distillery.cli import app
from monitoring.config import MonitorConfig
from monitoring.errors import MonitorConfigError
from monitoring.monitor import Monitor
from monitoring.report import demo_summary, status_lines
from monitoring.state import default_state_path

runner = CliRunner()


def _records(n: int = 2_500, shift_at: int = 1_500) -> list[dict]:
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        impact = 4.0 if i < shift_at else 7.5
        scores = {"impact": float(np.clip(rng.normal(impact, 1.2), 0, 10)), "evidence": float(rng.uniform(2, 6))}
        out.append({"kind": "result", "article_id": f"a{i}", "filter": "made_up", "filter_version": 2,
                    "stage": "stage2", "scores": scores, "weighted_average": 0.5 * sum(scores.values()),
                    "fingerprint": "fp1", "probe_scores": {k: v - 0.2 for k, v in scores.items()}})
    return out


def test_default_state_path_takes_an_explicit_path_or_a_state_home(tmp_path):
    assert default_state_path(tmp_path / "s.json") == tmp_path / "s.json"
    assert default_state_path(None, tmp_path) == tmp_path / "distillery" / "monitor_state.json"


def test_config_from_mapping_parses_and_rejects_values():
    cfg = MonitorConfig.from_mapping({"warmup": "300", "adwin_delta": 1e-4, "score_stages": "stage1, stage2"})
    assert (cfg.warmup, cfg.adwin_delta, cfg.score_stages) == (300, 1e-4, ("stage1", "stage2"))
    with pytest.raises(MonitorConfigError, match="warmup='many' is not a valid int"):
        MonitorConfig.from_mapping({"warmup": "many"})
    with pytest.raises(MonitorConfigError, match="'warmpu' is unknown"):
        MonitorConfig.from_mapping({"warmpu": 3})
    with pytest.raises(MonitorConfigError, match="must be auto, artifact or warmup"):
        MonitorConfig.from_mapping({"reference": "latest"})


def test_report_reads_the_state_file(tmp_path):
    mon = Monitor(config=MonitorConfig(warmup=500, cooldown_events=100_000), clock=lambda: 0.0)
    mon.observe_many(_records())
    path = mon.save_state(tmp_path / "state.json")
    result = runner.invoke(app, ["monitor", "report", "--state", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "made_up v2: drift" in result.output
    assert "score.impact" in result.output and "critical" in result.output
    as_json = runner.invoke(app, ["monitor", "report", "--state", str(path), "--json"])
    assert json.loads(as_json.output)["filters"]["made_up"]["status"] == "drift"


def test_report_replays_records_and_writes_state(tmp_path):
    lines = tmp_path / "scores.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in _records()) + "\n")
    out = tmp_path / "replayed.json"
    result = runner.invoke(app, ["monitor", "report", "--replay", str(lines), "--write-state", str(out), "--json"],
                           env={"DISTILLERY_MONITOR_WARMUP": "500"})
    assert result.exit_code == 0, result.output
    state = json.loads(out.read_text())
    assert {a["signal"] for a in state["alerts"]} >= {"score.impact", "weighted_average"}


def test_report_without_state_says_how_to_get_one(tmp_path):
    result = runner.invoke(app, ["monitor", "report", "--state", str(tmp_path / "none.json")])
    assert result.exit_code == 2  # an input mistake (distillery.errors)
    assert "no monitor state at" in result.output and "--roles monitor" in result.output


def test_status_lines_and_demo_summary(tmp_path):
    mon = Monitor(config=MonitorConfig(warmup=500, cooldown_events=100_000), clock=lambda: 0.0)
    mon.observe_many(_records(shift_at=10_000))  # no shift
    path = mon.save_state(tmp_path / "state.json")
    lines = status_lines(json.loads(path.read_text()))
    assert lines[0].startswith("made_up: ok (2500 results, 0 alerts; reference warm-up window")
    assert lines[-1] == "global (commerce block, DLQ rates): ok (0 alerts)"
    summary = demo_summary(path, "http://127.0.0.1:9464/metrics")
    assert "drift status:\n  made_up: ok" in summary
    assert "metrics endpoint: http://127.0.0.1:9464/metrics" in summary
    assert "drift status: unavailable (no monitor state" in demo_summary(tmp_path / "missing.json")
