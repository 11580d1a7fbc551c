"""A labelling run: articles in, validated labels out (resumable), with per-call metrics and a cost summary."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from filters.jsonl import read_objects
from filters.spec import FilterSpec
from filters.timeutil import now_iso
from models.errors import ModelsError
from models.oracle.cache import OracleCache, cache_key
from models.oracle.client import OracleCallError, OracleClient
from models.oracle.pricing import Price
from models.oracle.prompting import Prompt, article_text, clean, content_hash
from models.oracle.providers import Reply
from models.oracle.validation import OracleLabel, OracleResponseError, extract_json, validate_response

ARTICLE_FIELDS = ("id", "title", "text", "url", "source", "published", "language")


class LabelingError(ModelsError, ValueError):
    """An input that stops the whole run (missing file, unreadable line); the message names it."""


@dataclass(frozen=True)
class RunPaths:
    """The labels file and its sidecars: `<stem>.metrics.jsonl`, `<stem>.errors.jsonl`, `<stem>.summary.json`."""

    output: Path

    @property
    def metrics(self) -> Path:
        return self.output.with_suffix(".metrics.jsonl")

    @property
    def errors(self) -> Path:
        return self.output.with_suffix(".errors.jsonl")

    @property
    def summary(self) -> Path:
        return self.output.with_suffix(".summary.json")


@dataclass
class _Tally:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    cache_hits: int = 0
    paid_articles: int = 0
    http_attempts: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    errors: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


def utc_now() -> str:
    """Now in the one timestamp format (`filters.timeutil`)."""
    return now_iso()


def read_jsonl(path: Path, *, tolerate_partial_tail: bool = False) -> list[dict[str, Any]]:
    """Rows of a JSONL file; with `tolerate_partial_tail` a cut-off last line (an interrupted write) is ignored."""
    numbered = read_objects(path, expected="a JSONL file with one article object per line", error=LabelingError,
                            tolerate_partial_tail=tolerate_partial_tail)
    return [row for _, row in numbered]


def done_ids(path: Path) -> set[str]:
    """Ids already labelled in an output file (resume)."""
    if not path.exists():
        return set()
    return {str(r["id"]) for r in read_jsonl(path, tolerate_partial_tail=True) if "id" in r}


def _repair_tail(path: Path) -> None:
    """Cut a partial last line left by an interrupted run so appended rows start on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    path.write_bytes(data[:cut])


def input_problem(row: Mapping[str, Any]) -> str | None:
    if not str(row.get("id") or "").strip():
        return "article has no id"
    if not str(row.get("title") or "").strip():
        return "article has an empty title"
    if not article_text(row):
        return "article has no text (content or text)"
    return None


SHORT_PREFIX = "too_short_for_oracle_"


def too_short_for_oracle(article: Mapping[str, Any], minimum: int | None) -> str | None:
    """`too_short_for_oracle_<n>chars` when the cleaned content is under the labelling minimum, else None."""
    if minimum and len(article_text(article)) < minimum:
        return f"{SHORT_PREFIX}{minimum}chars"
    return None


def label_row(spec: FilterSpec, article: Mapping[str, Any], label: OracleLabel, oracle: str, prompt: Prompt) -> dict:
    """A label in the shared data row format, so training reads it directly; scores are the capped targets."""
    row: dict[str, Any] = {k: article.get(k) for k in ARTICLE_FIELDS}
    row["id"] = str(article["id"])
    row["text"] = article_text(article)
    row.update(
        filter=spec.name,
        filter_version=spec.version,
        oracle=oracle,
        prompt_hash=prompt.hash,
        analyzed_at=utc_now(),
        scores=label.scores,
        content_type=label.content_type,
        evidence=label.evidence,
        raw_scores=label.raw_scores,
        content_flags=label.content_flags,
        caps_applied=label.caps_applied,
        overall_cap=label.overall_cap,
    )
    return row


class LabelingRun:
    """Labels articles with one oracle; writes each label, metric and error as soon as it is known."""

    def __init__(
        self,
        spec: FilterSpec,
        client: OracleClient,
        *,
        provider: str,
        prompt: Prompt | None = None,
        cache: OracleCache | None = None,
        price: Price | None = None,
        max_words: int | None = 800,
        workers: int = 8,
        prefilter: Any | None = None,
    ) -> None:
        self.spec = spec
        self.client = client
        self.provider = provider
        self.model = client.model
        self.prompt = prompt or Prompt.for_spec(spec)
        self.cache = cache
        self.price = price
        self.max_words = max_words
        self.workers = max(1, workers)
        self.prefilter = prefilter  # filters.prefilter.Prefilter: blocked articles are not sent (and cost nothing)
        # labelling minimum: on shorter content an LLM invents evidence, so it is skipped with a reason (not sent)
        self.min_content_length = spec.oracle.min_content_length

    @property
    def oracle(self) -> str:
        return f"{self.provider}:{self.model}"

    async def run(
        self, articles: Iterable[Mapping[str, Any]], output: str | Path, *, limit: int | None = None,
        progress: bool = True, source: str = "",
    ) -> dict[str, Any]:
        paths = RunPaths(Path(output))
        paths.output.parent.mkdir(parents=True, exist_ok=True)
        _repair_tail(paths.output)
        done = done_ids(paths.output)
        started = time.perf_counter()
        tally = _Tally()
        pending: list[dict[str, Any]] = []
        seen: set[str] = set()
        skipped_done = invalid = duplicates = 0
        blocked: Counter[str] = Counter()
        with paths.errors.open("a", encoding="utf-8") as err_fh:
            for raw in articles:
                problem = input_problem(raw)
                if problem:
                    invalid += 1
                    self._write(err_fh, {"timestamp": utc_now(), "article_id": raw.get("id"),
                                         "kind": "invalid_article", "error": problem})
                    continue
                ident = str(raw["id"])
                if ident in done:
                    skipped_done += 1
                    continue
                if ident in seen:
                    duplicates += 1
                    continue
                seen.add(ident)
                article = clean(raw)
                short = too_short_for_oracle(article, self.min_content_length)
                if short is not None:
                    blocked[short] += 1
                    self._write(err_fh, {"timestamp": utc_now(), "article_id": ident, "kind": "skipped_short",
                                         "error": f"{len(article_text(article))} characters of content, under the "
                                                  f"labelling minimum {self.min_content_length} "
                                                  f"(oracle.min_content_length of {self.spec.key})"})
                    continue
                if self.prefilter is not None:
                    decision = self.prefilter.check({**article, "content": article_text(article)})
                    if not decision.passed:
                        blocked[decision.reason] += 1
                        continue
                pending.append(article)
            if limit is not None:
                pending = pending[: max(0, limit)]
            with paths.output.open("a", encoding="utf-8") as out_fh, paths.metrics.open("a", encoding="utf-8") as m_fh:
                bar = tqdm(total=len(pending), desc=f"oracle {self.spec.key}", unit="art", disable=not progress)
                queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
                for article in pending:
                    queue.put_nowait(article)

                async def worker() -> None:
                    while not queue.empty():
                        article = queue.get_nowait()
                        await self._one(article, tally, out_fh, m_fh, err_fh)
                        bar.update(1)

                try:
                    await asyncio.gather(*(worker() for _ in range(min(self.workers, len(pending)) or 1)))
                finally:
                    bar.close()
        summary = self._summary(tally, time.perf_counter() - started, source, paths, skipped_done, invalid, duplicates,
                                blocked)
        paths.summary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return summary

    async def _one(self, article: dict[str, Any], tally: _Tally, out_fh, m_fh, err_fh) -> None:
        tally.attempted += 1
        ident = str(article["id"])
        key = cache_key(self.prompt.hash, self.oracle, content_hash(article))
        cached = self.cache.get(key) if self.cache else None
        metric: dict[str, Any] = {"timestamp": utc_now(), "article_id": ident, "filter": self.spec.key,
                                  "provider": self.provider, "model": self.model, "cached": cached is not None}
        attempts, latency, cost = 0, 0.0, 0.0
        reply: Reply | None = None
        error: tuple[str, str] | None = None
        if cached is not None:
            tally.cache_hits += 1
            reply = Reply(cached["text"], 0, 0)
        else:
            try:
                completion = await self.client.complete(self.prompt.render(article, self.max_words))
            except OracleCallError as err:
                attempts, error = err.attempts, (err.kind, str(err))
            else:
                reply, attempts, latency = completion.reply, completion.attempts, completion.latency_s
                tally.paid_articles += 1
                tally.latencies.append(latency)
                tally.input_tokens += reply.input_tokens
                tally.output_tokens += reply.output_tokens
                if self.price is not None:
                    cost = self.price.cost(reply.input_tokens, reply.output_tokens)
                    tally.cost_usd += cost
            tally.http_attempts += attempts
            tally.retries += max(0, attempts - 1)
        label: OracleLabel | None = None
        if reply is not None:
            try:
                label = validate_response(self.spec, extract_json(reply.text))
            except OracleResponseError as err:
                error = (err.kind, str(err))
        if label is not None and reply is not None:
            if self.cache is not None and cached is None:
                self.cache.put(key, {"text": reply.text, "input_tokens": reply.input_tokens,
                                     "output_tokens": reply.output_tokens, "at": utc_now()})
            self._write(out_fh, label_row(self.spec, article, label, self.oracle, self.prompt))
            tally.succeeded += 1
        else:
            assert error is not None
            tally.failed += 1
            tally.errors[error[0]] += 1
            self._write(err_fh, {"timestamp": utc_now(), "article_id": ident, "kind": error[0], "error": error[1],
                                 "reply": reply.text[:2000] if reply else None})
        metric.update(
            success=label is not None, attempts=attempts, retries=max(0, attempts - 1), latency_s=round(latency, 4),
            input_tokens=reply.input_tokens if reply and cached is None else 0,
            output_tokens=reply.output_tokens if reply and cached is None else 0,
            cost_usd=round(cost, 8) if self.price is not None else None,
            error_kind=error[0] if error else None, error=error[1] if error else None,
        )
        self._write(m_fh, metric)

    @staticmethod
    def _write(fh, row: dict[str, Any]) -> None:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()

    def _summary(self, t: _Tally, elapsed: float, source: str, paths: RunPaths, skipped_done: int, invalid: int,
                 duplicates: int, blocked: Counter[str]) -> dict[str, Any]:
        lat = np.asarray(t.latencies) if t.latencies else None
        cost = round(t.cost_usd, 6) if self.price is not None else None
        return {
            "filter": self.spec.key,
            "provider": self.provider,
            "model": self.model,
            "prompt_hash": self.prompt.hash,
            "input": source,
            "output": str(paths.output),
            "skipped_already_done": skipped_done,
            "skipped_invalid": invalid,
            "skipped_duplicate_ids": duplicates,
            "skipped_short": sum(v for k, v in blocked.items() if k.startswith(SHORT_PREFIX)),
            "skipped_prefilter": sum(v for k, v in blocked.items() if not k.startswith(SHORT_PREFIX)),
            "prefilter_reasons": dict(blocked.most_common()),
            "attempted": t.attempted,
            "succeeded": t.succeeded,
            "failed": t.failed,
            "cache_hits": t.cache_hits,
            "cache_hit_rate": round(t.cache_hits / t.attempted, 4) if t.attempted else 0.0,
            "paid_articles": t.paid_articles,
            "http_attempts": t.http_attempts,
            "retries": t.retries,
            "errors_by_kind": dict(sorted(t.errors.items())),
            "input_tokens": t.input_tokens,
            "output_tokens": t.output_tokens,
            "price_usd_per_m_tokens": [self.price.input_per_m, self.price.output_per_m] if self.price else None,
            "cost_usd": cost,
            "cost_per_1000_articles_usd": round(cost / t.paid_articles * 1000, 6) if cost is not None
            and t.paid_articles else None,
            "latency_p50_s": round(float(np.percentile(lat, 50)), 4) if lat is not None else None,
            "latency_p95_s": round(float(np.percentile(lat, 95)), 4) if lat is not None else None,
            "elapsed_s": round(elapsed, 3),
            "articles_per_s": round(t.attempted / elapsed, 3) if elapsed > 0 else None,
        }


def format_summary(summary: Mapping[str, Any]) -> str:
    """Human-readable lines of a run summary (the CLI prints these)."""
    cost = summary.get("cost_usd")
    per_k = summary.get("cost_per_1000_articles_usd")
    price_note = "unknown price: pass --price-in/--price-out (USD per 1M tokens)" if cost is None else f"${cost:.4f}"
    lines = [
        f"oracle {summary['provider']}:{summary['model']} on {summary['filter']} (prompt {summary['prompt_hash']})",
        f"  attempted {summary['attempted']}  succeeded {summary['succeeded']}  failed {summary['failed']}  "
        f"cache hits {summary['cache_hits']}  already done {summary['skipped_already_done']}  "
        f"invalid input {summary['skipped_invalid']}  too short {summary.get('skipped_short', 0)}  "
        f"prefilter blocked {summary.get('skipped_prefilter', 0)}",
        f"  http attempts {summary['http_attempts']}  retries {summary['retries']}  "
        f"errors {summary['errors_by_kind'] or '{}'}",
        f"  tokens in {summary['input_tokens']}  out {summary['output_tokens']}  cost {price_note}"
        + (f"  (${per_k:.4f} per 1,000 articles)" if per_k is not None else ""),
        f"  latency p50 {summary['latency_p50_s']} s  p95 {summary['latency_p95_s']} s  "
        f"elapsed {summary['elapsed_s']} s  ({summary['articles_per_s']} articles/s)",
        f"  labels -> {summary['output']}",
    ]
    return "\n".join(lines)
