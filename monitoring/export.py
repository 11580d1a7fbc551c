"""Copy the monitor's detector statistics and rates to the Prometheus gauges (called periodically, not per record)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from monitoring.detectors import RateShift
from monitoring.filter_monitor import FilterMonitor
from monitoring.metrics import Metrics


def finite(x: float) -> float:
    """`x`, or 0.0 for NaN/inf (a gauge must hold a number)."""
    return x if math.isfinite(x) else 0.0


def rate_now(det: RateShift) -> float:
    """The running window's rate, falling back to the last complete window."""
    running = det.running_rate
    return running if running == running else det.statistic


def publish(metrics: Metrics, filters: Iterable[FilterMonitor], commerce: RateShift, dlq: RateShift) -> None:
    """Per filter: every detector's statistic and cooldown, escalation, block rate and residual; then the globals."""
    for fm in filters:
        for det in fm.detectors():
            metrics.drift_statistic(fm.name, det.signal, det.name, finite(det.statistic))
            metrics.drift_active(fm.name, det.signal, det.cooldown.active)
        if fm.escalation is not None:
            metrics.escalation_rate(fm.name, finite(rate_now(fm.escalation)))
        if fm.prefilter_rate is not None:
            metrics.block_rate(fm.name, "prefilter", finite(rate_now(fm.prefilter_rate)))
        if fm.residual is not None:
            metrics.residual_mean(fm.name, finite(fm.residual.recent_mean))
    metrics.block_rate("", "commerce", finite(rate_now(commerce)))
    metrics.block_rate("", "dlq", finite(rate_now(dlq)))
    for det in (commerce, dlq):
        metrics.drift_statistic("", det.signal, det.name, finite(det.statistic))
        metrics.drift_active("", det.signal, det.cooldown.active)
