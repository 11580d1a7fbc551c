"""Every trained router on the same rows (operating point + sweep) and the measured per-article stage costs.

Kept apart from `curve.py`, which is light (numpy, matplotlib on demand) because the CLI imports it; this module
loads the probe, routers and student (torch).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.evaluation.curve import modelled_speedup, route_stats, sweep
from models.probe import Probe
from models.router import Router, route_statistic
from models.student.model import ScorePredictor


def router_curves(directory: Path, probe: Probe, embeddings: np.ndarray, probe_scores: np.ndarray,
                  positive: np.ndarray, weights: list[float], timing: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every router saved in `directory` (`router*.json`) on the given rows: its operating point and the sweep."""
    curves: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("router*.json")):
        r = Router.load(directory, path.stem)
        stat = route_statistic(r, probe, embeddings, probe_scores, weights)
        op = route_stats(stat, positive, r.threshold)
        if timing:
            op["speedup_modelled"] = modelled_speedup(op["stage2_share"], timing["stage1_s_per_article"],
                                                      timing["stage2_s_per_article"])
        curves[r.kind] = {"shipped": path.stem == "router", "operating_point": op,
                          "points": sweep(stat, positive, timing=dict(timing) or None)}
    return curves


def measure_costs(student: ScorePredictor, probe: Probe, router: Router, embeddings: np.ndarray,
                  articles: Sequence[Mapping[str, Any]], weights: list[float], n: int = 128) -> dict[str, Any]:
    """Per-article wall clock of Stage 1 (probe + router on an embedding) and Stage 2 (student) on the first `n`
    rows, measured (after a short student warm-up)."""
    emb, arts = embeddings[:n], list(articles[:n])
    student.predict(arts[:4])  # warm-up
    t0 = time.perf_counter()
    student.predict(arts, batch_size=16)
    t2 = (time.perf_counter() - t0) / len(arts)
    t0 = time.perf_counter()
    scores = probe.predict(emb, arts)
    route_statistic(router, probe, emb, scores, weights)
    t1 = (time.perf_counter() - t0) / len(arts)
    return {"stage1_s_per_article": t1, "stage2_s_per_article": t2, "n_timed": len(arts),
            "device": str(getattr(student, "device", "cpu"))}
