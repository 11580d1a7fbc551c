"""Commerce head: nested-CV metrics, threshold, persistence with checksums."""

from __future__ import annotations

import numpy as np
import pytest

from models.artifacts import ArtifactError
from models.commerce_head import HEAD_WEIGHTS, CommerceHead, train_commerce_head


def _data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(int)
    x = rng.normal(size=(n, 12)) + np.outer(y, np.r_[3.0, np.zeros(11)])
    return x.astype(np.float32), y


def test_train_reports_nested_cv_and_round_trips(tmp_path):
    x, y = _data()
    head = train_commerce_head(x, y, {"model_id": "hashing-test"}, cs=(0.1, 1.0), folds=4)
    m = head.metrics
    assert m["n"] == 80 and m["n_positive"] == 40 and 0.8 <= m["f1_nested_cv"] <= 1.0
    assert 0.05 <= head.threshold <= 0.95 and m["threshold"] == head.threshold
    p = head.probabilities(x)
    assert ((p >= head.threshold) == y).mean() > 0.85
    head.save(tmp_path)
    again = CommerceHead.load(tmp_path)
    np.testing.assert_allclose(again.probabilities(x), p, atol=1e-5)
    assert again.embedding == {"model_id": "hashing-test"}


def test_tampered_head_is_refused(tmp_path):
    x, y = _data(40)
    train_commerce_head(x, y, {}, cs=(1.0,), folds=3).save(tmp_path)
    (tmp_path / HEAD_WEIGHTS).write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="commerce_head.safetensors: missing or changed"):
        CommerceHead.load(tmp_path)
    with pytest.raises(ArtifactError, match="no commerce head"):
        CommerceHead.load(tmp_path / "nowhere")
