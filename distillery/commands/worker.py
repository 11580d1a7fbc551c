"""`distillery worker`: one faust worker with the agents of its roles; same roles and filters share a group."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import typer

from distillery.commands._kafka import broker_errors, settings
from distillery.errors import fail
from streams.app import make_app, parse_roles, prepare_topics


def split_list(value: str | None) -> list[str] | None:
    """`a, b,` -> ['a', 'b']; None when nothing is named."""
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def worker(
    roles: str = typer.Option("prefilter,probe,stage2,monitor", help="Comma-separated roles this worker runs."),
    filters: str = typer.Option("", help="Comma-separated filters (empty = every filter with trained artifacts)."),
    loglevel: str = typer.Option("warning", help="faust log level."),
) -> None:
    """Run a faust worker; workers started with the same roles and filters share one consumer group."""
    current = settings()
    role_set = parse_roles(roles)  # SettingsError: one line, exit 2
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        app = make_app(current, role_set, split_list(filters))
    except (ValueError, RuntimeError) as err:
        names = {cls.__name__ for cls in type(err).__mro__}
        if not names & {"PipelineError", "SpecError", "ArtifactError", "FiltersError", "ModelsError"}:
            raise
        fail(f"cannot load the models for this worker: {err}")
    with broker_errors(current):
        loop.run_until_complete(prepare_topics(current, app.ctx.filters))

    @app.on_partitions_assigned.connect
    async def _assigned(sender: object, assigned: set[Any], **kwargs: object) -> None:
        print(f"worker ready: group {app.conf.id}, {len(assigned)} partitions assigned", file=sys.stderr, flush=True)

    print(f"worker starting: roles={','.join(role_set)} filters={','.join(app.ctx.filters)} "
          f"broker={current.bootstrap_servers} prefix={current.topic_prefix!r}", file=sys.stderr, flush=True)
    from streams.runner import run_worker  # lazy: imports faust, which `worker --help` should not wait for

    run_worker(app, current, loglevel)  # exits 70 with one line when the broker is gone; SIGTERM within seconds


def register(app: typer.Typer) -> None:
    """Add `worker` to the root app."""
    app.command("worker")(worker)
