"""The faust app of a worker: settings, topics, the loaded pipeline and the agents of the chosen roles."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streams.settings import Settings, SettingsError
from streams.topics import Topics

__all__ = ["ROLES", "Settings", "SettingsError", "WorkerContext", "make_app", "metrics", "load_pipeline"]

ROLES = ("prefilter", "probe", "stage2", "monitor")
PIPELINE_FACTORY_ENV = "DISTILLERY_PIPELINE_FACTORY"  # "module:callable" replacing models.pipeline.Pipeline.load
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


def load_pipeline(filters: Sequence[str] | None, device: str | None, with_student: bool) -> Any:
    """Load the scoring pipeline (or the factory named by DISTILLERY_PIPELINE_FACTORY, used by tests)."""
    factory_path = os.environ.get(PIPELINE_FACTORY_ENV, "")
    if factory_path:
        module_name, _, attr = factory_path.partition(":")
        factory = getattr(importlib.import_module(module_name), attr or "load")
        return factory(filters, device=device, with_student=with_student)
    from models.pipeline import Pipeline

    return Pipeline.load(filters, device=device, with_student=with_student)


WARM_UP_TEXT = (
    "A made-up warm-up article that never leaves the worker. It is long enough to pass length rules and to give the "
    "tokenizer, the embedding model and every Stage-2 student one full forward pass before the first real message, "
    "so the first articles of a stream do not pay for lazy initialisation. " * 2
)


def warm_up(pipeline: Any) -> None:
    """One prepare and one Stage-2 call per filter on a synthetic article, through the public pipeline steps."""
    from models.records import Prepared, Stage2Request

    article = {"id": "warm-up", "title": "Warm-up article", "content": WARM_UP_TEXT}
    prepared = [p for p in pipeline.prepare([article]) if isinstance(p, Prepared)]
    requests = [
        Stage2Request(prepared[0].article if prepared else article, name, spec.version,
                      {d: 0.0 for d in spec.dimension_names}, 0.0, 1.0, 0.0)
        for name, spec in pipeline.specs.items()
    ]
    pipeline.stage2(requests)


def make_deduper(size: int) -> Any:
    """The in-process content-hash deduper; a duplicate across workers is harmless because keys are idempotent."""
    from models.pipeline import Deduper

    return Deduper(size)


@dataclass
class WorkerContext:
    """What every agent of a worker shares: settings, topic names, the pipeline and one model thread."""

    settings: Settings
    topics: Topics
    pipeline: Any
    roles: tuple[str, ...]
    filters: tuple[str, ...]
    app: Any = None
    channels: dict[str, Any] = field(default_factory=dict)  # topic name -> faust Topic
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="model"))
    deduper: Any = None

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

    async def send_all(self, messages: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        """Produce (topic, key, value) messages and wait until the broker acknowledged every one of them.

        Agents ack their input only after this returns: that is the at-least-once guarantee.
        """
        futures = [await self.channel(topic).send(key=key, value=value) for topic, key, value in messages]
        if futures:
            await asyncio.gather(*futures)

    @contextlib.asynccontextmanager
    async def processing(self, stream: Any, events: Sequence[Any], where: str) -> AsyncIterator[None]:
        """The at-least-once frame of every agent's micro-batch: run the body (which sends all outputs with
        `send_all`), then ack the inputs; if the body fails (Kafka unreachable or a bug), exit unacked so the
        batch is replayed after the restart."""
        try:
            yield
        except Exception as exc:
            self.crash(exc, where)
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
    needs_models = bool({"prefilter", "probe", "stage2"} & set(role_set))
    if pipeline is None and needs_models:
        pipeline = load_pipeline(filters, settings.device or None, with_student="stage2" in role_set)
        warm_up(pipeline)
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
        consumer_auto_offset_reset=settings.auto_offset_reset,  # where a NEW consumer group starts
        # faust's default waits 1,200 s for an ack; twice the watchdog's limit, so streams.guard reports an outage first
        producer_request_timeout=2 * settings.broker_unreachable_timeout,
        broker_rebalance_timeout=6,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_commit_interval=1.0,
        broker_commit_every=100,
        producer_acks=-1,
        stream_wait_empty=False,
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
    app.ctx = ctx
    return app


async def prepare_topics(settings: Settings, filters: Sequence[str]) -> list[str]:
    """Create every topic of the deployment that is missing (workers call this before joining the group)."""
    from streams.topics import ensure_topics

    return await ensure_topics(settings, Topics(settings.topic_prefix).all(filters))
