"""`distillery train` and `distillery evaluate` as the issue writes them (hashing encoder, no student)."""

from __future__ import annotations

import json

from model_helpers import synthetic_rows, write_jsonl, write_spec
from typer.testing import CliRunner

from distillery.cli import app


def test_train_then_evaluate(tmp_path, monkeypatch, fake_encoder, spec_data):
    monkeypatch.setenv("DISTILLERY_EMBEDDING_MODEL", "hashing-test")
    monkeypatch.setenv("DISTILLERY_CACHE_DIR", str(tmp_path / "cache"))
    spec_path = write_spec(tmp_path, spec_data)
    data = write_jsonl(tmp_path / "data.jsonl", synthetic_rows(120, seed=3))
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--filter", str(spec_path), "--data", str(data), "--keep-student"])
    assert res.exit_code == 0, res.output
    art = spec_path.parent / "artifacts"
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["metrics"]["router"]["shipped"] in {"classifier", "wa_threshold", "ensemble"}
    assert (art / "test_report.json").is_file()

    out = tmp_path / "report.json"
    res = runner.invoke(app, ["evaluate", "--filter", str(spec_path), "--data", str(data), "--out", str(out),
                              "--markdown", str(tmp_path / "r.md"), "--plots", str(tmp_path / "plots"),
                              "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["n"] == 120 and {"probe", "student", "hybrid", "calibration"} <= set(report)
    assert (tmp_path / "r.md").read_text().startswith("# Evaluation of tinyfilter/v1")
    assert (tmp_path / "plots" / "per_dimension_mae.png").is_file()
    assert (tmp_path / "plots" / "routing_curve.png").is_file()


def test_cli_errors_are_clear(tmp_path, spec_data):
    spec_path = write_spec(tmp_path, spec_data)
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--filter", str(spec_path), "--data", str(tmp_path / "none.jsonl")])
    assert res.exit_code == 2 and "no such file; pass a JSONL file" in res.output
    res = runner.invoke(app, ["evaluate", "--filter", str(spec_path), "--data", str(tmp_path / "none.jsonl"),
                              "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and "no such file; pass a JSONL file" in res.output
    res = runner.invoke(app, ["train-step", "bogus", "--filter", str(spec_path), "--data", "x"])
    assert res.exit_code == 2 and "unknown step" in res.output


def test_train_commerce_writes_a_loadable_head(tmp_path, monkeypatch, fake_encoder):
    from models.commerce_head import CommerceHead

    monkeypatch.setenv("DISTILLERY_EMBEDDING_MODEL", "hashing-test")
    monkeypatch.setenv("DISTILLERY_CACHE_DIR", str(tmp_path / "cache"))
    rows = [{"id": f"c{i}", "title": f"Deal {i}" if i % 2 else f"Report {i}",
             "text": ("buy now discount coupon sale price " if i % 2 else "council river school study ") * 5,
             "label": i % 2} for i in range(40)]
    data = write_jsonl(tmp_path / "commerce.jsonl", rows)
    res = CliRunner().invoke(app, ["train-commerce", "--data", str(data), "--out", str(tmp_path / "head"),
                                   "--threshold", "0.8"])
    assert res.exit_code == 0, res.output
    head = CommerceHead.load(tmp_path / "head")
    assert head.threshold == 0.8 and head.metrics["threshold_override"]["used"] == 0.8
    assert head.metrics["f1_nested_cv"] > 0.9
    res = CliRunner().invoke(app, ["train-commerce", "--data", str(data), "--out", str(tmp_path / "fixed"),
                                   "--threshold", "0.8", "--c", "0.5"])
    assert res.exit_code == 0, res.output
    fixed = CommerceHead.load(tmp_path / "fixed")
    assert fixed.metrics["C"] == 0.5 and fixed.threshold == 0.8 and fixed.metrics["threshold"] == 0.8
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x", "title": "t", "text": "y"}])
    res = CliRunner().invoke(app, ["train-commerce", "--data", str(bad), "--out", str(tmp_path / "h2")])
    assert res.exit_code == 2 and "0/1 `label`" in res.output
    res = CliRunner().invoke(app, ["train-commerce", "--data", str(data), "--on-topic", str(data)])
    assert res.exit_code == 2 and "--on-topic and --on-topic-filter go together" in res.output
