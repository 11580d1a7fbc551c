"""Kafka conventions on the embedded broker: topic configs, `tail` on a missing topic, where a new group starts,
the lag source, and the worker's health endpoints."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
import pytest
from harness import CLI_MODULE, ROOT, Worker, article, collect, decoded, figure, fresh_settings, produce, wait_for

from streams.app import prepare_topics
from streams.broker import free_port
from streams.settings import Settings
from streams.topics import Topics, list_topics

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]


async def _configs(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    out: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            out[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    return out


def test_the_worker_creates_result_topics_compacted_and_the_others_with_retention(bootstrap) -> None:
    settings = fresh_settings(bootstrap, retention_ms=3_600_000)
    topics = Topics(settings.topic_prefix)
    created = asyncio.run(prepare_topics(settings, ["alpha"]))
    assert set(created) == set(topics.all(["alpha"]))
    configs = asyncio.run(_configs(settings, [topics.scores("alpha"), topics.raw, topics.dlq]))
    assert configs[topics.scores("alpha")]["cleanup.policy"] == "compact"
    assert configs[topics.raw] == {"cleanup.policy": "delete", "retention.ms": "3600000"}
    assert configs[topics.dlq]["retention.ms"] == "3600000"


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "DISTILLERY_TOPIC_PREFIX": settings.topic_prefix, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", CLI_MODULE, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_tail_on_a_mistyped_topic_fails_with_one_line_naming_similar_topics_and_creates_nothing(bootstrap) -> None:
    settings = fresh_settings(bootstrap)
    asyncio.run(prepare_topics(settings, ["alpha"]))
    before = asyncio.run(list_topics(settings))
    done = _cli(settings, "tail", "scores.alpah", "--timeout", "1")
    after = asyncio.run(list_topics(settings))
    assert done.returncode == 2  # an input mistake (distillery/errors.py)
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, done.stderr
    assert f"topic '{settings.topic_prefix}scores.alpah' does not exist" in errors[0]
    assert f"similar topics: {settings.topic_prefix}scores.alpha" in errors[0]
    assert after == before


def test_a_new_group_starts_at_latest_by_default_and_at_earliest_when_asked(bootstrap, tmp_path) -> None:
    settings = fresh_settings(bootstrap)
    asyncio.run(prepare_topics(settings, ["alpha", "beta"]))
    for i in range(5):  # one batch each: Tansu answers ListOffsets(latest) with the last batch's base offset + 1
        produce(settings, [article(f"old{i}", f"Old item {i}")])
    worker = Worker(settings, tmp_path / "latest.log", extra_env={"DISTILLERY_FAUST_AUTO_OFFSET_RESET": "latest"})
    try:
        worker.wait_ready()
        produce(settings, [article(f"new{i}", f"New item {i}") for i in range(5)])
        new_keys = {f"new{i}:{f}:1" for i in range(5) for f in ("alpha", "beta")}

        def all_new(messages) -> bool:
            return new_keys <= {m.key.decode() for m in messages if m.key}

        seen = collect(settings, ["alpha", "beta"], all_new, max_time=60)
        time.sleep(2.0)  # the old ones would have been scored by now: they came first
        seen = collect(settings, ["alpha", "beta"], lambda m: False, max_time=3)
    finally:
        worker.stop()
    ids = {body.get("article_id") for body in decoded(seen)}
    assert {f"new{i}" for i in range(5)} <= ids
    replayed = sorted(str(i) for i in ids if str(i).startswith("old"))
    assert not replayed, f"a new group at `latest` replayed the history: {replayed}"
    earliest = fresh_settings(bootstrap, topic_prefix=settings.topic_prefix, group_id="another-group")
    worker = Worker(earliest, tmp_path / "earliest.log", extra_env={"DISTILLERY_FAUST_AUTO_OFFSET_RESET": "earliest",
                                                                     "DISTILLERY_GROUP_ID": "another-group"})
    try:
        worker.wait_ready()
        want = {f"old{i}:alpha:1" for i in range(5)}
        got = collect(settings, ["alpha"], lambda m: want <= {x.key.decode() for x in m if x.key}, max_time=60)
    finally:
        worker.stop()
    assert want <= {m.key.decode() for m in got if m.key}


def test_lag_source_the_fetch_high_watermark_is_right_where_list_offsets_is_not(bootstrap) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    settings = fresh_settings(bootstrap, partitions=1)
    topic = Topics(settings.topic_prefix).raw

    async def run() -> tuple[int, int | None, int]:
        await prepare_topics(settings, [])
        producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), linger_ms=50)
        await producer.start()
        try:
            for _ in range(3):  # three batches of 22
                await asyncio.gather(*[await producer.send(topic, b"x") for _ in range(22)])
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            listed = (await consumer.end_offsets([tp]))[tp]
            await consumer.getmany(timeout_ms=2000)
            return listed, consumer.highwater(tp), 66
        finally:
            await consumer.stop()

    listed, fetched, produced = asyncio.run(run())
    figure("lag source", "ListOffsets end / fetch high watermark / produced", f"{listed} / {fetched} / {produced}")
    assert fetched == produced


def test_a_worker_serves_healthz_and_readyz(bootstrap, tmp_path) -> None:
    settings = fresh_settings(bootstrap)
    port = free_port()
    worker = Worker(settings, tmp_path / "health.log", extra_env={"DISTILLERY_HEALTH_PORT": str(port)})

    def get(path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, orjson.loads(err.read())
        except OSError:
            return 0, {}

    try:
        worker.wait_ready()
        assert wait_for(lambda: get("/readyz")[0] == 200, 20), get("/readyz")
        assert get("/healthz") == (200, {"ok": True, "reason": "running"})
        env = {**os.environ, "DISTILLERY_HEALTH_PORT": str(port), "PYTHONPATH": str(ROOT)}
        probe = subprocess.run([sys.executable, "-m", "streams.health", "readyz"], env=env, capture_output=True,
                               text=True, timeout=30)
        assert probe.returncode == 0 and "partitions assigned" in probe.stdout
    finally:
        worker.stop()


def test_an_existing_result_topic_that_is_not_compacted_gets_one_warning_and_is_left_alone(bootstrap, caplog) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    settings = fresh_settings(bootstrap)
    name = Topics(settings.topic_prefix).scores("alpha")

    async def make_plain() -> None:
        admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, 3, 1, topic_configs={"cleanup.policy": "delete"})])
        finally:
            await admin.close()

    asyncio.run(make_plain())
    with caplog.at_level("WARNING", logger="distillery.topics"):
        asyncio.run(prepare_topics(settings, ["alpha"]))
    warnings = [r.getMessage() for r in caplog.records if r.name == "distillery.topics"]
    assert len(warnings) == 1 and f"topic {name} exists with cleanup.policy=delete" in warnings[0]
    assert asyncio.run(_configs(settings, [name]))[name]["cleanup.policy"] == "delete"


def test_topic_init_creates_the_deployments_topics_with_configs_and_is_idempotent(bootstrap) -> None:
    settings = fresh_settings(bootstrap)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "DISTILLERY_TOPIC_PREFIX": settings.topic_prefix, "PYTHONPATH": str(ROOT)}

    def run() -> list[list[str]]:
        done = subprocess.run([sys.executable, "-m", "streams.topics", "--filters", "alpha"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [line.split("\t") for line in done.stdout.splitlines()]

    first, second = run(), run()
    topics = Topics(settings.topic_prefix)
    assert [row[0] for row in first] == topics.all(["alpha"])
    assert {row[1] for row in first} == {"created"} and {row[1] for row in second} == {"exists"}
    assert dict((row[0], row[2]) for row in first)[topics.scores("alpha")] == "cleanup.policy=compact"
    env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"
    down = subprocess.run([sys.executable, "-m", "streams.topics"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert down.returncode == 1 and down.stderr.startswith("error: cannot reach Kafka at 127.0.0.1:")
    assert len(down.stderr.strip().splitlines()) == 1, down.stderr
