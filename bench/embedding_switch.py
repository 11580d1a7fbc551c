"""Before/after of the shared-embedding switch (MiniLM -> USE-multilingual v3): per-language quality and articles/s.

Usage (the "before" artifacts copied from `integ` into one folder: <dir>/<filter>/ and <dir>/commerce/):
    python bench/embedding_switch.py --baseline-dir runs/before --filter sustainability \\
        --data /work/shared/data/sustainability.jsonl --speed-filters sustainability,uplifting

Quality: the test split (seed 42) of --filter through each pipeline's served path (`prepare` -> `score_prepared`,
commerce gate and prefilter off so every row is scored), per language (all, en, nl, other) over all rows and over
the oracle-scored rows (some dimension > 0): per-dimension MAE, mean MAE and WA MAE of the probe (Stage 1, its
continuous output) and of the served hybrid (router + Stage 2 on the routed share + calibration).
Speed: both pipelines (commerce gate, prefilter, router, students: what a worker runs) score the same stream
articles with `score_batch`, interleaved rounds, best round kept, in one process so machine load hits both alike.
Writes bench/results/embedding_switch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.commerce import CommerceFilter, CommerceRules  # noqa: E402
from filters.spec import resolve_served  # noqa: E402
from models.commerce_head import CommerceHead  # noqa: E402
from models.embedding import MINILM_MODEL_ID, Encoder  # noqa: E402
from models.filter_models import FilterModels  # noqa: E402
from models.metrics import mae, per_dimension_mae, wa_mae  # noqa: E402
from models.pipeline import Pipeline  # noqa: E402
from models.records import Prepared  # noqa: E402
from models.training.data import load_dataset  # noqa: E402
from models.training.split import split_dataset  # noqa: E402
from streams.clients import read_lines  # noqa: E402


def baseline_pipeline(model_id: str, directory: Path, names: list[str]) -> Pipeline:
    """The "before" pipeline: `model_id` as the shared encoder, every filter and the commerce head from `directory`."""
    enc = Encoder.shared(model_id)
    filters = {}
    for name in names:
        spec = resolve_served(name)
        filters[spec.name] = FilterModels.load(spec, enc, directory=directory / spec.name)
    head = CommerceHead.load(directory / "commerce") if (directory / "commerce").is_dir() else None
    gate = CommerceFilter(CommerceRules.default(), head=head) if head is not None else None
    return Pipeline(enc, filters, gate)


def quality(pipe: Pipeline, name: str, data: Any, rows: np.ndarray) -> dict[str, Any]:
    """Probe and served-hybrid MAE per language on `rows`, all rows and oracle-scored rows."""
    fm = pipe.filters[name]
    spec, dims = fm.spec, fm.spec.dimension_names
    scoring = Pipeline(pipe.encoder, {name: fm}, None, apply_prefilter=False)
    arts = [data.articles[i] for i in rows]
    prepared = [p for p in scoring.prepare(arts) if isinstance(p, Prepared)]
    results = {r.article_id: r for r in scoring.score_prepared(prepared, [name])}
    missing = [a["id"] for a in arts if str(a["id"]) not in results]
    if missing:
        raise SystemExit(f"{len(missing)} test articles got no result (first: {missing[:3]}); nothing may be dropped")
    probe = np.array([[results[str(a["id"])].probe_scores[d] for d in dims] for a in arts])  # type: ignore[index]
    hybrid = np.array([[results[str(a["id"])].scores[d] for d in dims] for a in arts])
    stage2 = np.array([results[str(a["id"])].stage == "stage2" for a in arts])
    y = data.labels[rows]
    langs = np.array([a.get("language", "") or "?" for a in arts])
    oracle_scored = y.max(1) > 0
    groups = {"all": np.ones(len(rows), bool), "en": langs == "en", "nl": langs == "nl",
              "other": (langs != "en") & (langs != "nl")}
    out: dict[str, Any] = {}
    for lang, mask in groups.items():
        for subset, sel in (("all_rows", mask), ("scored", mask & oracle_scored)):
            n = int(sel.sum())
            entry: dict[str, Any] = {"n": n, "stage2_share": float(stage2[sel].mean()) if n else None}
            for section, pred in (("probe", probe), ("hybrid", hybrid)):
                entry[section] = None if n == 0 else {
                    "mae": mae(pred[sel], y[sel]), "wa_mae": wa_mae(pred[sel], y[sel], spec.weights),
                    "per_dimension": per_dimension_mae(pred[sel], y[sel], dims)}
            out[f"{lang}/{subset}"] = entry
    return out


def speed(pipes: dict[str, Pipeline], lines: list[bytes], rounds: int, batch_size: int) -> dict[str, Any]:
    """Best-of-`rounds` articles/s of `score_batch` per pipeline, rounds interleaved; stage counts of the last."""
    for pipe in pipes.values():
        pipe.score_batch(lines[:8])  # warm-up (model load and first-call costs not counted)
    best: dict[str, float] = {}
    counts: dict[str, dict[str, int]] = {}
    for _ in range(rounds):
        for name, pipe in pipes.items():
            c: dict[str, int] = {}
            started = time.perf_counter()
            for i in range(0, len(lines), batch_size):
                results, rejected = pipe.score_batch(lines[i:i + batch_size])
                for r in results:
                    c[f"{r.filter}:{r.stage}"] = c.get(f"{r.filter}:{r.stage}", 0) + 1
                c["rejected"] = c.get("rejected", 0) + len(rejected)
            best[name] = max(best.get(name, 0.0), len(lines) / (time.perf_counter() - started))
            counts[name] = c
    return {"articles_per_s": best, "stages": counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=MINILM_MODEL_ID, help="the embedding model of the before artifacts")
    ap.add_argument("--baseline-dir", type=Path, required=True, help="before artifacts: <dir>/<filter>, <dir>/commerce")
    ap.add_argument("--filter", default="sustainability", help="the filter whose test split is compared")
    ap.add_argument("--data", default="/work/shared/data/sustainability.jsonl")
    ap.add_argument("--speed-filters", default="sustainability,uplifting", help="the filter set of the speed run")
    ap.add_argument("--input", type=Path, default=Path("/work/shared/data/unlabelled_articles.jsonl"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "embedding_switch.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    names = sorted({args.filter, *args.speed_filters.split(",")})
    after = Pipeline.load(names, with_student=True)
    pipes = {f"before ({args.baseline})": baseline_pipeline(args.baseline, args.baseline_dir, names),
             f"after ({after.encoder.model_id})": after}
    report: dict[str, Any] = {"filter": args.filter, "quality": {}, "load_avg_start": os.getloadavg()[0]}
    if not args.skip_quality:
        spec = resolve_served(args.filter)
        data = load_dataset(args.data, spec)
        split = split_dataset(data, spec.weights)
        for label, pipe in pipes.items():
            q = quality(pipe, spec.name, data, split.test)
            report["quality"][label] = q
            for key in ("all/all_rows", "en/scored", "nl/scored", "other/scored"):
                e = q[key]
                if e["probe"]:
                    print(f"{label:>30} {key:<13} n={e['n']:>3}  probe MAE {e['probe']['mae']:.3f} "
                          f"WA {e['probe']['wa_mae']:.3f} | hybrid MAE {e['hybrid']['mae']:.3f} "
                          f"WA {e['hybrid']['wa_mae']:.3f}", flush=True)
    if not args.skip_speed:
        lines = read_lines(args.input)[: args.limit]
        sp = speed({k: Pipeline(p.encoder, {n: p.filters[n] for n in args.speed_filters.split(",")}, p.commerce)
                    for k, p in pipes.items()}, lines, args.rounds, args.batch_size)
        report["speed"] = {"filters": args.speed_filters, "articles": len(lines), "rounds": args.rounds,
                           "batch_size": args.batch_size, **sp}
        base = next(iter(sp["articles_per_s"].values()))
        for label, rate in sp["articles_per_s"].items():
            print(f"{label}: {rate:.2f} articles/s ({rate / base:.2f}x)  {sp['stages'][label]}", flush=True)
    report["load_avg_end"] = os.getloadavg()[0]
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.json}")


if __name__ == "__main__":
    main()
