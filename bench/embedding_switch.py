"""What switching the shared embedding does to one served filter: per-language test MAE and articles/s, side by side.

Usage (after training the filter on the candidate into a scratch folder, never over the shipped artifacts, with a
scratch step cache: the steps' intermediate files are keyed by filter name only):
    DISTILLERY_CACHE_DIR=/tmp/sus-use-cache DISTILLERY_EMBEDDING_MODEL=use-multilingual-v3 \\
        distillery train --filter sustainability --data FILE \\
        --out /tmp/sus-use --keep-student          # copy artifacts/student into /tmp/sus-use first
    python bench/embedding_switch.py --filter sustainability --data FILE --candidate use-multilingual-v3 \\
        --artifacts /tmp/sus-use

Both pipelines (shipped MiniLM artifacts vs the candidate's) are loaded in one process without the commerce gate;
quality is the pipeline's own evaluation on each language's test rows; speed is Pipeline.score_batch over the same
stream articles, interleaved rounds, best round kept. Writes bench/results/embedding_switch_<filter>.json.
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

from filters.spec import resolve_served  # noqa: E402
from models.embedding import Encoder  # noqa: E402
from models.evaluation.report import evaluate  # noqa: E402
from models.pipeline import FilterModels, Pipeline  # noqa: E402
from models.training.data import load_dataset  # noqa: E402
from models.training.split import split_dataset  # noqa: E402
from streams.clients import read_lines  # noqa: E402

SECTIONS = ("probe", "probe_served", "student", "hybrid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filter", default="sustainability")
    ap.add_argument("--data", default="/work/shared/data/sustainability.jsonl")
    ap.add_argument("--candidate", default="use-multilingual-v3")
    ap.add_argument("--artifacts", required=True, help="the filter trained on the candidate embedding")
    ap.add_argument("--input", type=Path, default=Path("/work/shared/data/unlabelled_articles.jsonl"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    spec = resolve_served(args.filter)
    data = load_dataset(args.data, spec)
    split = split_dataset(data, spec.weights)
    langs = np.asarray([a.get("language", "") for a in data.articles])
    pipes: dict[str, Pipeline] = {}
    dirs = {"minilm": spec.artifacts_dir, args.candidate: Path(args.artifacts)}
    for name, model, directory in (("minilm", None, spec.artifacts_dir), (args.candidate, args.candidate,
                                                                            Path(args.artifacts))):
        enc = Encoder.shared(model)
        pipes[name] = Pipeline(enc, {spec.name: FilterModels.load(spec, enc, directory=directory)}, None)
    report: dict[str, Any] = {"filter": spec.key, "quality": {}, "articles_per_s": {}}
    for name, pipe in pipes.items():
        pipe.apply_prefilter = False
        for lang in ("all", "en", "nl"):
            rows = split.test if lang == "all" else split.test[langs[split.test] == lang]
            r = evaluate(pipe, spec.name, data.subset(rows), n_boot=100, artifacts_dir=dirs[name])
            report["quality"][f"{name}/{lang}"] = {k: {m: r[k][m] for m in ("mae", "wa_mae")} for k in SECTIONS
                                                   if r.get(k)} | {"n": int(len(rows))}
        q = report["quality"]
        print(f"{name}: hybrid MAE all {q[f'{name}/all']['hybrid']['mae']:.3f} "
              f"en {q[f'{name}/en']['hybrid']['mae']:.3f} nl {q[f'{name}/nl']['hybrid']['mae']:.3f}; "
              f"probe en {q[f'{name}/en']['probe']['mae']:.3f} "
              f"nl {q[f'{name}/nl']['probe']['mae']:.3f}", flush=True)
        pipe.apply_prefilter = True
    lines = read_lines(args.input)[: args.limit]
    for pipe in pipes.values():
        pipe.score_batch(lines[:8])
    for _ in range(args.rounds):
        for name, pipe in pipes.items():
            started = time.perf_counter()
            for i in range(0, len(lines), 32):
                pipe.score_batch(lines[i:i + 32])
            rate = len(lines) / (time.perf_counter() - started)
            report["articles_per_s"][name] = max(report["articles_per_s"].get(name, 0.0), rate)
    base = report["articles_per_s"]["minilm"]
    for name, rate in report["articles_per_s"].items():
        print(f"{name}: {rate:.2f} articles/s ({rate / base:.2f}x), {len(lines)} articles, best of {args.rounds}")
    report["load_avg"] = os.getloadavg()[0]
    out = ROOT / "bench" / "results" / f"embedding_switch_{spec.name}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
