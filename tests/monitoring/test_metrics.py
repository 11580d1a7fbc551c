"""Metrics: values land in the right series, and the HTTP endpoint parses as Prometheus text."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.records import Result
from monitoring.metrics import Metrics, reason_label


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_reason_label_bounds_cardinality():
    assert reason_label("content_too_short_123chars") == "content_too_short_Nchars"
    assert reason_label("commerce_head:0.93") == "commerce_head"
    assert reason_label("commerce:deals") == "commerce:deals"
    assert reason_label("  ") == "unknown"
    assert len(reason_label("x" * 500)) == 64


def test_metrics_endpoint_is_scraped_and_parsed():
    m = Metrics()
    port = m.serve("127.0.0.1", 0)
    assert m.serve("127.0.0.1", 0) == port  # idempotent: no second server

    m.article_in("raw", 5)
    m.embeddings(4)
    m.blocked("commerce", "commerce_head:0.91")
    m.blocked("commerce", "commerce_head:0.77")
    m.dlq("prefilter")
    m.latency("stage2", 0.3)
    m.stage2_batch(12)
    m.consumer_lag("articles.raw", 2, 17)
    m.result(Result("a1", "tiny", 1, "stage2", {"impact": 6.2, "evidence": 2.0}, 4.4, "medium"))
    m.result({"article_id": "a2", "filter": "tiny", "stage": "prefilter", "scores": {}, "weighted_average": 0.0})
    m.escalation_rate("tiny", 0.25)
    m.drift_alert({"filter": "tiny", "signal": "weighted_average", "detector": "ks", "severity": "warning"})

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    s = _samples(text)
    assert s[("distillery_articles_total", (("stage", "raw"),))] == 5
    assert s[("distillery_embeddings_total", ())] == 4
    assert s[("distillery_blocked_total", (("kind", "commerce"), ("reason", "commerce_head")))] == 2
    assert s[("distillery_dlq_total", (("stage", "prefilter"),))] == 1
    assert s[("distillery_results_total", (("filter", "tiny"), ("stage", "stage2")))] == 1
    assert s[("distillery_results_total", (("filter", "tiny"), ("stage", "prefilter")))] == 1
    # Stage-2 result recorded in the score histograms; prefilter result has no scores.
    assert s[("distillery_score_count", (("dimension", "impact"), ("filter", "tiny")))] == 1
    assert s[("distillery_score_bucket", (("dimension", "evidence"), ("filter", "tiny"), ("le", "2.0")))] == 1
    assert s[("distillery_weighted_average_sum", (("filter", "tiny"), ("stage", "stage2")))] == 4.4
    assert ("distillery_weighted_average_count", (("filter", "tiny"), ("stage", "prefilter"))) not in s
    # Explicit latency buckets: 0.3 s falls in the 0.5 s bucket, not in 0.25 s.
    assert s[("distillery_stage_latency_seconds_bucket", (("le", "0.25"), ("stage", "stage2")))] == 0
    assert s[("distillery_stage_latency_seconds_bucket", (("le", "0.5"), ("stage", "stage2")))] == 1
    assert s[("distillery_stage2_batch_size_bucket", (("le", "16.0"),))] == 1
    assert s[("distillery_consumer_lag", (("partition", "2"), ("topic", "articles.raw")))] == 17
    assert s[("distillery_escalation_rate", (("filter", "tiny"),))] == 0.25
    key = (("detector", "ks"), ("filter", "tiny"), ("severity", "warning"), ("signal", "weighted_average"))
    assert s[("distillery_drift_alerts_total", key)] == 1


def test_fresh_registries_do_not_collide():
    a, b = Metrics(), Metrics()
    a.dlq("x")
    assert a.registry.get_sample_value("distillery_dlq_total", {"stage": "x"}) == 1
    assert b.registry.get_sample_value("distillery_dlq_total", {"stage": "x"}) is None


def test_reason_label_drops_per_article_values():
    """A content hash or a probability never becomes a label value: the label set stays the rule set."""
    hashes = [f"duplicate:{i:040x}" for i in range(50)]
    assert {reason_label(r) for r in hashes} == {"duplicate"}
    assert reason_label("duplicate") == "duplicate"
    assert reason_label("excluded:celebrity") == "excluded:celebrity"
    assert reason_label("weird_9f86d081884c7d65") == "weird_H"


def test_blocked_duplicates_share_one_series():
    m = Metrics()
    for i in range(20):
        m.blocked("duplicate", f"duplicate:{i:032x}")
    samples = [s for s in m.blocked_total.collect()[0].samples if s.name.endswith("_total")]
    assert [(s.labels["reason"], s.value) for s in samples] == [("duplicate", 20.0)]


def test_metrics_port_taken_is_one_clear_error():
    import socket

    from monitoring.errors import MetricsPortError, MonitoringError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(MetricsPortError) as err:
            Metrics().serve("127.0.0.1", port)
    message = str(err.value)
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in message
    assert "DISTILLERY_METRICS_PORT" in message and "0 turns the endpoint off" in message
    assert "any free port" not in message
    assert isinstance(err.value, MonitoringError) and isinstance(err.value, OSError)
