"""Poison messages on the real broker: oversized articles end in the DLQ (cut to fit, key and headers kept, with
size, sha256 and the source offset), the worker keeps going and every produced record carries headers."""

from __future__ import annotations

import asyncio
import hashlib
import time

import orjson
import pytest
from stream_helpers import article

from streams.settings import Settings
from streams.topics import Topics, ensure_topics

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]
TRACE = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), ("x-correlation-id", b"poison-1")]


async def _produce(settings: Settings, messages: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    raw = Topics(settings.topic_prefix).raw
    await ensure_topics(settings, [raw])
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), acks="all", max_request_size=8_000_000)
    await producer.start()
    try:
        for key, value in messages:
            await (await producer.send(raw, value, key=key, headers=TRACE))
    finally:
        await producer.stop()


async def _read(settings: Settings, names: list[str], want: int, max_time: float = 120.0) -> list:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*names, **settings.aiokafka_kwargs(), group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, metadata_max_age_ms=1000, fetch_max_bytes=16_000_000,
                                max_partition_fetch_bytes=16_000_000)
    await consumer.start()
    out: list = []
    try:
        deadline = time.monotonic() + max_time
        while len(out) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


def test_oversized_articles_go_to_the_dlq_cut_to_fit_and_the_worker_goes_on(settings, start_worker):
    worker = start_worker()
    worker.wait_ready()
    big = orjson.dumps({"id": "big1", "title": "Huge", "content": "word " * 240_000})  # 1.2 MB
    huge = orjson.dumps({"id": "big5", "title": "Huger", "content": "x" * 5_000_000})  # 5 MB
    asyncio.run(_produce(settings, [(b"k-big1", big), (b"k-big5", huge), (b"after", article("after", "Plain item"))]))
    topics = Topics(settings.topic_prefix)
    got = asyncio.run(_read(settings, [topics.dlq, topics.scores("alpha"), topics.scores("beta")], want=4))
    dead = {r.key: r for r in got if r.topic == topics.dlq}
    assert set(dead) == {b"k-big1", b"k-big5"}, "the DLQ keeps the producer's key"
    for key, original in ((b"k-big1", big), (b"k-big5", huge)):
        record = dead[key]
        body = orjson.loads(record.value)
        assert (body["reason"], body["stage"], body["payload_truncated"]) == ("too_large", "validate", True)
        assert body["payload_bytes"] == len(original)
        assert body["payload_sha256"] == hashlib.sha256(original).hexdigest()
        assert body["source"]["topic"] == topics.raw and body["source"]["offset"] >= 0
        assert len(record.value) < 1_000_000
        headers = dict(record.headers)
        assert headers["traceparent"] == TRACE[0][1] and headers["x-correlation-id"] == b"poison-1"
        assert headers["distillery.errors.reason"] == b"too_large"
    results = [r for r in got if r.topic != topics.dlq]
    assert {orjson.loads(r.value)["article_id"] for r in results} == {"after"}
    for r in results:  # every produced record carries headers, and the input's trace passes through two hops
        headers = dict(r.headers)
        assert headers["content-type"] == b"application/json" and headers["distillery-schema-version"] == b"1"
        assert headers["distillery-producer"].startswith(b"distillery/probe")
        assert headers["traceparent"] == TRACE[0][1]
    assert worker.process.poll() is None, "a poison message must not stop the worker"
