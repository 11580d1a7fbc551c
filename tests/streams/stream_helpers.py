"""Stream test helpers (a module of its own: `from conftest import` is ambiguous when tests/streams and tests/models
run in one pytest session): the Worker subprocess, test articles, produce/collect on the test broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from distillery.demo import Outcomes
from streams.clients import Message, produce_lines, read_topics
from streams.settings import Settings
from streams.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


class Worker:
    """A `distillery worker` subprocess; stderr goes to a log file that `wait_ready` watches."""

    def __init__(self, settings: Settings, log_path: Path, fake: bool = True, roles: str = "prefilter,probe,stage2",
                 filters: str = "", extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
               "DISTILLERY_TOPIC_PREFIX": settings.topic_prefix, "DISTILLERY_PARTITIONS": str(settings.partitions),
               "DISTILLERY_BATCH_SIZE": str(settings.batch_size), "DISTILLERY_BATCH_WITHIN": str(settings.batch_within),
               "DISTILLERY_STAGE2_BATCH_SIZE": str(settings.stage2_batch_size), "DISTILLERY_METRICS_PORT": "0",
               "DISTILLERY_FAUST_AUTO_OFFSET_RESET": "earliest",
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
        env.pop("DISTILLERY_PIPELINE_FACTORY", None)
        if fake:
            env["DISTILLERY_PIPELINE_FACTORY"] = "fake_pipeline:load"
        env.update(extra_env or {})
        cmd = [sys.executable, "-m", "distillery", "worker", "--roles", roles]
        if filters:
            cmd += ["--filters", filters]
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "worker ready" in self.log():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def article(ident: str, title: str, content: str = "", **extra: object) -> bytes:
    """One input line, written by the tests themselves."""
    body = content or f"{title}: a made-up report long enough to pass the fake pipeline's length rule."
    return orjson.dumps({"id": ident, "title": title, "content": body, **extra})


def produce(settings: Settings, lines: Sequence[bytes]) -> None:
    asyncio.run(produce_lines(settings, lines))


def collect(settings: Settings, filters: Sequence[str], done, max_time: float = 90.0) -> list[Message]:
    """Read scores, DLQ and blocked topics until `done(messages)` holds (or time runs out)."""
    topics = Topics(settings.topic_prefix)
    names = [topics.dlq, topics.blocked] + [topics.scores(f) for f in filters]
    return asyncio.run(read_topics(settings, names, until=done, idle_timeout=0, max_time=max_time))


def stream_samples(settings: Settings, lines: list[bytes], filters: list[str], max_time: float) -> tuple[Outcomes,
                                                                                                      list[Message]]:
    """Produce `lines` and read the result, blocked and DLQ topics until every line is accounted for (as the demo
    checks it) or `max_time` passes: (outcomes, messages)."""
    produce(settings, lines)
    outcomes = Outcomes(lines, filters)

    def done(messages: list[Message]) -> bool:
        outcomes.add(messages)
        return outcomes.complete()

    return outcomes, collect(settings, filters, done, max_time=max_time)


def assert_equal_to_batch(stream: dict[str, dict], expected: list) -> None:
    """Stream results (by key) equal the in-process `score_batch` results: same keys, stage, tier, WA and scores
    (to 1e-4: float noise between batch sizes)."""
    assert set(stream) == {e.key for e in expected}
    for e in expected:
        got = stream[e.key]
        assert (got["stage"], got["tier"]) == (e.stage, e.tier), e.key
        assert abs(got["weighted_average"] - e.weighted_average) <= 1e-4, e.key
        assert set(got["scores"]) == set(e.scores), e.key
        assert all(abs(got["scores"][d] - v) <= 1e-4 for d, v in e.scores.items()), e.key


def decoded(messages: Sequence[Message]) -> list[dict]:
    return [orjson.loads(m.value) for m in messages]


def committed(settings: Settings, group: str, topic: str) -> dict[int, int | None]:
    """Committed offset per partition of `topic` for consumer group `group` (without joining the group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
            consumer.assign(tps)
            return {tp.partition: await consumer.committed(tp) for tp in tps}
        finally:
            await consumer.stop()

    return asyncio.run(read())
