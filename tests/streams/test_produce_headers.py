"""`distillery produce` (produce_lines) labels every raw article with its content type and producer."""

from __future__ import annotations

import asyncio

import pytest

from streams.clients import produce_lines, read_topics
from streams.topics import Topics

pytestmark = pytest.mark.broker


def test_produced_articles_carry_content_type_and_producer_headers(settings) -> None:
    lines = [b'{"id": "h1", "title": "T", "content": "text"}', b'{"id": "h2", "title": "U", "content": "more"}']
    assert asyncio.run(produce_lines(settings, lines)) == 2
    raw = Topics(settings.topic_prefix).raw
    messages = asyncio.run(read_topics(settings, [raw], limit=2, idle_timeout=5, max_time=30))
    assert sorted(m.key for m in messages) == [b"h1", b"h2"]
    for m in messages:
        assert dict(m.headers) == {"content-type": b"application/json", "distillery-producer": b"distillery/produce"}
