"""What every agent of a worker shares: the WorkerContext and the process-wide metrics.

Its own module so that the agents import it and streams.app (which registers the agents) imports them, both at the
top, without an import cycle."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from models.deduper import Deduper
from models.seams import ScoringPipeline
from monitoring.metrics import METRICS, Metrics
from streams.agents.frame import FaustSink, Frame, Inbound, MemorySink, Outbound, inbound
from streams.guard import EXIT_FATAL
from streams.settings import Settings
from streams.topics import Topics

__all__ = ["EXIT_FATAL", "WorkerContext", "metrics"]

log = logging.getLogger("distillery.streams")
T = TypeVar("T")


def metrics() -> Metrics:
    """The process-wide METRICS of the monitoring package (every agent and the worker report to it)."""
    return METRICS


@dataclass
class WorkerContext:
    """What every agent of a worker shares: settings, topic names, the pipeline, one model thread and the frame
    (sink + dead letters). Without an app (tests), outputs go to an in-memory sink."""

    settings: Settings
    topics: Topics
    pipeline: ScoringPipeline | None
    roles: tuple[str, ...]
    filters: tuple[str, ...]
    app: Any = None
    channels: dict[str, Any] = field(default_factory=dict)  # topic name -> faust Topic
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="model"))
    deduper: Deduper | None = None
    frame: Frame = field(init=False)

    def __post_init__(self) -> None:
        sink = FaustSink(self.channel) if self.app is not None else MemorySink()
        self.frame = Frame(self.topics.dlq, sink, self.settings.max_record_bytes,
                           on_dead_letter=lambda stage, reason: metrics().dlq(stage))

    @property
    def scorer(self) -> ScoringPipeline:
        """The pipeline (a worker with model roles always has one)."""
        if self.pipeline is None:
            raise RuntimeError("this worker has no scoring pipeline (no prefilter/probe/stage2 role)")
        return self.pipeline

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking model work on the single model thread so the event loop never blocks."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run_each(self, fn: Callable[..., Sequence[T]], items: Sequence[Any], *args: Any) -> list[T | Exception]:
        """`fn(items, *args)` on the model thread, one output per item; if the batch fails, retry item by item.

        An item that fails on its own comes back as its exception (the agent sends it to the DLQ), so one poison
        message cannot stop the stream or take its batch with it.
        """
        try:
            outputs = await self.run(fn, list(items), *args)
            if len(outputs) != len(items):
                raise RuntimeError(f"{getattr(fn, '__name__', fn)} gave {len(outputs)} outputs for {len(items)} inputs")
            return list(outputs)
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            log.warning("batch of %d failed in %s (%r); retrying one by one", len(items), fn, exc)
        results: list[T | Exception] = []
        for item in items:
            try:
                results.append((await self.run(fn, [item], *args))[0])
            except Exception as exc:
                results.append(exc)
        return results

    def channel(self, name: str) -> Any:
        """The faust Topic for a full topic name (declared once, raw bytes in and out)."""
        if name not in self.channels:
            self.channels[name] = self.app.topic(
                name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                partitions=self.settings.partitions, internal=False,
            )
        return self.channels[name]

    async def consume(self, stream: Any, batch_size: int, stage: str,
                      handle: Callable[[Sequence[Inbound]], Awaitable[list[list[Outbound]]]]) -> None:
        """The faust side of every agent: take micro-batches, run them through the frame, then ack the inputs.

        If the frame raises (the broker unreachable, or a bug outside one message), exit unacked so the batch is
        replayed after the restart: the at-least-once guarantee."""
        async for events in stream.noack_take(batch_size, within=self.settings.batch_within):
            try:
                await self.frame.process([inbound(e) for e in events], stage, handle)
            except Exception as exc:
                self.crash(exc, f"{stage} agent")
            for event in events:
                await stream.ack(event)

    def crash(self, exc: BaseException, where: str) -> None:
        """Stop the whole process without committing: unacked inputs are replayed after the restart."""
        log.critical("fatal error in %s, exiting without committing (inputs will be replayed): %r", where, exc,
                     exc_info=exc)
        sys.stderr.flush()
        os._exit(EXIT_FATAL)
