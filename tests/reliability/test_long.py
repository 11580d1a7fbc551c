"""The long reliability cases (`make reliability`): kill -9 campaign, poison flood, rebalance replay, tampered
artifacts. Kafka-behaviour cases use the fake pipeline; the tampered-artifact case uses the real one."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict

import orjson
import pytest
from harness import (
    CLI_MODULE,
    ROOT,
    Worker,
    article,
    collect,
    decoded,
    figure,
    fresh_settings,
    produce,
    rss_mb,
    wait_exit,
)

from streams.settings import Settings
from streams.topics import Topics

pytestmark = [pytest.mark.broker, pytest.mark.reliability]
FILTERS = ("alpha", "beta")
VOLATILE = {"latency_ms", "scored_at", "fingerprint"}  # the fake pipeline stamps its pid as fingerprint


def _key(body: dict) -> str:
    return f"{body['article_id']}:{body['filter']}:{body['filter_version']}"


def _corpus(n: int, tag: str) -> tuple[list[bytes], set[str]]:
    """n valid articles (every 5th goes to Stage 2, every 7th is short) and the result keys they must produce."""
    lines = []
    for i in range(n):
        ident = f"{tag}{i}"
        if i % 7 == 3:
            lines.append(article(ident, f"Short {ident}", content=f"short {ident}"))
        else:
            lines.append(article(ident, f"{'Deep' if i % 5 == 0 else 'Plain'} report {ident}"))
    return lines, {f"{tag}{i}:{f}:1" for i in range(n) for f in FILTERS}


def _complete(keys: set[str], n_dlq: int = 0):
    def done(messages) -> bool:
        bodies = decoded(messages)
        got = {_key(b) for b in bodies if b.get("kind") == "result"}
        return keys <= got and sum(b.get("kind") == "dead_letter" for b in bodies) >= n_dlq
    return done


@pytest.mark.timeout(900)
def test_kill_9_campaign_loses_nothing_and_every_repeat_is_identical(bootstrap, tmp_path) -> None:
    seed = int(os.environ.get("RELIABILITY_SEED", "13"))
    rng = random.Random(seed)
    settings = fresh_settings(bootstrap)
    lines, expected = _corpus(1000, "k")
    produce(settings, lines)
    env = {"FAKE_PIPELINE_DELAY": "0.05"}
    kills, started = 0, time.monotonic()
    for kills in range(1, 11):
        worker = Worker(settings, tmp_path / f"worker{kills}.log", extra_env=env)
        worker.wait_ready()
        time.sleep(rng.uniform(0.5, 3.0))
        assert worker.process.poll() is None, worker.log()[-2000:]
        worker.kill()
        worker.stop()
    last = Worker(settings, tmp_path / "final.log", extra_env=env)
    try:
        last.wait_ready()
        messages = collect(settings, FILTERS, _complete(expected), max_time=600)
    finally:
        last.stop()
    bodies = decoded(messages)
    results = [b for b in bodies if b.get("kind") == "result"]
    keys = Counter(_key(b) for b in results)
    lost = expected - set(keys)
    variants: dict[str, set[bytes]] = defaultdict(set)
    for body in results:
        variants[_key(body)].add(orjson.dumps({k: v for k, v in body.items() if k not in VOLATILE},
                                              option=orjson.OPT_SORT_KEYS))
    differing = [k for k, v in variants.items() if len(v) > 1]
    repeats = sum(keys.values()) - len(keys)
    figure("kill -9 campaign", "articles / kills / seed", f"1000 / {kills} / {seed}")
    figure("kill -9 campaign", "lost / differing repeats", f"{len(lost)} / {len(differing)}")
    figure("kill -9 campaign", "repeated result messages", f"{repeats} ({100 * repeats / max(1, len(keys)):.1f} %)")
    figure("kill -9 campaign", "wall time", f"{time.monotonic() - started:.0f} s")
    assert not lost, sorted(lost)[:10]
    assert not differing, differing[:5]
    assert not [b for b in bodies if b.get("kind") == "dead_letter"]


def _poison(i: int) -> bytes:
    """Malformed message number i: every kind of the issue, the large ones rarer."""
    kind = i % 100
    if kind == 0:
        return orjson.dumps({"id": f"big{i}", "title": "Huge", "content": "x" * 1_200_000})
    if kind < 3:
        return bytes(range(1, 32)) * (200_000 // 31)  # 200 KB of control bytes
    if kind < 20:
        return b"[" * 300 + b"]" * 300  # depth-300 nesting
    if kind < 40:
        return b'{"id": "u%d", "title": "\xff\xfe bad utf-8", "content": "\xc3\x28"}' % i
    if kind < 70:
        return b'{"id": "j%d", "title": ' % i  # bad JSON
    return orjson.dumps({"id": f"a{i}", "title": 42, "content": None})  # invalid article


async def _produce_raw(settings: Settings, lines: list[bytes]) -> None:
    """Send lines as they are (some above 1 MB), keyless, in order."""
    from aiokafka import AIOKafkaProducer

    from streams.topics import ensure_topics

    topic = Topics(settings.topic_prefix).raw
    await ensure_topics(settings, [topic])
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), acks="all", linger_ms=5, max_request_size=4_000_000)
    await producer.start()
    try:
        futures = [await producer.send(topic, line) for line in lines]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@pytest.mark.timeout(900)
def test_poison_flood_goes_to_the_dlq_with_reasons_while_valid_articles_are_scored(bootstrap, tmp_path) -> None:
    settings = fresh_settings(bootstrap, batch_size=32)
    valid, expected = _corpus(200, "v")
    poison = [_poison(i) for i in range(10_000)]
    mixed: list[bytes] = []
    for i, line in enumerate(poison):
        mixed.append(line)
        if i % 50 == 0:
            mixed.append(valid[i // 50])
    worker = Worker(settings, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        rss_before = rss_mb(worker.process.pid)
        started = time.monotonic()
        asyncio.run(_produce_raw(settings, mixed))
        messages = collect(settings, FILTERS, _complete(expected, n_dlq=len(poison)), max_time=600)
        elapsed = time.monotonic() - started
        alive = worker.process.poll() is None
        rss_after = rss_mb(worker.process.pid) if alive else float("nan")
    finally:
        worker.stop()
    bodies = decoded(messages)
    dead = [b for b in bodies if b.get("kind") == "dead_letter"]
    scored = {_key(b) for b in bodies if b.get("kind") == "result"}
    figure("poison flood", "malformed / in DLQ / with reason", f"{len(poison)} / {len(dead)} / "
           f"{sum(bool(b.get('error')) and bool(b.get('stage')) for b in dead)}")
    figure("poison flood", "valid scored", f"{len(expected & scored) // len(FILTERS)} / {len(valid)}")
    figure("poison flood", "worker RSS before / after", f"{rss_before:.0f} / {rss_after:.0f} MB")
    figure("poison flood", "time to drain", f"{elapsed:.0f} s ({len(mixed) / elapsed:.0f} msg/s)")
    assert alive, worker.log()[-3000:]
    assert len(dead) == len(poison)
    assert all(b.get("error") and b.get("stage") for b in dead)
    assert expected <= scored


@pytest.mark.timeout(900)
def test_rebalances_never_leave_an_article_both_scored_and_blocked(bootstrap, tmp_path) -> None:
    settings = fresh_settings(bootstrap)
    lines, expected = _corpus(600, "r")
    produce(settings, lines)
    env = {"FAKE_PIPELINE_DELAY": "0.05"}
    first = Worker(settings, tmp_path / "a.log", extra_env=env)
    others: list[Worker] = []
    try:
        first.wait_ready()
        for n in range(3):  # a second worker joins and is killed: two rebalances each time
            time.sleep(1.5)
            other = Worker(settings, tmp_path / f"b{n}.log", extra_env=env)
            others.append(other)
            other.wait_ready()
            time.sleep(1.5)
            other.kill()
        messages = collect(settings, FILTERS, _complete(expected), max_time=600)
    finally:
        for w in [first, *others]:
            w.stop()
    topics = Topics(settings.topic_prefix)
    blocked_messages = asyncio.run(_read(settings, [topics.blocked]))
    blocked = {b["article_id"] for b in decoded(blocked_messages)}
    scored = {b["article_id"] for b in decoded(messages) if b.get("kind") == "result"}
    figure("rebalance replay", "articles scored / blocked / both", f"{len(scored)} / {len(blocked)} / "
           f"{len(scored & blocked)}")
    assert expected <= {_key(b) for b in decoded(messages) if b.get("kind") == "result"}
    assert not scored & blocked, sorted(scored & blocked)[:10]


async def _read(settings: Settings, names: list[str]):
    from streams.clients import read_topics

    return await read_topics(settings, names, idle_timeout=3.0, max_time=60)


@pytest.mark.timeout(600)
def test_a_worker_refuses_tampered_artifacts_with_a_clear_message(bootstrap, tmp_path) -> None:
    source = ROOT / "filters" / "sustainability" / "v1"
    if not (source / "artifacts" / "manifest.json").is_file():
        pytest.skip("sustainability v1 has no trained artifacts")
    copy = tmp_path / "sustainability" / "v1"
    shutil.copytree(source, copy)
    target = copy / "artifacts" / "probe.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    settings = fresh_settings(bootstrap)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers, "PYTHONPATH": str(ROOT),
           "DISTILLERY_TOPIC_PREFIX": settings.topic_prefix, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("DISTILLERY_PIPELINE_FACTORY", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", CLI_MODULE, "worker", "--roles", "prefilter,probe,stage2",
                           "--filters", str(copy / "filter.yaml")], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=500)
    took = time.monotonic() - started
    figure("tampered artifacts", "worker exit code / seconds", f"{done.returncode} / {took:.0f} s")
    assert done.returncode != 0
    assert "probe.safetensors" in done.stderr and "checksum mismatch" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_wait_exit_helper_is_bounded() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        code, waited = wait_exit(proc, 0.5)
        assert code is None and waited < 5
    finally:
        proc.kill()
        proc.wait(5)
