"""Plain Kafka clients for the command line: produce a JSONL file, read topics (tail, demo, tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.errors import StreamsError
from streams.settings import Settings
from streams.topics import Topics, ensure_topics, list_topics, similar_topics


class TopicNotFoundError(StreamsError, LookupError):
    """A topic that a reader asked for does not exist; the message lists similar existing topics."""


async def require_topics(settings: Settings, names: Sequence[str]) -> None:
    """Raise TopicNotFoundError for the first of `names` that does not exist (readers never create topics: a
    consumer's metadata request would auto-create a mistyped name on brokers that allow it)."""
    existing = await list_topics(settings)
    for name in names:
        if name not in existing:
            close = similar_topics(name, existing)
            hint = f"similar topics: {', '.join(close)}" if close else (
                f"existing topics: {', '.join(sorted(t for t in existing if not t.startswith('__'))[:20]) or 'none'}")
            raise TopicNotFoundError(f"topic {name!r} does not exist on {settings.bootstrap_servers}; {hint}")


@dataclass(frozen=True)
class Message:
    """One consumed message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def _article_key(line: bytes) -> bytes | None:
    """The article id as the Kafka key (same id -> same partition); None for lines that are not JSON objects."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    ident = value.get("id") if isinstance(value, dict) else None
    return str(ident).encode() if ident not in (None, "") else None


def read_lines(path: Path) -> list[bytes]:
    """Non-empty lines of a JSONL file as raw bytes (malformed lines are kept: the stream must DLQ them)."""
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} does not exist: pass a JSONL file with one article per line")
    return [line.rstrip(b"\r\n") for line in path.read_bytes().splitlines() if line.strip()]


# What `distillery produce` / backfills put on every raw article: its format and who wrote it (the ingest side's
# own records may carry more, e.g. `traceparent`, which the workers pass through to every output).
PRODUCE_HEADERS = (("content-type", b"application/json"), ("distillery-producer", b"distillery/produce"))


async def produce_lines(settings: Settings, lines: Sequence[bytes], rate: float = 0.0, topic: str | None = None,
                        progress: Callable[[int], None] | None = None) -> int:
    """Send each line to `articles.raw` (or `topic`), keyed by article id, at most `rate` per second (0 = no limit)."""
    name = topic or Topics(settings.topic_prefix).raw
    await ensure_topics(settings, [name])
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        futures = []
        for i, line in enumerate(lines):
            if rate > 0:
                wait = started + i / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            futures.append(await producer.send(name, line, key=_article_key(line), headers=list(PRODUCE_HEADERS)))
            if progress:
                progress(1)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(lines)


async def read_topics(
    settings: Settings,
    names: Sequence[str],
    *,
    until: Callable[[list[Message]], bool] | None = None,
    limit: int = 0,
    idle_timeout: float = 3.0,
    max_time: float = 60.0,
    on_message: Callable[[Message], None] | None = None,
) -> list[Message]:
    """Read `names` from the beginning (no consumer group) until `until(messages)` holds, `limit` messages were
    read, nothing arrived for `idle_timeout` seconds (0 = wait for `max_time`), or `max_time` passed."""
    consumer = AIOKafkaConsumer(*names, **settings.aiokafka_kwargs(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", metadata_max_age_ms=1000)
    await consumer.start()
    messages: list[Message] = []
    try:
        deadline = time.monotonic() + max_time
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    msg = Message(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                    messages.append(msg)
                    if on_message:
                        on_message(msg)
                    last = time.monotonic()
                    if limit and len(messages) >= limit:
                        return messages
            if until is not None and until(messages):
                break
            if idle_timeout and time.monotonic() - last > idle_timeout:
                break
    finally:
        await consumer.stop()
    return messages
