"""The agents in memory (no Kafka): each agent is a short adapter over the pipeline and the frame, so every input,
whatever its size, bytes or structure, ends in a result, `articles.blocked` or `articles.dlq`, and the agent goes on."""

from __future__ import annotations

import asyncio
import hashlib

import orjson
import pytest
from fake_pipeline import FakePipeline

from models.deduper import Deduper
from streams import records
from streams.agents import prefilter, probe, stage2
from streams.agents.frame import Inbound, MemorySink
from streams.app import WorkerContext
from streams.settings import Settings
from streams.topics import Topics

TRACE = (("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), ("x-correlation-id", b"c-17"),
         ("internal-only", b"dropped"))


def _ctx(**settings: object) -> WorkerContext:
    s = Settings(**settings)  # type: ignore[arg-type]
    return WorkerContext(settings=s, topics=Topics("t."), pipeline=FakePipeline(limits=s.payload_limits()),
                         roles=("prefilter", "probe", "stage2"), filters=("alpha", "beta"), deduper=Deduper())


def _raw(value: bytes, offset: int, key: bytes | None = None, headers=TRACE) -> Inbound:
    return Inbound("t.articles.raw", 0, offset, key, value, headers)


def _article(ident: str, title: str = "Wind park report", **extra: object) -> bytes:
    return orjson.dumps({"id": ident, "title": title, "content": f"{title}: a made-up report long enough to pass.",
                         **extra})


def _run(ctx: WorkerContext, inputs, handler=prefilter.handle, stage: str = "prefilter") -> MemorySink:
    sink = ctx.frame.sink
    assert isinstance(sink, MemorySink)
    asyncio.run(ctx.frame.process(inputs, stage, lambda items: handler(ctx, items)))
    return sink


def _dead(sink: MemorySink) -> list[dict]:
    return [orjson.loads(m.value) for m in sink.on("t.articles.dlq")]


def test_every_output_carries_headers_and_passes_the_trace_through():
    ctx = _ctx()
    sink = _run(ctx, [_raw(_article("a1"), 0, b"a1")])
    (out,) = sink.on("t.articles.embedded")
    headers = dict(out.headers)
    assert headers["content-type"] == b"application/json" and headers["distillery-schema-version"] == b"1"
    assert headers["distillery-producer"] == b"distillery/prefilter"
    assert headers["traceparent"] == TRACE[0][1] and headers["x-correlation-id"] == b"c-17"
    assert "internal-only" not in headers
    assert out.key == b"a1" and records.embedded_from_wire(out.value).article["id"] == "a1"


def test_a_1_2_mb_article_is_dead_lettered_truncated_with_size_hash_and_pointer_and_the_batch_goes_on():
    ctx = _ctx()
    big = _article("huge", content_pad="x" * 1_200_000)
    sink = _run(ctx, [_raw(big, 5, b"huge-key"), _raw(_article("after"), 6)])
    (letter,) = sink.on("t.articles.dlq")
    body = orjson.loads(letter.value)
    assert (body["stage"], body["reason"], body["article_id"]) == ("validate", "too_large", "huge")
    assert "over the limit of 524,288 bytes" in body["error"] and "DISTILLERY_MAX_ARTICLE_BYTES" in body["error"]
    assert body["payload_truncated"] is True and body["payload_bytes"] == len(big)
    assert body["payload_sha256"] == hashlib.sha256(big).hexdigest()
    assert big.decode().startswith(body["payload"]) and len(body["payload"]) > 100_000
    assert body["source"] == {"topic": "t.articles.raw", "partition": 0, "offset": 5}
    assert letter.size <= ctx.settings.max_record_bytes
    # the DLQ keeps the producer's key and headers, and says where and why in error headers
    assert letter.key == b"huge-key" and body["key"] == "huge-key"
    headers = dict(letter.headers)
    assert headers["traceparent"] == TRACE[0][1] and headers["internal-only"] == b"dropped"
    assert headers["distillery.errors.reason"] == b"too_large" and headers["distillery.errors.offset"] == b"5"
    assert [name for name, _ in letter.headers].count("traceparent") == 1
    assert [records.embedded_from_wire(m.value).article["id"] for m in sink.on("t.articles.embedded")] == ["after"]


@pytest.mark.parametrize("size", [1_040_000, 2_100_000, 5_000_000])
def test_articles_of_a_megabyte_and_more_never_exceed_the_producer_limit(size):
    ctx = _ctx()
    sink = _run(ctx, [_raw(_article(f"s{size}", content_pad="y" * size), 0)])
    (letter,) = sink.on("t.articles.dlq")
    assert letter.size <= ctx.settings.max_record_bytes and orjson.loads(letter.value)["reason"] == "too_large"


def test_200_kb_of_control_bytes_gives_a_dlq_record_under_the_limit():
    ctx = _ctx()
    value = b'{"id": "ctl", "title": "T", "content": "' + b"\x01" * 200_000 + b'"}'
    sink = _run(ctx, [_raw(value, 3)])
    (letter,) = sink.on("t.articles.dlq")
    body = orjson.loads(letter.value)
    assert body["reason"] == "invalid_json" and body["article_id"] == "ctl"
    assert letter.size <= ctx.settings.max_record_bytes  # escaped, the full payload would be 1.2 MB
    assert body["payload_truncated"] is True and body["payload_bytes"] == len(value)


def test_nesting_300_deep_is_refused_before_parsing_as_too_deep():
    ctx = _ctx()
    value = b'{"id": "deep1", "title": "Deep", "content": "text of it", "extra": ' + b"[" * 300 + b"]" * 300 + b"}"
    sink = _run(ctx, [_raw(value, 1), _raw(_article("next"), 2)])
    (body,) = _dead(sink)
    assert (body["reason"], body["article_id"]) == ("too_deep", "deep1")
    assert "DISTILLERY_MAX_JSON_DEPTH" in body["error"]
    assert len(sink.on("t.articles.embedded")) == 1


def test_invalid_utf8_names_the_byte_offset_and_the_fix():
    ctx = _ctx()
    value = b'{"id": "lat1", "title": "Caf\xe9", "content": "text"}'
    sink = _run(ctx, [_raw(value, 4)])
    (body,) = _dead(sink)
    assert body["reason"] == "invalid_utf8" and body["article_id"] == "lat1"
    assert "byte offset 28 (bytes e9" in body["error"] and "UTF-8" in body["error"]
    assert body["payload_encoding"] == "base64"


def test_a_replayed_article_is_processed_again_never_blocked_as_its_own_duplicate():
    ctx = _ctx()
    first = _run(ctx, [_raw(_article("r1"), 0)])
    _run(ctx, [_raw(_article("r1"), 0)])  # the same message read again after a rebalance
    _run(ctx, [_raw(_article("r2"), 1)])  # another article with the same content
    assert [records.embedded_from_wire(m.value).article["id"] for m in first.on("t.articles.embedded")] == ["r1", "r1"]
    (blocked,) = [orjson.loads(m.value) for m in first.on("t.articles.blocked")]
    assert (blocked["article_id"], blocked["decision"], blocked["reason"], blocked["duplicate_of"]) == (
        "r2", "duplicate", "duplicate", "r1")
    assert len(blocked["content_hash"]) == 64
    # the metric label is the bounded reason; the hash lives in the record only
    from streams.app import metrics

    labels = {sample.labels.get("reason") for family in metrics().blocked_total.collect() for sample in family.samples
              if sample.labels.get("kind") == "duplicate"}
    assert labels == {"duplicate"}


def test_a_message_whose_output_is_refused_is_dead_lettered_and_the_others_are_sent():
    from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

    ctx = _ctx()
    sink = ctx.frame.sink
    assert isinstance(sink, MemorySink)
    sink.failures[b"bad"] = MessageSizeTooLargeError("too large for the broker")
    _run(ctx, [_raw(_article("ok1"), 0), _raw(_article("bad", title="Other"), 1, b"bad-in")])
    assert [m.key for m in sink.on("t.articles.embedded")] == [b"ok1"]
    (body,) = _dead(sink)
    assert body["reason"] == "output_failed" and "too large for the broker" in body["error"]
    # a broker-level failure is not one message's fault: it propagates (the worker exits unacked and replays)
    sink.failures[b"ok2"] = KafkaConnectionError("broker gone")
    with pytest.raises(KafkaConnectionError):
        _run(ctx, [_raw(_article("ok2", title="Third"), 2)])


def test_an_output_over_the_producer_limit_is_dead_lettered_not_sent():
    ctx = _ctx(max_article_bytes=400_000, max_record_bytes=100_000)  # a misconfiguration: inputs pass, outputs not
    value = _article("wide", content_pad="z" * 150_000)
    sink = _run(ctx, [_raw(value, 9)])
    assert sink.on("t.articles.embedded") == []
    (letter,) = sink.on("t.articles.dlq")
    body = orjson.loads(letter.value)
    assert body["reason"] == "too_large" and "producer limit of 100,000" in body["error"]
    assert letter.size <= 100_000 and body["payload_truncated"] is True


def test_probe_and_stage2_keep_the_pipelines_arrival_time_and_decide_nothing():
    ctx = _ctx()
    raw = _run(ctx, [_raw(_article("p1", title="Deep look"), 0), _raw(_article("p2"), 1)])
    embedded = [Inbound("t.articles.embedded", 0, n, m.key, m.value, m.headers)
                for n, m in enumerate(raw.on("t.articles.embedded"))]
    received = records.embedded_from_wire(embedded[0].value).received_at
    out = _run(ctx, embedded, lambda c, items: probe.handle(c, "alpha", items), "probe:alpha")
    (request,) = [records.stage2_from_wire(m.value) for m in out.on("t.stage2.requests")]
    assert request.received_at == received and request.article["id"] == "p1"
    (result,) = [records.result_from_wire(m.value) for m in out.on("t.scores.alpha")]
    assert result.article_id == "p2" and result.stage == "stage1"
    requests = [Inbound("t.stage2.requests", 0, 0, m.key, m.value, m.headers) for m in out.on("t.stage2.requests")]
    final = _run(ctx, requests + [Inbound("t.stage2.requests", 0, 1, None, b"{garbage", ())], stage2.handle, "stage2")
    (scored,) = [records.result_from_wire(m.value) for m in final.on("t.scores.alpha") if b'"stage2"' in m.value]
    assert scored.article_id == "p1"
    assert dict(final.on("t.scores.alpha")[-1].headers)["traceparent"] == TRACE[0][1]  # through all three hops
    (body,) = [b for b in _dead(final) if b["stage"] == "stage2"]
    assert body["reason"] == "invalid_record" and "not valid JSON" in body["error"]


def test_the_real_objects_and_the_fake_implement_the_seam_protocols() -> None:
    from fake_pipeline import FakeCommerceGate, FakeStudent

    from models.seams import CommerceGate, ProbabilityHead, ScoringPipeline, StudentModel

    pipeline: ScoringPipeline = FakePipeline()  # checked by mypy, like models.pipeline.Pipeline in WorkerContext
    gate: CommerceGate = FakeCommerceGate()
    student: StudentModel = FakeStudent()
    assert isinstance(student, StudentModel) and not isinstance(gate.head, ProbabilityHead)
    assert pipeline.specs and gate.decide({"title": "Coupon deal"}).reason == "commerce:coupon"
