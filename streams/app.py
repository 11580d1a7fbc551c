"""The faust app of a worker: settings, topics, the loaded pipeline and the agents of the chosen roles."""

from __future__ import annotations

import importlib
import logging
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from models.deduper import Deduper
from models.records import Prepared, Stage2Request
from models.seams import ScoringPipeline
from streams.agents import prefilter, probe, stage2
from streams.context import WorkerContext, metrics
from streams.settings import Settings, SettingsError
from streams.topics import Topics, ensure_topics

__all__ = ["ROLES", "Settings", "SettingsError", "WorkerContext", "make_app", "metrics", "load_pipeline"]

ROLES = ("prefilter", "probe", "stage2", "monitor")
log = logging.getLogger("distillery.streams")


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
    from models.pipeline import Pipeline  # lazy: torch and scikit-learn; `distillery worker --help` imports this module

    return Pipeline.load(filters, device=settings.device or None, with_student=with_student, limits=limits,
                         dedupe_size=settings.dedupe_size, student_preference=settings.student)


WARM_UP_TEXT = (
    "A made-up warm-up article that never leaves the worker. It is long enough to pass length rules and to give the "
    "tokenizer, the embedding model and every Stage-2 student one full forward pass before the first real message, "
    "so the first articles of a stream do not pay for lazy initialisation. " * 2
)


def warm_up(pipeline: ScoringPipeline, stage2: bool = True) -> None:
    """One prepare (and, for a Stage-2 worker, one Stage-2 call per filter) on a synthetic article."""
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
    return Deduper(size)


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
    import faust  # lazy: faust takes about a second to import; `distillery worker --help` must not load it

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
    registrars: dict[str, Callable[[Any, WorkerContext], None]] = {
        "prefilter": prefilter.register, "probe": probe.register, "stage2": stage2.register,
    }
    if "monitor" in role_set:
        try:
            from streams.agents import monitor  # lazy: river and scikit-learn, only for the monitor role
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
    return await ensure_topics(settings, Topics(settings.topic_prefix).all(filters))
