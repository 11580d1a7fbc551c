"""Per-filter probe agents: filter prefilter, probe scores and router -> a final result or a Stage-2 request."""

from __future__ import annotations

import time
from typing import Any

from models.records import Result, Stage2Request
from streams import records
from streams.app import WorkerContext, metrics


def _dead_letter(ctx: WorkerContext, event: Any, error: str, stage: str) -> tuple[str, bytes | None, bytes]:
    msg = event.message
    metrics().dlq(stage)
    return (ctx.topics.dlq, records.dlq_key(None, msg.topic, msg.partition, msg.offset),
            records.dlq_record(stage, error, event.value, msg.topic, msg.partition, msg.offset))


def _outputs(ctx: WorkerContext, filter_name: str, event: Any, outcome: Any, received_at: float):
    if isinstance(outcome, Exception):
        return [_dead_letter(ctx, event, f"probe {filter_name} failed: {outcome!r}", f"probe:{filter_name}")]
    if isinstance(outcome, Stage2Request):
        outcome.received_at = received_at
        return [(ctx.topics.stage2, records.stage2_key(outcome), records.stage2_record(outcome))]
    assert isinstance(outcome, Result), f"route returned {type(outcome).__name__}"
    outcome.latency_ms = round((time.time() - received_at) * 1000.0, 3)
    metrics().result(outcome)
    return [(ctx.topics.scores(outcome.filter), records.result_key(outcome), records.result_record(outcome))]


def _register_one(app: Any, ctx: WorkerContext, filter_name: str) -> None:
    @app.agent(ctx.channel(ctx.topics.embedded), name=f"probe-{filter_name}")
    async def probe(stream: Any) -> None:
        async for events in stream.noack_take(ctx.settings.batch_size, within=ctx.settings.batch_within):
            async with ctx.processing(stream, events, f"probe agent {filter_name}"):
                started = time.time()
                metrics().article_in(f"probe:{filter_name}", len(events))
                messages: list[tuple[str, bytes | None, bytes]] = []
                decoded: list[tuple[Any, Any, float]] = []
                for event in events:
                    try:
                        prepared, received_at = records.embedded_from_wire(event.value)
                        decoded.append((event, prepared, received_at))
                    except records.WireError as err:
                        messages.append(_dead_letter(ctx, event, str(err), f"probe:{filter_name}"))
                if decoded:
                    outcomes = await ctx.run_each(ctx.pipeline.route, [p for _, p, _ in decoded], filter_name)
                    for (event, _, received_at), outcome in zip(decoded, outcomes, strict=True):
                        messages += _outputs(ctx, filter_name, event, outcome, received_at)
                await ctx.send_all(messages)
                metrics().latency(f"probe:{filter_name}", time.time() - started)


def register(app: Any, ctx: WorkerContext) -> None:
    """One agent per filter on `articles.embedded`; results to `scores.<filter>`, the rest to `stage2.requests`."""
    for filter_name in ctx.filters:
        _register_one(app, ctx, filter_name)
