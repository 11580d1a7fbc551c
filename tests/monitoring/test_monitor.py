"""The Monitor: routes records to the right detectors, alerts on injected shifts, stays quiet otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring.errors import MonitorReferenceError
from monitoring.metrics import Metrics
from monitoring.monitor import Monitor, MonitorConfig, replay, weighted
from monitoring.reference import Reference

WEIGHTS = {"impact": 0.5, "evidence": 0.3, "reach": 0.2}
FAST = MonitorConfig(warmup=600, rate_window=500, residual_warmup=100, cooldown_events=100_000)


class Stream:
    """Synthetic `scores.tiny` results: 10 % prefilter-blocked, 30 % escalated to Stage 2, the rest Stage 1."""

    def __init__(self, seed: int = 7, fingerprint: str = "fp-a") -> None:
        self.rng = np.random.default_rng(seed)
        self.i = 0
        self.fingerprint = fingerprint

    def results(self, n: int, impact: float = 4.0, residual: float = 0.3, escalation: float = 0.3) -> list[dict]:
        out = []
        for _ in range(n):
            self.i += 1
            u = self.rng.random()
            stage = "prefilter" if u < 0.1 else "stage2" if u < 0.1 + escalation else "stage1"
            rec = {"kind": "result", "schema_version": 1, "article_id": f"a{self.i}", "filter": "tiny",
                   "filter_version": 1, "stage": stage, "fingerprint": self.fingerprint, "scores": {},
                   "weighted_average": 0.0, "probe_scores": None}
            if stage != "prefilter":
                mean = {"impact": impact, "evidence": 4.0, "reach": 3.0}
                scores = {k: float(np.clip(self.rng.normal(m, 1.5), 0, 10).round(1)) for k, m in mean.items()}
                rec["scores"] = scores
                rec["weighted_average"] = weighted(scores, WEIGHTS)
                if stage == "stage2":
                    shift = residual + self.rng.normal(0, 0.5)
                    rec["probe_scores"] = {k: max(0.0, v - shift) for k, v in scores.items()}
            out.append(rec)
        return out


def _monitor(**kw) -> Monitor:
    kw.setdefault("config", FAST)
    return Monitor(weights={"tiny": WEIGHTS}, clock=lambda: 1_000.0, **kw)


def test_weighted_average_uses_spec_weights_or_a_plain_mean():
    assert weighted({"impact": 10.0, "evidence": 0.0, "reach": 0.0}, WEIGHTS) == pytest.approx(5.0)
    assert weighted({"a": 2.0, "b": 4.0}, None) == 3.0
    assert np.isnan(weighted({}, WEIGHTS))


def test_stationary_stream_raises_no_alert_and_reports_ok():
    mon, alerts = replay(Stream().results(6_000), _monitor())
    assert alerts == []
    state = mon.state()
    tiny = state["filters"]["tiny"]
    assert tiny["status"] == "ok"
    assert tiny["counts"]["prefilter"] + tiny["counts"]["stage1"] + tiny["counts"]["stage2"] == 6_000
    signals = {d["signal"] for d in tiny["detectors"]}
    assert signals == {"weighted_average", "residual", "rate.prefilter_block", "rate.escalation",
                       "score.impact", "score.evidence", "score.reach"}
    assert all(d["firings"] == 0 for d in tiny["detectors"])
    assert tiny["reference"] == "warm-up window (no reference.json)"
    assert state["global"]["status"] == "ok"
    json.dumps(state, allow_nan=False)  # strict JSON once written (NaN -> null happens in save_state)


def test_score_shift_alerts_on_the_dimension_and_the_weighted_average():
    stream = Stream()
    mon = _monitor()
    assert mon.observe_many(stream.results(3_000)) == []
    alerts = mon.observe_many(stream.results(3_000, impact=6.5))
    by_signal = {a.signal: a for a in alerts}
    assert {"score.impact", "weighted_average"} <= set(by_signal)
    assert "score.evidence" not in by_signal and "score.reach" not in by_signal
    impact = by_signal["score.impact"]
    assert impact.filter == "tiny" and impact.detector == "adwin"
    assert impact.value - impact.baseline > 1.5
    assert by_signal["weighted_average"].reference == "warmup"
    assert mon.state()["filters"]["tiny"]["status"] == "drift"


def test_residual_shift_alerts_without_labels():
    stream = Stream()
    mon = _monitor()
    assert mon.observe_many(stream.results(2_000, residual=0.3)) == []
    alerts = mon.observe_many(stream.results(2_000, residual=1.3))
    residual = [a for a in alerts if a.signal == "residual"]
    assert len(residual) == 1
    assert residual[0].detector == "page_hinkley"
    # Probe scores are floored at 0, so the observed residual is a little below the injected one.
    assert residual[0].baseline == pytest.approx(0.25, abs=0.1)
    assert residual[0].value - residual[0].baseline > 0.5


def test_escalation_rate_shift_alerts():
    stream = Stream()
    mon = _monitor()
    assert mon.observe_many(stream.results(2_000, escalation=0.3)) == []
    alerts = mon.observe_many(stream.results(2_000, escalation=0.55))
    esc = [a for a in alerts if a.signal == "rate.escalation"]
    assert len(esc) == 1 and esc[0].detector == "binomial"
    assert esc[0].baseline == pytest.approx(0.33, abs=0.03)  # 0.3 of all = 0.33 of prefilter-passed


def test_commerce_and_dlq_rates_are_global_and_count_articles_once():
    stream = Stream()
    mon = _monitor()
    rng = np.random.default_rng(1)
    records = []
    for rec in stream.results(3_000):
        records.append(rec)
        records.append({**rec, "filter": "other", "fingerprint": "fp-o"})  # second filter, same article
        if rng.random() < 0.05:
            records.append({"kind": "blocked", "article_id": f"c{rec['article_id']}", "decision": "commerce"})
    assert mon.observe_many(records) == []
    assert mon.commerce.n == mon.dlq.n  # every article counted once in both global rates
    assert 3_000 <= mon.commerce.n <= 3_300
    burst = [{"kind": "blocked", "article_id": f"x{i}", "decision": "commerce"} for i in range(300)]
    burst += [{"kind": "dead_letter", "article_id": None, "stage": "prefilter"} for _ in range(200)]
    alerts = mon.observe_many(burst + stream.results(500))
    assert {(a.filter, a.signal) for a in alerts} >= {("", "rate.commerce_block"), ("", "rate.dlq")}


def test_artifact_reference_is_used_and_named_in_alerts(tmp_path):
    rng = np.random.default_rng(3)
    wa = np.clip(rng.normal(3.8, 1.0, 800), 0, 10).tolist()
    ref_path = Reference(weighted_average=wa, scores={"impact": [4.0] * 50}, residual_mean=0.3, residual_std=0.5,
                         fingerprint="fp-a", rates={"escalation": 0.333}).save(tmp_path / "reference.json")
    ref = Reference.load(ref_path)
    mon = _monitor(references={"tiny": ref})
    stream = Stream()
    mon.observe_many(stream.results(10))
    tiny = mon.filters["tiny"]
    assert tiny.wa.ready and tiny.wa.reference == "artifact:fp-a"  # no warm-up needed
    assert tiny.residual.mean == 0.3 and tiny.escalation.baseline == 0.333
    assert tiny.dim("impact").reference_mean == 4.0
    assert mon.state()["filters"]["tiny"]["reference"].endswith("(artifact:fp-a)")
    alerts = mon.observe_many(stream.results(1_500, impact=7.0))
    assert any(a.signal == "weighted_average" and a.reference == "artifact:fp-a" for a in alerts)


def test_a_reference_of_another_model_is_not_used(tmp_path):
    ref = Reference(weighted_average=[1.0] * 500, fingerprint="old-model")
    mon = _monitor(references={"tiny": ref})
    mon.observe_many(Stream(fingerprint="new-model").results(10))
    tiny = mon.filters["tiny"]
    assert not tiny.wa.ready
    assert "fingerprint old-model != served new-model" in tiny.reference_note


def test_a_new_fingerprint_resets_the_filter_detectors():
    mon = _monitor()
    mon.observe_many(Stream(fingerprint="fp-a").results(1_000))
    assert mon.filters["tiny"].wa.ready
    mon.observe_many(Stream(seed=8, fingerprint="fp-b").results(5))
    tiny = mon.filters["tiny"]
    assert tiny.resets == 1 and tiny.fingerprint == "fp-b" and not tiny.wa.ready


def test_unknown_records_are_ignored_and_counted():
    mon = _monitor()
    assert mon.observe({"kind": "embedded"}) == []
    assert mon.observe({"kind": "result", "filter": "tiny", "stage": "weird"}) == []
    assert mon.ignored == 2 and mon.filters == {}


def test_save_state_and_metrics(tmp_path):
    metrics = Metrics()
    mon = _monitor(metrics=metrics)
    stream = Stream()
    mon.observe_many(stream.results(3_000))
    mon.observe_many(stream.results(2_000, impact=7.0))
    mon.publish_metrics()
    path = mon.save_state(tmp_path / "state" / "monitor.json")
    state = json.loads(path.read_text())
    assert state["filters"]["tiny"]["status"] == "drift"
    assert state["alerts"] and state["alerts"][0]["filter"] == "tiny"
    get = metrics.registry.get_sample_value
    assert get("distillery_drift_alerts_total", {"filter": "tiny", "signal": "score.impact", "detector": "adwin",
                                                  "severity": "critical"}) == 1
    assert get("distillery_drift_active", {"filter": "tiny", "signal": "score.impact"}) == 1
    assert get("distillery_escalation_rate", {"filter": "tiny"}) == pytest.approx(0.33, abs=0.06)
    assert get("distillery_probe_residual_count", {"filter": "tiny"}) == mon.filters["tiny"].counts["stage2"]
    assert get("distillery_drift_statistic", {"filter": "tiny", "signal": "weighted_average", "detector": "ks"}) > 0.1


def test_reference_errors_name_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "reference.json"
    bad.write_text("{not json")
    with pytest.raises(MonitorReferenceError, match=r"reference.json: not valid JSON .* re-run `distillery train`"):
        Reference.load(bad)
    bad.write_text(json.dumps({"weighted_average": ["x"]}))
    with pytest.raises(MonitorReferenceError, match="`weighted_average` holds a non-number"):
        Reference.load(bad)
    assert Reference.for_artifacts(tmp_path / "missing") is None


def test_reference_from_evaluation_results_round_trips(tmp_path):
    from models.records import Result

    results = [
        Result("a", "tiny", 1, "prefilter", {}, 0.0, "low", prefilter_reason="too_short"),
        Result("b", "tiny", 1, "stage1", {"impact": 1.0, "evidence": 1.0, "reach": 1.0}, 1.0, "low"),
        Result("c", "tiny", 1, "stage2", {"impact": 6.0, "evidence": 4.0, "reach": 2.0}, 4.6, "medium",
               probe_scores={"impact": 5.0, "evidence": 4.0, "reach": 2.0}),
        {"article_id": "d", "filter": "tiny", "stage": "stage2", "weighted_average": 3.0,
         "scores": {"impact": 3.0, "evidence": 3.0, "reach": 3.0},
         "probe_scores": {"impact": 3.0, "evidence": 3.0, "reach": 3.0}},
    ]
    ref = Reference.from_results(results, WEIGHTS, "fp-9", heldout_mae=0.61)
    assert ref.weighted_average == [1.0, 4.6, 3.0]
    assert ref.scores == {"impact": [6.0, 3.0], "evidence": [4.0, 3.0], "reach": [2.0, 3.0]}
    assert ref.residual_mean == pytest.approx(0.25)  # (0.5 + 0.0) / 2: impact weight 0.5 x 1.0 point
    assert ref.residual_std == pytest.approx(np.std([0.5, 0.0], ddof=1))
    assert ref.rates == {"escalation": pytest.approx(2 / 3), "prefilter_block": 0.25}
    loaded = Reference.load(ref.save(tmp_path / "artifacts" / "reference.json"))
    assert loaded.heldout_mae == 0.61 and loaded.fingerprint == "fp-9" and loaded.rates == ref.rates
