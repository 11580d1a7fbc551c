"""The tier model: decisions and confidences at the operating points, Stage-2 refinement, persistence, fitting."""

from __future__ import annotations

import numpy as np
import pytest

from models.tiers import TierModel, TierModelError
from models.training.tiers import choose_cutoffs, pr_curve, prf

TIERS = ["breakthrough", "promising", "monitoring", "not_relevant"]
EDGES = [7.5, 5.0, 3.0]


def _model(**kw) -> TierModel:
    """Two features; head k's logit = feature 0 − edge offset; breakthrough unmodelled (too rare to learn)."""
    coef = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    intercept = np.array([-40.0, -5.0, -3.0])
    ops = {"recall": [1.0, 0.2, 0.5], "balanced": [1.0, 0.5, 0.5], "precision": [1.0, 0.8, 0.5]}
    return TierModel(TIERS, EDGES, coef, intercept, operating_points=ops, policy="balanced", uses_knn=False,
                     n_unmodelled=1, **kw)


def test_probabilities_are_monotone_over_the_edges():
    m = _model()
    p = m.probabilities(np.array([[0.0, 2.0, -1.0]]))
    assert p[0, 1] == pytest.approx(1 / (1 + np.exp(1.0)))  # P(≥5) capped by P(≥3) = sigmoid(-1)
    assert p[0, 2] == pytest.approx(1 / (1 + np.exp(1.0)))
    assert p[0, 0] == pytest.approx(1 / (1 + np.exp(1.0)))  # unmodelled: capped too, and never decides


def test_decide_picks_the_highest_tier_over_its_cutoff_with_the_band_probability():
    m = _model()
    probs = np.array([[0.0, 0.6, 0.9], [0.0, 0.3, 0.9], [0.0, 0.1, 0.2]])
    assert m.decide(probs) == [("promising", pytest.approx(0.6)), ("monitoring", pytest.approx(0.6)),
                               ("not_relevant", pytest.approx(0.8))]
    # the recall policy calls the second row a needle too (cutoff 0.2 instead of 0.5)
    assert [t for t, _ in m.decide(probs, "recall")] == ["promising", "promising", "not_relevant"]
    assert [t for t, _ in m.decide(probs, "precision")] == ["monitoring", "monitoring", "not_relevant"]
    with pytest.raises(TierModelError, match="no operating point for policy 'alert'"):
        m.decide(probs, "alert")


def test_unmodelled_top_tier_follows_the_served_wa_for_needles_only():
    m = _model()
    probs = np.array([[0.0, 0.6, 0.9], [0.0, 0.1, 0.9]])
    served = np.array([8.0, 8.0])
    assert [t for t, _ in m.decide(probs, served_wa=served)] == ["breakthrough", "monitoring"]
    assert [t for t, _ in m.decide(probs, served_wa=np.array([6.0, 6.0]))] == ["promising", "monitoring"]


def test_needle_mask_uses_the_policy_cutoff():
    m = _model()
    probs = np.array([[0.0, 0.6, 0.9], [0.0, 0.3, 0.9], [0.0, 0.1, 0.2]])
    assert m.needle_mask(probs, "promising").tolist() == [True, False, False]
    assert m.needle_mask(probs, "promising", "recall").tolist() == [True, True, False]


def test_stage2_refinement_applies_only_where_stage2_scored():
    m = _model(stage2=np.array([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [1.0, 0.0, 0.0]]))
    z1 = np.array([[0.0, -1.0, 1.0], [0.0, -1.0, 1.0]])
    z = m.logits(z1, np.array([6.0, np.nan]))
    assert z[0].tolist() == pytest.approx([0.0, 0.5 * -1.0 + 2.0 * (6.0 - 5.0), 1.0])
    assert z[1].tolist() == pytest.approx([0.0, -1.0, 1.0])
    tier, conf = m.serve([0.0, -1.0, 1.0], 6.0, 6.0)
    assert tier == "promising"
    assert conf == pytest.approx(1 / (1 + np.exp(-1.0)))  # sigmoid(1.5) capped by P(≥3) = sigmoid(1)
    assert m.serve([0.0, -1.0, 1.0], None, 6.0)[0] == "monitoring"  # Stage 1 only: P(≥5) = 0.27 < 0.5


def test_platt_scaling_maps_logits_to_probabilities():
    m = _model(platt=np.array([[1.0, 0.0], [2.0, -1.0], [1.0, 0.0]]))
    assert m.probabilities(np.array([[0.0, 1.0, 5.0]]))[0, 1] == pytest.approx(1 / (1 + np.exp(-1.0)))


def test_save_load_roundtrip_without_pickle(tmp_path):
    m = _model(stage2=np.ones((3, 3)), platt=np.ones((3, 2)))
    written = m.save(tmp_path)
    assert sorted(p.name for p in written) == ["tiers.json", "tiers.safetensors"]
    back = TierModel.load(tmp_path, TIERS)
    assert back is not None
    assert back.edges == EDGES and back.n_unmodelled == 1 and back.operating_points == m.operating_points
    np.testing.assert_allclose(back.coef, m.coef)
    np.testing.assert_allclose(back.stage2, m.stage2)
    np.testing.assert_allclose(back.platt, m.platt)
    assert TierModel.load(tmp_path / "nowhere") is None
    with pytest.raises(TierModelError, match="re-fit it with `distillery train-step tiers`"):
        TierModel.load(tmp_path, ["high", "medium", "low"])


def test_feature_count_mismatch_names_the_fix():
    with pytest.raises(TierModelError, match="expects 2 features, got 3"):
        _model().stage1_logits(np.zeros((1, 3)))


def test_choose_cutoffs_per_policy():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    positive = np.array([True, True, False, True, False, False, True, False])
    cut = choose_cutoffs(scores, positive, min_recall=0.75, min_precision=0.9)
    assert cut["recall"] == pytest.approx(0.6)  # 3 of 4 needles at the highest such cutoff
    assert cut["precision"] == pytest.approx(0.8)  # precision 1.0 down to 0.8, then 2/3
    assert cut["balanced"] == pytest.approx(0.6)  # F1 0.75 (P 0.75, R 0.75)
    assert prf(scores >= 0.6, positive) == pytest.approx((0.75, 0.75, 0.75))
    curve = pr_curve(scores, positive, n=3)
    assert [c["cutoff"] for c in curve] == [0.0, 0.5, 1.0]
    assert curve[0]["recall"] == 1.0 and curve[0]["precision"] == 0.5 and curve[2]["share"] == 0.0
