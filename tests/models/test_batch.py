"""Batch scoring goes through Pipeline.score_batch: same results as calling it directly, resumable by id."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from filters.prefilter import Prefilter
from filters.spec import parse_spec
from models.batch import BatchError, done_keys, read_input, rejections_path, score_file
from models.calibration import Calibration
from models.embedding import hashing_encoder
from models.filter_models import FilterModels
from models.pipeline import Pipeline
from models.probe import MLP, Probe, ProbeConfig
from models.router import Router

VOLATILE = ("latency_ms", "scored_at")


class CountingStudent:
    """Raw scores from the text length, so Stage-2 results are deterministic."""

    def __init__(self, n_dims: int) -> None:
        self.n_dims = n_dims

    def predict(self, articles, batch_size: int = 16) -> np.ndarray:
        return np.array([[len(a["content"]) % 11 * 0.9] * self.n_dims for a in articles], dtype=np.float32)


@pytest.fixture
def tiny_pipeline(tiny_spec_data, tmp_path) -> Pipeline:
    """A real Pipeline from tiny parts: hashing encoder, seeded random probe, WA router, counting student."""
    spec = parse_spec({**tiny_spec_data, "prefilter": {"min_content_length": 40}}, tmp_path / "f" / "filter.yaml")
    torch.manual_seed(0)
    dim = 16
    probe = Probe(spec.dimension_names, spec.weights, np.zeros(dim, np.float32), np.full(dim, 0.2, np.float32),
                  [MLP(dim, 3, (8,), 0.0)], ProbeConfig(hidden=(8,), dropout=0.0))
    encoder = hashing_encoder(dim, model_id="hashing-batch")
    wa = probe.weighted_average(probe.predict(encoder.encode(_articles(30))))
    router = Router("wa_threshold", threshold=float(np.median(wa)), protected_threshold=4.0)  # half go to Stage 2
    fm = FilterModels(spec, probe, router, Calibration.identity(spec.dimension_names), CountingStudent(3),
                      Prefilter.for_spec(spec), fingerprint="test-fp")
    return Pipeline(encoder, {spec.name: fm}, None)


def _articles(n: int) -> list[dict]:
    words = ["solar", "grid", "policy", "river", "market", "storage", "city", "heat", "farm", "steel"]
    out = []
    for i in range(n):
        body = " ".join(words[(i + k) % len(words)] for k in range(3 + i % 9)) * (1 + i % 4)
        out.append({"id": f"b{i}", "title": f"Batch item {i}", "text": body, "url": f"https://example.org/{i}"})
    return out


def _write_input(path, articles, extra_lines=()):
    path.write_text("".join(json.dumps(a) + "\n" for a in articles) + "".join(f"{x}\n" for x in extra_lines))
    return path


def _stable(rows):
    """Rows without the volatile fields; probe scores to 5 decimals (a batch of 7 and one of 30 differ in float32
    summation order at 1e-7)."""
    def clean(r):
        out = {k: v for k, v in r.items() if k not in VOLATILE}
        if out.get("probe_scores"):
            out["probe_scores"] = {k: round(v, 5) for k, v in out["probe_scores"].items()}
        return out
    return sorted((clean(r) for r in rows), key=lambda r: r["article_id"])


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_output_equals_pipeline_score_batch(tiny_pipeline, tmp_path):
    articles = _articles(30)
    src = _write_input(tmp_path / "in.jsonl", articles, ['{"id": "broken", "title": ""}', "not json at all"])
    summary = score_file(tiny_pipeline, src, tmp_path / "out.jsonl", batch_size=7, progress=False)
    direct, rejected = tiny_pipeline.score_batch([*articles, {"id": "broken", "title": ""}, "not json at all"])
    written = _lines(tmp_path / "out.jsonl")
    assert _stable(written) == _stable([r.as_dict() for r in direct])
    assert {r["stage"] for r in written} == {"prefilter", "stage1", "stage2"}  # every branch is exercised
    rejections = _lines(rejections_path(tmp_path / "out.jsonl"))
    assert sorted((r["kind"], r["key"]) for r in rejections) == [("invalid", "broken"), ("invalid", "line:32")]
    assert len(rejected) == 2
    assert summary["scored_articles"] == 32 and summary["results"] == 30 and summary["rejected"] == {"invalid": 2}
    assert summary["articles_per_s"] > 0


def test_summary_names_every_file_it_wrote(tiny_pipeline, tmp_path):
    from models.batch import format_summary

    src = _write_input(tmp_path / "in.jsonl", _articles(3), ["not json"])
    out = tmp_path / "out.jsonl"
    summary = score_file(tiny_pipeline, src, out, progress=False)
    written = sorted(str(p) for p in tmp_path.iterdir() if p != src)
    assert sorted(summary["files"]) == written == sorted([str(out), str(rejections_path(out))])
    text = format_summary(summary)
    assert all(f in text for f in written), text
    assert f"rejections -> {rejections_path(out)}" in text


def test_batch_dedupes_like_the_stream_across_batches_but_not_a_rerun_of_the_same_id(tiny_pipeline, tmp_path):
    base = _articles(4)
    copy = {**base[0], "id": "copy-of-b0"}  # same title and text under another id, in a later batch
    src = _write_input(tmp_path / "in.jsonl", [*base, copy])
    summary = score_file(tiny_pipeline, src, tmp_path / "out.jsonl", batch_size=2, progress=False)
    assert summary["rejected"] == {"duplicate": 1} and summary["results"] == 4
    (row,) = _lines(rejections_path(tmp_path / "out.jsonl"))
    assert (row["key"], row["kind"], row["code"], row["duplicate_of"]) == ("copy-of-b0", "duplicate", "duplicate",
                                                                         "b0")
    assert len(row["content_hash"]) == 64 and row["content_hash"] not in row["reason"]
    # the same article twice in one call (a resent message) is scored, not blocked as its own duplicate
    results, rejected = tiny_pipeline.score_batch([base[1], base[1]])
    assert rejected == [] and [r.article_id for r in results] == ["b1", "b1"]


def test_rerun_resumes_and_skips_done_ids(tiny_pipeline, tmp_path):
    src = _write_input(tmp_path / "in.jsonl", _articles(20), ["not json"])
    out = tmp_path / "out.jsonl"
    first = score_file(tiny_pipeline, src, out, batch_size=4, limit=9, progress=False)
    assert first["scored_articles"] == 9
    with out.open("a") as fh:  # an interrupted write
        fh.write('{"article_id": "b19", "filt')
    calls = []
    original = tiny_pipeline.score_batch

    def spy(payloads, deduper=None):
        calls.append([p.get("id") if isinstance(p, dict) else p for p in payloads])
        return original(payloads, deduper)

    tiny_pipeline.score_batch = spy
    second = score_file(tiny_pipeline, src, out, batch_size=4, progress=False)
    assert second["skipped_already_done"] == 9 and second["scored_articles"] == 12
    sent = [x for batch in calls for x in batch]
    assert sent == [f"b{i}" for i in range(9, 20)] + ["not json"]
    ids = [r["article_id"] for r in _lines(out)]
    assert sorted(ids) == sorted(f"b{i}" for i in range(20)) and len(ids) == 20
    third = score_file(tiny_pipeline, src, out, batch_size=4, progress=False)
    assert third["scored_articles"] == 0 and done_keys(out) >= {"b0", "line:21"}


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError("no pyarrow")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    path = tmp_path / "in.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(BatchError, match="needs pyarrow; install it"):
        read_input(path)


def test_missing_input_names_the_file(tmp_path):
    with pytest.raises(BatchError, match="nope.jsonl: no such input file"):
        read_input(tmp_path / "nope.jsonl")


def test_score_command_uses_the_loaded_pipeline(tiny_pipeline, tmp_path, monkeypatch):
    from distillery.cli import app
    from distillery.commands import score as score_command

    seen = {}

    def fake_load(filters, device=None):
        seen["filters"] = filters
        return tiny_pipeline

    monkeypatch.setattr(score_command, "load_pipeline", fake_load)
    src = _write_input(tmp_path / "in.jsonl", _articles(5))
    result = CliRunner().invoke(app, ["score", "--filters", "tiny,other", "--input", str(src), "--output",
                                      str(tmp_path / "o.jsonl"), "--batch-size", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert seen["filters"] == ["tiny", "other"]
    assert "scored 5 articles (0 already done)" in result.output and "articles/s" in result.output


@pytest.mark.broker
def test_to_kafka_publishes_and_active_select_reads_a_topic(bootstrap, tiny_spec_data, tmp_path, monkeypatch):
    """A backfill goes to <prefix>articles.raw keyed by id; `active select --topic` reads scores.<filter>."""
    import asyncio
    import uuid

    import yaml

    from distillery.cli import app
    from models.records import Result
    from streams.clients import produce_lines, read_topics
    from streams.records import result_record
    from streams.settings import Settings

    prefix = f"t{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("DISTILLERY_TOPIC_PREFIX", prefix)
    settings = Settings.from_env()
    src = _write_input(tmp_path / "in.jsonl", _articles(6))
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--to-kafka"])
    assert res.exit_code == 0, res.output
    assert "published 6 articles" in res.output
    got = asyncio.run(read_topics(settings, [f"{prefix}articles.raw"], limit=6, max_time=30))
    assert sorted(m.key.decode() for m in got) == [f"b{i}" for i in range(6)]

    results = [Result(f"b{i}", "tiny", 1, "stage2", {d: 6.0 + i for d in ("impact", "evidence", "reach")},
                      6.0 + i, "medium", probe_scores={d: 2.0 for d in ("impact", "evidence", "reach")})
               for i in range(6)]
    asyncio.run(produce_lines(settings, [result_record(r) for r in results], topic=f"{prefix}scores.tiny"))
    spec_path = tmp_path / "tiny" / "v1" / "filter.yaml"
    spec_path.parent.mkdir(parents=True)
    spec_path.write_text(yaml.safe_dump(tiny_spec_data))
    out = tmp_path / "picked.jsonl"
    res = CliRunner().invoke(app, ["active", "select", "--filter", str(spec_path), "--topic", "scores.tiny",
                                   "--articles", str(src), "--budget", "4", "--out", str(out),
                                   "--max-time", "20"])
    assert res.exit_code == 0, res.output
    assert "selected 4 of 6 results" in res.output
    assert len(out.read_text().splitlines()) == 4
