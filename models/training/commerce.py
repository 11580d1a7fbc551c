"""Training the commerce head (models/commerce_head.py).

- Scored as it is served: the gate blocks when a rule fires *or* the head's probability ≥ threshold, so C and the
  threshold maximise the gate's F1 (rules OR head), not the head's alone.
- Nested stratified CV over the commerce rows gives the honest F1; C and threshold are chosen inside each outer fold.
- On-topic hard negatives: a filter's train-split articles the oracle rated at (or `margin` below) its protected
  tier join every training fold as label 0 (never a scored fold). Without them the head, trained on 108 rows,
  called 9 of 99 held-out sustainability needles commerce at its F1-optimal threshold; the shipped head then had to
  sit at 0.9, where it added nothing to the rules. `on_topic_check` counts what the gate blocks among the filter's
  val/test on-topic articles, which the head never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedKFold

from filters.spec import FilterSpec
from models.commerce_head import CommerceHead
from models.training.data import load_dataset
from models.training.split import split_dataset

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.01), 2)
Params = tuple[np.ndarray, np.ndarray, np.ndarray, float]


@dataclass
class OnTopic:
    """A filter's articles: on-topic train-split ones as negatives, all val/test ones (+ their oracle WA) to check."""

    train: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    heldout_wa: np.ndarray
    protected: float
    floor: float
    source: str


def on_topic(path: str | Path, spec: FilterSpec, seed: int = 42, margin: float = 0.0) -> OnTopic:
    """Split `path` exactly as `distillery train` does (same seed): train rows at WA ≥ protected − `margin` are the
    negatives; every val/test row is checked, with the band WA ≥ protected − max(margin, 1) counted apart."""
    data = load_dataset(path, spec)
    split = split_dataset(data, spec.weights, seed=seed)
    wa = data.weighted_averages(spec.weights)
    floor = spec.protected_threshold - margin
    check_floor = spec.protected_threshold - max(margin, 1.0)  # the check also reports the band below the tier
    train = [data.articles[i] for i in split.train if wa[i] >= floor]
    held = np.concatenate([split.val, split.test])  # all of them: journalism blocked at any WA is a loss
    return OnTopic(train, [data.articles[i] for i in held], wa[held], spec.protected_threshold, check_floor,
                   str(path))


def fit(x: np.ndarray, y: np.ndarray, c: float, extra: np.ndarray | None = None) -> Params:
    """Standardise → balanced logistic regression; `extra` rows join as label 0."""
    if extra is not None and len(extra):
        x = np.vstack([x, extra])
        y = np.concatenate([y, np.zeros(len(extra), dtype=int)])
    mean = x.mean(0)
    std = x.std(0) + 1e-6
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    clf.fit((x - mean) / std, y)
    return mean, std, clf.coef_[0], float(clf.intercept_[0])


def prob(x: np.ndarray, params: Params) -> np.ndarray:
    """P(commerce) of fitted `params`, computed by the served head's own formula."""
    return CommerceHead(*params).probabilities(x)


def out_of_fold(x: np.ndarray, y: np.ndarray, c: float, folds: int = 5, seed: int = 42,
                extra: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold probabilities from stratified K-fold: no row is scored by a head trained on it."""
    oof = np.zeros(len(y))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        oof[te] = prob(x[te], fit(x[tr], y[tr], c, extra))
    return oof


def f1_at(y: np.ndarray, p: np.ndarray, rule_hit: np.ndarray | None = None,
          thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """F1 of the gate (`rule_hit` OR `p >= t`) for every threshold at once."""
    pred = p[None, :] >= thresholds[:, None]
    if rule_hit is not None:
        pred = pred | rule_hit[None, :]
    tp = (pred & (y[None, :] == 1)).sum(1)
    denom = pred.sum(1) + (y == 1).sum()
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def select(x: np.ndarray, y: np.ndarray, cs: tuple[float, ...], folds: int = 5, repeats: int = 2, seed: int = 42,
           rule_hit: np.ndarray | None = None, extra: np.ndarray | None = None,
           threshold: float | None = None) -> tuple[float, float, float]:
    """C and threshold maximising out-of-fold gate F1 (repeated stratified CV); threshold = middle of the best
    plateau, or the fixed `threshold` (then only C is chosen, for the gate at that threshold)."""
    grid = THRESHOLDS if threshold is None else np.array([threshold])
    best = (-1.0, cs[0], 0.5 if threshold is None else threshold)
    for c in cs:
        oofs = [out_of_fold(x, y, c, folds, seed + r, extra) for r in range(repeats)]
        f1s = np.mean([f1_at(y, o, rule_hit, grid) for o in oofs], axis=0)
        top = float(f1s.max())
        if top > best[0] + 1e-9:
            best = (top, c, float(np.median(grid[f1s >= top - 1e-9])))
    return best


CS = (0.01, 0.1, 1.0, 3.0)  # the L2 strengths the CV chooses among


def train_commerce_head(
    x: np.ndarray, y: np.ndarray, embedding: dict[str, Any], *, cs: tuple[float, ...] = CS,
    folds: int = 5, seed: int = 42, rule_hit: np.ndarray | None = None, hard_negatives: np.ndarray | None = None,
    threshold: float | None = None,
) -> CommerceHead:
    """Nested stratified CV for an honest gate F1 (C and threshold chosen inside each outer training fold), then
    C/threshold chosen on all rows and the shipped head fitted on all rows (+ the hard negatives). A fixed
    `threshold` (the operator's override) is used inside the nested CV too, so the F1 is the served gate's."""
    y = np.asarray(y, dtype=int)
    hit = np.zeros(len(y), dtype=bool) if rule_hit is None else np.asarray(rule_hit, dtype=bool)
    pred = np.zeros(len(y), dtype=bool)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        _, c, t = select(x[tr], y[tr], cs, folds, 1, seed, hit[tr], hard_negatives, threshold)
        pred[te] = hit[te] | (prob(x[te], fit(x[tr], y[tr], c, hard_negatives)) >= t)
    f1_inner, c, t = select(x, y, cs, folds, 2, seed, hit, hard_negatives, threshold)
    metrics = {
        "cv": f"nested stratified {folds}-fold (outer scores never seen by the head or its C/threshold choice); "
              "scored as served: rules OR head",
        "n": int(len(y)), "n_positive": int(y.sum()), "rule_blocks": int(hit.sum()),
        "hard_negatives": int(0 if hard_negatives is None else len(hard_negatives)), "C": c, "threshold": t,
        "f1_nested_cv": float(f1_score(y, pred)), "precision_nested_cv": float(precision_score(y, pred)),
        "recall_nested_cv": float(recall_score(y, pred)), "f1_selection_oof": f1_inner,
    }
    return CommerceHead(*fit(x, y, c, hard_negatives), t, embedding, metrics)


def on_topic_check(head: CommerceHead, emb: np.ndarray, rule_hit: np.ndarray, topic: OnTopic) -> dict[str, Any]:
    """What the gate blocks among the filter's held-out articles: all of them, the on-topic band, the protected tier.
    A filter's labelled stream is mostly journalism, so every block there needs a look (`blocked_ids`)."""
    blocked = rule_hit | (head.probabilities(emb) >= head.threshold)
    needles = topic.heldout_wa >= topic.protected
    band = topic.heldout_wa >= topic.floor
    return {"data": topic.source, "split": "val+test", "floor_wa": topic.floor, "protected_wa": topic.protected,
            "articles": int(len(blocked)), "blocked": int(blocked.sum()),
            "on_topic": int(band.sum()), "on_topic_blocked": int((blocked & band).sum()),
            "protected": int(needles.sum()), "protected_blocked": int((blocked & needles).sum()),
            "blocked_ids": [a["id"] for a, b in zip(topic.heldout, blocked, strict=True) if b][:20]}
