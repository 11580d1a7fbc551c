"""What the cascade served on held-out data, as plain data: the monitor's `reference.json`.

The statistics live here, below `monitoring` and outside `models.evaluation`, so training writes the file without
importing `monitoring`, and `monitoring.reference.Reference` (which the stream's monitor agent loads) builds itself
with `summarise_results` without pulling evaluation code into serving.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filters.jsonl import write_json_atomic
from filters.postfilter import weighted_average


@dataclass
class ServedReference:
    """Served WAs (stage1/stage2), Stage-2 scores per dimension, the student-minus-probe WA residual of escalated
    articles (mean/std), stage rates, and the served-WA MAE against the oracle (`heldout_mae`), tied to the
    artifact fingerprint served results carry. Same fields and JSON as `monitoring.reference.Reference`."""

    weighted_average: list[float] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    residual_mean: float | None = None
    residual_std: float | None = None
    fingerprint: str = ""
    rates: dict[str, float] = field(default_factory=dict)
    heldout_mae: float | None = None

    def save(self, path: str | Path) -> Path:
        """Write atomically (strict JSON, NaN as null)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, asdict(self))
        return path


def _get(r: Any, name: str) -> Any:
    return r.get(name) if isinstance(r, Mapping) else getattr(r, name, None)


def summarise_results(results: Iterable[Any], weights: Mapping[str, float], fingerprint: str = "",
                      heldout_mae: float | None = None) -> ServedReference:
    """Reference statistics of scored results (`Result` objects or their dicts): the served WA of every stage1/
    stage2 result, Stage-2 scores per dimension, the residual WA(served) − WA(probe) of Stage-2 results (WA over
    the dimensions present, weights renormalised) and the escalation / prefilter-block rates."""
    wa: list[float] = []
    scores: dict[str, list[float]] = {}
    residuals: list[float] = []
    stages = {"prefilter": 0, "stage1": 0, "stage2": 0}
    for r in results:
        stage = _get(r, "stage")
        if stage not in stages:
            continue
        stages[stage] += 1
        if stage == "prefilter":
            continue
        wa.append(float(_get(r, "weighted_average")))
        if stage == "stage2":
            served = _get(r, "scores") or {}
            for dim, value in served.items():
                scores.setdefault(str(dim), []).append(float(value))
            probe = _get(r, "probe_scores")
            if probe:
                residuals.append(weighted_average(weights, served, partial=True)
                                 - weighted_average(weights, probe, partial=True))
    residuals = [x for x in residuals if math.isfinite(x)]
    mean = sum(residuals) / len(residuals) if len(residuals) >= 2 else None
    std = (math.sqrt(sum((x - mean) ** 2 for x in residuals) / (len(residuals) - 1)) if mean is not None else None)
    scored = stages["stage1"] + stages["stage2"]
    total = scored + stages["prefilter"]
    rates = {}
    if scored:
        rates["escalation"] = stages["stage2"] / scored
    if total:
        rates["prefilter_block"] = stages["prefilter"] / total
    return ServedReference(weighted_average=wa, scores=scores, residual_mean=mean, residual_std=std,
                           fingerprint=fingerprint, rates=rates, heldout_mae=heldout_mae)
