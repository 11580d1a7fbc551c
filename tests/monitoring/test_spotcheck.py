"""Oracle spot-check: stratified hourly sampling and a live MAE that alerts above the held-out MAE."""

from __future__ import annotations

import json

import pytest

from monitoring.errors import MonitorConfigError
from monitoring.metrics import Metrics
from monitoring.spotcheck import Sample, SpotCheck, SpotCheckRunner, StratifiedSampler, oracle_scorer, stratum


def _plain_mean(_filter: str, scores) -> float:
    return sum(scores.values()) / len(scores)


def test_stratum_bins():
    assert [stratum(x) for x in (0.0, 1.99, 2.0, 5.0, 7.9, 8.0, 10.0)] == [0, 0, 1, 2, 3, 4, 4]


def test_sampler_spreads_k_over_strata_and_hands_each_period_out_once():
    sampler = StratifiedSampler(k=10, period_s=3_600, seed=1)
    # 990 low scores and 10 high ones within the first hour
    for i in range(1_000):
        wa = 9.0 if i % 100 == 0 else 1.0 + (i % 7) * 0.1
        sampler.offer("tiny", {"id": f"a{i}", "title": "t", "content": "c"}, wa, now=float(i))
    assert sampler.due(now=3_599.0) == []  # the hour is not over
    picked = sampler.due(now=3_600.0)
    assert len(picked) == 4  # 2 slots per stratum (ceil(10 / 5)); only two strata were seen
    assert sorted(s.stratum for s in picked) == [0, 0, 4, 4]
    assert all(s.period == 0 and s.filter == "tiny" for s in picked)
    assert sampler.due(now=7_200.0) == []  # handed out once


def test_sampler_closes_a_period_when_the_next_one_starts():
    sampler = StratifiedSampler(k=5, period_s=10, seed=0)
    for t, wa in enumerate([1.0, 3.0, 5.0, 7.0, 9.0, 1.5]):
        sampler.offer("tiny", {"id": str(t)}, wa, now=float(t))
    sampler.offer("tiny", {"id": "late"}, 5.0, now=12.0)  # period 1 starts, period 0 is closed
    first = sampler.due(now=12.0)
    assert len(first) == 5 and {s.stratum for s in first} == {0, 1, 2, 3, 4}
    assert [s.article["id"] for s in sampler.due(now=20.0)] == ["late"]


async def test_live_mae_alerts_only_above_heldout_plus_margin():
    metrics = Metrics()
    check = SpotCheck({"tiny": 0.6}, _plain_mean, margin=0.3, min_samples=5, metrics=metrics)
    samples = [Sample("tiny", {"id": str(i)}, 4.0, 2, 0) for i in range(10)]

    async def close_oracle(article):
        return {"a": 4.5, "b": 4.5}  # error 0.5 <= 0.6 + 0.3

    assert await check.check(samples, close_oracle, now=0.0) == []
    assert check.live_mae("tiny") == pytest.approx(0.5)
    assert metrics.registry.get_sample_value("distillery_live_mae", {"filter": "tiny"}) == pytest.approx(0.5)
    assert metrics.registry.get_sample_value("distillery_spotchecks_total", {"filter": "tiny"}) == 10

    async def far_oracle(article):
        return {"a": 6.0, "b": 6.0}  # error 2.0

    alerts = await check.check(samples, far_oracle, now=10.0)
    assert len(alerts) == 1  # cooldown: one alert for the episode
    alert = alerts[0]
    assert (alert.filter, alert.signal, alert.detector) == ("tiny", "live_mae", "oracle_spotcheck")
    # fires at the first check that lifts the MAE over 0.6 + 0.3: (10 x 0.5 + 4 x 2.0) / 14 = 0.93
    assert alert.baseline == 0.6 and alert.value == pytest.approx(13 / 14) and alert.window == 14
    assert alert.severity == "warning"  # critical only above held-out + 2 x margin


async def test_oracle_failures_are_counted_not_fatal():
    check = SpotCheck({"tiny": 0.5}, _plain_mean)

    async def broken(article):
        raise RuntimeError("HTTP 503")

    assert await check.check([Sample("tiny", {"id": "1"}, 3.0, 1, 0)], broken) == []
    assert check.failures == {"tiny": 1}


async def test_oracle_scorer_renders_the_prompt_and_validates_the_reply(tiny_spec):
    tiny_spec.prompt_path.parent.mkdir(parents=True, exist_ok=True)
    tiny_spec.prompt_path.write_text("Score this:\n{{ARTICLE}}\nReply in JSON.")
    reply = {d: {"score": 5.0, "evidence": "made up"} for d in tiny_spec.dimension_names}
    reply["content_type"] = "reckoning"
    prompts = []

    class Client:
        async def complete(self, prompt):
            prompts.append(prompt)

            class C:
                class reply:  # noqa: N801 - mimics Completion.reply
                    text = json.dumps(reply)

            return C()

    score = oracle_scorer(tiny_spec, Client())
    scores = await score({"id": "x", "title": "A made-up title", "content": "Some made-up body text."})
    assert scores == {d: 2.5 for d in tiny_spec.dimension_names}  # the spec's "reckoning" penalty, applied in code
    assert "A made-up title" in prompts[0] and prompts[0].startswith("Score this:")


async def test_runner_samples_only_results_with_a_known_article_and_checks_when_due():
    check = SpotCheck({"tiny": 0.2}, _plain_mean, margin=0.1, min_samples=2)
    asked = []

    async def oracle(article):
        asked.append(article["id"])
        return {"a": 8.0}

    runner = SpotCheckRunner(StratifiedSampler(k=10, period_s=100), check, {"tiny": oracle}, articles=3)
    for i in range(5):
        runner.remember({"id": f"a{i}", "title": "made up", "content": "made up"})  # a0, a1 fall out of the LRU
    for i in range(5):
        runner.offer({"kind": "result", "filter": "tiny", "stage": "stage2", "article_id": f"a{i}",
                      "weighted_average": 2.0 + i}, now=10.0)
    runner.offer({"filter": "tiny", "stage": "prefilter", "article_id": "a4", "weighted_average": 0.0}, now=10.0)
    runner.offer({"filter": "other", "stage": "stage1", "article_id": "a4", "weighted_average": 1.0}, now=10.0)
    assert runner.offered == 3
    assert await runner.run_due(now=50.0) == []  # period not over
    alerts = await runner.run_due(now=100.0)
    assert sorted(asked) == ["a2", "a3", "a4"]
    assert len(alerts) == 1 and alerts[0].signal == "live_mae"
    assert check.state()["tiny"]["n"] == 3


def test_runner_build_needs_a_model():
    with pytest.raises(MonitorConfigError, match="needs a model"):
        SpotCheckRunner.build(["tiny"], {}, provider="ollama", model="")

