"""Routing curve: sweep a router's operating point, FN rate on protected articles vs Stage-2 share and speed-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CURVE_JSON = "routing_curve.json"
CURVE_PNG = "routing_curve.png"


def route_stats(statistic: np.ndarray, positive: np.ndarray, threshold: float) -> dict[str, float]:
    """FN rate = protected articles kept in Stage 1 / protected articles; stage2_share = routed / all."""
    statistic = np.asarray(statistic, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    routed = statistic >= threshold
    n_pos = int(positive.sum())
    fn = int((positive & ~routed).sum())
    return {
        "threshold": float(threshold),
        "fn": fn,
        "fn_rate": fn / n_pos if n_pos else 0.0,
        "stage2_share": float(routed.mean()) if len(routed) else 0.0,
    }


def modelled_speedup(stage2_share: float, t_stage1: float, t_stage2: float) -> float:
    """Stage-2-on-all time / hybrid time from measured per-article costs (Stage 1 runs on every article)."""
    hybrid = t_stage1 + stage2_share * t_stage2
    return t_stage2 / hybrid if hybrid > 0 else float("inf")


def sweep(statistic: np.ndarray, positive: np.ndarray, n_points: int = 60,
          timing: dict[str, float] | None = None) -> list[dict[str, float]]:
    """Evaluate thresholds at quantiles of the statistic (plus its ends)."""
    statistic = np.asarray(statistic, dtype=np.float64)
    qs = np.unique(np.quantile(statistic, np.linspace(0, 1, n_points))) if len(statistic) else np.array([0.0])
    points = []
    for t in qs:
        p = route_stats(statistic, positive, float(t))
        if timing:
            p["speedup_modelled"] = modelled_speedup(p["stage2_share"], timing["stage1_s_per_article"],
                                                     timing["stage2_s_per_article"])
        points.append(p)
    return points


def write_curve(directory: Path, curves: dict[str, dict[str, Any]], meta: dict[str, Any]) -> list[Path]:
    """Store `curves` (router name → {points, operating_point}) as JSON and a PNG plot."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / CURVE_JSON
    json_path.write_text(json.dumps({**meta, "routers": curves}, indent=2) + "\n")
    png_path = directory / CURVE_PNG
    import matplotlib  # lazy: plotting only when the curve is drawn (matplotlib is slow to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as matplotlib above; pyplot only after the Agg backend is chosen

    fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
    for name, curve in curves.items():
        pts = curve["points"]
        ax.plot([p["stage2_share"] for p in pts], [100 * p["fn_rate"] for p in pts], marker=".", label=name)
        op = curve.get("operating_point")
        if op:
            ax.scatter([op["stage2_share"]], [100 * op["fn_rate"]], s=60, zorder=3)
            ax.annotate(f"{name}: {op['stage2_share']:.0%} to stage 2, FN {op['fn_rate']:.1%}",
                        (op["stage2_share"], 100 * op["fn_rate"]), fontsize=7, xytext=(5, 5),
                        textcoords="offset points")
    target = meta.get("max_false_negative_rate")
    if target is not None:
        ax.axhline(100 * target, color="grey", linestyle="--", linewidth=0.8, label=f"FN target {target:.0%}")
    ax.set_xlabel("share of articles sent to Stage 2")
    ax.set_ylabel("FN rate on protected articles (%)")
    ax.set_title(meta.get("title", "routing curve"), fontsize=9)
    ax.set_ylim(0, 30)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return [json_path, png_path]
