"""Labelling runs against the fake server: errors recorded and the run continues, cache, resume, cost summary."""

from __future__ import annotations

import json

import pytest

from models.oracle.cache import OracleCache
from models.oracle.client import OracleClient
from models.oracle.labeling import LabelingRun, RunPaths, format_summary
from models.oracle.pricing import Price
from models.oracle.providers import make_provider

PRICE = Price(1.0, 2.0)  # USD per 1M tokens: 1000 in + 200 out = 0.0014 per call


class NoSleep:
    async def __call__(self, delay: float) -> None:
        return None


def _run(spec, fake, monkeypatch, tmp_path, provider="openai", cache=True, **kw) -> LabelingRun:
    env = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}[provider]
    monkeypatch.setenv(env, "k")
    suffix = "/v1beta" if provider == "gemini" else "/v1"
    client = OracleClient(make_provider(provider, fake.url + suffix), "test-model", concurrency=3, sleep=NoSleep(),
                          seed=0)
    reply_cache = OracleCache(tmp_path / "cache.sqlite") if cache else None
    return LabelingRun(spec, client, provider=provider, cache=reply_cache, price=PRICE, workers=3, **kw)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("provider", ["openai", "gemini", "anthropic"])
async def test_labels_in_shared_row_format(oracle_spec, fake_oracle, monkeypatch, tmp_path, make_articles, provider):
    out = tmp_path / "labels.jsonl"
    summary = await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path, provider).run(
        make_articles(3), out, progress=False)
    rows = _lines(out)
    assert summary["succeeded"] == 3 and summary["failed"] == 0
    assert sorted(r["id"] for r in rows) == ["art-0", "art-1", "art-2"]
    row = rows[0]
    assert set(row) >= {"id", "title", "text", "url", "source", "published", "language", "filter", "filter_version",
                        "oracle", "prompt_hash", "analyzed_at", "scores", "content_type", "evidence"}
    assert row["filter"] == "tiny" and row["filter_version"] == 1
    assert row["oracle"] == f"{provider}:test-model"
    assert row["scores"] == {"impact": 6.0, "evidence": 5.0, "reach": 4.0}
    assert row["prompt_hash"] == summary["prompt_hash"] and len(row["prompt_hash"]) == 12
    assert row["analyzed_at"].endswith("Z")


async def test_bad_replies_are_recorded_and_the_run_continues(oracle_spec, fake_oracle, monkeypatch, tmp_path,
                                                              make_articles, label_factory):
    missing = label_factory()
    del missing["evidence"]
    fake_oracle.plan = {
        "Marker0 ": ['{"impact": {"score": 5'],  # malformed JSON
        "Marker1 ": [label_factory(reach={"score": 12, "evidence": "x"})],  # out of range
        "Marker2 ": [missing],  # missing dimension
        "Marker3 ": [429, 429],  # retried, then fine
        "Marker4 ": [400],  # not retryable
    }
    out = tmp_path / "labels.jsonl"
    summary = await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(make_articles(6), out, progress=False)
    assert summary["succeeded"] == 2 and summary["failed"] == 4
    assert summary["errors_by_kind"] == {"http_400": 1, "malformed_json": 1, "missing_dimensions": 1,
                                         "out_of_range": 1}
    assert summary["retries"] == 2 and summary["http_attempts"] == 8
    assert sorted(r["id"] for r in _lines(out)) == ["art-3", "art-5"]
    errors = {e["article_id"]: e for e in _lines(RunPaths(out).errors)}
    assert "missing dimensions ['evidence']" in errors["art-2"]["error"]
    assert "reach.score 12 is outside 0-10" in errors["art-1"]["error"]
    assert errors["art-0"]["reply"] == '{"impact": {"score": 5'
    metrics = {m["article_id"]: m for m in _lines(RunPaths(out).metrics)}
    assert metrics["art-3"]["attempts"] == 3 and metrics["art-3"]["retries"] == 2 and metrics["art-3"]["success"]
    assert metrics["art-0"]["success"] is False and metrics["art-0"]["error_kind"] == "malformed_json"
    assert metrics["art-0"]["cost_usd"] == pytest.approx(0.0014)  # a bad reply is still paid for
    assert metrics["art-4"]["cost_usd"] == 0.0


async def test_rerun_retries_only_failures(oracle_spec, fake_oracle, monkeypatch, tmp_path, make_articles):
    fake_oracle.plan = {"Marker1 ": ["not json"]}
    out = tmp_path / "labels.jsonl"
    await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(make_articles(3), out, progress=False)
    before = len(fake_oracle.requests)
    summary = await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(make_articles(3), out, progress=False)
    assert summary["skipped_already_done"] == 2 and summary["attempted"] == 1 and summary["succeeded"] == 1
    assert len(fake_oracle.requests) == before + 1
    assert sorted(r["id"] for r in _lines(out)) == ["art-0", "art-1", "art-2"]


async def test_cache_hits_on_rerun_cost_nothing(oracle_spec, fake_oracle, monkeypatch, tmp_path, make_articles):
    first = tmp_path / "a.jsonl"
    await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(make_articles(4), first, progress=False)
    assert len(fake_oracle.requests) == 4
    second = tmp_path / "b.jsonl"  # a fresh output: nothing to resume, everything from the cache
    summary = await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(make_articles(4), second, progress=False)
    assert len(fake_oracle.requests) == 4
    assert summary["cache_hits"] == 4 and summary["cache_hit_rate"] == 1.0 and summary["succeeded"] == 4
    assert summary["cost_usd"] == 0.0 and summary["cost_per_1000_articles_usd"] is None
    assert [r["scores"] for r in _lines(second)] == [r["scores"] for r in _lines(first)]


async def test_cache_is_keyed_by_prompt(oracle_spec, fake_oracle, monkeypatch, tmp_path, make_articles):
    await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(make_articles(2), tmp_path / "a.jsonl",
                                                                    progress=False)
    oracle_spec.prompt_path.write_text("A changed prompt.\n{{ARTICLE}}\n", encoding="utf-8")
    summary = await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(make_articles(2), tmp_path / "b.jsonl",
                                                                              progress=False)
    assert summary["cache_hits"] == 0 and len(fake_oracle.requests) == 4


async def test_resume_after_interruption(oracle_spec, fake_oracle, monkeypatch, tmp_path, make_articles):
    out = tmp_path / "labels.jsonl"
    run = _run(oracle_spec, fake_oracle, monkeypatch, tmp_path, cache=False)
    await run.run(make_articles(5), out, limit=2, progress=False)
    # an interrupted write leaves half a line behind
    with out.open("a") as fh:
        fh.write('{"id": "art-9", "title": "cut')
    summary = await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path, cache=False).run(
        make_articles(5), out, progress=False)
    assert summary["skipped_already_done"] == 2 and summary["attempted"] == 3
    ids = [r["id"] for r in _lines(out)]
    assert sorted(ids) == [f"art-{i}" for i in range(5)] and len(ids) == 5
    assert len(fake_oracle.requests) == 5


async def test_invalid_input_rows_are_skipped_with_reason(oracle_spec, fake_oracle, monkeypatch, tmp_path,
                                                          make_articles):
    articles = make_articles(2) + [{"id": "empty", "title": "T", "text": "  "}, {"title": "no id", "text": "x"}]
    out = tmp_path / "labels.jsonl"
    summary = await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(articles, out, progress=False)
    assert summary["skipped_invalid"] == 2 and summary["succeeded"] == 2
    kinds = [(e["article_id"], e["error"]) for e in _lines(RunPaths(out).errors)]
    assert ("empty", "article has no text (content or text)") in kinds


async def test_cost_summary_arithmetic(oracle_spec, fake_oracle, monkeypatch, tmp_path, make_articles):
    fake_oracle.plan = {"Marker1 ": ["nope"]}
    out = tmp_path / "labels.jsonl"
    summary = await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(make_articles(4), out, progress=False)
    # 4 paid calls x (1000 x $1 + 200 x $2) / 1M = $0.0056 in all, $1.40 per 1,000 articles sent
    assert summary["paid_articles"] == 4
    assert summary["input_tokens"] == 4000 and summary["output_tokens"] == 800
    assert summary["cost_usd"] == pytest.approx(0.0056)
    assert summary["cost_per_1000_articles_usd"] == pytest.approx(1.4)
    assert json.loads(RunPaths(out).summary.read_text())["cost_usd"] == pytest.approx(0.0056)
    text = format_summary(summary)
    assert "$0.0056" in text and "$1.4000 per 1,000 articles" in text and "failed 1" in text


async def test_unknown_price_is_reported_not_guessed(oracle_spec, fake_oracle, monkeypatch, tmp_path, make_articles):
    run = _run(oracle_spec, fake_oracle, monkeypatch, tmp_path)
    run.price = None
    summary = await run.run(make_articles(1), tmp_path / "l.jsonl", progress=False)
    assert summary["cost_usd"] is None and "pass --price-in/--price-out" in format_summary(summary)


async def test_prefilter_blocked_articles_are_not_sent(oracle_spec, fake_oracle, monkeypatch, tmp_path, make_articles):
    from filters.prefilter import Prefilter
    from filters.spec import PrefilterRules

    articles = make_articles(3)
    articles[1]["url"] = "https://blocked.example/news/1"
    rules = PrefilterRules(domain_exclusions={"blocked": ["blocked.example"]})
    run = _run(oracle_spec, fake_oracle, monkeypatch, tmp_path, prefilter=Prefilter(rules))
    summary = await run.run(articles, tmp_path / "l.jsonl", progress=False)
    assert summary["succeeded"] == 2 and summary["skipped_prefilter"] == 1 and summary["skipped_short"] == 0
    assert summary["prefilter_reasons"] == {"excluded_domain_blocked": 1}
    assert fake_oracle.count("Marker1 ") == 0 and len(fake_oracle.requests) == 2


async def test_short_articles_are_not_sent_to_the_oracle(oracle_spec, fake_oracle, monkeypatch, tmp_path,
                                                         make_articles):
    """The length rule lives in labelling: content under oracle.min_content_length (300) is skipped with a reason."""
    articles = make_articles(3)
    articles[1]["text"] = "A two-line RSS snippet about a heat pump subsidy."
    out = tmp_path / "labels.jsonl"
    summary = await _run(oracle_spec, fake_oracle, monkeypatch, tmp_path).run(articles, out, progress=False)
    assert summary["attempted"] == 2 and summary["succeeded"] == 2
    assert summary["skipped_short"] == 1 and summary["skipped_prefilter"] == 0
    assert summary["prefilter_reasons"] == {"too_short_for_oracle_300chars": 1}
    assert sorted(r["id"] for r in _lines(out)) == ["art-0", "art-2"]
    errors = _lines(RunPaths(out).errors)
    assert [(e["article_id"], e["kind"]) for e in errors] == [("art-1", "skipped_short")]
    assert "under the labelling minimum 300 (oracle.min_content_length of tiny/v1)" in errors[0]["error"]
    assert "too short 1" in format_summary(summary)
