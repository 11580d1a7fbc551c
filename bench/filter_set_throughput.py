"""In-process articles/s of Pipeline.score_batch for filter sets side by side (what serving one more filter costs).

Usage: python bench/filter_set_throughput.py --sets sustainability,uplifting sustainability,uplifting,seece
Every set scores the same stream articles in turn, interleaved over --rounds (best round kept), in one process and
with one shared encoder, so load on a shared machine hits every set alike. Model loading is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.pipeline import Pipeline  # noqa: E402
from streams.clients import read_lines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["sustainability,uplifting", "sustainability,uplifting,seece"])
    ap.add_argument("--input", type=Path, default=Path("/work/shared/data/unlabelled_articles.jsonl"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    lines = read_lines(args.input)[: args.limit]
    pipes = {s: Pipeline.load(s.split(","), with_student=True) for s in args.sets}
    for pipe in pipes.values():
        pipe.score_batch(lines[:8])  # warm-up
    best: dict[str, float] = {}
    stages: dict[str, dict[str, int]] = {}
    for _ in range(args.rounds):
        for name, pipe in pipes.items():
            started = time.perf_counter()
            counts: dict[str, int] = {}
            for i in range(0, len(lines), args.batch_size):
                results, rejected = pipe.score_batch(lines[i:i + args.batch_size])
                for r in results:
                    counts[f"{r.filter}:{r.stage}"] = counts.get(f"{r.filter}:{r.stage}", 0) + 1
                counts["rejected"] = counts.get("rejected", 0) + len(rejected)
            rate = len(lines) / (time.perf_counter() - started)
            best[name] = max(best.get(name, 0.0), rate)
            stages[name] = counts
    base = best[args.sets[0]]
    for name in args.sets:
        print(f"{name}: {best[name]:.2f} articles/s ({best[name] / base:.2f}x)  {stages[name]}")
    if args.json:
        args.json.write_text(json.dumps({"articles": len(lines), "rounds": args.rounds, "articles_per_s": best,
                                         "stages": stages, "load_avg": os.getloadavg()[0]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
