"""Fitting the tier model (models/tiers.py): P(oracle WA ≥ edge) heads, an optional Stage-2 refinement, and the
operating points of every policy, chosen on held-out predictions — never on the heads' own training rows.

- Stage-1 heads: logistic (balanced classes, standardised inputs) on the probe's scores and WA + kNN statistics +
  lexical logits, with or without the 512-d embedding and at the C that give the best out-of-fold needle AP (on
  sustainability the embedding overfit them: 0.524 with it, 0.568 without; small filters keep it). Their training
  inputs are out of fold: the probe's out-of-fold predictions over train (`probe_oof.npy`,
  written by the probe step or re-computed here), each training row's neighbourhood among the other folds'
  articles, and the lexical heads' (models/lexical.py) logits from the other folds.
- Stage-2 refinement per edge: a 3-parameter logistic on [Stage-1 logit, Stage-2 WA − edge] fitted on val, where
  the student never trained; kept only if a 2-fold cross-fit on val lowers the log-loss.
- Platt scaling (so `tier_confidence` is a probability) and operating points: on val as served (refined where the
  router sends the article to Stage 2); out-of-fold train + val is reported beside as `pool`.
- The precision/recall curve of the needle edge (the spec's protected tier) is written as JSON + PNG.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import KFold, StratifiedKFold
from tqdm import tqdm

from filters.postfilter import postfilter, weighted_averages
from filters.spec import FilterSpec
from models.calibration import Calibration
from models.lexical import LexicalHeads, fit_idf, term_counts, tfidf
from models.probe import Probe, ProbeConfig, train_probe
from models.router import Router, knn_features, normalise, route_statistic, router_features
from models.tiers import POLICIES, TierModel

log = logging.getLogger(__name__)

MIN_EDGE_ROWS = 20  # training articles needed on each side of a tier edge to learn its head
LEXICAL_C = 3.0  # inverse L2 strength of the lexical heads (chosen on sustainability's out-of-fold pool)
PR_JSON = "tier_pr_curve.json"
PR_PNG = "tier_pr_curve.png"


def oracle_wa(spec: FilterSpec, labels: np.ndarray) -> np.ndarray:
    """The oracle's postfiltered WA (caps, gatekeepers) of each label row: what the tiers are defined on."""
    dims = spec.dimension_names
    return np.array([postfilter(spec, dict(zip(dims, map(float, row), strict=True))).weighted_average
                     for row in labels])


def prf(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 of boolean predictions (0 where undefined)."""
    tp = float((pred & true).sum())
    p = tp / pred.sum() if pred.sum() else 0.0
    r = tp / true.sum() if true.sum() else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def choose_cutoffs(scores: np.ndarray, positive: np.ndarray, min_recall: float,
                   min_precision: float) -> dict[str, float]:
    """Cutoffs on a probability for each policy: `recall` = the highest cutoff with recall ≥ `min_recall`;
    `precision` = the lowest cutoff with precision ≥ `min_precision` (else the F1 one); `balanced` = max F1."""
    cands = np.unique(np.round(scores, 6))[::-1]
    stats = [(c, *prf(scores >= c, positive)) for c in cands]
    recall = next((c for c, _, r, _ in stats if r >= min_recall), float(cands[-1]))
    balanced = max(stats, key=lambda s: s[3])[0]
    prec = [c for c, p, r, _ in stats if p >= min_precision and r > 0]
    precision = min(prec) if prec else balanced
    return {"recall": float(recall), "balanced": float(balanced), "precision": float(precision)}


def pr_curve(scores: np.ndarray, positive: np.ndarray, n: int = 101) -> list[dict[str, float]]:
    """Precision/recall/F1/share at `n` probability cutoffs from 0 to 1."""
    out = []
    for c in np.linspace(0.0, 1.0, n):
        p, r, f = prf(scores >= c, positive)
        out.append({"cutoff": round(float(c), 4), "precision": p, "recall": r, "f1": f,
                    "share": float((scores >= c).mean())})
    return out


def _logistic(x: np.ndarray, y: np.ndarray, c: float, seed: int, balanced: bool = True) -> LogisticRegression:
    return LogisticRegression(C=c, class_weight="balanced" if balanced else None, max_iter=3000,
                              random_state=seed).fit(x, y.astype(int))


def oof_probe(run: Any) -> np.ndarray:
    """The probe's 5-fold out-of-fold predictions over train: the probe step's file when it matches, else re-fit
    here (one seed per fold, as the probe step does)."""
    s, x, y, opt = run.split, run.embeddings, run.data.labels, run.options
    path = run.workdir / "probe_oof.npy"
    if path.is_file():
        oof = np.load(path)
        if oof.shape == (len(s.train), y.shape[1]):
            return oof
    oof = np.zeros((len(s.train), y.shape[1]), dtype=np.float32)
    cfg = ProbeConfig(**{**asdict(opt.probe), "seeds": opt.probe.seeds[:1]})
    arts = run.data.articles
    val_arts = [arts[i] for i in s.val]
    for tr, te in tqdm(list(KFold(opt.folds, shuffle=True, random_state=opt.seed).split(s.train)),
                       desc="probe out-of-fold (tiers)", unit="fold"):
        p = train_probe(x[s.train[tr]], y[s.train[tr]], x[s.val], y[s.val], run.spec.dimension_names,
                        run.spec.weights, cfg, [arts[i] for i in s.train[tr]], val_arts)
        oof[te] = p.predict(x[s.train[te]], [arts[i] for i in s.train[te]])
    np.save(path, oof)
    return oof


def _lexical(run: Any, edges: list[float], n_unmodelled: int, owa: np.ndarray,
             folds: list[tuple[np.ndarray, np.ndarray]], c: float) -> tuple[LexicalHeads, np.ndarray, np.ndarray]:
    """Lexical heads fitted on train; their out-of-fold logits over train (the same folds as the Stage-1 heads) and
    their logits over val, computed through the stored float16 heads so training sees what serving computes."""
    s, seed = run.split, run.options.seed
    counts = term_counts(run.encoder.texts(run.articles(np.concatenate([s.train, s.val]))))
    c_tr, c_va = counts[: len(s.train)], counts[len(s.train):]
    oof = np.zeros((len(s.train), len(edges)))
    modelled = list(range(n_unmodelled, len(edges)))
    for a, b in tqdm(folds, desc="lexical heads out-of-fold (tiers)", unit="fold"):
        idf = fit_idf(c_tr[a])
        xa, xb = tfidf(c_tr[a], idf), tfidf(c_tr[b], idf)
        for k in modelled:
            oof[b, k] = _logistic(xa, owa[s.train][a] >= edges[k], c, seed).decision_function(xb)
    idf = fit_idf(c_tr)
    x = tfidf(c_tr, idf)
    coef = np.zeros((len(edges), x.shape[1]), dtype=np.float32)
    intercept = np.zeros(len(edges))
    for k in modelled:
        m = _logistic(x, owa[s.train] >= edges[k], c, seed)
        coef[k], intercept[k] = m.coef_[0], m.intercept_[0]
    heads = LexicalHeads.from_tensors(LexicalHeads(idf, coef, intercept).tensors())
    assert heads is not None
    return heads, oof, heads.logits_from_counts(c_va)


Heads = tuple[np.ndarray, np.ndarray, np.ndarray]  # coef, intercept (on raw inputs), out-of-fold logits over train


def _fit_heads(f_tr: np.ndarray, wa: np.ndarray, edges: list[float], n_unmodelled: int,
               folds: list[tuple[np.ndarray, np.ndarray]], c: float, seed: int) -> Heads:
    """One balanced logistic per modelled edge on standardised inputs, with its out-of-fold logits. The scaling is
    folded into the returned coefficients (the kNN counts, WA and logits have very different scales and one L2
    strength must suit them all), so serving stays one dot product."""
    coef = np.zeros((len(edges), f_tr.shape[1]))
    intercept = np.zeros(len(edges))
    oof_logit = np.zeros((len(f_tr), len(edges)))
    mean, std = f_tr.mean(0), f_tr.std(0) + 1e-6
    z_tr = (f_tr - mean) / std
    for k, edge in enumerate(edges):
        pos = wa >= edge
        if k < n_unmodelled:  # too rare to learn: probability 0, the postfilter rule decides (TierModel.decide)
            oof_logit[:, k], intercept[k] = -40.0, -40.0
            continue
        for a, b in folds:
            oof_logit[b, k] = _logistic(z_tr[a], pos[a], c, seed).decision_function(z_tr[b])
        head = _logistic(z_tr, pos, c, seed)
        coef[k] = head.coef_[0] / std
        intercept[k] = head.intercept_[0] - float((head.coef_[0] * mean / std).sum())
    return coef, intercept, oof_logit


def fit_tier_model(run: Any, cs: tuple[float, ...] = (0.003, 0.03, 0.3), lexical_heads: bool = True,
                   embedding_features: bool | None = None) -> tuple[TierModel, dict[str, Any]]:
    """Fit the tier model of a `TrainRun` (probe, router and calibration already in its artifacts dir)."""
    spec, s, x, opt = run.spec, run.split, run.embeddings, run.options
    w = list(spec.weights)
    probe = Probe.load(run.out_dir)
    router = Router.load(run.out_dir)
    cal = Calibration.load(run.out_dir, spec.dimension_names)
    owa = oracle_wa(spec, run.data.labels)
    raw_wa = run.data.weighted_averages(w)
    edges = [t.threshold for t in spec.tiers[:-1]]
    uses_knn = router.bank is not None and router.bank_wa is not None
    protected = router.protected_threshold

    counts = [int((owa[s.train] >= e).sum()) for e in edges]
    n_unmodelled = next((k for k, n in enumerate(counts) if n >= MIN_EDGE_ROWS), len(edges))
    if n_unmodelled == len(edges) or any(n < MIN_EDGE_ROWS or len(s.train) - n < MIN_EDGE_ROWS
                                         for n in counts[n_unmodelled:]):
        raise ValueError(f"{spec.key}: training articles at or above the tier edges {edges}: {counts}; the tier "
                         f"model needs at least {MIN_EDGE_ROWS} on each side of every edge but the highest ones")
    oof = oof_probe(run)
    f_tr = router_features(probe.standardise(x[s.train]), oof, w)
    folds = list(StratifiedKFold(opt.folds, shuffle=True, random_state=opt.seed)
                 .split(f_tr, (owa[s.train] >= spec.protected_threshold).astype(int)))
    val_scores = probe.predict(x[s.val], run.articles(s.val))
    f_va = router_features(probe.standardise(x[s.val]), val_scores, w)
    extra_tr: list[np.ndarray] = []
    extra_va: list[np.ndarray] = []
    if uses_knn:
        bank = normalise(x[s.train])
        knn = np.zeros((len(s.train), 8), dtype=np.float32)
        for a, b in folds:  # each training row among the other folds' articles (out of fold)
            knn[b] = knn_features(x[s.train][b], bank[a], raw_wa[s.train][a], protected)
        assert router.bank is not None and router.bank_wa is not None
        extra_tr.append(knn)
        extra_va.append(knn_features(x[s.val], router.bank, router.bank_wa, protected))
    lexical = None
    if lexical_heads:
        lexical, lex_tr, lex_va = _lexical(run, edges, n_unmodelled, owa, folds, c=LEXICAL_C)
        extra_tr.append(lex_tr)
        extra_va.append(lex_va)

    # Stage-1 inputs with or without the embedding itself, and the L2 strength: chosen by the out-of-fold average
    # precision of the needle edge over train (every input is out of fold). Without the embedding the heads see the
    # probe's scores and WA; the embedding then reaches them only through the probe, the kNN and the lexical heads.
    needle = edges.index(spec.protected_threshold)
    pos_needle = owa[s.train] >= spec.protected_threshold
    choices = (False, True) if embedding_features is None else (embedding_features,)
    tried: dict[str, float] = {}
    best: tuple[float, bool, float, Heads] | None = None
    for emb_in in choices:
        a_tr = np.hstack([f_tr[:, 0 if emb_in else x.shape[1]:], *extra_tr])
        for c_ in cs:
            heads = _fit_heads(a_tr, owa[s.train], edges, n_unmodelled, folds, c_, opt.seed)
            ap = float(average_precision_score(pos_needle, heads[2][:, needle]))
            tried[f"{'embedding+' if emb_in else ''}probe+knn+lexical C={c_}"] = round(ap, 4)
            if best is None or ap > best[0] + 1e-9:
                best = (ap, emb_in, c_, heads)
    assert best is not None
    _, embedding_features, c, (coef, intercept, oof_logit) = best
    first = 0 if embedding_features else x.shape[1]
    f_tr = np.hstack([f_tr[:, first:], *extra_tr])
    f_va = np.hstack([f_va[:, first:], *extra_va])
    model = TierModel(spec.tier_names, edges, coef, intercept, uses_knn=uses_knn, policy=spec.tier_model.policy,
                      n_unmodelled=n_unmodelled, lexical=lexical, embedding_features=bool(embedding_features))
    val_logit = model.stage1_logits(f_va)

    # Stage-2 refinement on val (the student never trained there), kept per edge only if it helps out of fold
    metrics: dict[str, Any] = {"c": c, "n_features": int(f_tr.shape[1]), "uses_knn": uses_knn,
                               "embedding_features": embedding_features, "standardised": True,
                               "selection_oof_ap": tried,
                               "lexical": None if lexical is None else {"c": LEXICAL_C, "n_features":
                                                                        lexical.n_features},
                               "training_rows_per_edge": dict(zip(map(str, edges), counts, strict=True)),
                               "unmodelled_edges": edges[:n_unmodelled],
                               "fitted_on": "out-of-fold train (probe OOF + kNN among other folds)"}
    raw = run._student_raw(s.val, "val")
    served_val = val_logit.copy()
    routed = np.zeros(len(s.val), dtype=bool)
    if raw is not None:
        val_languages = [a.get("language") for a in run.articles(s.val)]
        stage2_wa = weighted_averages(cal.stage2(raw, val_scores, val_languages), w)
        routed = router.needs_stage2(route_statistic(router, probe, x[s.val], val_scores, w))
        params = np.zeros((len(edges), 3))
        kept = []
        for k, edge in enumerate(edges):
            pos = owa[s.val] >= edge
            z = np.column_stack([val_logit[:, k], stage2_wa - edge])
            if k < n_unmodelled or pos.sum() < 4 or (~pos).sum() < 4:
                params[k] = (1.0, 0.0, 0.0)
                kept.append(False)
                continue
            cv = np.zeros(len(pos))
            for a, b in StratifiedKFold(2, shuffle=True, random_state=opt.seed).split(z, pos):
                cv[b] = _logistic(z[a], pos[a], 1.0, opt.seed).decision_function(z[b])
            cv1 = np.zeros(len(pos))
            for a, b in StratifiedKFold(2, shuffle=True, random_state=opt.seed).split(z, pos):
                cv1[b] = _logistic(z[a, :1], pos[a], 1.0, opt.seed).decision_function(z[b, :1])
            ll2, ll1 = _logloss(cv, pos), _logloss(cv1, pos)
            if ll2 < ll1:
                m = _logistic(z, pos, 1.0, opt.seed)  # balanced, like the Stage-1 heads (same logit scale)
                params[k] = (m.coef_[0][0], m.coef_[0][1], m.intercept_[0])
                kept.append(True)
            else:
                params[k] = (1.0, 0.0, 0.0)
                kept.append(False)
            metrics.setdefault("stage2_cross_fit_logloss", {})[str(edge)] = {"stage1": ll1, "stage1+stage2": ll2}
        if any(kept):
            model.stage2 = params
            metrics["stage2_kept"] = dict(zip(map(str, edges), kept, strict=True))
            served_val = model.logits(val_logit, np.where(routed, stage2_wa, np.nan))

    # Platt scaling and operating points on val as served (Stage-2-refined where the router escalates): that is
    # the mix production sees. Out-of-fold train has Stage-1 logits only (the student trained on it), so it would
    # pull the cutoffs toward the Stage-1 distribution; it is reported beside as `pool` (OOF train + val).
    wa_val = owa[s.val]
    platt = np.zeros((len(edges), 2))
    for k, edge in enumerate(edges):
        if k < n_unmodelled:
            platt[k] = (1.0, 0.0)
            continue
        m = _logistic(served_val[:, k:k + 1], wa_val >= edge, 1e4, opt.seed, balanced=False)
        platt[k] = (m.coef_[0][0], m.intercept_[0])
    model.platt = platt
    pool_z = np.vstack([oof_logit, served_val])
    pool_wa = np.concatenate([owa[s.train], wa_val])
    pool_p = model.probabilities(pool_z)
    val_p = model.probabilities(served_val)
    cut: dict[str, list[float]] = {p: [] for p in POLICIES}
    for k, edge in enumerate(edges):
        if k < n_unmodelled:
            for p in POLICIES:
                cut[p].append(1.0)
            continue
        chosen = choose_cutoffs(val_p[:, k], wa_val >= edge, spec.tier_model.min_recall,
                                spec.tier_model.min_precision)
        for p in POLICIES:  # the policy is about the needles; every other edge sits at its F1-optimal cutoff
            cut[p].append(chosen[p] if edge == spec.protected_threshold else chosen["balanced"])
    model.operating_points = cut
    pos_pool = pool_wa >= spec.protected_threshold
    metrics["selection"] = {"split": "val", "n": int(len(wa_val)),
                            "needles": int((wa_val >= spec.protected_threshold).sum())}
    metrics["selection_pool"] = {"n": int(len(pool_wa)), "needles": int(pos_pool.sum())}
    metrics["operating_points"] = {}
    for p in POLICIES:
        c_ = cut[p][needle]
        pp, rr, ff = prf(pool_p[:, needle] >= c_, pos_pool)
        vp, vr, vf = prf(val_p[:, needle] >= c_, owa[s.val] >= spec.protected_threshold)
        metrics["operating_points"][p] = {"cutoff": c_, "pool": {"precision": pp, "recall": rr, "f1": ff},
                                          "val": {"precision": vp, "recall": vr, "f1": vf}}
    metrics["policy"] = model.policy
    model.metrics = metrics
    curve = {"title": f"{spec.key}: P(WA ≥ {spec.protected_threshold}) precision/recall", "edge":
             spec.protected_threshold, "pool": pr_curve(pool_p[:, needle], pos_pool),
             "val": pr_curve(val_p[:, needle], owa[s.val] >= spec.protected_threshold),
             "operating_points": metrics["operating_points"], "policy": model.policy}
    return model, curve


def _logloss(logit: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(1 / (1 + np.exp(-logit)), 1e-6, 1 - 1e-6)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def write_pr_curve(directory: Path, curve: dict[str, Any]) -> list[Path]:
    """`tier_pr_curve.json` + `.png` (precision and recall vs cutoff on pool and val, policies marked)."""
    import matplotlib  # lazy: matplotlib is slow to import; only when the PR curve is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as matplotlib above; pyplot only after the Agg backend is chosen

    directory.mkdir(parents=True, exist_ok=True)
    (directory / PR_JSON).write_text(json.dumps(curve, indent=1) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=90)
    for name, style in (("pool", "-"), ("val", "--")):
        pts = curve[name]
        ax.plot([p["recall"] for p in pts], [p["precision"] for p in pts], style, label=f"{name}")
    for pol, op in curve["operating_points"].items():
        ax.plot(op["val"]["recall"], op["val"]["precision"], "o", label=f"{pol} (cutoff {op['cutoff']:.2f}, val)")
    ax.set_xlabel("recall (needles)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(curve["title"], fontsize=9)
    fig.tight_layout()
    fig.savefig(directory / PR_PNG)
    plt.close(fig)
    return [directory / PR_JSON, directory / PR_PNG]
