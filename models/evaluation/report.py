"""Evaluation through the real scoring path: probe, student and hybrid metrics with bootstrap intervals and timings."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from filters.postfilter import weighted_averages
from models.evaluation.curve import route_stats
from models.metrics import mae, regression_metrics
from models.pipeline import Pipeline, Stage2Request
from models.records import Prepared, Result
from models.router import Router, route_statistic
from models.student.model import ScorePredictor
from models.training.data import Dataset


def _alternatives(fm_dir: Path) -> list[Router]:
    """The routers trained beside the shipped one (baseline and alternatives), for the comparison in the report."""
    return [Router.load(fm_dir, p.stem) for p in sorted(fm_dir.glob("router_*.json"))]


class _RecordingStudent:
    """The filter's loaded student, recording the raw outputs `Pipeline.stage2` asks it for, so the report can
    show the student alone and Stage 2 before the snap without a second student pass or a copy of Stage 2."""

    def __init__(self, student: ScorePredictor) -> None:
        self.student = student
        self.raw: list[np.ndarray] = []

    def predict(self, articles: Sequence[Mapping[str, Any]], batch_size: int = 16) -> np.ndarray:
        out = self.student.predict(articles, batch_size=batch_size)
        self.raw.append(np.asarray(out))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.student, name)


def _scores(results: Sequence[Result], dims: Sequence[str]) -> np.ndarray:
    """Served scores of results as an (n, n_dims) array in `dims` order."""
    return np.array([[r.scores[d] for d in dims] for r in results], dtype=np.float64).reshape(len(results), len(dims))


@dataclass
class _Batch:
    """The evaluation rows after `prepare` and Stage 1: what every section of the report is computed on."""

    prepared: list[Prepared]
    ref: np.ndarray  # oracle scores (n, n_dims)
    positive: np.ndarray  # oracle WA ≥ the protected edge
    emb: np.ndarray
    probe_scores: np.ndarray
    stat: np.ndarray  # the shipped router's statistic


def evaluate(pipeline: Pipeline, filter_name: str, data: Dataset, *, n_boot: int = 1000, seed: int = 0,
             artifacts_dir: Path | None = None, results_out: list[Result] | None = None) -> dict[str, Any]:
    """Score `data` through the pipeline (`prepare`, `probe_scores`, `route`, `stage2`; commerce gate and prefilter
    should be off so every row is scored) and report probe, student, hybrid and calibration sections plus measured
    timings. The hybrid path's `Result` records (what the stream would publish) are appended to `results_out`.

    Sections: `probe` (the probe's continuous output), `probe_served` (what Stage 1 serves, when snapped),
    `student` (Stage 2 as served: `Pipeline.stage2` on every article), `student_alone` (the raw student),
    `student_unsnapped` (Stage 2 before the label-grid snap), `hybrid` (route + Stage 2 on the routed share).
    """
    fm = pipeline.filters[filter_name]
    spec = fm.spec
    t0 = time.perf_counter()
    items = pipeline.prepare(data.articles)
    t_embed = time.perf_counter() - t0
    prepared = [p for p in items if isinstance(p, Prepared)]
    index = {a["id"]: i for i, a in enumerate(data.articles)}
    ref = data.labels[np.array([index[p.article["id"]] for p in prepared], dtype=int)]
    emb = np.stack([p.embedding for p in prepared]) if prepared else np.zeros((0, pipeline.encoder.dimension))
    t0 = time.perf_counter()
    probe_scores, stat = pipeline.probe_scores(filter_name, emb, [p.article for p in prepared])
    timing: dict[str, float] = {"embedding_s": t_embed, "stage1_s": time.perf_counter() - t0}
    batch = _Batch(prepared, ref, weighted_averages(ref, spec.weights) >= spec.protected_threshold, emb,
                   probe_scores, stat)
    report: dict[str, Any] = {
        "filter": spec.key, "data": data.source, "data_sha256": data.data_hash, "n": int(len(prepared)),
        "n_rejected": int(len(items) - len(prepared)), "fingerprint": fm.fingerprint,
        "protected_threshold": spec.protected_threshold, "n_protected": int(batch.positive.sum()),
        "probe": regression_metrics(spec, probe_scores, ref, n_boot=n_boot, seed=seed),
        "student": None,
    }
    hybrid_pred = fm.calibration.stage1(probe_scores)  # what Stage 1 serves (snapped to the label grid if kept)
    if fm.calibration.probe_snap and any(fm.calibration.probe_snap):
        report["probe_served"] = regression_metrics(spec, hybrid_pred, ref, n_boot=n_boot, seed=seed)
    routed = fm.router.needs_stage2(stat)
    served = None
    if fm.student is not None:
        served = _student_sections(pipeline, filter_name, batch, report, timing, n_boot, seed)
        ordered, routed = _hybrid_path(pipeline, filter_name, prepared, timing)
        hybrid_pred = _scores(ordered, spec.dimension_names)
        if results_out is not None:
            results_out.extend(ordered)
    else:
        if results_out is not None:  # no student: every article is served its probe scores (stage1)
            results_out.extend(r for r in pipeline.route(prepared, filter_name) if isinstance(r, Result))
        report["calibration"] = {"applied": False, "mae_before": None, "mae_after": None,
                                 "probe_snap": fm.calibration.probe_snap,
                                 "note": "no student: only the Stage-1 snap (probe_snap) can apply"}
    report["hybrid"] = _hybrid_section(pipeline, filter_name, batch, hybrid_pred, routed, served, timing, n_boot,
                                       seed, artifacts_dir or spec.artifacts_dir)
    n = max(1, len(prepared))
    report["timing"] = {**timing, "per_article_ms": {k.removesuffix("_s"): 1000 * v / n for k, v in timing.items()},
                        "device": str(getattr(fm.student, "device", "cpu"))}
    return report


def _student_sections(pipeline: Pipeline, filter_name: str, batch: _Batch, report: dict[str, Any],
                      timing: dict[str, float], n_boot: int, seed: int) -> np.ndarray:
    """`student`, `student_alone`, `student_unsnapped` and `calibration` into `report`; returns the served
    Stage-2 scores of every article."""
    fm = pipeline.filters[filter_name]
    spec, cal, ref = fm.spec, fm.calibration, batch.ref
    served, student_raw = _stage2_on_all(pipeline, filter_name, batch.prepared, batch.probe_scores, batch.stat,
                                         timing)
    report["student"] = regression_metrics(spec, served, ref, n_boot=n_boot, seed=seed)
    report["student"]["blend"] = cal.blend
    report["student"]["blend_by_language"] = cal.blend_by_language
    report["student_alone"] = regression_metrics(spec, student_raw, ref, n_boot=n_boot, seed=seed)
    languages = [p.article.get("language") for p in batch.prepared]
    raw = cal.combine(student_raw, batch.probe_scores, languages)
    before = mae(np.clip(raw, 0, 10), ref)
    snapped = bool(cal.snap and any(cal.snap))
    if snapped:  # the same Stage-2 output before rounding to the label grid, for comparison
        report["student_unsnapped"] = regression_metrics(spec, cal.stage2(student_raw, batch.probe_scores, languages,
                                                                   snap=False),
                                                         ref, n_boot=n_boot, seed=seed)
    report["calibration"] = {
        "applied": cal.applied or snapped, "mae_before": before,
        "mae_after": report["student"]["mae"] if cal.applied or snapped else before,
        "isotonic": cal.applied, "snap": cal.snap, "probe_snap": cal.probe_snap,
        "fitted_on": cal.stats.get("fitted_on", "val"),
        "selection": {k: cal.stats.get(k) for k in ("mae_before", "mae_after", "n_check", "snap_cross_fit")},
    }
    return served


def _hybrid_path(pipeline: Pipeline, filter_name: str, prepared: Sequence[Prepared],
                 timing: dict[str, float]) -> tuple[list[Result], np.ndarray]:
    """The real hybrid path, timed: `route` (probe + router) then `stage2` on the routed share. Returns the
    results in `prepared` order and which articles went to Stage 2."""
    t0 = time.perf_counter()
    out = pipeline.route(prepared, filter_name)
    requests = [r for r in out if isinstance(r, Stage2Request)]
    results = {r.article_id: r for r in out if not isinstance(r, Stage2Request)}
    results.update({r.article_id: r for r in pipeline.stage2(requests)})
    timing["hybrid_s"] = time.perf_counter() - t0
    stage2_ids = {r.article["id"] for r in requests}
    routed = np.array([p.article["id"] in stage2_ids for p in prepared], dtype=bool)
    return [results[str(p.article["id"])] for p in prepared], routed


def _hybrid_section(pipeline: Pipeline, filter_name: str, batch: _Batch, hybrid_pred: np.ndarray, routed: np.ndarray,
                    served: np.ndarray | None, timing: dict[str, float], n_boot: int, seed: int,
                    artifacts_dir: Path) -> dict[str, Any]:
    """Metrics of what the hybrid served, FN rate and Stage-2 share, measured speed-up, and every router trained
    beside the shipped one on the same rows."""
    fm = pipeline.filters[filter_name]
    spec, positive = fm.spec, batch.positive
    hybrid = regression_metrics(spec, hybrid_pred, batch.ref, n_boot=n_boot, seed=seed)
    n_pos = int(positive.sum())
    hybrid["fn_rate"] = float((positive & ~routed).sum() / n_pos) if n_pos else 0.0
    hybrid["stage2_share"] = float(routed.mean()) if len(routed) else 0.0
    if served is not None:
        # "model mode": protected by the Stage-2 output itself; measures what the hybrid loses relative to
        # running Stage 2 on everything
        pos_s = weighted_averages(served, spec.weights) >= spec.protected_threshold
        hybrid["fn_rate_vs_stage2"] = float((pos_s & ~routed).sum() / pos_s.sum()) if pos_s.any() else 0.0
        hybrid["n_protected_by_stage2"] = int(pos_s.sum())
    if "hybrid_s" in timing:
        hybrid["speedup_measured"] = timing["stage2_all_s"] / timing["hybrid_s"]
        hybrid["speedup_measured_incl_embedding"] = timing["stage2_all_s"] / (timing["hybrid_s"]
                                                                              + timing["embedding_s"])
    else:
        hybrid["speedup_measured"] = None
    routers = {fm.router.kind: {**route_stats(batch.stat, positive, fm.router.threshold), "shipped": True}}
    for other in _alternatives(artifacts_dir):
        if other.kind not in routers:
            stat_o = route_statistic(other, fm.probe, batch.emb, batch.probe_scores, spec.weights)
            routers[other.kind] = {**route_stats(stat_o, positive, other.threshold), "shipped": False}
    hybrid["routers"] = routers
    return hybrid


def _stage2_on_all(pipeline: Pipeline, filter_name: str, prepared: Sequence[Prepared], probe_scores: np.ndarray,
                   stat: np.ndarray, timing: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Every article through `Pipeline.stage2` (as if the router sent all of them), timed into `timing`.

    Returns the served Stage-2 scores and the student's raw outputs (recorded during that same pass)."""
    fm = pipeline.filters[filter_name]
    dims = fm.spec.dimension_names
    assert fm.student is not None, "Stage 2 on every article needs the filter's student"
    recorder = _RecordingStudent(fm.student)
    probe_wa = weighted_averages(probe_scores, fm.spec.weights)
    requests = [Stage2Request(p.article, fm.spec.name, fm.spec.version, dict(zip(dims, map(float, probe_scores[i]),
                                                                                  strict=True)),
                              float(probe_wa[i]), float(stat[i]), time.time()) for i, p in enumerate(prepared)]
    recording = Pipeline(pipeline.encoder, {**pipeline.filters, filter_name: replace(fm, student=recorder)},
                         pipeline.commerce, apply_prefilter=pipeline.apply_prefilter)
    t0 = time.perf_counter()
    results = recording.stage2(requests)
    timing["stage2_all_s"] = time.perf_counter() - t0
    raw = np.concatenate(recorder.raw) if recorder.raw else np.zeros((0, len(dims)))
    return _scores(results, dims), raw


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
    import matplotlib  # lazy: plotting only when plots are asked for (matplotlib is slow to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as matplotlib above; pyplot only after the Agg backend is chosen

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
