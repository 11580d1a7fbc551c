"""`distillery demo`: what `make demo` runs (the orchestration lives in distillery/demo.py)."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    samples: Path = typer.Option(None, help="JSONL articles to stream (default: the bundled samples)."),
    timeout: float = typer.Option(240.0, help="Give up after this many seconds."),
    metrics_port: int = typer.Option(9464, help="Port of the worker's /metrics endpoint (0 = off)."),
) -> None:
    """Start the embedded broker and a worker with all roles, stream the samples, print every result, stop all."""
    from distillery.demo import run_demo  # lazy: river and scikit-learn (monitoring) are not needed for --help

    raise typer.Exit(run_demo(samples, timeout=timeout, metrics_port=metrics_port))


def register(app: typer.Typer) -> None:
    """Add `demo` to the root app."""
    app.command("demo")(demo)
