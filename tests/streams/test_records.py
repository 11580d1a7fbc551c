"""Wire records: schema_version on every record, exact round trips, typed dead letters."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from models.records import Prepared, Rejection, Result, Stage2Request
from streams import records


def test_embedded_round_trip_keeps_the_vector_bit_exact():
    vector = np.array([0.1, -2.5, 3.25, 1e-7], dtype=np.float32)
    prepared = Prepared({"id": "x1", "title": "T", "content": "C"}, "abc", vector, 0.12, received_at=123.5)
    wire = records.embedded_record(prepared)
    assert orjson.loads(wire)["schema_version"] == records.SCHEMA_VERSION
    back = records.embedded_from_wire(wire)
    assert back.received_at == 123.5
    assert back.article == prepared.article and back.content_hash == "abc" and back.commerce_probability == 0.12
    assert back.embedding.dtype == np.float32
    assert np.array_equal(back.embedding, vector)


def test_stage2_request_round_trip_and_key():
    request = Stage2Request({"id": "x2", "title": "T"}, "alpha", 3, {"impact": np.float32(4.5)}, 4.5, 0.8, 99.0)
    back = records.stage2_from_wire(records.stage2_record(request))
    assert back == Stage2Request({"id": "x2", "title": "T"}, "alpha", 3, {"impact": 4.5}, 4.5, 0.8, 99.0)
    assert records.stage2_key(request) == b"x2:alpha:3"
    tiered = Stage2Request({"id": "x2"}, "alpha", 3, {"impact": 4.5}, 4.5, 0.8, 99.0,
                           tier_logits=[np.float64(-1.5), 2.0])
    assert records.stage2_from_wire(records.stage2_record(tiered)).tier_logits == [-1.5, 2.0]  # the stream's Stage 2


def test_result_round_trip_and_idempotent_key():
    result = Result("x3", "alpha", 2, "stage2", {"impact": 7.0}, 7.0, "high", caps_applied=["vaporware"])
    wire = records.result_record(result)
    body = orjson.loads(wire)
    assert body["kind"] == "result" and body["schema_version"] == 1 and body["stage"] == "stage2"
    assert records.result_from_wire(wire) == result
    assert records.result_key(result) == b"x3:alpha:2"


def test_dead_letter_keeps_text_payload_and_base64_for_binary():
    text = orjson.loads(records.dlq_record("validate", "bad title", b'{"id": 1}', "raw", 2, 17))
    assert text["payload"] == '{"id": 1}' and text["payload_encoding"] == "utf-8"
    assert text["source"] == {"topic": "raw", "partition": 2, "offset": 17}
    assert text["stage"] == "validate" and text["error"] == "bad title" and text["failed_at"].endswith("Z")
    binary = orjson.loads(records.dlq_record("validate", "not utf-8", b"\xff\xfe\x00", "raw", 0, 1))
    assert binary["payload_encoding"] == "base64"
    assert base64.b64decode(binary["payload"]) == b"\xff\xfe\x00"
    assert records.dlq_key(None, "raw", 0, 1) == b"raw:0:1"


def test_blocked_record_names_decision_and_reason():
    body = orjson.loads(records.blocked_record(Rejection("commerce", "commerce:coupon", "x4", {"title": "Deal"})))
    assert (body["kind"], body["decision"], body["reason"], body["title"]) == ("blocked", "commerce",
                                                                               "commerce:coupon", "Deal")
    from_bytes = orjson.loads(records.blocked_record(Rejection("commerce", "r", "x5", b'{"title": "Raw", "url": "u"}')))
    assert (from_bytes["title"], from_bytes["url"]) == ("Raw", "u")


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"not json", "not valid JSON"), (b"[1, 2]", "expected a JSON object"),
     (b'{"kind": "result", "schema_version": 1}', "expected a 'embedded' record"),
     (b'{"kind": "embedded", "schema_version": 99}', "unsupported schema_version 99")],
)
def test_decode_errors_say_what_is_wrong(data, message):
    with pytest.raises(records.WireError, match=message):
        records.embedded_from_wire(data)
