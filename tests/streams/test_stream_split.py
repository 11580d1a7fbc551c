"""Roles split over several workers (docs/streaming.md "Several workers") give exactly the results of one in-process
`score_batch`: the regression test for articles never reaching Stage 2 when the probe worker has no student loaded."""

from __future__ import annotations

from collections import Counter

import pytest
from fake_pipeline import FakePipeline
from stream_helpers import article, assert_equal_to_batch, collect, decoded, produce, stream_samples

from distillery.demo import SAMPLES
from streams.clients import read_lines

pytestmark = [pytest.mark.broker, pytest.mark.timeout(420)]


def _by_key(results: list[dict]) -> dict[str, dict]:
    keys = [f"{r['article_id']}:{r['filter']}:{r['filter_version']}" for r in results]
    assert len(keys) == len(set(keys)), "without a crash every result is published once"
    return dict(zip(keys, results, strict=True))


def test_fake_pipeline_roles_split_over_three_workers_equal_score_batch(settings, start_worker):
    workers = [start_worker(roles=role) for role in ("prefilter", "probe", "stage2")]
    for worker in workers:
        worker.wait_ready()
    lines = [article(f"f{i}", f"{'Deep' if i % 3 == 0 else 'Plain'} item {i}") for i in range(24)]
    lines += [article("c1", "Coupon codes"), article("f0", "Deep item 0"), article("dup", "Plain item 1")]
    produce(settings, lines)
    expected, rejected = FakePipeline().score_batch(lines)
    keys = {e.key for e in expected}

    def done(messages) -> bool:
        bodies = decoded(messages)
        got = {f"{r['article_id']}:{r['filter']}:{r['filter_version']}" for r in bodies if r["kind"] == "result"}
        return keys <= got and sum(r["kind"] == "blocked" for r in bodies) >= len(rejected)

    bodies = decoded(collect(settings, ("alpha", "beta"), done, max_time=120))
    results = [r for r in bodies if r["kind"] == "result"]
    stream = {f"{r['article_id']}:{r['filter']}:{r['filter_version']}": r for r in results}  # f0 is sent twice
    assert_equal_to_batch(stream, expected)
    assert Counter(r["stage"] for r in stream.values())["stage2"] == 16  # 8 "Deep" articles x 2 filters
    blocked = sorted((b["article_id"], b["reason"]) for b in bodies if b["kind"] == "blocked")
    assert blocked == sorted((r.article_id, r.reason) for r in rejected) == [("c1", "commerce:coupon"),
                                                                            ("dup", "duplicate")]
    assert all(w.process.poll() is None for w in workers)


@pytest.mark.slow
def test_real_pipeline_prefilter_probe_and_stage2_workers_equal_score_batch(settings, start_worker, pipeline):
    lines = read_lines(SAMPLES)
    filters = sorted(pipeline.specs)
    refs = ",".join(spec.key for spec in pipeline.specs.values())
    assert any(fm.has_student for fm in pipeline.filters.values()), "a shipped filter must have a student"
    cpu = start_worker(fake=False, roles="prefilter,probe", filters=refs)
    gpu = start_worker(fake=False, roles="stage2", filters=refs)
    cpu.wait_ready(240)
    gpu.wait_ready(240)
    outcomes, messages = stream_samples(settings, lines, filters, max_time=300)
    assert outcomes.complete(), f"stream incomplete; logs:\n{cpu.log()[-2000:]}\n{gpu.log()[-2000:]}"
    stream = _by_key([r for r in decoded(messages) if r["kind"] == "result"])
    expected, rejected = pipeline.score_batch(lines)  # the same dedupe decision as the stream
    assert_equal_to_batch(stream, expected)
    stages = Counter(f"{r['filter']}:{r['stage']}" for r in stream.values())
    escalated = {r["article_id"] for r in stream.values() if r["stage"] == "stage2"}
    print(f"\nsplit roles: {len(lines)} lines, {len(escalated)} articles reached Stage 2; stages {dict(stages)}; "
          f"{len(outcomes.blocked)} blocked, {len(outcomes.dead)} dead letters; equal to score_batch: yes")
    assert escalated, "articles must reach Stage 2 with roles split over workers"
    assert escalated == {e.article_id for e in expected if e.stage == "stage2"}
    assert sorted((b["article_id"], b["reason"]) for b in outcomes.blocked) == sorted(
        (r.article_id, r.reason) for r in rejected if r.kind != "invalid")
