"""Commerce-prefilter agent: raw article -> the pipeline's prepare (limits, validation, cleaning, commerce, dedupe, one
embedding) -> `articles.embedded`, `articles.blocked` or `articles.dlq`. It decides nothing itself."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from models.records import Prepared, Rejection
from streams import records
from streams.agents.frame import Inbound, Outbound
from streams.context import WorkerContext, metrics

STAGE = "prefilter"


def _outputs(ctx: WorkerContext, inbound: Inbound, outcome: Prepared | Rejection | Exception) -> list[Outbound]:
    """The messages one input produces: its dead letter, its blocked decision or the embedded article."""
    frame, topics = ctx.frame, ctx.topics
    if isinstance(outcome, Exception):
        return [frame.dead_letter(inbound, STAGE, "error", f"prefilter failed: {outcome!r}")]
    if isinstance(outcome, Rejection) and outcome.kind == "invalid":
        return [frame.dead_letter(inbound, "validate", outcome.code, outcome.reason, outcome.article_id)]
    if isinstance(outcome, Rejection):
        metrics().blocked(outcome.kind, outcome.code if outcome.kind == "duplicate" else outcome.reason)
        return [frame.output(STAGE, inbound, topics.blocked, (outcome.article_id or "").encode(),
                             records.blocked_record(outcome))]
    return [frame.output(STAGE, inbound, topics.embedded, str(outcome.article["id"]).encode(),
                         records.embedded_record(outcome))]


async def handle(ctx: WorkerContext, inputs: Sequence[Inbound]) -> list[list[Outbound]]:
    """One micro-batch of `articles.raw`: one output group per input message."""
    started = time.time()
    metrics().article_in(STAGE, len(inputs))
    outcomes = await ctx.run_each(ctx.scorer.prepare, [i.value for i in inputs], started, ctx.deduper)
    metrics().embeddings(sum(isinstance(o, Prepared) for o in outcomes))
    groups = [ctx.frame.guarded(i, STAGE, partial(_outputs, ctx, i, o)) for i, o in zip(inputs, outcomes, strict=True)]
    metrics().latency(STAGE, time.time() - started)
    return groups


def register(app: Any, ctx: WorkerContext) -> None:
    """Consume `articles.raw`; produce to `articles.embedded`, `articles.blocked` and `articles.dlq`."""

    @app.agent(ctx.channel(ctx.topics.raw), name="prefilter")
    async def prefilter(stream: Any) -> None:
        await ctx.consume(stream, ctx.settings.batch_size, STAGE, lambda inputs: handle(ctx, inputs))
