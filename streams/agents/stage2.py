"""Stage-2 agent: micro-batches requests across articles and filters through the pipeline's stage2 (student,
calibration, postfilter) and publishes `stage2` results on `scores.<filter>`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from models.records import Result, Stage2Request
from streams import records
from streams.agents.frame import Inbound, Outbound
from streams.context import WorkerContext, metrics

STAGE = "stage2"


def _outputs(ctx: WorkerContext, inbound: Inbound, result: Result) -> list[Outbound]:
    metrics().result(result)
    return [ctx.frame.output(STAGE, inbound, ctx.topics.scores(result.filter), records.result_key(result),
                             records.result_record(result))]


async def handle(ctx: WorkerContext, inputs: Sequence[Inbound]) -> list[list[Outbound]]:
    """One micro-batch of `stage2.requests`; requests for filters this worker does not serve produce nothing."""
    started = time.time()
    mine = set(ctx.filters)
    groups: list[list[Outbound]] = [[] for _ in inputs]
    batch: list[tuple[int, Stage2Request]] = []
    for n, item in enumerate(inputs):
        try:
            request = records.stage2_from_wire(item.value)
        except records.WireError as err:
            groups[n] = [ctx.frame.dead_letter(item, STAGE, "invalid_record", str(err))]
            continue
        if request.filter in mine:  # other filters belong to another worker group
            batch.append((n, request))
    metrics().article_in(STAGE, len(batch))
    if batch:
        metrics().stage2_batch(len(batch))
        outcomes = await ctx.run_each(ctx.scorer.stage2, [r for _, r in batch])
        for (n, request), result in zip(batch, outcomes, strict=True):
            item = inputs[n]
            if isinstance(result, Exception):
                groups[n] = [ctx.frame.dead_letter(item, STAGE, "error", f"stage2 {request.filter} failed: {result!r}",
                                                   str(request.article.get("id")))]
            else:
                groups[n] = ctx.frame.guarded(item, STAGE, partial(_outputs, ctx, item, result))
    metrics().latency(STAGE, time.time() - started)
    return groups


def register(app: Any, ctx: WorkerContext) -> None:
    """Consume `stage2.requests` for this worker's filters; publish `stage2` results on `scores.<filter>`."""

    @app.agent(ctx.channel(ctx.topics.stage2), name="stage2")
    async def stage2(stream: Any) -> None:
        await ctx.consume(stream, ctx.settings.stage2_batch_size, STAGE, lambda inputs: handle(ctx, inputs))
