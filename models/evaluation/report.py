"""Evaluation through the real scoring path: probe, student and hybrid metrics with bootstrap intervals and timings."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from filters.postfilter import postfilter
from filters.spec import FilterSpec
from models.evaluation.curve import route_stats
from models.pipeline import Pipeline, Stage2Request
from models.records import Prepared, Result
from models.router import Router, route_statistic
from models.training.data import Dataset


def _tiers(spec: FilterSpec, scores: np.ndarray) -> list[str]:
    dims = spec.dimension_names
    return [postfilter(spec, dict(zip(dims, row, strict=True))).tier for row in scores]


def bootstrap_ci(per_row: np.ndarray, n_boot: int = 1000, seed: int = 0) -> list[float]:
    """95 % percentile bootstrap interval of the mean of `per_row`."""
    if len(per_row) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_row), size=(n_boot, len(per_row)))
    means = per_row[idx].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def regression_metrics(spec: FilterSpec, pred: np.ndarray, ref: np.ndarray, *, n_boot: int = 1000,
                       seed: int = 0) -> dict[str, Any]:
    """MAE/RMSE over all dimensions, WA MAE (plain weighted average), per-dimension MAE, tier accuracy
    (postfilter tiers, gatekeepers included), Spearman of WA, bootstrap 95 % CI of MAE."""
    pred = np.clip(np.asarray(pred, dtype=np.float64), 0, 10)
    ref = np.asarray(ref, dtype=np.float64)
    w = np.asarray(spec.weights)
    err = np.abs(pred - ref)
    wa_p, wa_r = pred @ w, ref @ w
    rho = spearmanr(wa_p, wa_r).statistic if len(ref) > 2 else float("nan")
    tiers_p, tiers_r = _tiers(spec, pred), _tiers(spec, ref)
    return {
        "n": int(len(ref)),
        "mae": float(err.mean()),
        "mae_ci95": bootstrap_ci(err.mean(1), n_boot, seed),
        "rmse": float(np.sqrt(((pred - ref) ** 2).mean())),
        "wa_mae": float(np.abs(wa_p - wa_r).mean()),
        "wa_mae_ci95": bootstrap_ci(np.abs(wa_p - wa_r), n_boot, seed),
        "per_dimension": {d: float(err[:, i].mean()) for i, d in enumerate(spec.dimension_names)},
        "tier_accuracy": float(np.mean([a == b for a, b in zip(tiers_p, tiers_r, strict=True)])),
        "spearman_wa": float(rho),
        "mean_bias_wa": float((wa_p - wa_r).mean()),
    }


def _alternatives(fm_dir: Path) -> list[Router]:
    """The routers trained beside the shipped one (baseline and alternatives), for the comparison in the report."""
    return [Router.load(fm_dir, p.stem) for p in sorted(fm_dir.glob("router_*.json"))]


def evaluate(pipeline: Pipeline, filter_name: str, data: Dataset, *, n_boot: int = 1000, seed: int = 0,
             artifacts_dir: Path | None = None, results_out: list[Result] | None = None) -> dict[str, Any]:
    """Score `data` with the pipeline's objects (commerce gate and prefilter should be off so every row is scored)
    and report probe, student, hybrid and calibration sections plus measured timings. The hybrid path's `Result`
    records (what the stream would publish) are appended to `results_out` when given."""
    fm = pipeline.filters[filter_name]
    spec = fm.spec
    t0 = time.perf_counter()
    items = pipeline.prepare(data.articles)
    t_embed = time.perf_counter() - t0
    prepared = [p for p in items if isinstance(p, Prepared)]
    index = {a["id"]: i for i, a in enumerate(data.articles)}
    rows = np.array([index[p.article["id"]] for p in prepared], dtype=int)
    ref = data.labels[rows]
    positive = ref @ np.asarray(spec.weights) >= spec.protected_threshold
    emb = np.stack([p.embedding for p in prepared]) if prepared else np.zeros((0, pipeline.encoder.dimension))

    t0 = time.perf_counter()
    probe_scores, stat = pipeline.probe_scores(filter_name, emb, [p.article for p in prepared])
    t_stage1 = time.perf_counter() - t0
    report: dict[str, Any] = {
        "filter": spec.key, "data": data.source, "data_sha256": data.data_hash, "n": int(len(prepared)),
        "n_rejected": int(len(items) - len(prepared)), "fingerprint": fm.fingerprint,
        "protected_threshold": spec.protected_threshold, "n_protected": int(positive.sum()),
        "probe": regression_metrics(spec, probe_scores, ref, n_boot=n_boot, seed=seed),
        "student": None,
    }
    timing: dict[str, float] = {"embedding_s": t_embed, "stage1_s": t_stage1}
    routed = fm.router.needs_stage2(stat)
    hybrid_pred = fm.calibration.stage1(probe_scores)  # what Stage 1 serves (snapped to the label grid if kept)
    if fm.calibration.probe_snap and any(fm.calibration.probe_snap):
        report["probe_served"] = regression_metrics(spec, hybrid_pred, ref, n_boot=n_boot, seed=seed)
    if fm.student is not None:
        t0 = time.perf_counter()
        student_raw = fm.student.predict([p.article for p in prepared])
        raw = fm.calibration.combine(student_raw, probe_scores)
        cal = fm.calibration.apply(raw)
        timing["stage2_all_s"] = time.perf_counter() - t0
        # `student`: the Stage-2 output as the pipeline produces it (student, blended with the probe if the
        # calibration step chose to, then isotonic); `student_alone`: the raw student, clamped
        report["student"] = regression_metrics(spec, cal, ref, n_boot=n_boot, seed=seed)
        report["student"]["blend"] = fm.calibration.blend
        report["student_alone"] = regression_metrics(spec, student_raw, ref, n_boot=n_boot, seed=seed)
        before = float(np.abs(np.clip(raw, 0, 10) - ref).mean())
        snapped = bool(fm.calibration.snap and any(fm.calibration.snap))
        if snapped:  # the same Stage-2 output before rounding to the label grid, for comparison
            report["student_unsnapped"] = regression_metrics(spec, replace(fm.calibration, snap=None).apply(raw), ref,
                                                             n_boot=n_boot, seed=seed)
        report["calibration"] = {
            "applied": fm.calibration.applied or snapped, "mae_before": before,
            "mae_after": float(np.abs(cal - ref).mean()) if fm.calibration.applied or snapped else before,
            "isotonic": fm.calibration.applied, "snap": fm.calibration.snap, "probe_snap": fm.calibration.probe_snap,
            "fitted_on": fm.calibration.stats.get("fitted_on", "val"),
            "selection": {k: fm.calibration.stats.get(k) for k in ("mae_before", "mae_after", "n_check",
                                                                  "snap_cross_fit")},
        }
        # the real hybrid path, timed: route (probe + router) then Stage 2 on the routed share
        t0 = time.perf_counter()
        out = pipeline.route(prepared, filter_name)
        requests = [r for r in out if isinstance(r, Stage2Request)]
        results = {r.article_id: r for r in out if not isinstance(r, Stage2Request)}
        results.update({r.article_id: r for r in pipeline.stage2(requests)})
        timing["hybrid_s"] = time.perf_counter() - t0
        dims = spec.dimension_names
        hybrid_pred = np.array([[results[p.article["id"]].scores[d] for d in dims] for p in prepared])
        stage2_ids = {r.article["id"] for r in requests}
        routed = np.array([p.article["id"] in stage2_ids for p in prepared], dtype=bool)
        if results_out is not None:
            results_out.extend(results[p.article["id"]] for p in prepared)
    else:
        if results_out is not None:  # no student: every article is served its probe scores (stage1)
            results_out.extend(r for r in pipeline.route(prepared, filter_name) if isinstance(r, Result))
        report["calibration"] = {"applied": False, "mae_before": None, "mae_after": None,
                                 "probe_snap": fm.calibration.probe_snap,
                                 "note": "no student: only the Stage-1 snap (probe_snap) can apply"}
    hybrid = regression_metrics(spec, hybrid_pred, ref, n_boot=n_boot, seed=seed)
    n_pos = int(positive.sum())
    hybrid["fn_rate"] = float((positive & ~routed).sum() / n_pos) if n_pos else 0.0
    hybrid["stage2_share"] = float(routed.mean()) if len(routed) else 0.0
    if fm.student is not None:
        # "model mode" (anchor §7.3): protected by the Stage-2 output itself; measures what the hybrid loses
        # relative to running Stage 2 on everything
        pos_s = cal @ np.asarray(spec.weights) >= spec.protected_threshold
        hybrid["fn_rate_vs_stage2"] = float((pos_s & ~routed).sum() / pos_s.sum()) if pos_s.any() else 0.0
        hybrid["n_protected_by_stage2"] = int(pos_s.sum())
    if "hybrid_s" in timing:
        hybrid["speedup_measured"] = timing["stage2_all_s"] / timing["hybrid_s"]
        hybrid["speedup_measured_incl_embedding"] = timing["stage2_all_s"] / (timing["hybrid_s"] + t_embed)
    else:
        hybrid["speedup_measured"] = None
    routers = {fm.router.kind: {**route_stats(stat, positive, fm.router.threshold), "shipped": True}}
    for other in _alternatives(artifacts_dir or spec.artifacts_dir):
        if other.kind not in routers:
            stat_o = route_statistic(other, fm.probe, emb, probe_scores, spec.weights)
            routers[other.kind] = {**route_stats(stat_o, positive, other.threshold), "shipped": False}
    hybrid["routers"] = routers
    report["hybrid"] = hybrid
    n = max(1, len(prepared))
    report["timing"] = {**timing, "per_article_ms": {k.removesuffix("_s"): 1000 * v / n for k, v in timing.items()},
                        "device": str(getattr(fm.student, "device", "cpu"))}
    return report


def build_reference(spec: FilterSpec, results: Sequence[Result], oracle: Mapping[str, Sequence[float]],
                    fingerprint: str) -> Any:
    """The monitor's reference (`monitoring.reference.Reference`) from the served test-split results.

    `oracle` maps article id → oracle scores (spec dimension order); `heldout_mae` is the served WA (postfilter
    included) against the oracle's postfiltered WA, as the live oracle spot-check measures it. The prefilter is
    off in evaluation, so no prefilter-block rate is recorded (it would read 0 and alarm on every block).
    """
    from monitoring.reference import Reference

    dims = spec.dimension_names
    missing = [r.article_id for r in results if r.article_id not in oracle]
    if missing:
        raise ValueError(f"reference for {spec.key}: no oracle scores for {len(missing)} results (e.g. {missing[0]!r})")
    oracle_wa = [postfilter(spec, dict(zip(dims, map(float, oracle[r.article_id]), strict=True))).weighted_average
                 for r in results]
    served = [r.weighted_average for r in results]
    heldout = float(np.mean(np.abs(np.asarray(served) - np.asarray(oracle_wa)))) if served else None
    ref = Reference.from_results(results, dict(zip(dims, spec.weights, strict=True)), fingerprint, heldout)
    ref.rates.pop("prefilter_block", None)
    served_tiers = [r.tier for r in results if r.stage != "prefilter"]
    for tier in spec.tier_names:  # the served tier distribution (tier model or postfilter), for the monitor
        ref.rates[f"tier_share:{tier}"] = served_tiers.count(tier) / len(served_tiers) if served_tiers else 0.0
    return ref


def to_markdown(report: dict[str, Any]) -> str:
    """A compact human summary of an evaluation report."""
    lines = [f"# Evaluation of {report['filter']} on {Path(report['data']).name} (n = {report['n']})", ""]
    lines += ["| model | MAE [95 % CI] | RMSE | WA MAE | tier acc. | Spearman WA |", "|---|---|---|---|---|---|"]
    for name in ("probe", "probe_served", "student_unsnapped", "student", "hybrid"):
        m = report.get(name)
        if not m:
            continue
        ci = m["mae_ci95"]
        lines.append(f"| {name} | {m['mae']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {m['rmse']:.3f} | {m['wa_mae']:.3f} | "
                     f"{m['tier_accuracy']:.1%} | {m['spearman_wa']:.3f} |")
    h = report["hybrid"]
    lines += ["", f"Hybrid: {h['stage2_share']:.1%} sent to Stage 2, FN rate {h['fn_rate']:.2%} on "
              f"{report['n_protected']} protected articles (WA ≥ {report['protected_threshold']})"
              + (f", measured speed-up {h['speedup_measured']:.2f}×" if h.get("speedup_measured") else "") + "."]
    if h.get("fn_rate_vs_stage2") is not None:
        lines.append(f"FN rate against the Stage-2 output itself: {h['fn_rate_vs_stage2']:.2%} "
                     f"({h['n_protected_by_stage2']} articles protected by Stage 2).")
    if report.get("mean_predictor"):
        m = report["mean_predictor"]
        lines.append(f"Mean predictor (train means): MAE {m['mae']:.3f}, WA MAE {m['wa_mae']:.3f}.")
    for kind, r in h.get("routers", {}).items():
        lines.append(f"- router `{kind}`{' (shipped)' if r.get('shipped') else ''}: threshold {r['threshold']:.4g}, "
                     f"FN {r['fn_rate']:.2%}, Stage-2 share {r['stage2_share']:.1%}")
    c = report.get("calibration") or {}
    if c.get("mae_before") is not None:
        lines.append(f"\nCalibration applied: {c['applied']} (MAE {c['mae_before']:.3f} → {c['mae_after']:.3f}; "
                     f"isotonic {c.get('isotonic')}, label-grid snap {c.get('snap')}).")
    dims = (report.get("student") or report["probe"])["per_dimension"]
    lines += ["", "| dimension | probe MAE | student MAE |", "|---|---|---|"]
    for d in dims:
        s = report["student"]["per_dimension"][d] if report.get("student") else float("nan")
        lines.append(f"| {d} | {report['probe']['per_dimension'][d]:.3f} | {s:.3f} |")
    return "\n".join(lines) + "\n"


def write_plots(report: dict[str, Any], directory: Path, preds: dict[str, np.ndarray] | None = None) -> list[Path]:
    """Per-dimension MAE bar chart (probe vs student); more plots come with the routing curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    dims = list(report["probe"]["per_dimension"])
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=80)
    x = np.arange(len(dims))
    for k, name in enumerate(("probe", "student", "hybrid")):
        if report.get(name):
            ax.bar(x + (k - 1) * 0.27, [report[name]["per_dimension"][d] for d in dims], width=0.27, label=name)
    ax.set_xticks(x, dims, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("MAE")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = directory / "per_dimension_mae.png"
    fig.savefig(path)
    plt.close(fig)
    return [path]


def write_report(report: dict[str, Any], out: Path, markdown: Path | None = None, plots: Path | None = None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(to_markdown(report))
    if plots is not None:
        write_plots(report, plots)
