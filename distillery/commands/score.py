"""`distillery score`: batch scoring through the stream's pipeline, or publishing a file for a worker fleet."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from distillery.commands._kafka import broker_errors, settings
from distillery.errors import fail
from models.batch import format_summary, score_file
from streams.backfill import publish_file


def load_pipeline(filters: list[str] | None, device: str | None = None) -> Any:
    """The stream's pipeline (a seam for tests)."""
    from models.pipeline import Pipeline  # lazy: torch

    return Pipeline.load(filters, device=device)


def score(
    filters: str | None = typer.Option(None, "--filters", help="comma-separated filters (default: all trained)"),
    input: Path = typer.Option(..., "--input", help=".jsonl (or .parquet with pyarrow) of articles"),
    output: Path | None = typer.Option(None, "--output", help="JSONL of results; re-running skips done ids"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    limit: int | None = typer.Option(None, "--limit", min=0, help="score at most N new articles"),
    device: str | None = typer.Option(None, "--device", help="torch device for Stage 2"),
    to_kafka: bool = typer.Option(False, "--to-kafka", help="publish the input to <prefix>articles.raw instead"),
    rate: float = typer.Option(0.0, "--rate", help="with --to-kafka: messages per second (0 = no limit)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Score a file with the exact pipeline the stream uses, or publish it to Kafka for a worker fleet."""
    if to_kafka:
        current = settings()
        with broker_errors(current):
            n = asyncio.run(publish_file(input, rate=rate))  # BatchError (bad input): one line, exit 2
        typer.echo(f"published {n} articles to {current.topic_prefix}articles.raw on {current.bootstrap_servers}")
        return
    if output is None:
        fail("pass --output FILE.jsonl (or --to-kafka)")
    names = [f.strip() for f in filters.split(",") if f.strip()] if filters else None
    pipeline = load_pipeline(names, device=device)  # PipelineError, ArtifactError, SpecError: one line, exit 2
    summary = score_file(pipeline, input, output, batch_size=batch_size, limit=limit, progress=progress)
    typer.echo(format_summary(summary))


def register(app: typer.Typer) -> None:
    """Add `score` to the root app."""
    app.command("score")(score)
