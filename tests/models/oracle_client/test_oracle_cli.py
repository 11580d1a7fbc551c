"""`distillery oracle label` through typer, against the fake server."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from distillery.cli import app
from models.oracle.pricing import price_for


def _app() -> typer.Typer:
    return app


def test_label_command_prints_summary_and_resumes(oracle_spec, fake_oracle, tmp_path, make_articles, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k")
    monkeypatch.setenv("DISTILLERY_DEEPSEEK_BASE_URL", fake_oracle.url + "/v1")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(a) + "\n" for a in make_articles(4)))
    out = tmp_path / "out" / "labels.jsonl"
    args = ["oracle", "label", "--filter", str(oracle_spec.path), "--input", str(src), "--output", str(out),
            "--provider", "deepseek", "--model", "deepseek-chat", "--concurrency", "2", "--no-progress"]
    result = CliRunner().invoke(_app(), [*args, "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "attempted 3  succeeded 3  failed 0" in result.output
    assert "per 1,000 articles" in result.output
    again = CliRunner().invoke(_app(), args)
    assert again.exit_code == 0, again.output
    assert "attempted 1  succeeded 1" in again.output and "already done 3" in again.output
    assert len(out.read_text().splitlines()) == 4
    assert (out.parent / "oracle_cache.sqlite").exists()


def test_label_command_clear_errors(oracle_spec, tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n")
    base = ["oracle", "label", "--filter", str(oracle_spec.path), "--input", str(src), "--output",
            str(tmp_path / "o.jsonl"), "--model", "m"]
    result = CliRunner().invoke(_app(), [*base, "--provider", "anthropic"])
    assert result.exit_code == 2 and "set ANTHROPIC_API_KEY" in result.output
    missing = CliRunner().invoke(_app(), [*base, "--provider", "ollama", "--input", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "nope.jsonl: no such file" in missing.output


def test_price_table_lookup():
    assert price_for("deepseek", "deepseek-chat").cost(1_000_000, 1_000_000) == 0.27 + 1.10
    assert price_for("gemini", "gemini-2.5-flash-preview-05-20").input_per_m == 0.30  # longest prefix wins
    assert price_for("ollama", "anything").cost(10**9, 10**9) == 0.0
    assert price_for("openai", "unknown-model") is None
    assert price_for("openai", "unknown-model", (1.0, 1.0)).cost(500_000, 500_000) == 1.0
