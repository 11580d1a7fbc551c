"""One error path for the whole CLI: one `error:` line on stderr, no traceback, and the documented exit code.

0 ok, 1 a check failed, 2 a usage or input mistake, 70 an internal or broker failure (distillery/errors.py).
"""

from __future__ import annotations

import json
import socket

import pytest
from shell_helpers import ROOT, run_shell
from typer.testing import CliRunner

from distillery.cli import app
from distillery.errors import EXIT_CHECK_FAILED, EXIT_INTERNAL, EXIT_USAGE, exit_code_for
from filters.spec import SpecError
from monitoring.errors import MetricsPortError, MonitorConfigError
from streams.settings import SettingsError

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output, output
    return lines[0]


def test_exception_roots_map_to_exit_codes():
    assert exit_code_for(SpecError("x")) == EXIT_USAGE
    assert exit_code_for(SettingsError("x")) == EXIT_USAGE
    assert exit_code_for(MonitorConfigError("x")) == EXIT_USAGE
    assert exit_code_for(FileNotFoundError("x")) == EXIT_USAGE
    assert exit_code_for(ConnectionError("x")) == EXIT_INTERNAL
    assert exit_code_for(MetricsPortError("x")) == EXIT_INTERNAL
    assert exit_code_for(KeyError("x")) is None  # a bug: traceback kept, exit 70


def test_unknown_filter_is_an_input_mistake():
    result = invoke("filters", "show", "no_such_filter")
    assert result.exit_code == EXIT_USAGE
    assert one_error_line(result.output).startswith("error: unknown filter 'no_such_filter'; known filters:")


def test_failed_validation_is_a_failed_check(tmp_path):
    bad = tmp_path / "filter.yaml"
    bad.write_text("name: broken\n")
    result = invoke("filters", "validate", str(bad))
    assert result.exit_code == EXIT_CHECK_FAILED
    assert f"FAIL {bad}" in result.output and "0 ok, 1 failed" in result.output


def test_missing_input_file_and_unknown_step_are_input_mistakes(tmp_path):
    result = invoke("prefilter", "evaluate", "--filter", "uplifting", "--data", str(tmp_path / "none.jsonl"))
    assert result.exit_code == EXIT_USAGE
    assert one_error_line(result.output) == (f"error: {tmp_path / 'none.jsonl'}: no such file; pass a JSONL file "
                                             "with title, text and expected|label")
    result = invoke("train-step", "bogus", "--filter", "uplifting", "--data", "x.jsonl")
    assert result.exit_code == EXIT_USAGE and "error: unknown step 'bogus'; use one of split, embed" in result.output
    result = invoke("produce", str(tmp_path / "none.jsonl"))
    assert result.exit_code == EXIT_USAGE and "does not exist: pass a JSONL file" in one_error_line(result.output)


def test_a_bad_flag_is_a_usage_error():
    result = invoke("filters", "list", "--bogus")
    assert result.exit_code == EXIT_USAGE and "No such option" in result.output


def test_bad_settings_name_the_variable(tmp_path):
    result = invoke("tail", "scores.x", env={"DISTILLERY_PARTITIONS": "zero"})
    assert result.exit_code == EXIT_USAGE and "DISTILLERY_PARTITIONS" in one_error_line(result.output)
    result = invoke("tail", "scores.x", env={"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "",
                                             "KAFKA_SASL_PASSWORD": "", "KAFKA_SSL_CAFILE": str(tmp_path / "ca.pem")})
    line = one_error_line(result.output)
    assert result.exit_code == EXIT_USAGE
    assert "KAFKA_SASL_USERNAME is empty" in line and f"KAFKA_SSL_CAFILE={tmp_path / 'ca.pem'}: no such file" in line


def test_missing_monitor_state_is_an_input_mistake(tmp_path):
    result = invoke("monitor", "report", "--state", str(tmp_path / "none.json"))
    assert result.exit_code == EXIT_USAGE and "no monitor state at" in one_error_line(result.output)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args", [("tail", "scores.x", "--timeout", "1"), ("produce", "{articles}"),
                                  ("score", "--input", "{articles}", "--to-kafka")],
                         ids=["tail", "produce", "score-to-kafka"])
def test_a_dead_broker_is_one_line_and_exit_70(args, dead_port, tmp_path):
    articles = tmp_path / "a.jsonl"
    articles.write_text(json.dumps({"id": "a1", "title": "t", "text": "x"}) + "\n")
    result = run_shell(*(a.format(articles=articles) for a in args),
                       env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dead_port}"})
    assert result.returncode == EXIT_INTERNAL, result.stderr
    assert result.stderr.strip().splitlines() == [one_error_line(result.stderr)]
    assert f"cannot reach Kafka at 127.0.0.1:{dead_port}" in result.stderr
    assert "start `distillery broker` or set KAFKA_BOOTSTRAP_SERVERS" in result.stderr


@pytest.mark.timeout(120)
def test_worker_with_the_metrics_port_taken_is_one_line_and_exit_70(dead_port):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_shell("worker", "--roles", "prefilter,probe",
                           env={"DISTILLERY_PIPELINE_FACTORY": "fake_pipeline:load",
                                "DISTILLERY_METRICS_PORT": str(port),
                                "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dead_port}"})
    assert result.returncode == EXIT_INTERNAL, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: cannot serve /metrics on 127.0.0.1:{port}: Address already in use; set DISTILLERY_METRICS_PORT "
        "to a free port (0 turns the endpoint off)"]


@pytest.mark.timeout(120)
def test_help_answers_without_torch_or_faust():
    probe = ("import runpy, sys\n"
             "for argv in (['distillery', '--help'], ['distillery', 'worker', '--help'], "
             "['distillery', 'train-step', '--help']):\n"
             "    sys.argv = argv\n"
             "    try:\n"
             "        runpy.run_module('distillery', run_name='__main__')\n"
             "    except SystemExit as exit:\n"
             "        assert exit.code == 0, exit.code\n"
             "print('HEAVY', sorted(m for m in ('torch', 'faust', 'sklearn', 'river', 'transformers') "
             "if m in sys.modules))\n")
    import subprocess
    import sys



    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert "Usage: distillery worker" in result.stdout and "Usage: distillery train-step" in result.stdout
    assert "one of: split, embed, probe" in result.stdout  # the step names come without importing torch


def test_a_bug_keeps_its_traceback_and_exits_70(monkeypatch):
    """An unexpected exception is not dressed up as a user mistake: traceback first, then one line, exit 70."""
    from distillery.commands import filters as filters_command

    def broken() -> list:
        raise KeyError("spec_paths exploded")

    monkeypatch.setattr(filters_command, "spec_paths", broken)
    result = invoke("filters", "list")
    assert result.exit_code == EXIT_INTERNAL
    assert "Traceback" in result.output
    assert "internal error: KeyError: 'spec_paths exploded' (please report it with the traceback above)" in (
        result.output)
