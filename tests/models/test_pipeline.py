"""The scoring pipeline end to end on a tiny trained filter: prepare → route → stage 2, rejections, dedup."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from model_helpers import GOOD, FakeStudent

from models.filter_models import FilterModels
from models.pipeline import Deduper, Pipeline, PipelineError
from models.records import Prepared, Rejection, Result, Stage2Request


def article(i: int, good: int, **extra) -> dict:
    words = GOOD[:good] + ["market", "city", "people", "report"] * 3
    return {"id": f"a{i}", "title": f"Title {i}", "content": " ".join(words * 2), "url": f"https://news.example/{i}",
            **extra}


@pytest.fixture
def pipeline(trained, fake_encoder):
    spec, _, run = trained
    fm = FilterModels.load(spec, fake_encoder, directory=run.out_dir)
    return Pipeline(fake_encoder, {spec.name: fm}, None)


def test_prepare_validates_cleans_and_embeds_once(pipeline, fake_encoder):
    calls = fake_encoder.calls
    payloads = [article(1, 2), orjson.dumps(article(2, 5)), b"{not json", {"id": "x"},
                {**article(3, 0), "title": "A &amp; B <b>bold</b>"}]
    out = pipeline.prepare(payloads)
    assert fake_encoder.calls == calls + 1  # one batched embedding call for all survivors
    kinds = [type(o).__name__ for o in out]
    assert kinds == ["Prepared", "Prepared", "Rejection", "Rejection", "Prepared"]
    assert out[2].kind == "invalid" and out[3].kind == "invalid"
    assert "title" in out[3].reason  # names the missing field
    assert out[4].article["title"] == "A & B bold"
    assert out[0].embedding.shape == (64,) and out[0].embedding.dtype == np.float32
    assert out[0].content_hash != out[1].content_hash


def test_route_without_student_gives_stage1_and_prefilter_results(pipeline, trained):
    spec = trained[0]
    prepared = [p for p in pipeline.prepare([article(1, 0), article(2, 8),
                                             article(3, 8, url="https://blocked.example/x")])
                if isinstance(p, Prepared)]
    out = pipeline.route(prepared, spec.name)
    assert [r.stage for r in out] == ["stage1", "stage1", "prefilter"]
    assert out[2].prefilter_reason == "excluded_domain_blocked" and out[2].scores == {}
    assert out[1].weighted_average > out[0].weighted_average
    assert set(out[0].scores) == set(spec.dimension_names)
    assert out[0].key == f"a1:{spec.name}:1" and out[0].fingerprint


def test_stage2_uses_student_and_calibration(pipeline, trained):
    spec = trained[0]
    fm = pipeline.filters[spec.name]
    fm.student = FakeStudent(spec.dimension_names, offset=0.3)
    try:
        prepared = [p for p in pipeline.prepare([article(1, 0), article(2, 8), article(3, 7)])
                    if isinstance(p, Prepared)]
        routed = pipeline.route(prepared, spec.name)
        requests = [r for r in routed if isinstance(r, Stage2Request)]
        assert requests, "high-scoring articles must be routed to Stage 2"
        assert all(r.filter == spec.name and r.probe_scores for r in requests)
        assert isinstance(routed[0], Result) and routed[0].stage == "stage1"  # 0 good words stays in Stage 1
        results = pipeline.stage2(requests)
        assert [r.stage for r in results] == ["stage2"] * len(requests)
        expected = fm.calibration.apply(fm.student.predict([requests[0].article]))[0]
        assert results[0].scores == pytest.approx(dict(zip(spec.dimension_names, expected, strict=True)), abs=1e-5)
        assert results[0].probe_scores == requests[0].probe_scores
        # score_batch chains the same steps: one Stage-2 call for the whole batch
        fm.student.calls.clear()
        res, rej = pipeline.score_batch([article(4, 8), article(5, 0), {"id": "bad"}])
        assert len(res) == 2 and len(rej) == 1 and len(fm.student.calls) <= 1
        assert {r.article_id for r in res} == {"a4", "a5"}
    finally:
        fm.student = None


def test_stage1_serves_snapped_scores_and_keeps_the_raw_probe_scores(pipeline, trained):
    spec = trained[0]
    fm = pipeline.filters[spec.name]
    before = fm.calibration.probe_snap
    fm.calibration.probe_snap = [1.0, 0.0, 0.5]  # impact to whole points, evidence kept, reach to half points
    try:
        prepared = [p for p in pipeline.prepare([article(1, 0), article(2, 3)]) if isinstance(p, Prepared)]
        for r in pipeline.route(prepared, spec.name):
            assert r.stage == "stage1"
            raw = r.probe_scores
            assert raw["impact"] != round(raw["impact"])  # the probe's own output is continuous
            assert r.scores["impact"] == round(min(10.0, max(0.0, raw["impact"])))
            assert r.scores["reach"] == round(2 * min(10.0, max(0.0, raw["reach"]))) / 2
            # evidence is not snapped (the gatekeeper may still cap it)
            assert r.scores["evidence"] == pytest.approx(min(10.0, max(0.0, raw["evidence"])), abs=1e-5) \
                or r.gatekeeper_applied
    finally:
        fm.calibration.probe_snap = before


def test_stage2_without_student_serves_the_stage1_scores(pipeline, trained):
    spec = trained[0]
    fm = pipeline.filters[spec.name]
    before = fm.calibration.probe_snap
    fm.calibration.probe_snap = [1.0, 1.0, 1.0]
    try:
        probe = {"impact": 6.4, "evidence": 2.6, "reach": float("nan")}
        req = Stage2Request(article(9, 8), spec.name, spec.version, probe, 4.0, 0.9, 0.0)
        (res,) = pipeline.stage2([req])
        assert res.stage == "stage1" and res.probe_scores == probe
        # whole points, NaN → 0; evidence 3.0 passes the gatekeeper (min 3.0)
        assert res.scores == {"impact": 6.0, "evidence": 3.0, "reach": 0.0}
    finally:
        fm.calibration.probe_snap = before


def test_unknown_filter_is_a_clear_error(pipeline):
    with pytest.raises(PipelineError, match="not loaded"):
        pipeline.route([], "nope")


def test_load_named_filter_without_artifacts_names_train(tmp_path, monkeypatch):
    from model_helpers import write_spec

    from filters import spec as spec_mod

    path = write_spec(tmp_path, {"name": "empty", "version": 1, "dimensions": [{"name": "a", "weight": 1.0}],
                                 "tiers": [{"name": "low", "threshold": 0.0}], "hybrid": {"protected_tier": "low"}})
    with pytest.raises(PipelineError, match="distillery train"):
        Pipeline.load([str(path)])
    monkeypatch.setattr(spec_mod, "FILTERS_ROOT", tmp_path)


def test_deduper_is_a_bounded_lru_of_first_ids():
    d = Deduper(capacity=2)
    assert d.duplicate_of("a", "x1") is None and d.duplicate_of("b", "x2") is None
    assert d.duplicate_of("a", "x9") == "x1"  # other id, same content: a duplicate of the first; refreshes a
    assert d.duplicate_of("c", "x3") is None  # evicts b (least recently used)
    assert d.duplicate_of("a", "x8") == "x1" and d.duplicate_of("b", "x7") is None
    assert len(d) == 2


def test_a_replayed_article_is_never_its_own_duplicate():
    d = Deduper()
    assert d.duplicate_of("h", "a1") is None
    assert d.duplicate_of("h", "a1") is None  # the same article read again (replay after a rebalance)
    assert d.duplicate_of("h", "a2") == "a1"


def test_rejection_record_keeps_payload(pipeline):
    bad = {"id": 7, "title": "", "content": "x"}
    (rej,) = pipeline.prepare([bad])
    assert isinstance(rej, Rejection) and rej.article_id == "7" and rej.payload is bad


def test_commerce_head_from_another_encoder_is_refused(monkeypatch, fake_encoder):
    import models.commerce_head as ch
    from models.artifacts import ArtifactError
    from models.filter_models import commerce_gate

    head = ch.CommerceHead(np.zeros(64), np.ones(64), np.zeros(64), 0.0, 0.5, {"model_id": "all-MiniLM-L6-v2",
                                                                                  "dimension": 384})
    monkeypatch.setattr(ch, "load_default", lambda: head)
    with pytest.raises(ArtifactError, match="model_id='all-MiniLM-L6-v2'.*train-commerce"):
        commerce_gate(fake_encoder)
    head.embedding = fake_encoder.fingerprint()
    gate = commerce_gate(fake_encoder)
    assert gate.head is head and gate.threshold == 0.5


def test_escalation_follows_the_artifacts_not_whether_this_process_loaded_the_student(trained, fake_encoder,
                                                                                         tmp_path):
    import shutil

    spec, _, run = trained
    directory = tmp_path / "artifacts"
    shutil.copytree(run.out_dir, directory)
    (directory / "student").mkdir(exist_ok=True)
    (directory / "student" / "student.json").write_text("{}")  # the artifacts hold a student
    fm = FilterModels.load(spec, fake_encoder, directory=directory, with_student=False)  # ... not loaded here
    assert fm.has_student and fm.student is None and fm.escalates
    probe_only = Pipeline(fake_encoder, {spec.name: fm}, None)
    prepared = [p for p in probe_only.prepare([article(1, 0), article(2, 8), article(3, 7)])
                if isinstance(p, Prepared)]
    routed = probe_only.route(prepared, spec.name)
    requests = [r for r in routed if isinstance(r, Stage2Request)]
    assert requests, "a probe-only process must escalate like an all-roles one"
    assert all(r.received_at == prepared[0].received_at > 0 for r in requests)  # the one arrival time
    with pytest.raises(PipelineError, match="did not load it: run Stage 2 in a worker with the stage2 role"):
        probe_only.stage2(requests)
    # stage1_only turns escalation off on purpose (evaluation of the probe alone)
    fm.stage1_only = True
    assert all(isinstance(r, Result) and r.stage in ("stage1", "prefilter") for r in probe_only.route(prepared,
                                                                                                      spec.name))


def _nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("payload", "code", "message", "ident"),
    [
        (b'{"id": "big", "title": "T", "content": "' + b"x" * 600_000 + b'"}', "too_large", "600,0", "big"),
        (b'{"id": "ctl", "title": "T", "content": "' + b"\\u0001" * 100_000 + b'"}', "too_large", "bytes", "ctl"),
        (b'{"id": "deep", "title": "T", "content": "some text", "extra": ' + b"[" * 300 + b"]" * 300 + b"}",
         "too_deep", "more than 32 levels", "deep"),
        (b'{"id": 42, "title": "Caf\xe9", "content": "text"}', "invalid_utf8", "byte offset 24 (bytes e9", "42"),
        (b'{"id": "half", "title": ', "invalid_json", "not valid JSON", "half"),
        ({"id": "nested", "title": "T", "content": "c", "m": _nested(40)}, "too_deep", "nested", "nested"),
    ],
)
def test_payload_limits_are_checked_before_parsing_with_a_code_and_the_readable_id(pipeline, payload, code, message,
                                                                                  ident):
    (rej,) = pipeline.prepare([payload])
    assert isinstance(rej, Rejection) and rej.kind == "invalid"
    assert (rej.code, rej.article_id) == (code, ident)
    assert message in rej.reason


def test_duplicates_are_decided_in_prepare_with_a_bounded_reason(pipeline):
    from models.pipeline import Deduper

    d = Deduper()
    first = pipeline.prepare([article(1, 3)], deduper=d)
    again = pipeline.prepare([article(1, 3)], deduper=d)  # a replay: processed again as itself
    other = pipeline.prepare([{**article(1, 3), "id": "other"}], deduper=d)
    assert isinstance(first[0], Prepared) and isinstance(again[0], Prepared)
    (dup,) = other
    assert isinstance(dup, Rejection) and (dup.kind, dup.reason, dup.code) == ("duplicate", "duplicate", "duplicate")
    assert dup.duplicate_of == "a1" and dup.content_hash == first[0].content_hash


def test_stage2_blends_each_request_by_its_article_language(pipeline, trained):
    from dataclasses import replace

    spec = trained[0]
    fm = pipeline.filters[spec.name]
    n = len(spec.dimension_names)
    before = fm.calibration
    fm.student = FakeStudent(spec.dimension_names, offset=0.3)
    fm.calibration = replace(before, applied=False, snap=None, blend=[1.0] * n, blend_by_language={"nl": [0.0] * n})
    try:
        arts = [article(1, 8, language="nl"), article(2, 8, language="en"), article(3, 8)]
        prepared = [p for p in pipeline.prepare(arts) if isinstance(p, Prepared)]
        requests = [r for r in pipeline.route(prepared, spec.name) if isinstance(r, Stage2Request)]
        assert [r.article["id"] for r in requests] == ["a1", "a2", "a3"]
        results = pipeline.stage2(requests)
        student = fm.student.predict([r.article for r in requests])
        probe0 = np.clip([requests[0].probe_scores[d] for d in spec.dimension_names], 0, 10)
        assert np.abs(np.clip(student[0], 0, 10) - probe0).max() > 0.1  # the two sources differ: the test can tell
        # Dutch: the probe alone (weight 0); English and no language: the global blend (the student alone)
        assert results[0].scores == pytest.approx({d: min(10.0, max(0.0, requests[0].probe_scores[d]))
                                                   for d in spec.dimension_names}, abs=1e-5)
        for res, raw in zip(results[1:], student[1:], strict=True):
            assert res.scores == pytest.approx(dict(zip(spec.dimension_names, np.clip(raw, 0, 10), strict=True)),
                                               abs=1e-5)
    finally:
        fm.student, fm.calibration = None, before
