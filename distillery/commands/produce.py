"""`distillery produce`: send a JSONL file to articles.raw, keyed by article id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from distillery.commands._kafka import broker_errors, settings
from streams.clients import produce_lines, read_lines


def produce(
    file: Path = typer.Argument(..., help="JSONL file, one article per line."),
    rate: float = typer.Option(0.0, help="Messages per second (0 = as fast as possible)."),
) -> None:
    """Send every line of FILE to articles.raw, keyed by article id (malformed lines too: they go to the DLQ)."""
    current = settings()
    lines = read_lines(file)  # FileNotFoundError: one line, exit 2
    with broker_errors(current):
        sent = asyncio.run(produce_lines(current, lines, rate))
    typer.echo(f"produced {sent} messages to {current.topic_prefix}articles.raw on {current.bootstrap_servers}")


def register(app: typer.Typer) -> None:
    """Add `produce` to the root app."""
    app.command("produce")(produce)
