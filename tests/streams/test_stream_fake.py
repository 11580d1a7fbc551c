"""The topology on a real broker with the fake pipeline: routing, DLQ, two workers in a group, SIGKILL recovery."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from stream_helpers import article, collect, committed, decoded, produce

from streams.topics import Topics

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]
FILTERS = ("alpha", "beta")


def _results(messages) -> list[dict]:
    return [r for r in decoded(messages) if r["kind"] == "result"]


def _complete(expected_keys: set[str], n_dlq: int = 0, n_blocked: int = 0):
    def done(messages) -> bool:
        bodies = decoded(messages)
        keys = {f"{r['article_id']}:{r['filter']}:{r['filter_version']}" for r in bodies if r["kind"] == "result"}
        dlq = sum(r["kind"] == "dead_letter" for r in bodies)
        blocked = sum(r["kind"] == "blocked" for r in bodies)
        return expected_keys <= keys and dlq >= n_dlq and blocked >= n_blocked
    return done


def test_every_article_gets_one_result_per_filter_and_bad_input_goes_to_the_dlq(settings, start_worker):
    worker = start_worker()
    worker.wait_ready()
    lines = [
        article("s1", "Wind park report"),
        article("d1", "Deep look at grid storage"),
        article("p1", "Brief", content="too short"),
        article("c1", "Coupon codes for this weekend"),
        b'{"id": "broken", "title": ',  # malformed JSON
        b'{"id": "notitle", "content": "no title at all"}',  # invalid article
        article("x1", "Poison pill article"),  # the fake pipeline's route raises on it
        article("s2", "Heat pump survey"),
        article("d2", "Deep dive into recycling"),
    ]
    produce(settings, lines)
    expected = {f"{a}:{f}:1" for a in ("s1", "d1", "p1", "s2", "d2") for f in FILTERS}
    messages = collect(settings, FILTERS, _complete(expected, n_dlq=4, n_blocked=1))
    results = _results(messages)
    keys = Counter(f"{r['article_id']}:{r['filter']}:{r['filter_version']}" for r in results)
    assert set(keys) == expected and set(keys.values()) == {1}
    stages = {(r["article_id"], r["filter"]): r["stage"] for r in results}
    assert stages[("s1", "alpha")] == "stage1" and stages[("d1", "beta")] == "stage2"
    assert stages[("p1", "alpha")] == "prefilter"
    assert all(m.key.decode() == f"{r['article_id']}:{r['filter']}:1" for m, r in
               zip([m for m in messages if b'"result"' in m.value], results, strict=True))
    bodies = decoded(messages)
    dead = [r for r in bodies if r["kind"] == "dead_letter"]
    assert sorted(r["stage"] for r in dead) == ["probe:alpha", "probe:beta", "validate", "validate"]
    assert {r["payload"] for r in dead if r["stage"] == "validate"} == {lines[4].decode(), lines[5].decode()}
    assert all("poisoned article x1" in r["error"] for r in dead if r["stage"].startswith("probe"))
    assert all(r["source"]["topic"].endswith("articles.raw") and r["source"]["offset"] >= 0
               for r in dead if r["stage"] == "validate")
    blocked = [r for r in bodies if r["kind"] == "blocked"]
    assert [(r["article_id"], r["reason"]) for r in blocked] == [("c1", "commerce:coupon")]
    assert worker.process.poll() is None, "a bad message must not stop the worker"
    # offsets advance once outputs are out: the group's committed raw offsets reach every produced message
    group = f"{settings.topic_prefix}distillery-prefilter+probe+stage2"
    deadline = time.monotonic() + 20
    while sum((committed(settings, group, Topics(settings.topic_prefix).raw)).values() or [0]) < len(lines):
        assert time.monotonic() < deadline, "raw offsets were not committed"
        time.sleep(0.5)


def _assigned(log: str) -> int | None:
    counts = re.findall(r"(\d+) partitions assigned", log)
    return int(counts[-1]) if counts else None


def test_two_workers_in_one_group_share_partitions_and_produce_each_result_once(settings, start_worker):
    first, second = start_worker(), start_worker()
    first.wait_ready()
    second.wait_ready()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (_assigned(first.log()) or 0) + (_assigned(second.log()) or 0) != 9:
        time.sleep(0.3)  # wait for the rebalance that splits the 3 x 3 partitions between the two
    assert 0 < _assigned(first.log()) < 9 and 0 < _assigned(second.log()) < 9
    ids = [f"a{i}" for i in range(40)]
    produce(settings, [article(i, f"{'Deep' if n % 4 == 0 else 'Plain'} item {i}") for n, i in enumerate(ids)])
    expected = {f"{i}:{f}:1" for i in ids for f in FILTERS}
    results = _results(collect(settings, FILTERS, _complete(expected)))
    keys = Counter(f"{r['article_id']}:{r['filter']}:{r['filter_version']}" for r in results)
    assert set(keys) == expected and set(keys.values()) == {1}
    assert len({r["fingerprint"] for r in results}) == 2, "both workers should have produced results"


def test_a_worker_killed_mid_stream_and_restarted_loses_nothing(settings, start_worker):
    slow = {"FAKE_PIPELINE_DELAY": "0.25"}
    worker = start_worker(extra_env=slow)
    worker.wait_ready()
    ids = [f"k{i}" for i in range(60)]
    produce(settings, [article(i, f"{'Deep' if n % 3 == 0 else 'Plain'} item {i}") for n, i in enumerate(ids)])
    expected = {f"{i}:{f}:1" for i in ids for f in FILTERS}
    partial = _results(collect(settings, FILTERS, lambda m: len(_results(m)) >= 15, max_time=60))
    worker.kill()
    assert len({r["article_id"] for r in partial}) < len(ids), "the kill came too late to test recovery"
    restarted = start_worker(extra_env=slow)
    restarted.wait_ready()
    results = _results(collect(settings, FILTERS, _complete(expected), max_time=120))
    keys = Counter(f"{r['article_id']}:{r['filter']}:{r['filter_version']}" for r in results)
    assert set(keys) == expected, f"lost: {sorted(expected - set(keys))[:5]}"
    stable = ("stage", "scores", "weighted_average", "tier")
    by_key: dict[str, set] = {}
    for r in results:  # a replay may publish a key again, with the same content (an overwrite)
        by_key.setdefault(f"{r['article_id']}:{r['filter']}", set()).add(tuple(str(r[f]) for f in stable))
    assert all(len(v) == 1 for v in by_key.values())
