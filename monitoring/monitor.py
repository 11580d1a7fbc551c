"""The pure drift Monitor: detectors per filter and dimension fed by result, blocked and DLQ records. No Kafka here.

Settings come in as a `MonitorConfig` (monitoring.config), per-filter detectors live in monitoring.filter_monitor,
the state file in monitoring.state and the Prometheus export in monitoring.export.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from filters.spec import SpecError, available, resolve_served
from filters.timeutil import to_iso
from monitoring import export
from monitoring.alerts import Alert
from monitoring.config import MonitorConfig
from monitoring.detectors import Detector
from monitoring.errors import MonitorConfigError, MonitorReferenceError
from monitoring.filter_monitor import FilterMonitor, rate_shift, spec_weights, weighted
from monitoring.lru import LRU
from monitoring.metrics import Metrics
from monitoring.reference import Reference
from monitoring.state import STATE_SCHEMA_VERSION, default_state_path, save_state

__all__ = ["FilterMonitor", "Monitor", "MonitorConfig", "default_state_path", "replay", "weighted"]

log = logging.getLogger(__name__)

SCORED_STAGES = ("stage1", "stage2")


def _get(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


class Monitor:
    """Consumes result, blocked and dead-letter records; returns the alerts they trigger. No Kafka in here.

    Per filter: ADWIN per dimension on calibrated (Stage-2) scores, a windowed KS test of the served
    weighted average, Page-Hinkley on the student-minus-probe residual of escalated articles, and binomial
    windows on the prefilter block and escalation rates. Globally: commerce block and DLQ rates per article.
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        references: Mapping[str, Reference] | None = None,
        weights: Mapping[str, Mapping[str, float]] | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or MonitorConfig()
        self.references = dict(references or {})
        self._weights = {k: dict(v) for k, v in (weights or {}).items()}
        self.metrics = metrics
        self.clock = clock
        self.filters: dict[str, FilterMonitor] = {}
        self.commerce = rate_shift(self.config, "", "rate.commerce_block")
        self.dlq = rate_shift(self.config, "", "rate.dlq")
        self._seen: LRU[str, None] = LRU(self.config.seen_articles)
        self.alerts: deque[Alert] = deque(maxlen=self.config.keep_alerts)
        self.records = 0
        self.ignored = 0
        self.started_at = self.clock()
        self.spotcheck: dict[str, Any] | None = None  # oracle spot-check state, set by the agent when enabled

    # ---- construction -----------------------------------------------------------------------------------------------
    @classmethod
    def from_artifacts(
        cls,
        filters: Iterable[str] | None = None,
        config: MonitorConfig | None = None,
        metrics: Metrics | None = None,
        strict: bool = True,
    ) -> Monitor:
        """References from each filter's `artifacts/reference.json` (newest shipped version); warm-up otherwise.

        With `strict=False` an unknown filter is monitored with warm-up references and equal weights.
        """
        names = list(filters) if filters is not None else sorted(available())
        references: dict[str, Reference] = {}
        weights: dict[str, dict[str, float]] = {}
        for name in names:
            try:
                spec = resolve_served(name)
            except (SpecError, FileNotFoundError) as err:
                if not strict:
                    log.warning("monitor: no spec for filter %r (%s); warm-up references, equal weights", name, err)
                    weights[name] = {}
                    continue
                raise MonitorConfigError(f"monitor: unknown filter {name!r} ({err}); see `distillery filters list`"
                                         ) from err
            weights[spec.name] = dict(zip(spec.dimension_names, spec.weights, strict=True))
            try:
                ref = Reference.for_artifacts(spec.artifacts_dir)
            except MonitorReferenceError as err:
                log.warning("%s; using a warm-up window instead", err)
                ref = None
            if ref is not None:
                references[spec.name] = ref
        return cls(config=config, references=references, weights=weights, metrics=metrics)

    def _filter(self, name: str, fingerprint: str, version: int | None) -> FilterMonitor:
        fm = self.filters.get(name)
        if fm is None:
            weights = self._weights.get(name)
            if weights is None:
                weights = spec_weights(name)
                self._weights[name] = weights or {}
            fm = FilterMonitor(name, self.config, self.references.get(name), weights or None, filter_version=version)
            fm.build(fingerprint)
            self.filters[name] = fm
        elif fingerprint and fm.fingerprint and fingerprint != fm.fingerprint:
            # A new model is being served: its scores are not comparable with the old ones. Start over.
            log.info("monitor: %s serves fingerprint %s (was %s); detectors reset", name, fingerprint, fm.fingerprint)
            fm.resets += 1
            fm.filter_version = version
            fm.build(fingerprint)
        elif fingerprint and not fm.fingerprint:
            fm.fingerprint = fingerprint
        return fm

    # ---- input -------------------------------------------------------------------------------------------------------
    def observe(self, record: Any, now: float | None = None) -> list[Alert]:
        """Dispatch one decoded record by its `kind` (result, blocked, dead_letter); unknown kinds are counted."""
        kind = _get(record, "kind")
        if kind is None and _get(record, "stage") in ("prefilter", *SCORED_STAGES) and _get(record, "filter"):
            kind = "result"
        if kind == "result":
            return self.observe_result(record, now)
        if kind == "blocked":
            return self.observe_blocked(record, now)
        if kind == "dead_letter":
            return self.observe_dlq(record, now)
        self.ignored += 1
        return []

    def observe_result(self, result: Any, now: float | None = None) -> list[Alert]:
        """One `scores.<filter>` record (a Result or its dict form)."""
        now = self.clock() if now is None else now
        self.records += 1
        name = str(_get(result, "filter") or "")
        stage = str(_get(result, "stage") or "")
        if not name or stage not in ("prefilter", *SCORED_STAGES):
            self.ignored += 1
            return []
        version = _get(result, "filter_version")
        fm = self._filter(name, str(_get(result, "fingerprint") or ""), int(version) if version is not None else None)
        fm.count(stage)
        out: list[Alert] = []
        self._article(str(_get(result, "article_id") or ""), commerce=False, dlq=False, now=now, out=out)
        self._push(fm.prefilter_rate, 1.0 if stage == "prefilter" else 0.0, now, out)
        if stage in SCORED_STAGES:
            self._push(fm.escalation, 1.0 if stage == "stage2" else 0.0, now, out)
            wa = _get(result, "weighted_average")
            if wa is not None:
                self._push(fm.wa, float(wa), now, out)
        scores = _get(result, "scores") or {}
        if stage in self.config.score_stages:
            for dim, value in scores.items():
                self._push(fm.dim(str(dim)), float(value), now, out)
        probe = _get(result, "probe_scores")
        if stage == "stage2" and probe and scores:
            residual = weighted(scores, fm.weights) - weighted(probe, fm.weights)
            self._push(fm.residual, residual, now, out)
            if self.metrics is not None:
                self.metrics.probe_residual(name, residual)
        return out

    def observe_blocked(self, record: Any, now: float | None = None) -> list[Alert]:
        """One `articles.blocked` record: commerce or duplicate decision (`decision`, or `kind` of a Rejection)."""
        now = self.clock() if now is None else now
        self.records += 1
        decision = _get(record, "decision") or _get(record, "kind")
        out: list[Alert] = []
        self._article(str(_get(record, "article_id") or ""), commerce=decision == "commerce", dlq=False, now=now,
                      out=out, force=True)
        return out

    def observe_dlq(self, record: Any, now: float | None = None) -> list[Alert]:
        """One `articles.dlq` record (any stage)."""
        now = self.clock() if now is None else now
        self.records += 1
        out: list[Alert] = []
        self._article(str(_get(record, "article_id") or ""), commerce=False, dlq=True, now=now, out=out, force=True)
        return out

    def observe_many(self, records: Iterable[Any], now: float | None = None) -> list[Alert]:
        out: list[Alert] = []
        for record in records:
            out.extend(self.observe(record, now))
        return out

    def _article(self, article_id: str, *, commerce: bool, dlq: bool, now: float, out: list[Alert],
                 force: bool = False) -> None:
        """Count one article for the global rates; a scored article counts once however many filters score it."""
        if not force:
            if not article_id or article_id in self._seen:
                return
            self._seen.put(article_id, None)
        self._push(self.commerce, 1.0 if commerce else 0.0, now, out)
        self._push(self.dlq, 1.0 if dlq else 0.0, now, out)

    def _push(self, detector: Detector | None, value: float, now: float, out: list[Alert]) -> None:
        if detector is None:
            return
        alert = detector.update(value, now)
        if alert is not None:
            out.append(alert)
            self.alerts.append(alert)
            log.warning("drift alert: %s", alert.summary())
            if self.metrics is not None:
                self.metrics.drift_alert(alert)

    # ---- output ------------------------------------------------------------------------------------------------------
    def publish_metrics(self) -> None:
        """Copy detector statistics and rates to the Prometheus gauges (call periodically, not per record)."""
        if self.metrics is not None:
            export.publish(self.metrics, self.filters.values(), self.commerce, self.dlq)

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot: per filter status, counts, reference and every detector's state."""
        now = self.clock()
        filters = {name: fm.summary() for name, fm in sorted(self.filters.items())}
        glob = [self.commerce.state(), self.dlq.state()]
        return {
            "schema_version": STATE_SCHEMA_VERSION,
            "generated_at": to_iso(now),
            "started_at": to_iso(self.started_at),
            "records": self.records,
            "ignored": self.ignored,
            "config": asdict(self.config),
            "global": {
                "status": "drift" if any(d["cooldown"]["active"] for d in glob) else "ok",
                "detectors": glob,
            },
            "filters": filters,
            "spotcheck": self.spotcheck,
            "alerts": [a.as_dict() for a in self.alerts],
        }

    def save_state(self, path: str | Path) -> Path:
        """Write `state()` atomically (read by `distillery monitor report`)."""
        return save_state(path, self.state())


def replay(records: Sequence[Mapping[str, Any]], monitor: Monitor | None = None) -> tuple[Monitor, list[Alert]]:
    """Feed decoded records through a Monitor (offline: a JSONL of results from `distillery score`)."""
    monitor = monitor or Monitor()
    alerts = monitor.observe_many(records)
    return monitor, alerts
