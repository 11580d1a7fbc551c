"""The evaluate step writes the monitor's reference.json, tied to the fingerprint that served results carry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from filters.postfilter import postfilter
from models.artifacts import MANIFEST, verify_artifacts
from models.calibration import Calibration
from models.evaluation.reference import build_reference
from models.filter_models import FilterModels
from models.pipeline import Pipeline
from models.probe import Probe
from models.records import Result
from models.training.steps import REFERENCE
from monitoring.monitor import FilterMonitor, MonitorConfig
from monitoring.reference import Reference


@pytest.fixture(scope="module")
def evaluated(trained):
    """Re-run the evaluate step (other tests may have rewritten the shared fixture's manifest since)."""
    spec, data, run = trained
    run.step_evaluate()
    return spec, data, run


def test_reference_fingerprint_equals_served_results(evaluated, fake_encoder):
    spec, _, run = evaluated
    ref = Reference.load(run.out_dir / REFERENCE)
    fm = FilterModels.load(spec, fake_encoder, directory=run.out_dir)
    assert len(ref.fingerprint) == 12 and ref.fingerprint == fm.fingerprint
    served, _ = Pipeline(fake_encoder, {spec.name: fm}, None).score_batch(run.articles(run.split.test[:5]))
    assert served and {r.fingerprint for r in served} == {ref.fingerprint}
    # the monitor uses it instead of a warm-up window for that fingerprint ...
    weights = dict(zip(spec.dimension_names, spec.weights, strict=True))
    mon = FilterMonitor(spec.name, MonitorConfig(), ref, weights)  # (16 test rows: too few for its KS window)
    mon.build(fm.fingerprint)
    assert mon.active_reference is ref and "warm-up" not in mon.reference_note
    # ... and not for another one
    mon.build("0123456789ab")
    assert mon.active_reference is None and "!= served" in mon.reference_note


def test_reference_content_matches_the_test_split(evaluated):
    spec, _, run = evaluated
    ref = Reference.load(run.out_dir / REFERENCE)
    report = json.loads((run.out_dir / "test_report.json").read_text())
    n_test = len(run.split.test)
    assert len(ref.weighted_average) == n_test == report["n"]
    # no student in the fixture: everything is served from Stage 1, so no Stage-2 scores or residuals
    assert ref.rates["escalation"] == 0.0 and ref.scores == {} and ref.residual_mean is None
    # the served tier distribution is kept for the monitor (shares over the scored test articles)
    shares = {k.removeprefix("tier_share:"): v for k, v in ref.rates.items() if k.startswith("tier_share:")}
    assert list(shares) == spec.tier_names and sum(shares.values()) == pytest.approx(1.0)
    dims = spec.dimension_names
    labels = run.data.labels[run.split.test]
    oracle_wa = np.array([postfilter(spec, dict(zip(dims, row, strict=True))).weighted_average for row in labels])
    assert ref.heldout_mae == pytest.approx(float(np.abs(np.array(ref.weighted_average) - oracle_wa).mean()))
    # without a student the served WA is the postfiltered Stage-1 WA (probe, snapped where kept), in test-split order
    probe = Probe.load(run.out_dir).predict(run.embeddings[run.split.test], run.articles(run.split.test))
    stage1 = Calibration.load(run.out_dir, dims).stage1(probe)
    served = [postfilter(spec, dict(zip(dims, map(float, row), strict=True))).weighted_average for row in stage1]
    assert ref.weighted_average == pytest.approx(served, abs=1e-5)


def test_manifest_lists_reference_without_checksum_and_still_verifies(evaluated, fake_encoder):
    spec, _, run = evaluated
    manifest = json.loads((run.out_dir / MANIFEST).read_text())
    assert REFERENCE not in manifest["files"] and manifest["reference"]["file"] == REFERENCE
    assert "test_report.json" in manifest["files"]
    assert manifest["metrics"]["evaluate"]["reference"]["n"] == len(run.split.test)
    verify_artifacts(run.out_dir, spec, fake_encoder.fingerprint())
    # any later manifest rewrite (another train step) makes the reference stale: the monitor then warms up
    before = Reference.load(run.out_dir / REFERENCE).fingerprint
    run.metrics["touched"] = {"by": "test"}
    run.write_manifest()
    run.metrics.pop("touched")
    assert FilterModels.load(spec, fake_encoder, directory=run.out_dir).fingerprint != before
    run.step_evaluate()  # and evaluate ties it again
    assert Reference.load(run.out_dir / REFERENCE).fingerprint == FilterModels.load(
        spec, fake_encoder, directory=run.out_dir).fingerprint


def _result(aid: str, stage: str, scores: dict[str, float], probe: dict[str, float], wa: float) -> Result:
    return Result(article_id=aid, filter="tinyfilter", filter_version=1, stage=stage, scores=scores,
                  weighted_average=wa, tier="low", probe_scores=probe, fingerprint="abc")


def test_build_reference_residuals_rates_and_heldout(trained):
    spec = trained[0]  # impact .5, evidence .3 (gatekeeper < 3 → cap 3), reach .2
    s2a = _result("a", "stage2", {"impact": 6.0, "evidence": 6.0, "reach": 6.0},
                  {"impact": 5.0, "evidence": 5.0, "reach": 5.0}, 6.0)
    s2b = _result("b", "stage2", {"impact": 4.0, "evidence": 4.0, "reach": 4.0},
                  {"impact": 4.0, "evidence": 4.0, "reach": 4.0}, 4.0)
    s1 = _result("c", "stage1", {"impact": 1.0, "evidence": 1.0, "reach": 1.0},
                 {"impact": 1.0, "evidence": 1.0, "reach": 1.0}, 1.0)
    oracle = {"a": [7.0, 7.0, 7.0], "b": [8.0, 1.0, 8.0], "c": [1.0, 1.0, 1.0]}  # b: gatekeeper caps 5.1 → 3.0
    ref = build_reference(spec, [s2a, s2b, s1], oracle, "f" * 12)
    assert ref.weighted_average == [6.0, 4.0, 1.0]
    assert ref.scores == {"impact": [6.0, 4.0], "evidence": [6.0, 4.0], "reach": [6.0, 4.0]}
    assert ref.residual_mean == pytest.approx(0.5) and ref.residual_std == pytest.approx(np.std([1.0, 0.0], ddof=1))
    assert ref.rates == {"escalation": pytest.approx(2 / 3), "tier_share:high": 0.0, "tier_share:medium": 0.0,
                         "tier_share:low": 1.0}
    assert ref.heldout_mae == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert ref.fingerprint == "f" * 12
    with pytest.raises(ValueError, match="no oracle scores for 1 results"):
        build_reference(spec, [s1], {}, "x")
