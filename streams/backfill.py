"""Backfill: send a JSONL or Parquet file of articles to `<prefix>articles.raw` so a worker fleet scores it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from models.batch import BatchError, read_input
from streams.clients import produce_lines, read_lines
from streams.settings import Settings


async def publish_file(input_path: str | Path, *, rate: float = 0.0,
                       progress: Callable[[int], None] | None = None) -> int:
    """Send every line of a JSONL file to `<prefix>articles.raw` (settings from the environment, as the workers
    read them) so a worker fleet scores a backfill."""
    path = Path(input_path)
    if path.suffix.lower() == ".parquet":
        rows = read_input(path)
        lines = [orjson.dumps(r.payload, default=str) for r in rows]
    else:
        try:
            lines = read_lines(path)
        except FileNotFoundError as err:
            raise BatchError(str(err)) from None
    return await produce_lines(Settings.from_env(), lines, rate=rate, progress=progress)
