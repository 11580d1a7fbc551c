"""THE score metrics: MAE, per-dimension MAE, WA MAE, RMSE, tier accuracy, Spearman and bootstrap intervals.

Training (probe, student, calibration selection), evaluation reports and the monitor's held-out baseline all call
these, so a number called "MAE" or "WA MAE" means the same thing everywhere. Arrays are (n, n_dims) in the spec's
dimension order; the weighted average is the postfilter's (`filters.postfilter.weighted_averages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from filters.postfilter import postfilter, weighted_averages
from filters.spec import FilterSpec


def _pair(pred: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"predictions {p.shape} and references {r.shape} differ in shape; pass aligned rows")
    return p, r


def mae(pred: Any, ref: Any) -> float:
    """Mean absolute error over every element (all rows and dimensions)."""
    p, r = _pair(pred, ref)
    return float(np.abs(p - r).mean())


def per_dimension_mae(pred: Any, ref: Any, dims: Sequence[str]) -> dict[str, float]:
    """`{dimension: MAE}` over the rows, in `dims` order."""
    p, r = _pair(pred, ref)
    return {d: float(v) for d, v in zip(dims, np.abs(p - r).mean(axis=0), strict=True)}


def wa_errors(pred: Any, ref: Any, weights: Sequence[float]) -> np.ndarray:
    """Per-row absolute error of the plain weighted average (no gatekeepers or caps)."""
    p, r = _pair(pred, ref)
    return np.abs(weighted_averages(p, weights) - weighted_averages(r, weights))


def wa_mae(pred: Any, ref: Any, weights: Sequence[float]) -> float:
    """MAE of the plain weighted average."""
    return float(wa_errors(pred, ref, weights).mean())


def rmse(pred: Any, ref: Any) -> float:
    """Root mean squared error over every element."""
    p, r = _pair(pred, ref)
    return float(np.sqrt(((p - r) ** 2).mean()))


def tiers(spec: FilterSpec, scores: np.ndarray) -> list[str]:
    """The postfilter's tier of each row (gatekeepers included)."""
    dims = spec.dimension_names
    return [postfilter(spec, dict(zip(dims, map(float, row), strict=True))).tier for row in scores]


def tier_accuracy(spec: FilterSpec, pred: Any, ref: Any) -> float:
    """Share of rows whose postfilter tier equals the reference's."""
    p, r = _pair(pred, ref)
    if not len(r):
        return float("nan")
    return float(np.mean([a == b for a, b in zip(tiers(spec, p), tiers(spec, r), strict=True)]))


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation (NaN for fewer than 3 rows)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def bootstrap_ci(per_row: np.ndarray, n_boot: int = 1000, seed: int = 0) -> list[float]:
    """95 % percentile bootstrap interval of the mean of `per_row`."""
    per_row = np.asarray(per_row, dtype=np.float64)
    if len(per_row) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_row), size=(n_boot, len(per_row)))
    means = per_row[idx].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def mae_report(pred: Any, ref: Any, dims: Sequence[str], weights: Sequence[float]) -> dict[str, Any]:
    """The quick report of a training epoch: MAE, WA MAE and per-dimension MAE of predictions clamped to 0–10."""
    p = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 10.0)
    per_dim = per_dimension_mae(p, ref, dims)
    return {"mae": float(np.mean(list(per_dim.values()))), "wa_mae": wa_mae(p, ref, weights), "per_dim": per_dim,
            "n": int(len(p))}


def regression_metrics(spec: FilterSpec, pred: Any, ref: Any, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The evaluation section of one model: MAE/RMSE over all dimensions (predictions clamped to 0–10), WA MAE
    (plain weighted average), per-dimension MAE, tier accuracy (postfilter tiers, gatekeepers included), Spearman
    of the WA, mean WA bias and bootstrap 95 % CIs of MAE and WA MAE."""
    p = np.clip(np.asarray(pred, dtype=np.float64), 0, 10)
    p, r = _pair(p, ref)
    wa_p, wa_r = weighted_averages(p, spec.weights), weighted_averages(r, spec.weights)
    err = np.abs(p - r)
    return {
        "n": int(len(r)),
        "mae": mae(p, r),
        "mae_ci95": bootstrap_ci(err.mean(1), n_boot, seed),
        "rmse": rmse(p, r),
        "wa_mae": wa_mae(p, r, spec.weights),
        "wa_mae_ci95": bootstrap_ci(np.abs(wa_p - wa_r), n_boot, seed),
        "per_dimension": per_dimension_mae(p, r, spec.dimension_names),
        "tier_accuracy": tier_accuracy(spec, p, r),
        "spearman_wa": spearman(wa_p, wa_r),
        "mean_bias_wa": float((wa_p - wa_r).mean()),
    }
