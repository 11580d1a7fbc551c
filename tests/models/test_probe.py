"""Probe training beats the mean predictor and round-trips through safetensors + JSON."""

from __future__ import annotations

import json

import numpy as np
from model_helpers import DIMS, synthetic_rows

from models.probe import PROBE_CONFIG, PROBE_WEIGHTS, Probe, ProbeConfig, train_probe
from models.training.data import to_article


def _xy(fake_encoder, n=160, seed=0):
    rows = synthetic_rows(n, seed)
    x = fake_encoder.encode([to_article(r) for r in rows])
    y = np.array([[r["scores"][d] for d in DIMS] for r in rows])
    return x, y


def test_probe_learns_and_round_trips(fake_encoder, tmp_path):
    x, y = _xy(fake_encoder)
    xt, yt = _xy(fake_encoder, 60, seed=1)
    cfg = ProbeConfig(seeds=(0, 1), max_epochs=40, patience=5)
    probe = train_probe(x[:130], y[:130], x[130:], y[130:], DIMS, [0.5, 0.3, 0.2], cfg)
    pred = probe.predict(xt)
    mean_mae = np.abs(y[:130].mean(0) - yt).mean()
    assert np.abs(pred - yt).mean() < 0.6 * mean_mae
    assert pred.min() >= 0 and pred.max() <= 10 and pred.dtype == np.float32
    assert probe.metrics["n_train"] == 130 and len(probe.metrics["member_val_mae"]) == 2

    probe.save(tmp_path)
    meta = json.loads((tmp_path / PROBE_CONFIG).read_text())
    assert meta["n_members"] == 2 and meta["dimension_names"] == DIMS and meta["config"]["hidden"] == [512, 256]
    assert not list(tmp_path.glob("*.pkl")) and (tmp_path / PROBE_WEIGHTS).is_file()
    again = Probe.load(tmp_path)
    np.testing.assert_allclose(again.predict(xt), pred, atol=0.02)  # weights stored as fp16
    np.testing.assert_allclose(again.weighted_average(pred), pred @ np.array([0.5, 0.3, 0.2]))


def test_probe_is_seeded(fake_encoder):
    x, y = _xy(fake_encoder, 80)
    cfg = ProbeConfig(seeds=(3,), max_epochs=5)
    a = train_probe(x[:60], y[:60], x[60:], y[60:], DIMS, [0.5, 0.3, 0.2], cfg).predict(x)
    b = train_probe(x[:60], y[:60], x[60:], y[60:], DIMS, [0.5, 0.3, 0.2], cfg).predict(x)
    np.testing.assert_array_equal(a, b)
