"""Prometheus metrics for every worker role: a `Metrics` object per registry and the process-wide `METRICS`."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from monitoring.errors import MetricsPortError

NAMESPACE = "distillery"

# Explicit buckets: the defaults (5 ms .. 10 s) miss both the sub-millisecond probe and the multi-second CPU student.
LATENCY_BUCKETS_SECONDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SCORE_BUCKETS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0)
RESIDUAL_BUCKETS = (-5.0, -3.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)

_MAX_REASON_LEN = 64
# Reasons whose part after ':' is a per-article value (a content hash, a probability): the label keeps the kind only.
VALUE_REASONS = ("duplicate", "commerce_head")
_HEX_RUN = re.compile(r"(?<![0-9a-z])(?=[0-9a-f]*\d)[0-9a-f]{8,}(?![0-9a-z])")  # a hash: 8+ hex, a digit


def reason_label(reason: str) -> str:
    """Bound the label cardinality of block reasons to the rule set: per-article values never reach a label.

    `duplicate:<content hash>` -> `duplicate`; `commerce_head:0.93` -> `commerce_head`; numbers become N
    (`content_too_short_123chars` -> `content_too_short_Nchars`); any other hash-like run becomes H; at most
    64 characters. Category names after ':' (`commerce:deals`) are kept: they come from the shipped rules.

    >>> reason_label("duplicate:9f86d081884c7d659a2feaa0c55ad015")
    'duplicate'
    >>> reason_label("content_too_short_123chars")
    'content_too_short_Nchars'
    """
    base = reason.strip()
    kind = base.split(":", 1)[0]
    if kind in VALUE_REASONS:
        base = kind
    base = _HEX_RUN.sub("H", base)
    base = re.sub(r"\d+(?:\.\d+)?", "N", base) or "unknown"
    return base[:_MAX_REASON_LEN]


def _field(result: Any, name: str, default: Any = None) -> Any:
    """Read a field from a Result dataclass or its dict form (the monitor sees dicts off the wire)."""
    if isinstance(result, Mapping):
        return result.get(name, default)
    return getattr(result, name, default)


class Metrics:
    """All Distillery series on one registry; a fresh registry per instance so tests never collide."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_collectors: bool = False) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process_collectors:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        c, g, h = self._counter, self._gauge, self._histogram
        # Service health and cascade.
        self.articles = c("articles", "Articles that entered a pipeline stage.", ["stage"])
        self.results = c("results", "Scored results published, by deciding stage and filter.", ["stage", "filter"])
        self.blocked_total = c("blocked", "Articles blocked before scoring, by kind and reason.", ["kind", "reason"])
        self.dlq_total = c("dlq", "Records sent to the dead-letter topic, by stage.", ["stage"])
        self.latency_seconds = h(
            "stage_latency_seconds", "Wall time of one pipeline step (per micro-batch or per article).", ["stage"],
            LATENCY_BUCKETS_SECONDS,
        )
        self.stage2_batch_size = h("stage2_batch_size", "Articles per Stage-2 micro-batch.", [], BATCH_SIZE_BUCKETS)
        self.embeddings_total = c("embeddings", "Article embeddings computed.", [])
        self.consumer_lag_gauge = g("consumer_lag", "Messages behind the log end.", ["topic", "partition"])
        # Score distributions.
        self.score = h(
            "score", "Served dimension scores (0-10), per filter and dimension.", ["filter", "dimension"], SCORE_BUCKETS
        )
        self.weighted_average = h(
            "weighted_average", "Served weighted averages (0-10), per filter and deciding stage.", ["filter", "stage"],
            SCORE_BUCKETS,
        )
        self.residual = h(
            "probe_residual", "Student minus probe WA on escalated articles.", ["filter"], RESIDUAL_BUCKETS
        )
        # Drift monitor.
        self.escalation_rate_gauge = g(
            "escalation_rate", "Share of prefilter-passed articles sent to Stage 2 (monitor window).", ["filter"]
        )
        self.block_rate_gauge = g(
            "block_rate", "Share of articles blocked (monitor window), by filter ('' = global) and signal.",
            ["filter", "signal"],
        )
        self.residual_mean_gauge = g("residual_mean", "Mean student-minus-probe residual (monitor window).", ["filter"])
        self.drift_statistic_gauge = g(
            "drift_statistic", "Current statistic of a drift detector (see docs/monitoring.md per detector).",
            ["filter", "signal", "detector"],
        )
        self.drift_active_gauge = g(
            "drift_active", "1 while a signal is in its post-alert cooldown, else 0.", ["filter", "signal"]
        )
        self.drift_alerts = c(
            "drift_alerts", "Drift alerts raised (after cooldown).", ["filter", "signal", "detector", "severity"]
        )
        self.live_mae_gauge = g("live_mae", "Oracle spot-check MAE of served weighted averages.", ["filter"])
        self.spotchecks_total = c("spotchecks", "Articles compared against the oracle.", ["filter"])
        self._served: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self.server_port: int | None = None

    def _counter(self, name: str, doc: str, labels: list[str]) -> Counter:
        return Counter(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: list[str]) -> Gauge:
        return Gauge(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

    def _histogram(self, name: str, doc: str, labels: list[str], buckets: tuple[float, ...]) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, namespace=NAMESPACE, registry=self.registry)

    # ---- cascade / service health -------------------------------------------------------------------------------
    def article_in(self, stage: str, n: int = 1) -> None:
        """Count `n` articles entering `stage` (raw, prepared, stage1, stage2, ...)."""
        if n > 0:
            self.articles.labels(stage=stage).inc(n)

    def result(self, result: Any) -> None:
        """Count one published result and record its scores (Result or its dict form)."""
        stage = str(_field(result, "stage", "unknown"))
        name = str(_field(result, "filter", "unknown"))
        self.results.labels(stage=stage, filter=name).inc()
        if stage == "prefilter":
            return  # blocked by the filter prefilter: no model scores to record
        wa = _field(result, "weighted_average")
        if wa is not None:
            self.weighted_average.labels(filter=name, stage=stage).observe(float(wa))
        for dim, value in (_field(result, "scores") or {}).items():
            self.score.labels(filter=name, dimension=str(dim)).observe(float(value))

    def blocked(self, kind: str, reason: str) -> None:
        """Count a blocked article (kind: commerce, prefilter, duplicate, invalid)."""
        self.blocked_total.labels(kind=kind, reason=reason_label(reason)).inc()

    def dlq(self, stage: str) -> None:
        """Count one record sent to the dead-letter topic by `stage`."""
        self.dlq_total.labels(stage=stage).inc()

    def latency(self, stage: str, seconds: float) -> None:
        self.latency_seconds.labels(stage=stage).observe(max(0.0, float(seconds)))

    def stage2_batch(self, size: int) -> None:
        self.stage2_batch_size.observe(int(size))

    def embeddings(self, n: int) -> None:
        if n > 0:
            self.embeddings_total.inc(n)

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag_gauge.labels(topic=topic, partition=str(partition)).set(max(0, int(lag)))

    # ---- drift monitor ------------------------------------------------------------------------------------------
    def probe_residual(self, filter_name: str, residual: float) -> None:
        self.residual.labels(filter=filter_name).observe(float(residual))

    def escalation_rate(self, filter_name: str, rate: float) -> None:
        self.escalation_rate_gauge.labels(filter=filter_name).set(float(rate))

    def block_rate(self, filter_name: str, signal: str, rate: float) -> None:
        self.block_rate_gauge.labels(filter=filter_name, signal=signal).set(float(rate))

    def residual_mean(self, filter_name: str, value: float) -> None:
        self.residual_mean_gauge.labels(filter=filter_name).set(float(value))

    def drift_statistic(self, filter_name: str, signal: str, detector: str, value: float) -> None:
        self.drift_statistic_gauge.labels(filter=filter_name, signal=signal, detector=detector).set(float(value))

    def drift_active(self, filter_name: str, signal: str, active: bool) -> None:
        self.drift_active_gauge.labels(filter=filter_name, signal=signal).set(1.0 if active else 0.0)

    def drift_alert(self, alert: Any) -> None:
        """Count one alert (an `monitoring.alerts.Alert` or its dict form)."""
        self.drift_alerts.labels(
            filter=str(_field(alert, "filter", "")),
            signal=str(_field(alert, "signal", "")),
            detector=str(_field(alert, "detector", "")),
            severity=str(_field(alert, "severity", "")),
        ).inc()

    def live_mae(self, filter_name: str, mae: float, n: int = 0) -> None:
        self.live_mae_gauge.labels(filter=filter_name).set(float(mae))
        if n > 0:
            self.spotchecks_total.labels(filter=filter_name).inc(n)

    # ---- exposition ---------------------------------------------------------------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 9464) -> int:
        """Start the /metrics HTTP server once per (host, port); returns the bound port (useful with port 0)."""
        with self._lock:
            if (host, port) in self._served and self.server_port is not None:
                return self.server_port
            try:
                server, _thread = start_http_server(port, addr=host, registry=self.registry)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise MetricsPortError(
                    f"cannot serve /metrics on {host}:{port}: {reason}; set DISTILLERY_METRICS_PORT to a free port "
                    "(0 turns the endpoint off)"
                ) from None
            self.server_port = int(server.server_address[1])
            self._served.add((host, port))
            return self.server_port


METRICS = Metrics(process_collectors=True)


def serve(host: str = "127.0.0.1", port: int = 9464) -> int:
    """Serve the process-wide METRICS registry (idempotent)."""
    return METRICS.serve(host, port)
