"""The monitor's environment variables, read in the streams layer: config, state file and spot-check."""

from __future__ import annotations

import pytest

from monitoring.errors import MonitorConfigError
from streams.monitor_env import monitor_config_from_env, monitor_state_path_from_env, spotcheck_from_env


def test_state_path_honours_the_environment(tmp_path):
    assert monitor_state_path_from_env({"DISTILLERY_MONITOR_STATE": str(tmp_path / "s.json")}) == tmp_path / "s.json"
    assert monitor_state_path_from_env({"XDG_STATE_HOME": str(tmp_path)}) == (
        tmp_path / "distillery" / "monitor_state.json")


def test_config_from_env_parses_and_rejects_values():
    cfg = monitor_config_from_env({"DISTILLERY_MONITOR_WARMUP": "300", "DISTILLERY_MONITOR_ADWIN_DELTA": "1e-4",
                                   "DISTILLERY_MONITOR_SCORE_STAGES": "stage1, stage2",
                                   "DISTILLERY_MONITOR_STATE": "/not/a/config/field.json"})
    assert (cfg.warmup, cfg.adwin_delta, cfg.score_stages) == (300, 1e-4, ("stage1", "stage2"))
    with pytest.raises(MonitorConfigError, match="DISTILLERY_MONITOR_WARMUP='many' is not a valid int"):
        monitor_config_from_env({"DISTILLERY_MONITOR_WARMUP": "many"})
    with pytest.raises(MonitorConfigError, match="DISTILLERY_MONITOR_REFERENCE must be auto, artifact or warmup"):
        monitor_config_from_env({"DISTILLERY_MONITOR_REFERENCE": "latest"})


def test_spotcheck_is_off_without_a_provider_and_needs_a_model():
    assert spotcheck_from_env(["tiny"], {}, environ={}) is None
    with pytest.raises(MonitorConfigError, match="needs DISTILLERY_SPOTCHECK_MODEL"):
        spotcheck_from_env(["tiny"], {}, environ={"DISTILLERY_SPOTCHECK_PROVIDER": "ollama"})
    with pytest.raises(MonitorConfigError, match="DISTILLERY_SPOTCHECK_K='many' is not a number"):
        spotcheck_from_env(["tiny"], {}, environ={"DISTILLERY_SPOTCHECK_PROVIDER": "ollama",
                                                  "DISTILLERY_SPOTCHECK_MODEL": "m", "DISTILLERY_SPOTCHECK_K": "many"})
