"""Per-filter probe agents: embedded article -> the pipeline's route (filter prefilter, probe, router; escalation
follows the filter's artifacts) -> a final result on `scores.<filter>` or a request on `stage2.requests`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from models.records import Prepared, Result, Stage2Request
from streams import records
from streams.agents.frame import Inbound, Outbound
from streams.context import WorkerContext, metrics


def _outputs(ctx: WorkerContext, stage: str, inbound: Inbound, outcome: Result | Stage2Request) -> list[Outbound]:
    if isinstance(outcome, Stage2Request):
        return [ctx.frame.output(stage, inbound, ctx.topics.stage2, records.stage2_key(outcome),
                                 records.stage2_record(outcome))]
    metrics().result(outcome)
    return [ctx.frame.output(stage, inbound, ctx.topics.scores(outcome.filter), records.result_key(outcome),
                             records.result_record(outcome))]


async def handle(ctx: WorkerContext, filter_name: str, inputs: Sequence[Inbound]) -> list[list[Outbound]]:
    """One micro-batch of `articles.embedded` for one filter: one output group per input message."""
    stage, started = f"probe:{filter_name}", time.time()
    metrics().article_in(stage, len(inputs))
    groups: list[list[Outbound]] = [[] for _ in inputs]
    decoded: list[tuple[int, Prepared]] = []
    for n, item in enumerate(inputs):
        try:
            decoded.append((n, records.embedded_from_wire(item.value)))
        except records.WireError as err:
            groups[n] = [ctx.frame.dead_letter(item, stage, "invalid_record", str(err))]
    if decoded:
        outcomes = await ctx.run_each(ctx.scorer.route, [p for _, p in decoded], filter_name)
        for (n, _), outcome in zip(decoded, outcomes, strict=True):
            item = inputs[n]
            if isinstance(outcome, Exception):
                groups[n] = [ctx.frame.dead_letter(item, stage, "error", f"probe {filter_name} failed: {outcome!r}")]
            else:
                groups[n] = ctx.frame.guarded(item, stage, partial(_outputs, ctx, stage, item, outcome))
    metrics().latency(stage, time.time() - started)
    return groups


def _register_one(app: Any, ctx: WorkerContext, filter_name: str) -> None:
    @app.agent(ctx.channel(ctx.topics.embedded), name=f"probe-{filter_name}")
    async def probe(stream: Any) -> None:
        await ctx.consume(stream, ctx.settings.batch_size, f"probe:{filter_name}",
                          lambda inputs: handle(ctx, filter_name, inputs))


def register(app: Any, ctx: WorkerContext) -> None:
    """One agent per filter on `articles.embedded`; results to `scores.<filter>`, the rest to `stage2.requests`."""
    for filter_name in ctx.filters:
        _register_one(app, ctx, filter_name)
