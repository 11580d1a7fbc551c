"""The monitor's and the spot-check's settings come from the one settings tree: state file, detector config, runner."""

from __future__ import annotations

import pytest

from monitoring.errors import MonitorConfigError
from streams.settings import Settings, SettingsError


def test_state_path_honours_the_environment(tmp_path):
    explicit = Settings.from_env({"DISTILLERY_MONITOR_STATE": str(tmp_path / "s.json")})
    assert explicit.monitor.state_path() == tmp_path / "s.json"
    assert Settings.from_env({"XDG_STATE_HOME": str(tmp_path)}).monitor.state_path() == (
        tmp_path / "distillery" / "monitor_state.json")


def test_detector_config_parses_and_rejects_values():
    cfg = Settings.from_env({"DISTILLERY_MONITOR_WARMUP": "300", "DISTILLERY_MONITOR_ADWIN_DELTA": "1e-4",
                             "DISTILLERY_MONITOR_SCORE_STAGES": "stage1, stage2",
                             "DISTILLERY_MONITOR_STATE": "/not/a/config/field.json"}).monitor.config()
    assert (cfg.warmup, cfg.adwin_delta, cfg.score_stages) == (300, 1e-4, ("stage1", "stage2"))
    with pytest.raises(MonitorConfigError, match="DISTILLERY_MONITOR_WARMUP='many' is not a valid int"):
        Settings.from_env({"DISTILLERY_MONITOR_WARMUP": "many"}).monitor.config()
    with pytest.raises(MonitorConfigError, match="DISTILLERY_MONITOR_REFERENCE must be auto, artifact or warmup"):
        Settings.from_env({"DISTILLERY_MONITOR_REFERENCE": "latest"}).monitor.config()


def test_spotcheck_is_off_without_a_provider_and_needs_a_model():
    assert Settings.from_env({}).spotcheck.runner(["tiny"], {}) is None
    with pytest.raises(SettingsError, match="needs DISTILLERY_SPOTCHECK_MODEL"):
        Settings.from_env({"DISTILLERY_SPOTCHECK_PROVIDER": "ollama"})
    with pytest.raises(SettingsError, match="DISTILLERY_SPOTCHECK_K"):
        Settings.from_env({"DISTILLERY_SPOTCHECK_PROVIDER": "ollama", "DISTILLERY_SPOTCHECK_MODEL": "m",
                           "DISTILLERY_SPOTCHECK_K": "many"})
