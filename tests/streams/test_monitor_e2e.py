"""End to end on the embedded broker: a shifted score stream on scores.<filter> raises an alert on alerts.drift."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.records import Result
from streams import records
from streams.clients import produce_lines, read_topics
from streams.topics import Topics

pytestmark = pytest.mark.broker

WEIGHTS = {"impact": 0.6, "evidence": 0.4}


def _results(rng: np.random.Generator, start: int, n: int, impact: float) -> list[bytes]:
    """Stage-2 results of a made-up filter `drifty`, impact around `impact`, evidence around 4."""
    out = []
    for i in range(start, start + n):
        scores = {"impact": float(np.clip(rng.normal(impact, 1.0), 0, 10)),
                  "evidence": float(np.clip(rng.normal(4.0, 1.0), 0, 10))}
        wa = sum(scores[k] * w for k, w in WEIGHTS.items())
        probe = {k: v - 0.2 for k, v in scores.items()}
        result = Result(f"art{i}", "drifty", 1, "stage2", scores, wa, "low", probe_scores=probe, fingerprint="fp-e2e")
        out.append(records.result_record(result))
    return out


def _state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _wait_for(predicate, timeout: float, what: str, log: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{log[-3000:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_shifted_stream_raises_a_drift_alert(settings, start_worker, tmp_path):
    state_path = tmp_path / "monitor_state.json"
    port = _free_port()
    worker = start_worker(roles="monitor", filters="drifty", extra_env={
        "DISTILLERY_METRICS_HOST": "127.0.0.1",
        "DISTILLERY_METRICS_PORT": str(port),
        "DISTILLERY_MONITOR_STATE": str(state_path),
        "DISTILLERY_MONITOR_STATE_INTERVAL": "0.5",
        "DISTILLERY_MONITOR_WARMUP": "300",
        "DISTILLERY_MONITOR_KS_WINDOW": "200",
        "DISTILLERY_MONITOR_KS_STEP": "50",
        "DISTILLERY_MONITOR_RATE_WINDOW": "200",
        "DISTILLERY_MONITOR_COOLDOWN_EVENTS": "100000",
    })
    worker.wait_ready()
    topics = Topics(settings.topic_prefix)
    rng = np.random.default_rng(11)

    # Phase 1: a stationary stream; the monitor builds its warm-up reference and stays quiet.
    asyncio.run(produce_lines(settings, _results(rng, 0, 600, impact=4.0), topic=topics.scores("drifty")))
    _wait_for(lambda: _state(state_path).get("records", 0) >= 600, 60, "the monitor to read phase 1", worker.log())
    state = _state(state_path)
    assert state["filters"]["drifty"]["status"] == "ok"
    assert state["alerts"] == []

    # Phase 2: impact jumps by 3 points.
    asyncio.run(produce_lines(settings, _results(rng, 600, 600, impact=7.0), topic=topics.scores("drifty")))

    def has_alert(messages) -> bool:
        return any(orjson.loads(m.value).get("signal") == "weighted_average" for m in messages)

    messages = asyncio.run(read_topics(settings, [topics.drift], until=has_alert, idle_timeout=0, max_time=60))
    alerts = [orjson.loads(m.value) for m in messages]
    assert alerts, f"no alert on {topics.drift}\n{worker.log()[-3000:]}"
    wa = next(a for a in alerts if a["signal"] == "weighted_average")
    assert wa["kind"] == "drift_alert" and wa["schema_version"] == 1
    assert (wa["filter"], wa["detector"], wa["reference"]) == ("drifty", "ks", "warmup")
    assert wa["details"]["window_mean"] > wa["details"]["reference_mean"] + 0.5  # the window still mixes old values
    assert {m.key for m in messages} >= {b"drifty:weighted_average"}
    assert any(a["signal"] == "score.impact" and a["detector"] == "adwin" for a in alerts)
    assert not any(a["signal"] == "score.evidence" for a in alerts)
    _wait_for(lambda: _state(state_path).get("records", 0) >= 1_200, 30, "the monitor to read phase 2", worker.log())
    # The worker's /metrics endpoint: alert counters, drift gauges and the consumer lag of its partitions.
    _wait_for(lambda: any(k[0] == "distillery_consumer_lag" for k in _scrape(port)), 30, "consumer lag on /metrics",
              worker.log())
    samples = _scrape(port)
    ks = (("detector", "ks"), ("filter", "drifty"), ("severity", "warning"), ("signal", "weighted_average"))
    assert samples.get(("distillery_drift_alerts_total", ks), 0) + samples.get(
        ("distillery_drift_alerts_total", ks[:2] + (("severity", "critical"),) + ks[3:]), 0) == 1
    assert samples[("distillery_drift_active", (("filter", "drifty"), ("signal", "weighted_average")))] == 1
    lag_topics = {dict(k[1])["topic"] for k in samples if k[0] == "distillery_consumer_lag"}
    assert topics.scores("drifty") in lag_topics
    worker.stop()  # a clean stop writes the final state
    state = _state(state_path)
    assert state["records"] == 1_200 and state["filters"]["drifty"]["status"] == "drift"
    assert {a["signal"] for a in state["alerts"]} >= {"weighted_average", "score.impact"}
    assert "drift alert" in worker.log()


def test_monitor_reads_what_the_cascade_publishes(settings, start_worker, tmp_path):
    """All roles in one worker (fake pipeline): results, blocked and dead letters reach the monitor's detectors."""
    from stream_helpers import article, produce

    state_path = tmp_path / "monitor_state.json"
    worker = start_worker(roles="prefilter,probe,stage2,monitor", extra_env={
        "DISTILLERY_MONITOR_STATE": str(state_path), "DISTILLERY_MONITOR_STATE_INTERVAL": "0.5"})
    worker.wait_ready()
    lines = [article(f"n{i}", f"Plain made-up story {i}") for i in range(10)]
    lines += [article(f"d{i}", f"A deep made-up story {i}") for i in range(4)]
    lines += [article(f"s{i}", f"Short {i}", content="tiny made-up body") for i in range(3)]
    lines += [article(f"c{i}", f"Coupon made-up deal {i}") for i in range(2)]
    lines += [b"{not json", b"[1, 2]"]
    produce(settings, lines)
    _wait_for(lambda: _state(state_path).get("records", 0) >= 2 * 17 + 2 + 2, 60, "the monitor to read everything",
              worker.log())
    state = _state(state_path)
    assert state["records"] == 38 and state["ignored"] == 0
    for name in ("alpha", "beta"):
        assert state["filters"][name]["counts"] == {"stage1": 10, "stage2": 4, "prefilter": 3}
    commerce, dlq = state["global"]["detectors"]
    assert commerce["signal"] == "rate.commerce_block" and dlq["signal"] == "rate.dlq"
    assert commerce["updates"] == dlq["updates"] == 17 + 2 + 2  # each article counted once across filters
    assert commerce["events"] == 2 and dlq["events"] == 2
    assert commerce["running_rate"] == pytest.approx(2 / 21) and dlq["running_rate"] == pytest.approx(2 / 21)
