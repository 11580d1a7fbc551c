"""The real pipeline (embedding, probes, routers, students) end to end through Kafka, checked against score_batch."""

from __future__ import annotations

import pytest
from stream_helpers import assert_equal_to_batch, decoded, stream_samples

from distillery.demo import SAMPLES
from streams.clients import read_lines

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]


def test_stream_results_equal_in_process_score_batch(settings, start_worker, pipeline):
    lines = read_lines(SAMPLES)
    filters = sorted(pipeline.specs)
    refs = ",".join(spec.key for spec in pipeline.specs.values())  # name/vN: the versions the test loaded
    worker = start_worker(fake=False, filters=refs)
    worker.wait_ready(180)
    outcomes, messages = stream_samples(settings, lines, filters, max_time=240)
    assert outcomes.complete(), f"stream incomplete; worker log:\n{worker.log()[-3000:]}"
    results = [r for r in decoded(messages) if r["kind"] == "result"]
    keys = [f"{r['article_id']}:{r['filter']}:{r['filter_version']}" for r in results]
    assert len(keys) == len(set(keys)), "without a crash every result is published once"

    expected, rejected = pipeline.score_batch(lines)  # dedupes exactly like the stream
    stream = {k: r for k, r in zip(keys, results, strict=True)}
    assert_equal_to_batch(stream, expected)
    assert all(stream[e.key]["fingerprint"] == e.fingerprint for e in expected)  # the same artifacts served
    assert len(outcomes.dead) + len(outcomes.blocked) == len(rejected)
    assert {d["stage"] for d in outcomes.dead} <= {"validate"}
    escalated = {r["article_id"] for r in results if r["stage"] == "stage2"}
    print(f"\nall roles in one worker: {len(lines)} lines, {len(escalated)} articles reached Stage 2; "
          f"{len(outcomes.blocked)} blocked, {len(outcomes.dead)} dead letters; equal to score_batch: yes")
