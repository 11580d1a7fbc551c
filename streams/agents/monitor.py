"""The monitor agent: scores.*, blocked and DLQ records -> drift detectors -> alerts.drift, gauges, a state file."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from filters.spec import available
from monitoring.alerts import Alert
from monitoring.monitor import Monitor
from streams import records
from streams.agents.frame import Outbound
from streams.context import WorkerContext, metrics

log = logging.getLogger("distillery.monitor")
BATCH = 256


def alert_record(alert: Alert) -> tuple[bytes, bytes]:
    """(key, value) of one alert on `alerts.drift`: keyed by filter:signal so one signal stays in order."""
    body = {k: v for k, v in alert.as_dict().items() if k != "schema_version"}
    return alert.key.encode(), records.encode("drift_alert", body)


async def send_alerts(ctx: WorkerContext, alerts: Sequence[Alert]) -> None:
    """Produce alerts on `alerts.drift` (with the standard headers) and wait for the acknowledgements."""
    messages = [Outbound(ctx.topics.drift, *alert_record(a), records.output_headers("monitor")) for a in alerts]
    for exc in await ctx.frame.sink.send(messages):
        if exc is not None:
            raise exc


async def export_lag(app: Any) -> None:
    """Consumer lag of every partition this worker's consumer holds (all its roles): end offset - committed.

    The end offset is the high watermark of the last fetch response, not a ListOffsets request: Tansu answers
    ListOffsets with the last batch's base offset + 1 (too low), but its fetch high watermark is right; on Kafka the
    two agree. A partition not fetched yet has no high watermark and exports nothing."""
    consumer = app.consumer
    partitions = list(consumer.assignment())
    if not partitions:
        return
    ends = {tp: consumer.highwater(tp) for tp in partitions}
    committed = getattr(consumer, "_committed_offset", {})  # faust keeps it; fall back to the fetch position
    for tp in partitions:
        done = committed.get(tp) if tp in committed else None
        if done is None:
            done = await consumer.position(tp)
        end = ends.get(tp)
        if end is not None and done is not None:
            metrics().consumer_lag(tp.topic, tp.partition, end - done)


def _filters(ctx: WorkerContext) -> list[str]:
    if ctx.filters:
        return list(ctx.filters)
    names = sorted(available())
    log.warning("monitor: no filters given; watching the shipped ones: %s", ", ".join(names))
    return names


def register(app: Any, ctx: WorkerContext) -> None:
    """One agent over every scores topic plus blocked and DLQ; a timer exports gauges and writes the state file."""
    names = _filters(ctx)
    config = ctx.settings.monitor
    monitor = Monitor.from_artifacts(names, config=config.config(), metrics=metrics(), strict=False)
    state_path = config.state_path()
    interval = config.state_interval
    topics = [ctx.topics.scores(f) for f in names] + [ctx.topics.blocked, ctx.topics.dlq]
    heldout = {n: r.heldout_mae for n, r in monitor.references.items() if r.heldout_mae is not None}
    # None unless DISTILLERY_SPOTCHECK_PROVIDER is set (read into the settings tree, passed as a plain mapping)
    spot = ctx.settings.spotcheck.runner(names, heldout, metrics())
    if spot is not None:
        topics.append(ctx.topics.embedded)  # results carry no article text; the spot-check needs it
    source = app.topic(*topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                       internal=False)
    log.info("monitor: watching %s; state file %s", ", ".join(topics), state_path)

    @app.agent(source, name="monitor")
    async def watch(stream: Any) -> None:
        async for events in stream.noack_take(BATCH, within=1.0):
            alerts: list[Alert] = []
            for event in events:
                try:
                    value = records.decode(event.value)
                    if spot is not None and value.get("kind") == "embedded":
                        spot.remember(value.get("article") or {})
                        continue
                    alerts += monitor.observe(value)
                    if spot is not None and value.get("kind") == "result":
                        spot.offer(value, time.time())
                except Exception as exc:  # a bad record or a detector bug must not stop scoring in this worker
                    monitor.ignored += 1
                    log.warning("monitor: skipped a record from %s: %r", event.message.topic, exc)
            try:
                await send_alerts(ctx, alerts)
            except Exception as exc:
                ctx.crash(exc, "monitor agent")
            for event in events:
                await stream.ack(event)

    async def spot_check() -> None:
        assert spot is not None
        try:
            alerts = await spot.run_due(time.time())
            monitor.spotcheck = spot.check.state()
            for alert in alerts:
                log.warning("drift alert: %s", alert.summary())
                metrics().drift_alert(alert)
                monitor.alerts.append(alert)
            await send_alerts(ctx, alerts)
        except Exception as exc:  # a background task: report, never crash the worker for a spot-check
            log.warning("monitor: oracle spot-check failed: %r", exc)

    def save() -> None:
        monitor.publish_metrics()
        try:
            monitor.save_state(state_path)
        except OSError as err:
            log.warning("monitor: cannot write state file %s: %s (set DISTILLERY_MONITOR_STATE)", state_path, err)

    @app.timer(interval, name="monitor-state")
    async def flush_state() -> None:
        if spot is not None and not spot.busy:
            asyncio.ensure_future(spot_check())  # oracle calls take seconds: never hold the timer
        save()
        try:
            await export_lag(app)
        except Exception as exc:  # lag is best effort; never stop monitoring for it
            log.debug("monitor: consumer lag unavailable: %r", exc)

    @app.on_before_shutdown.connect
    async def final_state(sender: Any, **kwargs: Any) -> None:
        save()  # after the consumer stopped: the file holds everything this worker read

