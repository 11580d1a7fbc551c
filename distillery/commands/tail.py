"""`distillery tail`: print the messages of a topic from the beginning as `key<TAB>value` lines."""

from __future__ import annotations

import asyncio

import typer

from distillery.commands._kafka import broker_errors, settings
from streams.clients import Message, read_topics, require_topics
from streams.topics import Topics


def tail(
    topic: str = typer.Argument(..., help="Topic, with or without the DISTILLERY_TOPIC_PREFIX, e.g. scores.uplifting."),
    n: int = typer.Option(10, "--n", help="Stop after N messages (0 = follow until Ctrl-C)."),
    timeout: float = typer.Option(5.0, help="Stop when nothing arrives for this many seconds (0 = never)."),
) -> None:
    """Print messages of TOPIC from the beginning as `key<TAB>value` lines."""
    current = settings()
    name = Topics(current.topic_prefix).resolve(topic)

    def show(msg: Message) -> None:
        key = msg.key.decode("utf-8", "replace") if msg.key else ""
        typer.echo(f"{key}\t{msg.value.decode('utf-8', 'replace')}")

    with broker_errors(current):
        asyncio.run(require_topics(current, [name]))  # TopicNotFoundError: one line naming similar topics, exit 2
    try:
        with broker_errors(current):
            asyncio.run(read_topics(current, [name], limit=n, idle_timeout=timeout, max_time=10**9, on_message=show))
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add `tail` to the root app."""
    app.command("tail")(tail)
