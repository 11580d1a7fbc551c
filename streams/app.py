"""The faust app of a worker: settings, topics, the loaded pipeline and the agents of the chosen roles."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from streams.agents.frame import FaustSink, Frame, Inbound, MemorySink, Outbound, inbound
from streams.settings import Settings, SettingsError
from streams.topics import Topics

if TYPE_CHECKING:
    from models.deduper import Deduper
    from models.seams import ScoringPipeline

__all__ = ["ROLES", "Settings", "SettingsError", "WorkerContext", "make_app", "metrics", "load_pipeline"]

ROLES = ("prefilter", "probe", "stage2", "monitor")
EXIT_FATAL = 70
log = logging.getLogger("distillery.streams")
T = TypeVar("T")


class _NoMetrics:
    """Stands in for monitoring.metrics.METRICS when that module is not installed: every call is a no-op."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def metrics() -> Any:
    """The process-wide METRICS object of the monitoring package (a no-op stand-in if it is missing)."""
    try:
        from monitoring.metrics import METRICS
    except ImportError:
        return _NoMetrics()
    return METRICS


def load_pipeline(settings: Settings, filters: Sequence[str] | None, with_student: bool) -> ScoringPipeline:
    """Load the scoring pipeline (or the factory named by DISTILLERY_PIPELINE_FACTORY, used by tests).

    `with_student` only decides whether this process LOADS the students (it runs Stage 2); which articles escalate
    follows each filter's artifacts either way."""
    factory_path = settings.pipeline_factory
    limits = settings.payload_limits()
    if factory_path:
        module_name, _, attr = factory_path.partition(":")
        factory = getattr(importlib.import_module(module_name), attr or "load")
        pipeline: ScoringPipeline = factory(filters, device=settings.device or None, with_student=with_student,
                                            limits=limits)
        return pipeline
    from models.pipeline import Pipeline

    return Pipeline.load(filters, device=settings.device or None, with_student=with_student, limits=limits,
                         dedupe_size=settings.dedupe_size)


WARM_UP_TEXT = (
    "A made-up warm-up article that never leaves the worker. It is long enough to pass length rules and to give the "
    "tokenizer, the embedding model and every Stage-2 student one full forward pass before the first real message, "
    "so the first articles of a stream do not pay for lazy initialisation. " * 2
)


def warm_up(pipeline: ScoringPipeline, stage2: bool = True) -> None:
    """One prepare (and, for a Stage-2 worker, one Stage-2 call per filter) on a synthetic article."""
    from models.records import Prepared, Stage2Request

    article = {"id": "warm-up", "title": "Warm-up article", "content": WARM_UP_TEXT}
    prepared = [p for p in pipeline.prepare([article]) if isinstance(p, Prepared)]
    if not stage2:
        return
    requests = [
        Stage2Request(prepared[0].article if prepared else article, name, spec.version,
                      {d: 0.0 for d in spec.dimension_names}, 0.0, 1.0, 0.0)
        for name, spec in pipeline.specs.items()
    ]
    pipeline.stage2(requests)


def make_deduper(size: int) -> Deduper:
    """The worker's content-hash deduper (replay-safe: an article is never its own duplicate; see
    docs/streaming.md "Dedupe across replays and workers")."""
    from models.deduper import Deduper

    return Deduper(size)


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


def group_id(settings: Settings, roles: Sequence[str], filters: Sequence[str] | None) -> str:
    """Consumer group: workers with the same roles and filters share one group and split its partitions."""
    if settings.group_id:
        return settings.group_id
    name = f"{settings.topic_prefix}distillery-{'+'.join(sorted(roles))}"
    return f"{name}-{'+'.join(sorted(filters))}" if filters else name


def parse_roles(roles: str | Sequence[str] | None) -> tuple[str, ...]:
    """`prefilter,probe` -> ('prefilter', 'probe'); raises SettingsError naming an unknown role."""
    if roles is None:
        return ROLES
    items = [r.strip() for r in (roles.split(",") if isinstance(roles, str) else roles) if r.strip()]
    unknown = [r for r in items if r not in ROLES]
    if unknown or not items:
        raise SettingsError(f"unknown role(s) {unknown or roles!r}: choose from {', '.join(ROLES)}")
    return tuple(dict.fromkeys(items))


def make_app(
    settings: Settings,
    roles: str | Sequence[str] | None = None,
    filters: Sequence[str] | None = None,
    pipeline: Any = None,
) -> Any:
    """Build the faust app of one worker with the agents of `roles` for `filters` (None = every loaded filter).

    The pipeline is loaded here (once per process) unless one is passed in; the app's context is `app.ctx`.
    """
    import faust

    role_set = parse_roles(roles)
    settings.threads.apply()  # the process's thread policy and HF offline mode, set once here
    needs_models = bool({"prefilter", "probe", "stage2"} & set(role_set))
    if pipeline is None and needs_models:
        pipeline = load_pipeline(settings, filters, with_student="stage2" in role_set)
        warm_up(pipeline, stage2="stage2" in role_set)
    # `filters` may name versions or paths (uplifting/v1); topics and groups use the loaded filter names.
    chosen = tuple(sorted(pipeline.specs)) if pipeline is not None else tuple(filters or ())
    data_dir = settings.data_dir or tempfile.mkdtemp(prefix="distillery-faust-")
    app = faust.App(
        group_id(settings, role_set, chosen if filters else None),
        broker=settings.faust_broker(),
        broker_credentials=settings.faust_credentials(),
        key_serializer="raw",
        value_serializer="raw",
        datadir=data_dir,
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        producer_max_request_size=settings.max_record_bytes + 65536,  # our own check (frame) is the strict one
        # faust's default waits 1,200 s for an ack; twice the watchdog's limit, so streams.guard reports an outage first
        producer_request_timeout=2 * settings.broker_unreachable_timeout,
        stream_wait_empty=False,
        **settings.faust.app_kwargs(),
    )
    ctx = WorkerContext(settings=settings, topics=Topics(settings.topic_prefix), pipeline=pipeline,
                        roles=role_set, filters=chosen, app=app)
    ctx.deduper = make_deduper(settings.dedupe_size) if "prefilter" in role_set else None
    for name in ctx.topics.all(chosen):
        ctx.channel(name)
    from streams.agents import prefilter, probe, stage2

    registrars: dict[str, Callable[[Any, WorkerContext], None]] = {
        "prefilter": prefilter.register, "probe": probe.register, "stage2": stage2.register,
    }
    if "monitor" in role_set:
        try:
            from streams.agents import monitor
        except ImportError:
            log.warning("role 'monitor' asked for but streams/agents/monitor.py is not installed; skipping it")
        else:
            registrars["monitor"] = monitor.register
    for role in role_set:
        if role in registrars:
            registrars[role](app, ctx)
    if settings.metrics_port:
        metrics().serve(settings.metrics_host, settings.metrics_port)
    app.ctx = ctx  # type: ignore[attr-defined]  # the worker's context, for the CLI and tests
    return app


async def prepare_topics(settings: Settings, filters: Sequence[str]) -> list[str]:
    """Create every topic of the deployment that is missing (workers call this before joining the group)."""
    from streams.topics import ensure_topics

    return await ensure_topics(settings, Topics(settings.topic_prefix).all(filters))
