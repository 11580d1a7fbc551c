"""Oracle replies validated against the spec; caps applied in code."""

from __future__ import annotations

import pytest

from filters.spec import parse_spec
from models.oracle.validation import OracleResponseError, extract_json, validate_response


def test_extract_json_from_fence_and_surrounding_text():
    assert extract_json('Here:\n```json\n{"a": 1}\n```\nThanks') == {"a": 1}
    assert extract_json('noise {"b": {"c": 2}} trailing') == {"b": {"c": 2}}


def test_malformed_json_is_a_clear_error():
    with pytest.raises(OracleResponseError, match="not a JSON object") as err:
        extract_json('{"impact": {"score": 5,')
    assert err.value.kind == "malformed_json"


def test_valid_reply_keeps_scores_evidence_and_type(oracle_spec, label_factory):
    label = validate_response(oracle_spec, label_factory())
    assert label.scores == {"impact": 6.0, "evidence": 5.0, "reach": 4.0}
    assert label.evidence["impact"] == "a quote"
    assert label.content_type == "news"
    assert label.caps_applied == [] and label.overall_cap is None


def test_missing_dimensions_named(oracle_spec, label_factory):
    reply = label_factory()
    del reply["reach"]
    with pytest.raises(OracleResponseError, match=r"missing dimensions \['reach'\]") as err:
        validate_response(oracle_spec, reply)
    assert err.value.kind == "missing_dimensions"


def test_out_of_range_score_named(oracle_spec, label_factory):
    with pytest.raises(OracleResponseError, match=r"impact.score 11 is outside 0-10") as err:
        validate_response(oracle_spec, label_factory(impact={"score": 11, "evidence": "x"}))
    assert err.value.kind == "out_of_range"


def test_non_string_evidence_and_unknown_content_type(oracle_spec, label_factory):
    with pytest.raises(OracleResponseError, match="evidence must be a string"):
        validate_response(oracle_spec, label_factory(reach={"score": 1, "evidence": 3}))
    with pytest.raises(OracleResponseError, match=r"content_type 'opinion' is not one of") as err:
        validate_response(oracle_spec, label_factory(content_type="opinion"))
    assert err.value.kind == "bad_content_type"


def test_caps_and_penalties_applied_after_oracle(oracle_spec, label_factory):
    capped = validate_response(oracle_spec, label_factory(content_type="speculation"))
    assert capped.scores == {"impact": 3.0, "evidence": 3.0, "reach": 3.0}
    assert capped.raw_scores == {"impact": 6.0, "evidence": 5.0, "reach": 4.0}
    assert capped.caps_applied == ["speculation"]
    penalised = validate_response(oracle_spec, label_factory(content_type="reckoning"))
    assert penalised.scores == {"impact": 3.5, "evidence": 2.5, "reach": 1.5}
    green = validate_response(oracle_spec, label_factory(content_type="greenwashing"))
    assert green.scores["evidence"] == 3.0 and green.overall_cap == 4.0


def test_content_flags_apply_their_rules(oracle_spec, label_factory):
    label = validate_response(oracle_spec, label_factory(content_flags=["speculation"]))
    assert label.content_flags == ["speculation"] and label.scores["impact"] == 3.0


def test_any_content_type_when_spec_has_none(tiny_spec_data, tmp_path, label_factory):
    spec = parse_spec({**tiny_spec_data, "content_types": {}}, tmp_path / "filter.yaml")
    assert validate_response(spec, label_factory(content_type="whatever")).content_type == "whatever"
