"""Stage-2 agent: micro-batches requests across articles and filters through student, calibration, postfilter."""

from __future__ import annotations

import logging
import time
from typing import Any

from streams import records
from streams.app import WorkerContext, metrics

log = logging.getLogger("distillery.streams.stage2")


def _dead_letter(ctx: WorkerContext, event: Any, error: str) -> tuple[str, bytes | None, bytes]:
    msg = event.message
    metrics().dlq("stage2")
    return (ctx.topics.dlq, records.dlq_key(None, msg.topic, msg.partition, msg.offset),
            records.dlq_record("stage2", error, event.value, msg.topic, msg.partition, msg.offset))


def register(app: Any, ctx: WorkerContext) -> None:
    """Consume `stage2.requests` for this worker's filters; publish `stage2` results on `scores.<filter>`."""
    mine = set(ctx.filters)

    @app.agent(ctx.channel(ctx.topics.stage2), name="stage2")
    async def stage2(stream: Any) -> None:
        async for events in stream.noack_take(ctx.settings.stage2_batch_size, within=ctx.settings.batch_within):
            async with ctx.processing(stream, events, "stage2 agent"):
                started = time.time()
                messages: list[tuple[str, bytes | None, bytes]] = []
                batch: list[tuple[Any, Any]] = []
                for event in events:
                    try:
                        request = records.stage2_from_wire(event.value)
                    except records.WireError as err:
                        messages.append(_dead_letter(ctx, event, str(err)))
                        continue
                    if request.filter in mine:  # other filters belong to another worker group
                        batch.append((event, request))
                metrics().article_in("stage2", len(batch))
                if batch:
                    metrics().stage2_batch(len(batch))
                    outcomes = await ctx.run_each(ctx.pipeline.stage2, [r for _, r in batch])
                    for (event, request), result in zip(batch, outcomes, strict=True):
                        if isinstance(result, Exception):
                            messages.append(_dead_letter(ctx, event, f"stage2 {request.filter} failed: {result!r}"))
                            continue
                        metrics().result(result)
                        messages.append((ctx.topics.scores(result.filter), records.result_key(result),
                                         records.result_record(result)))
                await ctx.send_all(messages)
                metrics().latency("stage2", time.time() - started)
