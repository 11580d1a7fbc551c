"""Input helpers shared by the shell's commands: JSONL files and a bounded read of a results topic."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from distillery.commands._kafka import broker_errors, settings
from models.data.rows import read_rows
from streams.clients import read_topics
from streams.records import WireError, decode
from streams.topics import Topics


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSONL file (DataFileError names the file and line: one line, exit 2)."""
    return [row for _, row in read_rows(path)]


def topic_rows(topic: str, max_time: float) -> list[dict[str, Any]]:
    """The decoded records of `topic` (prefix from the environment) read for at most `max_time` seconds."""
    current = settings()
    name = Topics(current.topic_prefix).resolve(topic)
    with broker_errors(current):
        messages = asyncio.run(read_topics(current, [name], idle_timeout=3.0, max_time=max_time))
    rows = []
    for m in messages:
        try:
            rows.append(decode(m.value))
        except WireError:
            continue  # not a wire record (e.g. a raw article): not a result to select from
    return rows
