"""Commands of this package for the `distillery` CLI (registered by streams.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
