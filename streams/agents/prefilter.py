"""Commerce-prefilter agent: validate, clean, dedupe, commerce rules + head, one embedding per article."""

from __future__ import annotations

import time
from typing import Any

from models.records import Prepared, Rejection
from streams import records
from streams.app import WorkerContext, metrics


def _outputs(ctx: WorkerContext, event: Any, outcome: Any, received_at: float) -> list[tuple[str, bytes | None, bytes]]:
    """The messages one input produces: a DLQ record, a blocked decision or the embedded article."""
    topics, m, msg = ctx.topics, metrics(), event.message
    if isinstance(outcome, Exception):
        m.dlq("prefilter")
        error = f"prefilter failed: {outcome!r}"
        return [(topics.dlq, records.dlq_key(None, msg.topic, msg.partition, msg.offset),
                 records.dlq_record("prefilter", error, event.value, msg.topic, msg.partition, msg.offset))]
    if isinstance(outcome, Rejection) and outcome.kind == "invalid":
        m.dlq("validate")
        return [(topics.dlq, records.dlq_key(outcome.article_id, msg.topic, msg.partition, msg.offset),
                 records.dlq_record("validate", outcome.reason, event.value, msg.topic, msg.partition, msg.offset,
                                    outcome.article_id))]
    if isinstance(outcome, Prepared) and ctx.deduper.seen(outcome.content_hash):
        outcome = Rejection("duplicate", f"duplicate:{outcome.content_hash}", outcome.article.get("id"),
                            outcome.article)
    if isinstance(outcome, Rejection):
        m.blocked(outcome.kind, outcome.reason)
        return [(topics.blocked, (outcome.article_id or "").encode(), records.blocked_record(outcome))]
    return [(topics.embedded, str(outcome.article["id"]).encode(), records.embedded_record(outcome, received_at))]


def register(app: Any, ctx: WorkerContext) -> None:
    """Consume `articles.raw`; produce to `articles.embedded`, `articles.blocked` and `articles.dlq`."""

    @app.agent(ctx.channel(ctx.topics.raw), name="prefilter")
    async def prefilter(stream: Any) -> None:
        async for events in stream.noack_take(ctx.settings.batch_size, within=ctx.settings.batch_within):
            async with ctx.processing(stream, events, "prefilter agent"):
                started = time.time()
                metrics().article_in("prefilter", len(events))
                outcomes = await ctx.run_each(ctx.pipeline.prepare, [e.value for e in events], started)
                metrics().embeddings(sum(isinstance(o, Prepared) for o in outcomes))
                pairs = zip(events, outcomes, strict=True)
                messages = [m for event, outcome in pairs for m in _outputs(ctx, event, outcome, started)]
                await ctx.send_all(messages)
                metrics().latency("prefilter", time.time() - started)
