"""Postfilter: raw dimension scores → caps/penalties → weighted average → gatekeeper → tier (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from filters.errors import FiltersError
from filters.spec import FilterSpec


class PostfilterError(FiltersError, ValueError):
    """Scores that do not fit the filter's dimensions; the message names the missing ones."""


@dataclass(frozen=True)
class Scored:
    """The outcome of the postfilter for one article and one filter."""

    scores: dict[str, float]
    weighted_average: float
    tier: str
    gatekeeper_applied: bool = False
    caps_applied: list[str] = field(default_factory=list)


def _clamp(x: float) -> float:
    if not math.isfinite(x):
        return 0.0
    return min(10.0, max(0.0, float(x)))


def apply_caps(
    spec: FilterSpec, scores: Mapping[str, float], labels: Iterable[str] = ()
) -> tuple[dict[str, float], float | None, list[str]]:
    """Apply the content-type/flag rules of `labels`: clamp first (lowest max wins), then subtract the
    highest penalty (floor 0). Returns new scores, the overall WA cap (or None) and the rules applied."""
    out = {d: _clamp(scores.get(d, 0.0)) for d in spec.dimension_names}
    rules = [(name, spec.content_types[name]) for name in dict.fromkeys(labels) if name in spec.content_types]
    if not rules:
        return out, None, []
    applied: list[str] = []
    for name, rule in rules:
        changed = False
        for dim in spec.dimension_names:
            limit = min(
                (v for v in (rule.max_score, rule.max_dimensions.get(dim)) if v is not None), default=None
            )
            if limit is not None and out[dim] > limit:
                out[dim] = limit
                changed = True
        if changed or rule.max_overall is not None or rule.penalty:
            applied.append(name)
    penalty = max((r.penalty or 0.0 for _, r in rules), default=0.0)
    if penalty > 0:
        out = {d: max(0.0, v - penalty) for d, v in out.items()}
    overall = min((r.max_overall for _, r in rules if r.max_overall is not None), default=None)
    return out, overall, applied


def weighted_averages(scores: ArrayLike, weights: Sequence[float]) -> np.ndarray:
    """THE weighted average: rows of `scores` (n, n_dims) or one row (n_dims,) in the spec's dimension order, times
    `weights` (the spec's, which sum to 1), as float64. Every WA in the project (postfilter, probe, router, metrics,
    training, monitor) is computed here."""
    w = np.asarray(weights, dtype=np.float64)
    x = np.asarray(scores, dtype=np.float64)
    if x.shape[-1:] != w.shape:
        raise PostfilterError(f"scores have {x.shape[-1] if x.ndim else 0} dimensions but there are {len(w)} weights; "
                         "pass scores in the spec's dimension order (spec.dimension_names)")
    return x @ w


def weighted_average(spec: FilterSpec | Mapping[str, float], scores: Mapping[str, float], *,
                     partial: bool = False) -> float:
    """The WA of one `{dimension: score}` mapping, by `weighted_averages`.

    `spec` is a FilterSpec or a `{dimension: weight}` mapping. A dimension missing from `scores` is an error,
    unless `partial=True`: then only the dimensions present count and their weights are renormalised to sum to 1
    (the monitor compares records that may carry a subset); NaN when none of them has a positive weight.
    """
    weights = dict(zip(spec.dimension_names, spec.weights, strict=True)) if isinstance(spec, FilterSpec) else spec
    if partial:
        present = {d: float(w) for d, w in weights.items() if d in scores}
        total = math.fsum(present.values())
        if not present or total <= 0:
            return float("nan")
        weights = {d: w / total for d, w in present.items()}
    missing = [d for d in weights if d not in scores]
    if missing:
        raise PostfilterError(f"scores lack dimensions {missing}; pass a score for every dimension of the filter")
    return float(weighted_averages([float(scores[d]) for d in weights], list(weights.values())))


def assign_tier(spec: FilterSpec, wa: float) -> str:
    """First tier (highest first) whose threshold the WA reaches; the last tier has threshold 0."""
    return next((t.name for t in spec.tiers if wa >= t.threshold), spec.tiers[-1].name)


def postfilter(
    spec: FilterSpec,
    raw_scores: Mapping[str, float],
    content_type: str | None = None,
    flags: Iterable[str] = (),
    *,
    apply_gatekeepers: bool = True,
) -> Scored:
    """The weighted-average/gatekeeper/tier arithmetic of the system we rebuild, plus the spec's content-type caps
    and penalties applied in code (the oracle prompt only describes them; docs/filters.md).

    Order: clamp to [0, 10] (non-finite → 0) → content-type/flag caps then penalty → WA → overall cap
    from the content type → gatekeepers (cap WA, dimension scores unchanged) → tier.
    """
    missing = [d for d in spec.dimension_names if d not in raw_scores]
    if missing:
        raise PostfilterError(f"scores for filter {spec.key} lack dimensions {missing}; score every dimension")
    labels = ([content_type] if content_type else []) + list(flags)
    scores, overall_cap, caps_applied = apply_caps(spec, raw_scores, labels)
    wa = weighted_average(spec, scores)
    if overall_cap is not None and wa > overall_cap:
        wa = overall_cap
    gated = False
    if apply_gatekeepers:
        for g in spec.gatekeepers:
            if scores[g.dimension] < g.min and wa > g.cap:
                wa = g.cap
                gated = True
    wa = round(wa, 6)
    return Scored(
        scores={d: round(v, 6) for d, v in scores.items()},
        weighted_average=wa,
        tier=assign_tier(spec, wa),
        gatekeeper_applied=gated,
        caps_applied=caps_applied,
    )
