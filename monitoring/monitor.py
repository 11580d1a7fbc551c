"""The pure drift Monitor: detectors per filter and dimension fed by result, blocked and DLQ records."""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from monitoring.alerts import Alert, Cooldown, utc_iso
from monitoring.detectors import Detector, DistributionShift, MeanShift, RateShift, ResidualDrift
from monitoring.metrics import Metrics
from monitoring.reference import Reference, ReferenceError, write_json_atomic

log = logging.getLogger(__name__)

STATE_SCHEMA_VERSION = 1
SCORED_STAGES = ("stage1", "stage2")
STATE_ENV = "DISTILLERY_MONITOR_STATE"
CONFIG_ENV_PREFIX = "DISTILLERY_MONITOR_"


def default_state_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the monitor agent writes its state and `distillery monitor report` reads it.

    `DISTILLERY_MONITOR_STATE`, else `$XDG_STATE_HOME/distillery/monitor_state.json` (~/.local/state by default).
    """
    env = os.environ if environ is None else environ
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV]).expanduser()
    base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "distillery" / "monitor_state.json"


@dataclass
class MonitorConfig:
    """Detector settings; the defaults are the ones measured in docs/monitoring.md."""

    adwin_delta: float = 1e-5
    min_mean_shift: float = 0.5  # score points
    ks_window: int = 500
    ks_step: int = 100
    ks_min_statistic: float = 0.1
    false_alarm_budget: float = 0.01  # expected false alarms per signal over `horizon_windows` tests
    horizon_windows: int = 100_000
    warmup: int = 1_000  # live values that form a KS reference when no artifact reference fits
    ph_delta: float = 0.25  # in reference standard deviations
    ph_threshold: float = 50.0
    residual_warmup: int = 200
    rate_window: int = 1_000
    rate_min_relative: float = 0.2
    rate_min_absolute: float = 0.01
    rate_warmup_windows: int = 2
    cooldown_events: int = 5_000
    cooldown_seconds: float = 3_600.0
    score_stages: tuple[str, ...] = ("stage2",)  # calibrated scores only come from Stage 2
    reference: Literal["auto", "artifact", "warmup"] = "auto"
    min_reference_size: int = 200
    seen_articles: int = 100_000  # LRU of article ids for the global (per-article) rates
    keep_alerts: int = 100

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> MonitorConfig:
        """Defaults overridden by `DISTILLERY_MONITOR_<FIELD>` variables (e.g. DISTILLERY_MONITOR_WARMUP=300)."""
        env = os.environ if environ is None else environ
        config, values = cls(), {}
        for f in fields(cls):
            raw = env.get(CONFIG_ENV_PREFIX + f.name.upper(), "")
            if raw == "":
                continue
            current = getattr(config, f.name)
            try:
                if isinstance(current, tuple):
                    values[f.name] = tuple(x.strip() for x in raw.split(",") if x.strip())
                elif isinstance(current, bool):
                    values[f.name] = raw.lower() in ("1", "true", "yes")
                elif isinstance(current, (int, float)):
                    values[f.name] = type(current)(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                raise ValueError(
                    f"{CONFIG_ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {type(current).__name__}"
                ) from None
        if values.get("reference", "auto") not in ("auto", "artifact", "warmup"):
            got = values["reference"]
            raise ValueError(f"{CONFIG_ENV_PREFIX}REFERENCE must be auto, artifact or warmup, got {got!r}")
        return replace(config, **values, **overrides)


def _get(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


def weighted(scores: Mapping[str, float], weights: Mapping[str, float] | None) -> float:
    """Weighted average of the dimensions present (weights renormalised); plain mean without weights."""
    if not scores:
        return float("nan")
    if weights:
        pairs = [(float(v), float(weights[k])) for k, v in scores.items() if k in weights]
        total = sum(w for _, w in pairs)
        if pairs and total > 0:
            return sum(v * w for v, w in pairs) / total
    return sum(float(v) for v in scores.values()) / len(scores)


def _spec_weights(filter_name: str) -> dict[str, float] | None:
    """The shipped spec's weights, or None when the filter is unknown here (then the residual uses a plain mean)."""
    try:
        from filters.spec import SpecError, resolve_served
    except ImportError:  # pragma: no cover - filters is part of this package
        return None
    try:
        spec = resolve_served(filter_name)
        return dict(zip(spec.dimension_names, spec.weights, strict=True))
    except (SpecError, FileNotFoundError, ValueError, KeyError):
        return None


@dataclass
class FilterMonitor:
    """Detectors of one filter, created when its first result arrives (dimensions come from the results)."""

    name: str
    config: MonitorConfig
    reference: Reference | None
    weights: dict[str, float] | None
    fingerprint: str = ""
    filter_version: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    resets: int = 0
    reference_note: str = ""
    active_reference: Reference | None = None  # the reference in use (None: warm-up windows)
    dims: dict[str, MeanShift] = field(default_factory=dict)
    wa: DistributionShift | None = None
    residual: ResidualDrift | None = None
    prefilter_rate: RateShift | None = None
    escalation: RateShift | None = None

    def build(self, fingerprint: str) -> None:
        """(Re)create the detectors for a served artifact fingerprint, picking the reference it may use."""
        cfg = self.config
        self.fingerprint = fingerprint
        ref = self._usable_reference(fingerprint)
        self.active_reference = ref
        label = ref.label if ref else "warmup"
        self.dims = {}
        wa_ref = ref.weighted_average if ref and len(ref.weighted_average) >= cfg.min_reference_size else None
        self.wa = DistributionShift(
            self.name, "weighted_average", wa_ref, window=cfg.ks_window, step=cfg.ks_step,
            budget=cfg.false_alarm_budget, horizon_windows=cfg.horizon_windows, min_statistic=cfg.ks_min_statistic,
            warmup=cfg.warmup, cooldown=self._cooldown(), reference=label if wa_ref else "",
        )
        has_residual = ref is not None and ref.residual_mean is not None and ref.residual_std is not None
        self.residual = ResidualDrift(
            self.name, "residual", mean=ref.residual_mean if has_residual else None,
            std=ref.residual_std if has_residual else None, delta=cfg.ph_delta, threshold=cfg.ph_threshold,
            warmup=cfg.residual_warmup, cooldown=self._cooldown(), reference=label if has_residual else "",
        )
        self.prefilter_rate = self._rate("rate.prefilter_block", ref, "prefilter_block")
        self.escalation = self._rate("rate.escalation", ref, "escalation")

    def _usable_reference(self, fingerprint: str) -> Reference | None:
        mode, ref = self.config.reference, self.reference
        if mode == "warmup" or ref is None:
            self.reference_note = "warm-up window (no reference.json)" if ref is None else "warm-up window (configured)"
            return None
        if mode == "auto" and ref.fingerprint and fingerprint and ref.fingerprint != fingerprint:
            self.reference_note = (
                f"warm-up window: reference.json fingerprint {ref.fingerprint[:12]} != served {fingerprint[:12]}"
            )
            return None
        self.reference_note = f"{ref.path or 'reference.json'} ({ref.label})"
        return ref

    def _cooldown(self) -> Cooldown:
        return Cooldown(events=self.config.cooldown_events, seconds=self.config.cooldown_seconds)

    def _rate(self, signal: str, ref: Reference | None, key: str) -> RateShift:
        cfg = self.config
        baseline = ref.rates.get(key) if ref else None
        return RateShift(
            self.name, signal, baseline=baseline, window=cfg.rate_window, budget=cfg.false_alarm_budget,
            horizon_windows=10_000, min_relative=cfg.rate_min_relative, min_absolute=cfg.rate_min_absolute,
            warmup_windows=cfg.rate_warmup_windows, cooldown=self._cooldown(),
            reference=ref.label if baseline is not None and ref else "",
        )

    def dim(self, dimension: str) -> MeanShift:
        det = self.dims.get(dimension)
        if det is None:
            ref = self.active_reference
            values = ref.scores.get(dimension) if ref else None
            det = MeanShift(
                self.name, f"score.{dimension}", delta=self.config.adwin_delta, min_shift=self.config.min_mean_shift,
                reference_mean=sum(values) / len(values) if values else None, cooldown=self._cooldown(),
                reference=ref.label if values and ref else "",
            )
            self.dims[dimension] = det
        return det

    def detectors(self) -> list[Detector]:
        fixed = [self.wa, self.residual, self.prefilter_rate, self.escalation]
        return [d for d in fixed if d is not None] + [self.dims[k] for k in sorted(self.dims)]

    def status(self) -> str:
        dets = self.detectors()
        if any(d.cooldown.active for d in dets):
            return "drift"
        if not dets or not all(d.ready for d in dets if d.n > 0) or (self.wa is not None and not self.wa.ready):
            return "warming_up"
        return "ok"

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


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
        cfg = self.config
        self.commerce = RateShift(
            "", "rate.commerce_block", window=cfg.rate_window, budget=cfg.false_alarm_budget,
            min_relative=cfg.rate_min_relative, min_absolute=cfg.rate_min_absolute,
            warmup_windows=cfg.rate_warmup_windows, cooldown=self._cooldown(),
        )
        self.dlq = RateShift(
            "", "rate.dlq", window=cfg.rate_window, budget=cfg.false_alarm_budget,
            min_relative=cfg.rate_min_relative, min_absolute=cfg.rate_min_absolute,
            warmup_windows=cfg.rate_warmup_windows, cooldown=self._cooldown(),
        )
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.alerts: deque[Alert] = deque(maxlen=cfg.keep_alerts)
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
        from filters.spec import SpecError, available, resolve_served

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
                raise ValueError(f"monitor: unknown filter {name!r} ({err}); see `distillery filters list`") from err
            weights[spec.name] = dict(zip(spec.dimension_names, spec.weights, strict=True))
            try:
                ref = Reference.for_artifacts(spec.artifacts_dir)
            except ReferenceError as err:
                log.warning("%s; using a warm-up window instead", err)
                ref = None
            if ref is not None:
                references[spec.name] = ref
        return cls(config=config, references=references, weights=weights, metrics=metrics)

    def _cooldown(self) -> Cooldown:
        return Cooldown(events=self.config.cooldown_events, seconds=self.config.cooldown_seconds)

    def _filter(self, name: str, fingerprint: str, version: int | None) -> FilterMonitor:
        fm = self.filters.get(name)
        if fm is None:
            weights = self._weights.get(name)
            if weights is None:
                weights = _spec_weights(name)
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
            self._seen[article_id] = None
            if len(self._seen) > self.config.seen_articles:
                self._seen.popitem(last=False)
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
        m = self.metrics
        if m is None:
            return
        for fm in self.filters.values():
            for det in fm.detectors():
                m.drift_statistic(fm.name, det.signal, det.name, _finite(det.statistic))
                m.drift_active(fm.name, det.signal, det.cooldown.active)
            if fm.escalation is not None:
                m.escalation_rate(fm.name, _finite(_rate_now(fm.escalation)))
            if fm.prefilter_rate is not None:
                m.block_rate(fm.name, "prefilter", _finite(_rate_now(fm.prefilter_rate)))
            if fm.residual is not None:
                m.residual_mean(fm.name, _finite(fm.residual.recent_mean))
        m.block_rate("", "commerce", _finite(_rate_now(self.commerce)))
        m.block_rate("", "dlq", _finite(_rate_now(self.dlq)))
        for det in (self.commerce, self.dlq):
            m.drift_statistic("", det.signal, det.name, _finite(det.statistic))
            m.drift_active("", det.signal, det.cooldown.active)

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot: per filter status, counts, reference and every detector's state."""
        now = self.clock()
        filters = {}
        for name, fm in sorted(self.filters.items()):
            filters[name] = {
                "status": fm.status(),
                "filter_version": fm.filter_version,
                "fingerprint": fm.fingerprint,
                "counts": dict(fm.counts),
                "resets": fm.resets,
                "reference": fm.reference_note,
                "reference_summary": fm.reference.summary() if fm.reference else None,
                "detectors": [d.state() for d in fm.detectors()],
            }
        glob = [self.commerce.state(), self.dlq.state()]
        return {
            "schema_version": STATE_SCHEMA_VERSION,
            "generated_at": utc_iso(now),
            "started_at": utc_iso(self.started_at),
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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.state())
        return path


def _finite(x: float) -> float:
    return x if x == x and abs(x) != float("inf") else 0.0


def _rate_now(det: RateShift) -> float:
    """The running window's rate, falling back to the last complete window."""
    running = det.running_rate
    return running if running == running else det.statistic


def replay(records: Sequence[Mapping[str, Any]], monitor: Monitor | None = None) -> tuple[Monitor, list[Alert]]:
    """Feed decoded records through a Monitor (offline: a JSONL of results from `distillery score`)."""
    monitor = monitor or Monitor()
    alerts = monitor.observe_many(records)
    return monitor, alerts
