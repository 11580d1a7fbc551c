"""End-to-end articles/s of the streaming worker vs the same models in-process (Pipeline.score_batch); prints the ratio.

Usage: python bench/stream_throughput.py --input /work/shared/data/unlabelled_articles.jsonl --limit 200
Both runs see the same articles, one after the other on the same machine (never at the same time), with the same batch
size. The stream figure counts from the first produced message to the last outcome, with the worker already up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.broker import EmbeddedBroker  # noqa: E402
from streams.clients import produce_lines, read_lines  # noqa: E402
from streams.demo import Outcomes, Worker, _watch  # noqa: E402
from streams.settings import Settings  # noqa: E402


def in_process(pipeline: Any, lines: list[bytes], batch_size: int) -> tuple[float, dict[str, int]]:
    """Articles/s of Pipeline.score_batch over `lines` in chunks of `batch_size` (model load not counted)."""
    from models.deduper import Deduper
    from streams.app import warm_up

    warm_up(pipeline)  # the same warm-up a worker does before it joins its group
    deduper = Deduper()  # one dedupe memory for the run, as one worker has
    started = time.perf_counter()
    stages: dict[str, int] = {}
    for i in range(0, len(lines), batch_size):
        results, rejections = pipeline.score_batch(lines[i:i + batch_size], deduper)
        for r in results:
            stages[r.stage] = stages.get(r.stage, 0) + 1
        stages["rejected"] = stages.get("rejected", 0) + len(rejections)
    return len(lines) / (time.perf_counter() - started), stages


def streamed(lines: list[bytes], batch_size: int, timeout: float) -> tuple[float, dict[str, int]]:
    """Articles/s through the embedded broker and one worker with every role (worker start-up not counted)."""
    os.environ["DISTILLERY_BATCH_SIZE"] = str(batch_size)
    with tempfile.TemporaryDirectory(prefix="distillery-bench-") as tmp, EmbeddedBroker() as broker:
        settings = Settings.from_env(bootstrap_servers=broker.bootstrap, topic_prefix="bench.")
        worker = Worker(settings, Path(tmp) / "worker.log", metrics_port=0)
        try:
            worker.wait_ready(timeout)
            outcomes = Outcomes(lines, worker.filters() or [])
            started = time.monotonic()
            asyncio.run(produce_lines(settings, lines))
            asyncio.run(_watch(settings, outcomes.filters, outcomes, timeout))
        finally:
            worker.stop()
        if not outcomes.complete():
            raise SystemExit(f"stream run incomplete after {timeout:.0f} s; worker log:\n{worker.log()[-3000:]}")
        return len(lines) / (outcomes.last_at - started), outcomes.counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=ROOT / "streams" / "samples" / "articles.jsonl")
    parser.add_argument("--limit", type=int, default=200, help="articles to use (0 = all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--repeats", type=int, default=1, help="alternate stream and in-process runs N times")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    lines = read_lines(args.input)
    lines = lines[: args.limit] if args.limit else lines
    print(f"{len(lines)} articles from {args.input}, batch size {args.batch_size}", flush=True)
    from streams.app import load_pipeline

    pipeline = None
    stream_rates, local_rates = [], []
    for repeat in range(args.repeats):
        stream_rate, stream_counts = streamed(lines, args.batch_size, args.timeout)
        stream_rates.append(stream_rate)
        print(f"[{repeat + 1}] stream:     {stream_rate:7.2f} articles/s  {stream_counts}", flush=True)
        pipeline = pipeline or load_pipeline(Settings(), None, with_student=True)
        local_rate, local_counts = in_process(pipeline, lines, args.batch_size)
        local_rates.append(local_rate)
        print(f"[{repeat + 1}] in-process: {local_rate:7.2f} articles/s  {local_counts}", flush=True)
    stream_rate, local_rate = median(stream_rates), median(local_rates)
    ratio = stream_rate / local_rate
    print(f"median stream {stream_rate:.2f} / in-process {local_rate:.2f} articles/s: ratio {ratio:.2f} (goal >= 0.9)")
    if args.json:
        args.json.write_text(json.dumps({"articles": len(lines), "batch_size": args.batch_size,
                                         "stream_articles_per_s": stream_rate, "in_process_articles_per_s": local_rate,
                                         "ratio": ratio, "stream_runs": stream_rates, "in_process_runs": local_rates,
                                         "stream_counts": stream_counts,
                                         "in_process_counts": local_counts}, indent=2))


if __name__ == "__main__":
    main()
