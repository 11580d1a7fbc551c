"""Commands of the streams package: broker, worker, produce, tail, demo (registered by streams.cli)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import typer

from streams.settings import Settings, SettingsError


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as err:
        raise typer.BadParameter(str(err)) from None


def _split(value: str | None) -> list[str] | None:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def broker(
    port: int = typer.Option(9092, help="TCP port on 127.0.0.1 (0 = any free port)."),
) -> None:
    """Start the embedded Kafka-protocol broker (Tansu, in memory) on 127.0.0.1 until Ctrl-C."""
    from streams.broker import BrokerError, EmbeddedBroker

    server = EmbeddedBroker(port=port)
    try:
        server.start()
    except BrokerError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    # before announcing the address: a Ctrl-C right after "broker ready" must find the handler (no exit 130)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)  # Ctrl-C: a flag, not a KeyboardInterrupt that click turns into exit 130
    typer.echo(f"broker ready: KAFKA_BOOTSTRAP_SERVERS={server.bootstrap}  (memory storage; Ctrl-C stops it)")
    try:
        while not stop and server.process is not None and server.process.poll() is None:
            time.sleep(0.2)
    finally:
        code = server.process.poll() if server.process is not None else None
        server.stop()
    if code is not None:
        typer.echo(f"error: the broker exited on its own with code {code}", err=True)
        raise typer.Exit(1)
    typer.echo("broker stopped")


def worker(
    roles: str = typer.Option("prefilter,probe,stage2,monitor", help="Comma-separated roles this worker runs."),
    filters: str = typer.Option("", help="Comma-separated filters (empty = every filter with trained artifacts)."),
    loglevel: str = typer.Option("warning", help="faust log level."),
) -> None:
    """Run a faust worker; workers started with the same roles and filters share one consumer group."""
    from streams.app import make_app, parse_roles, prepare_topics

    settings = _settings()
    try:
        role_set = parse_roles(roles)
    except SettingsError as err:
        raise typer.BadParameter(str(err)) from None
    from filters.spec import SpecError
    from models.artifacts import ArtifactError
    from models.pipeline import PipelineError

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        app = make_app(settings, role_set, _split(filters))
    except (PipelineError, SpecError, ArtifactError) as err:
        typer.echo(f"error: cannot load the models for this worker: {err}", err=True)
        raise typer.Exit(1) from None
    try:
        loop.run_until_complete(prepare_topics(settings, app.ctx.filters))
    except ConnectionError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None

    @app.on_partitions_assigned.connect
    async def _assigned(sender: object, assigned: set, **kwargs: object) -> None:
        print(f"worker ready: group {app.conf.id}, {len(assigned)} partitions assigned", file=sys.stderr, flush=True)

    print(f"worker starting: roles={','.join(role_set)} filters={','.join(app.ctx.filters)} "
          f"broker={settings.bootstrap_servers} prefix={settings.topic_prefix!r}", file=sys.stderr, flush=True)
    from streams.runner import run_worker

    run_worker(app, settings, loglevel)


def produce(
    file: Path = typer.Argument(..., help="JSONL file, one article per line."),
    rate: float = typer.Option(0.0, help="Messages per second (0 = as fast as possible)."),
) -> None:
    """Send every line of FILE to articles.raw, keyed by article id (malformed lines too: they go to the DLQ)."""
    from streams.clients import produce_lines, read_lines

    settings = _settings()
    try:
        lines = read_lines(file)
        sent = asyncio.run(produce_lines(settings, lines, rate))
    except (FileNotFoundError, ConnectionError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"produced {sent} messages to {settings.topic_prefix}articles.raw on {settings.bootstrap_servers}")


def tail(
    topic: str = typer.Argument(..., help="Topic, with or without the DISTILLERY_TOPIC_PREFIX, e.g. scores.uplifting."),
    n: int = typer.Option(10, "--n", help="Stop after N messages (0 = follow until Ctrl-C)."),
    timeout: float = typer.Option(5.0, help="Stop when nothing arrives for this many seconds (0 = never)."),
) -> None:
    """Print messages of TOPIC from the beginning as `key<TAB>value` lines."""
    from streams.clients import Message, TopicNotFoundError, read_topics, require_topics
    from streams.topics import Topics

    settings = _settings()
    name = Topics(settings.topic_prefix).resolve(topic)
    try:
        asyncio.run(require_topics(settings, [name]))
    except (TopicNotFoundError, ConnectionError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None

    def show(msg: Message) -> None:
        key = msg.key.decode("utf-8", "replace") if msg.key else ""
        typer.echo(f"{key}\t{msg.value.decode('utf-8', 'replace')}")

    try:
        asyncio.run(read_topics(settings, [name], limit=n, idle_timeout=timeout, max_time=10**9, on_message=show))
    except KeyboardInterrupt:
        pass


def demo(
    samples: Path = typer.Option(None, help="JSONL articles to stream (default: the bundled samples)."),
    timeout: float = typer.Option(240.0, help="Give up after this many seconds."),
    metrics_port: int = typer.Option(9464, help="Port of the worker's /metrics endpoint (0 = off)."),
) -> None:
    """Start the embedded broker and a worker with all roles, stream the samples, print every result, stop all."""
    from streams.demo import run_demo

    raise typer.Exit(run_demo(samples, timeout=timeout, metrics_port=metrics_port))


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    for command in (broker, worker, produce, tail, demo):
        app.command()(command)
