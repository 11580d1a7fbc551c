"""System evaluation: the served path with every gate on (validation, commerce, prefilter, router, Stage 2) over
labelled rows, measured at the level the user sees — tiers, the needles (protected tier and above) and where the
missed ones went.

Pure (no click): `evaluate_system` takes a loaded `Pipeline` and a `Dataset`, runs `Pipeline.prepare` →
`Pipeline.score_prepared` (the very objects the stream uses) and compares each served `Result` (or the blocking
`Rejection`) with the oracle's postfiltered labels. An article blocked before scoring counts with the score it is
served (WA 0, the lowest tier), because that is what a consumer gets.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from filters.postfilter import postfilter
from filters.spec import FilterSpec
from models.metrics import wa_mae
from models.pipeline import Pipeline
from models.records import Prepared, Rejection, Result
from models.training.data import Dataset

SYSTEM_JSON = "system_report.json"  # written next to the artifacts by `train`
# content-length buckets (characters of cleaned content) for the error-by-length table
LENGTH_BUCKETS = (0, 50, 100, 200, 300, 600, 1000)


def _prf(pred: np.ndarray, true: np.ndarray) -> dict[str, float | int]:
    """Precision, recall and F1 of boolean predictions (0 where undefined), with the counts behind them."""
    tp = int((pred & true).sum())
    fp = int((pred & ~true).sum())
    fn = int((~pred & true).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn, "support": int(true.sum())}


def _ci(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def bootstrap_system(pred: np.ndarray, true: np.ndarray, wa_err: np.ndarray, n_boot: int = 1000,
                     seed: int = 0) -> dict[str, list[float]]:
    """95 % percentile bootstrap intervals (articles resampled) of needle precision, recall, F1 and system WA MAE."""
    n = len(true)
    if n == 0 or n_boot <= 0:
        return {}
    rng = np.random.default_rng(seed)
    stats = np.zeros((n_boot, 4))
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        m = _prf(pred[idx], true[idx])
        stats[b] = (m["precision"], m["recall"], m["f1"], wa_err[idx].mean())
    return {k: _ci(stats[:, j]) for j, k in enumerate(("precision", "recall", "f1", "wa_mae"))}


def length_bucket(n_chars: int) -> str:
    """The `LENGTH_BUCKETS` label of a content length, e.g. `100-199` or `1000+`."""
    edges = LENGTH_BUCKETS
    for lo, hi in zip(edges, edges[1:], strict=False):
        if n_chars < hi:
            return f"{lo}-{hi - 1}"
    return f"{edges[-1]}+"


def _fate(item: Result | Rejection | None) -> str:
    """Where an article ended: `commerce`, `invalid`, `prefilter:<reason>`, `stage1` or `stage2`."""
    if item is None:
        return "missing"
    if isinstance(item, Rejection):
        return item.kind
    if item.stage == "prefilter":
        return f"prefilter:{item.prefilter_reason}"
    return item.stage


def evaluate_system(pipeline: Pipeline, filter_name: str, data: Dataset, *, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """Score `data` through the pipeline exactly as served (whatever gates the pipeline has on) and report tier
    precision/recall/F1, the needle metrics, a confusion matrix, the misses by gate/stage, MAE per language and per
    content-length bucket, and the system WA MAE (blocked articles at their served WA)."""
    fm = pipeline.filters[filter_name]
    spec = fm.spec
    dims = spec.dimension_names
    items = pipeline.prepare(data.articles)
    prepared = [p for p in items if isinstance(p, Prepared)]
    served: dict[str, Result | Rejection] = {r.article_id: r for r in items
                                             if isinstance(r, Rejection) and r.article_id is not None}
    for res in pipeline.score_prepared(prepared, [filter_name]):
        served[res.article_id] = res
    return system_report(spec, data, served, n_boot=n_boot, seed=seed,
                         pipeline_info={"commerce_gate": pipeline.commerce is not None,
                                        "prefilter": pipeline.apply_prefilter,
                                        "student": fm.student is not None, "router": fm.router.kind,
                                        "fingerprint": fm.fingerprint}) | {"dimensions": dims}


def system_report(spec: FilterSpec, data: Dataset, served: dict[str, Result | Rejection], *, n_boot: int = 1000,
                  seed: int = 0, pipeline_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report of `evaluate_system` from already-served items (article id → Result or Rejection)."""
    dims = spec.dimension_names
    tiers = spec.tier_names
    rank = {t: i for i, t in enumerate(tiers)}  # 0 = highest tier
    needle_rank = rank[spec.hybrid.protected_tier]
    lowest = tiers[-1]
    n = len(data)
    oracle = [postfilter(spec, dict(zip(dims, map(float, row), strict=True))) for row in data.labels]
    o_tier = np.array([rank[s.tier] for s in oracle])
    o_wa = np.array([s.weighted_average for s in oracle])
    s_tier = np.full(n, rank[lowest])
    s_wa = np.zeros(n)
    fates: list[str] = []
    scored = np.zeros(n, dtype=bool)
    pred = np.full((n, len(dims)), np.nan)
    flags: list[list[str]] = []
    sources: Counter[str] = Counter()
    for i, art in enumerate(data.articles):
        item = served.get(str(art["id"]))
        fates.append(_fate(item))
        flags.append(list(getattr(item, "flags", []) or []) if isinstance(item, Result) else [])
        if isinstance(item, Result):
            s_tier[i] = rank[item.tier]
            s_wa[i] = item.weighted_average
            sources[str(getattr(item, "tier_source", "postfilter") or "postfilter")] += 1
            if item.stage != "prefilter" and item.scores:
                scored[i] = True
                pred[i] = [item.scores[d] for d in dims]
    wa_err = np.abs(s_wa - o_wa)
    true_needle, pred_needle = o_tier <= needle_rank, s_tier <= needle_rank
    needles: dict[str, Any] = dict(_prf(pred_needle, true_needle))
    needles["ci95"] = bootstrap_system(pred_needle, true_needle, wa_err, n_boot, seed)
    per_tier = {t: _prf(s_tier == k, o_tier == k) for t, k in rank.items()}
    confusion = np.zeros((len(tiers), len(tiers)), dtype=int)
    for a, b in zip(o_tier, s_tier, strict=True):
        confusion[a, b] += 1
    misses = Counter(f"{fates[i]}→{tiers[s_tier[i]]}" if not fates[i].startswith(("prefilter", "commerce", "invalid"))
                     else fates[i] for i in np.flatnonzero(true_needle & ~pred_needle))
    false_pos = Counter(fates[i] for i in np.flatnonzero(~true_needle & pred_needle))
    # how near the needle edge the false positives sit (oracle WA): near-misses read differently from noise
    fp_wa = o_wa[~true_needle & pred_needle]
    edge = spec.protected_threshold
    fp_bands = {f"{lo:g}-{hi:g}": int(((fp_wa >= lo) & (fp_wa < hi)).sum())
                for lo, hi in ((edge - 0.5, edge), (edge - 1.0, edge - 0.5), (edge - 2.0, edge - 1.0))}
    fp_bands[f"<{edge - 2.0:g}"] = int((fp_wa < edge - 2.0).sum())
    err = np.abs(pred - data.labels)

    def group(mask: np.ndarray) -> dict[str, Any]:
        sc = mask & scored
        return {"n": int(mask.sum()), "n_scored": int(sc.sum()),
                "mae_scored": float(np.nanmean(err[sc])) if sc.any() else None,
                "per_dimension_mae_scored": {d: float(np.nanmean(err[sc, j])) if sc.any() else None
                                             for j, d in enumerate(dims)},
                "wa_mae_scored": wa_mae(pred[sc], data.labels[sc], spec.weights) if sc.any() else None,
                "system_wa_mae": float(wa_err[mask].mean()) if mask.any() else None,
                "needles": int((true_needle & mask).sum()),
                "needle_recall": float((pred_needle & true_needle & mask).sum() / max(1, (true_needle & mask).sum()))}

    langs = np.array([str(a.get("language") or "unknown") for a in data.articles])
    lengths = np.array([len(str(a.get("content") or "")) for a in data.articles])
    buckets = np.array([length_bucket(int(x)) for x in lengths])
    bucket_order = [length_bucket(e) for e in LENGTH_BUCKETS]
    flag_counts = Counter(f for fl in flags for f in fl)
    # articles the served path did not flag `short_content`: what a serving length block would have let through,
    # so figures measured before the length rule moved to the oracle compare like for like
    full = np.array(["short_content" not in fl for fl in flags], dtype=bool)
    return {
        "filter": spec.key, "data": data.source, "data_sha256": data.data_hash, "n": n,
        "pipeline": pipeline_info or {},
        "tiers": tiers, "needle_tiers": tiers[: needle_rank + 1],
        "needle_threshold": spec.protected_threshold,
        "needles": needles,
        "per_tier": per_tier,
        "confusion": {"rows": "oracle tier", "columns": "served tier", "labels": tiers, "matrix": confusion.tolist()},
        "misses": dict(misses.most_common()),
        "false_positives": dict(false_pos.most_common()),
        "false_positives_by_oracle_wa": fp_bands,
        "fates": dict(Counter(fates).most_common()),
        "served_tiers": {t: int((s_tier == k).sum()) for t, k in rank.items()},
        "oracle_tiers": {t: int((o_tier == k).sum()) for t, k in rank.items()},
        "tier_sources": dict(sources),
        "flags": dict(flag_counts),
        "system_wa_mae": float(wa_err.mean()) if n else None,
        "scored": group(np.ones(n, dtype=bool)),
        "per_dimension_mae_scored": {d: float(np.nanmean(err[scored, j])) if scored.any() else None
                                     for j, d in enumerate(dims)},
        "by_language": {lang: group(langs == lang) for lang, _ in Counter(langs.tolist()).most_common()},
        "by_language_not_short": {lang: group((langs == lang) & full)
                                  for lang, _ in Counter(langs[full].tolist()).most_common()},
        "by_length": {b: group(buckets == b) for b in bucket_order if (buckets == b).any()},
    }


def to_markdown(report: dict[str, Any]) -> str:
    """A compact human summary of a system report."""
    nd = report["needles"]
    ci = nd.get("ci95") or {}

    def iv(k: str) -> str:
        return f" [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" if k in ci else ""

    lines = [f"# System evaluation of {report['filter']} on {Path(report['data']).name} (n = {report['n']})", "",
             f"Gates: {report['pipeline']}", "",
             f"Needles ({' + '.join(report['needle_tiers'])}, oracle WA ≥ {report['needle_threshold']}): "
             f"{nd['support']} articles; recall {nd['recall']:.3f}{iv('recall')}, precision "
             f"{nd['precision']:.3f}{iv('precision')}, F1 {nd['f1']:.3f}{iv('f1')}.",
             f"System WA MAE {report['system_wa_mae']:.3f}{iv('wa_mae')}; per-dimension MAE of scored articles "
             f"{report['scored']['mae_scored'] or float('nan'):.3f} (n = {report['scored']['n_scored']}).", "",
             "| tier | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for t, m in report["per_tier"].items():
        lines.append(f"| {t} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines += ["", "Misses (needles served below): " + ", ".join(f"{k} {v}" for k, v in report["misses"].items()),
              "False positives by fate: " + ", ".join(f"{k} {v}" for k, v in report["false_positives"].items()),
              "False positives by oracle WA: " + ", ".join(
                  f"{k} {v}" for k, v in report.get("false_positives_by_oracle_wa", {}).items()),
              "Fates: " + ", ".join(f"{k} {v}" for k, v in report["fates"].items()), "",
              "| group | n | scored | MAE (scored) | system WA MAE | needles | needle recall |",
              "|---|---|---|---|---|---|---|"]
    for section in ("by_language", "by_language_not_short", "by_length"):
        for k, g in report.get(section, {}).items():  # reports written before a section existed lack it
            mae = f"{g['mae_scored']:.3f}" if g["mae_scored"] is not None else "–"
            name = section.removeprefix("by_").replace("_", " ")
            lines.append(f"| {name} {k} | {g['n']} | {g['n_scored']} | {mae} | "
                         f"{g['system_wa_mae']:.3f} | {g['needles']} | {g['needle_recall']:.2f} |")
    return "\n".join(lines) + "\n"


def plot_confusion(report: dict[str, Any], path: Path) -> Path:
    """The oracle × served tier confusion matrix as a PNG (counts in the cells)."""
    import matplotlib  # lazy: matplotlib is slow to import; only when the confusion matrix is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as matplotlib above; pyplot only after the Agg backend is chosen

    labels = report["confusion"]["labels"]
    m = np.asarray(report["confusion"]["matrix"])
    fig, ax = plt.subplots(figsize=(4.8, 4.0), dpi=100)
    ax.imshow(np.log1p(m), cmap="Blues")
    for (a, b), v in np.ndenumerate(m):
        ax.text(b, a, str(v), ha="center", va="center", fontsize=9, color="black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("served tier")
    ax.set_ylabel("oracle tier")
    nd = report["needles"]
    ax.set_title(f"{report['filter']}: needle recall {nd['recall']:.2f}, precision {nd['precision']:.2f}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_system_report(report: dict[str, Any], out: Path, markdown: Path | None = None) -> list[Path]:
    """The report as JSON at `out`, its confusion matrix as `<out stem>_confusion.png` beside it and, when given,
    the Markdown summary."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    written = [out, plot_confusion(report, out.with_name(f"{out.stem}_confusion.png"))]
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(to_markdown(report))
        written.append(markdown)
    return written


def needle_summary(reports: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per report (recall, precision, F1, system WA MAE) for before/after comparisons."""
    return [{"data": r["data"], "recall": r["needles"]["recall"], "precision": r["needles"]["precision"],
             "f1": r["needles"]["f1"], "system_wa_mae": r["system_wa_mae"]} for r in reports]
