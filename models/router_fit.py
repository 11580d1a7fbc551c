"""Fitting routers and choosing the shipped one (training only; serving loads `models.router.Router`).

Operating points are chosen on out-of-fold predictions over train + val (far more protected articles than val
alone), at `fn_margin` × the spec's FN target, and the router with the smallest Stage-2 share there is shipped
(docs/models.md, "Router").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from filters.postfilter import weighted_averages
from models.evaluation.curve import route_stats
from models.probe import Probe
from models.router import (
    KNN_STATS,
    Router,
    RouterError,
    knn_features,
    knn_max_wa,
    normalise,
    quantise_bank,
    router_features,
)


def choose_operating_point(scores: np.ndarray, positive: np.ndarray, max_fn: float) -> float:
    """Highest threshold t such that the share of positives with score < t stays ≤ `max_fn` (route if score ≥ t)."""
    pos = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(positive, dtype=bool)])
    if len(pos) == 0:
        return float(np.min(scores)) if len(scores) else 0.0
    allowed = int(np.floor(max_fn * len(pos)))  # positives we may lose
    # route iff score >= t; losing `allowed` positives means t = the (allowed)-th smallest positive score
    return float(pos[allowed]) if allowed < len(pos) else float(pos[-1])


def empirical_cdf(values: np.ndarray, n: int = 201) -> np.ndarray:
    """Quantile breakpoints of `values` (to turn a statistic into a rank in [0, 1] with np.interp)."""
    return np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0, 1, n)).astype(np.float32)


def fit_classifier(
    features: np.ndarray, positive: np.ndarray, c: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, float]:
    """L2 logistic regression, balanced classes (positives are rare); returns (coef, intercept)."""
    if positive.all() or not positive.any():
        raise RouterError("router training needs both protected and unprotected articles in the training split")
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
    clf.fit(features, positive.astype(int))
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def oof_router_scores(features: np.ndarray, positive: np.ndarray, embeddings: np.ndarray, wa: np.ndarray,
                      folds: int = 5, c: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold classifier logits and kNN max WA over a training set (each row scored by the other folds),
    for choosing operating points on predictions the router did not see."""
    logits, knn = np.zeros(len(features)), np.zeros(len(features))
    bank = normalise(embeddings)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for tr, te in skf.split(features, positive.astype(int)):
        coef, b = fit_classifier(features[tr], positive[tr], c, seed)
        logits[te] = features[te].astype(np.float64) @ coef + b
        knn[te] = knn_max_wa(embeddings[te], bank[tr], wa[tr])
    return logits, knn


def oof_knn_classifier(features: np.ndarray, embeddings: np.ndarray, wa: np.ndarray, protected: float,
                       margin: float = 0.5, folds: int = 5, c: float = 0.01,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The knn_classifier on a training set: out-of-fold neighbourhood statistics (each row against the other
    folds' articles), out-of-fold probabilities of P(WA ≥ protected − margin) from a head fitted on the other folds,
    and the head fitted on all rows. Returns (oof_probability, oof_knn_features, coef, intercept)."""
    positive = wa >= protected
    soft = wa >= protected - margin
    bank = normalise(embeddings)
    knn = np.zeros((len(features), KNN_STATS), dtype=np.float32)
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(features,
                                                                                          positive.astype(int)))
    for tr, te in splits:
        knn[te] = knn_features(embeddings[te], bank[tr], wa[tr], protected)
    full = np.hstack([features, knn]).astype(np.float32)
    prob = np.zeros(len(features))
    for tr, te in splits:
        coef, b = fit_classifier(full[tr], soft[tr], c, seed)
        prob[te] = 1.0 / (1.0 + np.exp(-(full[te].astype(np.float64) @ coef + b)))
    coef, b = fit_classifier(full, soft, c, seed)
    return prob, knn, coef, b

@dataclass(frozen=True)
class RouterOptions:
    """Knobs of router training (defaults are the shipped recipe)."""

    c: float = 0.05  # the classifier's L2 strength (sklearn C)
    knn_c: float = 0.01  # the knn_classifier's head (more features, stronger L2)
    knn_margin: float = 0.5  # the knn_classifier learns P(WA ≥ protected edge − margin)
    knn_min_train: int = 1000  # fewer training rows: no knn_classifier (20-NN statistics would be noise)
    fn_margin: float = 0.75  # operating point at margin × the FN target (few positives: be conservative)
    folds: int = 5
    seed: int = 42


@dataclass
class RouterSelection:
    """Every router trained, the shipped one (`chosen`, smallest Stage-2 share on the pool), and the metrics."""

    routers: list[Router]
    chosen: Router
    baseline: Router
    metrics: dict[str, Any]


def select_router(probe: Probe, weights: list[float], protected: float, max_fn: float, emb_train: np.ndarray,
                  emb_val: np.ndarray, oof_train_scores: np.ndarray, val_scores: np.ndarray, wa_train: np.ndarray,
                  wa_val: np.ndarray, options: RouterOptions | None = None) -> RouterSelection:
    """Train the baseline (probe WA), classifier, kNN-ensemble and (with enough rows) kNN-feature classifier
    routers; choose each operating point on the pool of out-of-fold train predictions + val."""
    opt = options or RouterOptions()
    pos_tr, pos_va = wa_train >= protected, wa_val >= protected
    pool_pos = np.concatenate([pos_tr, pos_va])
    target = max_fn * opt.fn_margin

    wa_pool = np.concatenate([weighted_averages(oof_train_scores, weights), weighted_averages(val_scores, weights)])
    base = Router("wa_threshold", choose_operating_point(wa_pool, pool_pos, target), protected)
    f_tr = router_features(probe.standardise(emb_train), oof_train_scores, weights)
    f_va = router_features(probe.standardise(emb_val), val_scores, weights)
    oof_logit, oof_knn = oof_router_scores(f_tr, pos_tr, emb_train, wa_train, opt.folds, opt.c, opt.seed)
    coef, b = fit_classifier(f_tr, pos_tr, opt.c, opt.seed)
    clf = Router("classifier", 0.0, protected, coef, b)
    clf_pool = np.concatenate([1 / (1 + np.exp(-oof_logit)), clf.statistic(f_va, None)])
    clf = clf.with_threshold(choose_operating_point(clf_pool, pool_pos, target))
    ens = Router("ensemble", 0.0, protected, coef, b, bank=quantise_bank(normalise(emb_train)),
                 bank_wa=wa_train.astype(np.float16), cdf_p=empirical_cdf(oof_logit), cdf_knn=empirical_cdf(oof_knn))
    ens_pool = np.concatenate([ens.ensemble_statistic(oof_logit, oof_knn), ens.statistic(f_va, None, emb_val)])
    ens = ens.with_threshold(choose_operating_point(ens_pool, pool_pos, target))
    pools = {"wa_threshold": wa_pool, "classifier": clf_pool, "ensemble": ens_pool}
    routers = [base, clf, ens]
    if len(emb_train) >= opt.knn_min_train:
        kprob, _, kcoef, kb = oof_knn_classifier(f_tr, emb_train, wa_train, protected, opt.knn_margin, opt.folds,
                                                 opt.knn_c, opt.seed)
        kc = Router("knn_classifier", 0.0, protected, kcoef, kb, bank=ens.bank, bank_wa=ens.bank_wa)
        pools["knn_classifier"] = np.concatenate([kprob, kc.statistic(f_va, None, emb_val)])
        routers.append(kc.with_threshold(choose_operating_point(pools["knn_classifier"], pool_pos, target)))

    metrics: dict[str, Any] = {"fn_target": max_fn, "fn_selection": target,
                               "selection_pool": {"n": int(len(pool_pos)), "protected": int(pool_pos.sum())}}
    if "knn_classifier" in pools:
        metrics["knn_classifier_target"] = protected - opt.knn_margin
    for r in routers:
        stat = pools[r.kind]
        r.metrics = {"selection": route_stats(stat, pool_pos, r.threshold),
                     "val": route_stats(stat[len(pos_tr):], pos_va, r.threshold)}
        metrics[r.kind] = r.metrics
    chosen = min(routers, key=lambda r: r.metrics["selection"]["stage2_share"])
    metrics["shipped"] = chosen.kind
    return RouterSelection(routers, chosen, base, metrics)
