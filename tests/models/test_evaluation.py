"""Evaluation report: the keys the issue names, values consistent with the pipeline, and the train-run report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_helpers import FakeStudent, synthetic_rows, write_jsonl

from models.evaluation.report import evaluate, to_markdown
from models.filter_models import FilterModels
from models.metrics import bootstrap_ci, regression_metrics
from models.pipeline import Pipeline
from models.training.data import load_dataset

SECTION_KEYS = {"mae", "rmse", "wa_mae", "per_dimension", "tier_accuracy", "spearman_wa", "mae_ci95"}


@pytest.fixture
def pipe(trained, fake_encoder):
    spec, _, run = trained
    fm = FilterModels.load(spec, fake_encoder, directory=run.out_dir)
    return Pipeline(fake_encoder, {spec.name: fm}, None, apply_prefilter=False)


def test_report_has_every_section(pipe, trained, tmp_path):
    spec = trained[0]
    data = load_dataset(write_jsonl(tmp_path / "eval.jsonl", synthetic_rows(60, seed=5)), spec)
    pipe.filters[spec.name].student = FakeStudent(spec.dimension_names)
    try:
        report = evaluate(pipe, spec.name, data, n_boot=100)
    finally:
        pipe.filters[spec.name].student = None
    assert report["n"] == 60
    for section in ("probe", "student", "hybrid"):
        assert SECTION_KEYS <= set(report[section]), section
        lo, hi = report[section]["mae_ci95"]
        assert lo <= report[section]["mae"] <= hi
        assert set(report[section]["per_dimension"]) == set(spec.dimension_names)
    h = report["hybrid"]
    assert {"fn_rate", "stage2_share", "speedup_measured", "fn_rate_vs_stage2"} <= set(h)
    assert 0 < h["stage2_share"] < 1 and h["speedup_measured"] > 0
    assert {"applied", "mae_before", "mae_after"} <= set(report["calibration"])
    # the hybrid mixes student rows (routed) and probe rows: its MAE lies between or near the two
    assert min(report["probe"]["mae"], report["student"]["mae"]) - 0.05 <= h["mae"]
    assert "| probe |" in to_markdown(report) and "router" in to_markdown(report)


def test_report_without_student(pipe, trained, tmp_path):
    spec = trained[0]
    data = load_dataset(write_jsonl(tmp_path / "eval.jsonl", synthetic_rows(40, seed=6)), spec)
    report = evaluate(pipe, spec.name, data, n_boot=50)
    assert report["student"] is None and report["hybrid"]["speedup_measured"] is None
    # without a student every article is served Stage-1 scores: the probe's, snapped where calibrate kept that
    served = report.get("probe_served") or report["probe"]
    assert report["hybrid"]["mae"] == pytest.approx(served["mae"], abs=1e-6)
    assert (report.get("probe_served") is not None) == bool(report["calibration"]["probe_snap"])
    assert report["calibration"]["applied"] is False


def test_regression_metrics_values(tiny_spec):
    ref = np.array([[8.0, 8.0, 8.0], [1.0, 1.0, 1.0], [5.0, 5.0, 5.0]])
    pred = ref + np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    m = regression_metrics(tiny_spec, pred, ref, n_boot=20)
    assert m["mae"] == pytest.approx(2 / 9)
    assert m["wa_mae"] == pytest.approx((0.5 + 0.3) / 3)
    assert m["per_dimension"]["impact"] == pytest.approx(1 / 3)
    assert m["tier_accuracy"] == 1.0 and m["spearman_wa"] == pytest.approx(1.0)
    assert bootstrap_ci(np.ones(10), 50) == [1.0, 1.0]


def test_train_run_wrote_test_report_and_curve(trained):
    _, _, run = trained
    report = json.loads((run.out_dir / "test_report.json").read_text())
    assert report["split"] == "test" and report["n"] == len(run.split.test)
    curve = json.loads((run.out_dir / "routing_curve.json").read_text())
    assert {"wa_threshold", "classifier", "ensemble"} == set(curve["routers"])
    for r in curve["routers"].values():
        assert {"fn_rate", "stage2_share"} <= set(r["operating_point"]) and r["points"]
    assert (run.out_dir / "routing_curve.png").read_bytes()[:4] == b"\x89PNG"
    split = run.metrics["split"]
    assert split["train"]["n"] + split["val"]["n"] + split["test"]["n"] == 160
