"""Router operating point, router persistence, isotonic calibration and its keep-only-if-better rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.calibration import (
    CALIBRATION_FILE,
    Calibration,
    fit_and_select,
    fit_isotonic,
    fit_snap,
    label_grid,
    snap_to_grid,
)
from models.evaluation.curve import route_stats, sweep
from models.router import Router, quantise_bank, router_features
from models.router_fit import choose_operating_point, empirical_cdf, fit_classifier, oof_knn_classifier


def test_operating_point_respects_fn_budget():
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    positive = scores + rng.normal(0, 0.2, 1000) > 0.8
    t = choose_operating_point(scores, positive, 0.02)
    stats = route_stats(scores, positive, t)
    assert stats["fn_rate"] <= 0.02
    # one notch higher would lose more than the budget allows
    higher = np.sort(scores[positive])[int(0.02 * positive.sum()) + 1]
    assert route_stats(scores, positive, higher)["fn_rate"] > 0.02 or higher == t
    assert 0 < stats["stage2_share"] < 1


def test_route_stats_counts():
    s = route_stats(np.array([0.1, 0.5, 0.9, 0.2]), np.array([True, True, False, False]), 0.3)
    assert s == {"threshold": 0.3, "fn": 1, "fn_rate": 0.5, "stage2_share": 0.5}
    pts = sweep(np.array([0.1, 0.5, 0.9, 0.2]), np.array([True, True, False, False]),
                timing={"stage1_s_per_article": 0.001, "stage2_s_per_article": 0.05})
    assert pts[0]["stage2_share"] == 1.0 and pts[0]["speedup_modelled"] == pytest.approx(0.05 / 0.051)


def test_classifier_router_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(300, 8)).astype(np.float32)
    probe_scores = np.clip(rng.normal(3, 2, size=(300, 3)), 0, 10).astype(np.float32)
    feats = router_features(emb, probe_scores, [0.5, 0.3, 0.2])
    assert feats.shape == (300, 8 + 3 + 1)
    positive = emb[:, 0] + 0.3 * rng.normal(size=300) > 1.0
    coef, b = fit_classifier(feats, positive)
    r = Router("classifier", 0.0, 4.0, coef, b)
    p = r.statistic(feats, probe_scores @ np.array([0.5, 0.3, 0.2]))
    assert ((p > 0.5) == positive).mean() > 0.85
    r = r.with_threshold(choose_operating_point(p, positive, 0.05))
    r.save(tmp_path)
    again = Router.load(tmp_path)
    assert again.kind == "classifier" and again.threshold == pytest.approx(r.threshold)
    np.testing.assert_allclose(again.statistic(feats, None), p, atol=1e-5)
    base = Router("wa_threshold", 2.5, 4.0)
    base.save(tmp_path, "router_baseline")
    assert Router.load(tmp_path, "router_baseline").needs_stage2(np.array([2.0, 2.5])).tolist() == [False, True]
    with pytest.raises(ValueError, match="both"):
        fit_classifier(feats, np.zeros(300, dtype=bool))


def test_isotonic_calibration_fits_applies_and_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    truth = rng.uniform(0, 10, size=(400, 2))
    raw = 0.5 * truth + 2 + rng.normal(0, 0.3, size=truth.shape)  # compressed to the mean, like a student
    cal = fit_isotonic(raw[:200], truth[:200], ["a", "b"])
    before = np.abs(raw[200:] - truth[200:]).mean()
    after = np.abs(cal.apply(raw[200:]) - truth[200:]).mean()
    assert after < 0.5 * before
    assert all(np.all(np.diff(y) >= 0) for y in cal.y)  # monotone breakpoints
    cal.save(tmp_path)
    data = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert data["method"] == "isotonic" and set(data["dimensions"]) == {"a", "b"}
    again = Calibration.load(tmp_path, ["a", "b"])
    np.testing.assert_allclose(again.apply(raw), cal.apply(raw))
    out = cal.apply(np.array([[np.nan, 1e9]]))
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 10


def test_calibration_rejected_when_it_worsens_held_out_mae():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 10, size=(100, 1))
    good_raw = truth + rng.normal(0, 0.2, size=truth.shape)
    # fit on a split whose relation is reversed: applying it to the check split must hurt
    cal = fit_and_select(10 - good_raw[:50], truth[:50], good_raw[50:], truth[50:], ["a"])
    assert cal.applied is False
    assert cal.stats["mae_after"] > cal.stats["mae_before"]
    np.testing.assert_allclose(cal.apply(good_raw[50:]), np.clip(good_raw[50:], 0, 10))
    kept = fit_and_select(0.5 * good_raw[:50] + 2, truth[:50], 0.5 * good_raw[50:] + 2, truth[50:], ["a"])
    assert kept.applied is True and kept.stats["mae_after"] < kept.stats["mae_before"]


def test_label_grid_is_the_oracles_score_step():
    assert label_grid(np.array([[0.0, 3.0], [10.0, 7.0]])) == 1.0
    assert label_grid(np.array([[0.5, 3.0], [9.5, 7.0]])) == 0.5
    assert label_grid(np.array([[0.25, 3.0]])) == 0.0
    assert label_grid(np.empty((0, 2))) == 0.0


def test_snap_rounds_only_the_dimensions_where_it_lowers_mae(tmp_path):
    rng = np.random.default_rng(5)
    truth = np.column_stack([rng.integers(0, 11, size=300), np.r_[np.full(180, 4.0), np.full(120, 3.0)]])
    # a: sharp, rounding recovers the label; b: 3.4 against 60 % fours (MAE 0.52), rounded to 3 it would be 0.60
    pred = np.column_stack([truth[:, 0] + rng.normal(0, 0.2, 300), np.full(300, 3.4)])
    assert fit_snap(pred, truth, 1.0) == [1.0, 0.0]
    assert fit_snap(pred, truth, 0.0) == [0.0, 0.0]
    np.testing.assert_array_equal(snap_to_grid(np.array([[2.4, 2.6], [7.5, 0.24]]), [1.0, 0.5]),
                                  [[2.0, 2.5], [8.0, 0.0]])
    cal = Calibration.identity(["a", "b"])
    cal.snap, cal.probe_snap = [1.0, 0.0], [0.0, 0.5]
    cal.save(tmp_path)
    again = Calibration.load(tmp_path, ["a", "b"])
    np.testing.assert_allclose(again.apply(np.array([[3.4, 3.4], [11.2, -1.0]])), [[3.0, 3.4], [10.0, 0.0]])
    np.testing.assert_allclose(again.stage1(np.array([[3.4, 3.4], [np.nan, 10.9]])), [[3.4, 3.5], [0.0, 10.0]])
    assert Calibration.load(tmp_path / "none", ["a"]).stage1(np.array([[2.26]])).tolist() == [[2.26]]
    data = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({**data, "snap": [1.0]}))
    with pytest.raises(ValueError, match="`snap` has 1 entries for 2 dimensions; re-fit"):
        Calibration.load(tmp_path, ["a", "b"])


def test_missing_calibration_file_is_identity(tmp_path):
    cal = Calibration.load(tmp_path, ["a"])
    assert cal.applied is False
    np.testing.assert_allclose(cal.apply(np.array([[11.0], [3.0]])), [[10.0], [3.0]])


def test_ensemble_router_uses_knn_memory(tmp_path):
    from models.router import knn_max_wa, normalise, route_statistic

    rng = np.random.default_rng(4)
    emb = rng.normal(size=(200, 8)).astype(np.float32)
    wa = np.clip(5 + 3 * emb[:, 0], 0, 10)
    # the nearest labelled neighbour of a copy of row 0 is row 0 itself: its WA is the max among 1 neighbour
    assert knn_max_wa(emb[:1] * 2, normalise(emb), wa, k=1)[0] == pytest.approx(wa[0])
    feats = router_features(emb, np.zeros((200, 3), dtype=np.float32), [0.5, 0.3, 0.2])
    coef, b = fit_classifier(feats, wa >= 6)
    logits = feats @ coef + b
    knn = knn_max_wa(emb, normalise(emb), wa)
    r = Router("ensemble", 0.5, 6.0, coef, b, bank=quantise_bank(normalise(emb)),
               bank_wa=wa.astype(np.float16), cdf_p=empirical_cdf(logits), cdf_knn=empirical_cdf(knn))
    stat = r.statistic(feats, None, emb)
    assert stat.min() >= 0 and stat.max() <= 1
    assert stat[wa >= 6].mean() > stat[wa < 4].mean() + 0.3
    r.save(tmp_path)
    again = Router.load(tmp_path)
    assert again.kind == "ensemble" and again.bank.shape == (200, 8)
    np.testing.assert_allclose(again.statistic(feats, None, emb), stat, atol=1e-2)

    class _Probe:  # route_statistic builds the features the router needs from a probe
        def standardise(self, e):
            return e

    np.testing.assert_allclose(route_statistic(again, _Probe(), emb, np.zeros((200, 3), np.float32),
                                               [0.5, 0.3, 0.2]), again.statistic(feats, None, emb))
    with pytest.raises(ValueError, match="raw embeddings"):
        again.statistic(feats, None)


def test_blend_weights_pick_the_better_source_per_dimension(tmp_path):
    from models.calibration import fit_blend

    rng = np.random.default_rng(5)
    truth = rng.uniform(0, 10, size=(300, 2))
    student = truth + rng.normal(0, [0.2, 2.0], size=truth.shape)  # good on dim a, bad on dim b
    probe = truth + rng.normal(0, [2.0, 0.2], size=truth.shape)
    alpha = fit_blend(student, probe, truth)
    assert alpha[0] >= 0.8 and alpha[1] <= 0.2
    cal = Calibration.identity(["a", "b"])
    cal.blend = alpha
    mixed = cal.combine(student, probe)
    np.testing.assert_allclose(mixed[:, 0], alpha[0] * student[:, 0] + (1 - alpha[0]) * probe[:, 0])
    cal.save(tmp_path)
    assert Calibration.load(tmp_path, ["a", "b"]).blend == alpha
    assert Calibration.identity(["a"]).combine(np.ones((1, 1)), np.zeros((1, 1)))[0, 0] == 1.0


def test_knn_features_are_neighbourhood_statistics():
    from models.router import KNN_STATS, knn_features

    bank = np.eye(4, dtype=np.float32)[:3]  # three orthogonal labelled articles
    bank_wa = np.array([6.0, 4.8, 1.0])
    q = np.array([[1.0, 0.5, 0.0, 0.0]], dtype=np.float32)  # nearest: article 0, then 1, then 2
    f = knn_features(q, bank, bank_wa, protected=5.0)
    assert f.shape == (1, KNN_STATS)
    raw = (f[0] + 1.0) * 5.0  # undo the x / 5 − 1 scaling
    sims = np.array([1.0, 0.5, 0.0]) / np.sqrt(1.25)
    wts = np.exp(10 * sims) / np.exp(10 * sims).sum()
    expected = [6.0, np.mean(bank_wa), (wts * bank_wa).sum(), 1 / 3, 2 / 3, sims[0], 6.0, 6.0]
    np.testing.assert_allclose(raw, expected, rtol=1e-5)


def test_knn_classifier_router_learns_the_soft_target_and_round_trips(tmp_path):
    from models.router import normalise, route_statistic

    rng = np.random.default_rng(5)
    emb = rng.normal(size=(300, 8)).astype(np.float32)
    wa = np.clip(4 + 2.5 * emb[:, 0] + 0.3 * rng.normal(size=300), 0, 10)
    feats = router_features(emb, np.zeros((300, 3), dtype=np.float32), [0.5, 0.3, 0.2])
    prob, knn, coef, b = oof_knn_classifier(feats, emb, wa, protected=5.0, margin=0.5, folds=3, c=1.0)
    assert knn.shape == (300, 8) and coef.shape == (feats.shape[1] + 8,)
    # out of fold, the soft target WA ≥ 4.5 is ranked well, and protected articles score higher than low ones
    assert prob[wa >= 5].mean() > prob[wa < 3].mean() + 0.5
    r = Router("knn_classifier", 0.0, 5.0, coef, b, bank=quantise_bank(normalise(emb)),
               bank_wa=wa.astype(np.float16))
    stat = r.statistic(feats, None, emb)
    r = r.with_threshold(choose_operating_point(stat, wa >= 5, 0.02))
    assert route_stats(stat, wa >= 5, r.threshold)["fn_rate"] <= 0.02
    r.save(tmp_path)
    again = Router.load(tmp_path)
    assert again.kind == "knn_classifier" and again.bank.shape == (300, 8) and again.cdf_p is None
    assert again.threshold == pytest.approx(r.threshold)

    class _Probe:
        def standardise(self, e):
            return e

    np.testing.assert_allclose(route_statistic(again, _Probe(), emb, np.zeros((300, 3), np.float32),
                                               [0.5, 0.3, 0.2]), stat, atol=1e-3)
    with pytest.raises(ValueError, match="knn_classifier router needs the raw embeddings"):
        again.statistic(feats, None)


def test_router_step_trains_knn_classifier_only_with_enough_rows(trained, tmp_path, fake_encoder):
    import shutil
    from dataclasses import replace

    from models.training.steps import TrainRun

    spec, data, run = trained
    out, work = tmp_path / "artifacts", tmp_path / "work"
    shutil.copytree(run.out_dir, out)
    shutil.copytree(run.workdir, work)
    assert run.options.knn_router_min_train > len(run.split.train)  # the shared fixture: too few rows
    assert "knn_classifier" not in run.metrics["router"]
    r = TrainRun(spec, data, out, encoder=fake_encoder, workdir=work,
                 options=replace(run.options, knn_router_min_train=0))
    metrics = r.step_router()
    assert metrics["knn_classifier_target"] == spec.protected_threshold - 0.5
    sel = metrics["knn_classifier"]["selection"]
    assert sel["fn_rate"] <= spec.hybrid.max_false_negative_rate
    stems = {p.stem for p in out.glob("router*.json")}
    kinds = {Router.load(out, stem).kind for stem in stems}
    assert kinds == {"wa_threshold", "classifier", "ensemble", "knn_classifier"} and "router" in stems
    assert Router.load(out).kind == metrics["shipped"]


def test_select_calibration_keeps_the_better_candidate_and_snaps_integer_labels():
    from models.calibration import select_calibration

    rng = np.random.default_rng(3)
    truth = rng.integers(0, 10, size=(200, 2)).astype(float)
    student = truth + rng.normal(0, 0.3, size=truth.shape)  # good
    probe = truth + rng.normal(0, 3.0, size=truth.shape)  # poor: the blend should lean on the student
    cal = select_calibration(student, probe, truth, 1.0, ["a", "b"], [0.5, 0.5], seed=1)
    cross = cal.stats["cross_fit_mae"]
    assert cal.stats["chosen"] == min(cross, key=cross.get) and set(cross) == {"student", "blend", "isotonic",
                                                                               "blend+isotonic"}
    assert cal.snap == [1.0, 1.0]  # rounding to whole points helps integer labels
    assert cal.stats["snap_cross_fit"]["mae"] < cal.stats["mae_after"]
    if cal.blend is not None:
        assert min(cal.blend) >= 0.7


def test_stage2_post_processing_is_blend_then_isotonic_then_snap():
    from models.calibration import Calibration

    cal = Calibration(["a", "b"], [[0.0, 10.0]] * 2, [[0.0, 10.0]] * 2, applied=False, blend=[0.5, 1.0],
                      snap=[1.0, 0.0])
    student, probe = np.array([[4.0, 3.3], [12.0, -1.0]]), np.array([[3.0, 9.0], [10.0, 0.0]])
    assert cal.stage2(student, probe).tolist() == [[4.0, 3.3], [10.0, 0.0]]  # 3.5 rounds half to even; clamped
    assert cal.stage2(student, probe, snap=False).tolist() == [[3.5, 3.3], [10.0, 0.0]]
