"""Commerce head: nested-CV metrics, threshold, persistence with checksums."""

from __future__ import annotations

import numpy as np
import pytest

from models.artifacts import ArtifactError
from models.commerce_head import HEAD_WEIGHTS, CommerceHead
from models.training.commerce import train_commerce_head


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


def test_gate_f1_counts_rule_blocks_and_hard_negatives_never_scored():
    from models.training.commerce import f1_at, out_of_fold

    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.2, 0.1, 0.1, 0.6])
    hit = np.array([False, True, False, False, False, False])
    t = np.array([0.5])
    # head alone: tp 1 (row 0), fp 1 (row 5) -> 2*1/(2+3); with the rule also row 1 -> 2*2/(3+3)
    assert f1_at(y, p, None, t)[0] == pytest.approx(0.4)
    assert f1_at(y, p, hit, t)[0] == pytest.approx(2 / 3)
    x, y = _data(40)
    extra = np.tile(x[y == 1][:1], (30, 1))  # copies of a positive labelled 0: they pull its score down
    assert out_of_fold(x, y, 1.0, 4, 0, extra).shape == (40,)
    head = train_commerce_head(x, y, {}, cs=(1.0,), folds=4, hard_negatives=extra)
    assert head.metrics["hard_negatives"] == 30 and head.metrics["rule_blocks"] == 0
    plain = train_commerce_head(x, y, {}, cs=(1.0,), folds=4)
    assert head.probabilities(x[y == 1][:1])[0] < plain.probabilities(x[y == 1][:1])[0]


def test_on_topic_check_counts_gate_blocks_among_held_out_articles():
    from models.training.commerce import OnTopic, on_topic_check

    x, y = _data(40)
    head = train_commerce_head(x, y, {}, cs=(1.0,), folds=4)
    topic = OnTopic(train=[], heldout=[{"id": f"a{i}"} for i in range(5)],
                    heldout_wa=np.array([4.2, 5.5, 6.0, 4.0, 1.0]),
                    protected=5.0, floor=4.0, source="s.jsonl")
    emb = np.zeros((5, 12), dtype=np.float32)
    emb[0, 0] = 6.0  # only a0 looks like commerce (the positives sit at +3 on the first axis)
    hit = np.array([False, False, True, False, True])  # a rule blocks a2, a needle, and a4, off topic
    got = on_topic_check(head, emb, hit, topic)
    assert (got["on_topic"], got["on_topic_blocked"], got["protected"], got["protected_blocked"]) == (4, 2, 2, 1)
    assert (got["articles"], got["blocked"]) == (5, 3)
    assert got["blocked_ids"] == ["a0", "a2", "a4"]


def test_fixed_threshold_is_the_one_the_nested_cv_scores():
    """An operator's threshold (train-commerce --threshold) is used inside the nested CV, so the reported F1 is the
    served gate's: a threshold no probability reaches leaves only the rule blocks (tp 10 of 40 positives, no fp)."""
    x, y = _data(80)
    hit = np.zeros(80, dtype=bool)
    hit[np.flatnonzero(y == 1)[:10]] = True
    head = train_commerce_head(x, y, {}, cs=(1.0,), folds=4, rule_hit=hit, threshold=1.01)
    assert head.threshold == 1.01 and head.metrics["threshold"] == 1.01
    assert head.metrics["precision_nested_cv"] == 1.0 and head.metrics["recall_nested_cv"] == 0.25
    assert head.metrics["f1_nested_cv"] == pytest.approx(2 * 10 / (2 * 10 + 30))
