"""Batch scoring of a file through the stream's own pipeline (`Pipeline.score_batch`), resumable by article id."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from tqdm import tqdm

from models.deduper import Deduper
from models.errors import ModelsError
from models.records import Rejection, Result


class BatchError(ModelsError, ValueError):
    """An input or output that batch scoring cannot use; the message names the file and the fix."""


class ScoresBatches(Protocol):
    """What batch scoring needs from `models.pipeline.Pipeline` (a part of models.seams.ScoringPipeline)."""

    def score_batch(self, payloads: Sequence[Any],
                    deduper: Deduper | None = None) -> tuple[list[Result], list[Rejection]]: ...


@dataclass(frozen=True)
class InputRow:
    """One input article: its resume key (the id, or `line:N` when it has none) and the payload as read."""

    key: str
    payload: Any


def rejections_path(output: Path) -> Path:
    """Where batch scoring writes the articles that got no result (invalid, commerce, duplicate)."""
    return output.with_suffix(".rejections.jsonl")


def read_input(path: str | Path) -> list[InputRow]:
    """Articles from JSONL (a line that is not JSON is passed on as text, so the pipeline rejects it as invalid
    exactly like the stream would) or Parquet (needs pyarrow)."""
    path = Path(path)
    if not path.is_file():
        raise BatchError(f"{path}: no such input file; pass a .jsonl file (or .parquet) with one article per row")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq  # lazy: pyarrow is optional, only for Parquet input
        except ImportError:
            raise BatchError(f"{path}: reading Parquet needs pyarrow; install it (`pip install pyarrow`) or convert "
                             "the file to JSONL") from None
        rows: list[Any] = pq.read_table(path).to_pylist()
        numbered: Iterator[tuple[int, Any]] = enumerate(rows, 1)
    else:
        lines = path.read_bytes().splitlines()
        numbered = ((n, line) for n, line in enumerate(lines, 1) if line.strip())
    out: list[InputRow] = []
    for n, raw in numbered:
        payload: Any = raw
        if isinstance(raw, bytes):
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError:
                payload = raw.decode("utf-8", errors="replace")
        ident = payload.get("id") if isinstance(payload, dict) else None
        key = str(ident) if ident not in (None, "") else f"line:{n}"
        out.append(InputRow(key, payload))
    return out


def _repair_tail(path: Path) -> None:
    """Drop a partial last line left by an interrupted run."""
    if path.exists() and path.stat().st_size:
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def done_keys(output: Path) -> set[str]:
    """Articles already written: result ids in the output plus keys in the rejections file."""
    done: set[str] = set()
    for path, field in ((output, "article_id"), (rejections_path(output), "key")):
        if not path.exists():
            continue
        for line in path.read_bytes().splitlines():
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(row, dict) and row.get(field) not in (None, ""):
                done.add(str(row[field]))
    return done


def result_row(result: Result) -> dict[str, Any]:
    return result.as_dict()


def rejection_row(rejection: Rejection, key: str) -> dict[str, Any]:
    """One line of the rejections file: the resume key, the decision and its reason (duplicates name the first id)."""
    row: dict[str, Any] = {"key": key, "article_id": rejection.article_id, "kind": rejection.kind,
                           "code": rejection.code, "reason": rejection.reason}
    if rejection.kind == "duplicate":
        row.update(content_hash=rejection.content_hash, duplicate_of=rejection.duplicate_of)
    return row


def score_file(
    pipeline: ScoresBatches,
    input_path: str | Path,
    output: str | Path,
    *,
    batch_size: int = 32,
    limit: int | None = None,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Score every article not yet in `output` in batches; each batch's results are appended and flushed before
    the next starts, so an interrupted run resumes where it stopped. Rejections go to `<stem>.rejections.jsonl`.

    One Deduper spans the run (the stream's rule: the same content under another id is a duplicate); the summary's
    `files` names every file written."""
    if batch_size < 1:
        raise BatchError(f"--batch-size must be at least 1, got {batch_size}")
    output = Path(output)
    rows = read_input(input_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    for path in (output, rejections_path(output)):
        _repair_tail(path)
    done = done_keys(output)
    pending: list[InputRow] = []
    seen: set[str] = set()
    for row in rows:
        if row.key in done or row.key in seen:
            continue
        seen.add(row.key)
        pending.append(row)
    if limit is not None:
        pending = pending[: max(0, limit)]
    stages: Counter[str] = Counter()
    tiers: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    n_results = 0
    deduper = Deduper()
    started = time.perf_counter()
    bar = tqdm(total=len(pending), desc="score", unit="art", disable=not progress)
    with output.open("ab") as out_fh, rejections_path(output).open("ab") as rej_fh:
        for start in range(0, len(pending), batch_size):
            chunk = pending[start:start + batch_size]
            results, rejections = pipeline.score_batch([r.payload for r in chunk], deduper=deduper)
            keys_by_id = {str(r.payload.get("id")): r.key for r in chunk if isinstance(r.payload, dict)}
            unkeyed = iter([r.key for r in chunk if r.key.startswith("line:")])
            out_fh.write(b"".join(orjson.dumps(result_row(r), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
                                  for r in results))
            lines = []
            for rej in rejections:
                key = keys_by_id.get(str(rej.article_id)) if rej.article_id is not None else None
                lines.append(orjson.dumps(rejection_row(rej, key or next(unkeyed, "unknown"))) + b"\n")
            rej_fh.write(b"".join(lines))
            out_fh.flush()
            rej_fh.flush()
            n_results += len(results)
            for r in results:
                stages[f"{r.filter}:{r.stage}"] += 1
                tiers[f"{r.filter}:{r.tier}"] += 1
            for rej in rejections:
                rejected[rej.kind] += 1
            bar.update(len(chunk))
            if on_batch:
                on_batch(len(chunk))
    bar.close()
    elapsed = time.perf_counter() - started
    return {
        "input": str(input_path), "output": str(output), "rejections": str(rejections_path(output)),
        "files": [str(output), str(rejections_path(output))], "rows_in": len(rows),
        "skipped_already_done": sum(1 for r in rows if r.key in done), "scored_articles": len(pending),
        "results": n_results, "rejected": dict(sorted(rejected.items())), "stages": dict(sorted(stages.items())),
        "tiers": dict(sorted(tiers.items())), "elapsed_s": round(elapsed, 3),
        "articles_per_s": round(len(pending) / elapsed, 2) if elapsed > 0 and pending else None,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary a person reads: counts, rate, and every file written."""
    rate = summary["articles_per_s"]
    return "\n".join([
        f"scored {summary['scored_articles']} articles ({summary['skipped_already_done']} already done) -> "
        f"{summary['results']} results in {summary['elapsed_s']} s ({rate if rate is not None else '-'} articles/s)",
        f"  stages {json.dumps(summary['stages'])}",
        f"  tiers {json.dumps(summary['tiers'])}",
        f"  rejected {json.dumps(summary['rejected'])}",
        f"  results -> {summary['output']}",
        f"  rejections -> {summary['rejections']}",
    ])
