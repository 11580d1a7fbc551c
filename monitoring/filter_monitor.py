"""The detectors of one filter (built from MonitorConfig and the filter's reference) and the helpers that feed them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from filters.postfilter import weighted_average
from filters.spec import SpecError, resolve_served
from monitoring.alerts import Cooldown
from monitoring.config import MonitorConfig
from monitoring.detectors import Detector, DistributionShift, MeanShift, RateShift, ResidualDrift
from monitoring.reference import Reference


def weighted(scores: Mapping[str, float], weights: Mapping[str, float] | None) -> float:
    """Weighted average of the dimensions present (weights renormalised); plain mean without weights.

    >>> weighted({"a": 2.0, "b": 6.0}, {"a": 3.0, "b": 1.0})
    3.0
    >>> weighted({"a": 2.0, "b": 6.0}, None)
    4.0
    """
    return weighted_average(weights or dict.fromkeys(scores, 1.0), scores, partial=True)


def spec_weights(filter_name: str) -> dict[str, float] | None:
    """The served spec's weights, or None when the filter is unknown here (then the residual uses a plain mean)."""
    try:
        spec = resolve_served(filter_name)
        return dict(zip(spec.dimension_names, spec.weights, strict=True))
    except (SpecError, FileNotFoundError, ValueError, KeyError):
        return None


def cooldown(config: MonitorConfig) -> Cooldown:
    """A fresh alert cooldown with the configured event count and seconds."""
    return Cooldown(events=config.cooldown_events, seconds=config.cooldown_seconds)


def rate_shift(config: MonitorConfig, filter_name: str, signal: str, baseline: float | None = None,
               reference: str = "") -> RateShift:
    """The one construction of a rate detector (per-filter block/escalation rates, global commerce/DLQ rates)."""
    return RateShift(
        filter_name, signal, baseline=baseline, window=config.rate_window, budget=config.false_alarm_budget,
        horizon_windows=config.rate_horizon_windows, min_relative=config.rate_min_relative,
        min_absolute=config.rate_min_absolute, warmup_windows=config.rate_warmup_windows, cooldown=cooldown(config),
        reference=reference,
    )


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
            warmup=cfg.warmup, cooldown=cooldown(cfg), reference=label if wa_ref else "",
        )
        mean = ref.residual_mean if ref is not None else None
        std = ref.residual_std if ref is not None else None
        has_residual = mean is not None and std is not None
        self.residual = ResidualDrift(
            self.name, "residual", mean=mean if has_residual else None, std=std if has_residual else None,
            delta=cfg.ph_delta, threshold=cfg.ph_threshold, warmup=cfg.residual_warmup, cooldown=cooldown(cfg),
            reference=label if has_residual else "",
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

    def _rate(self, signal: str, ref: Reference | None, key: str) -> RateShift:
        baseline = ref.rates.get(key) if ref else None
        label = ref.label if baseline is not None and ref else ""
        return rate_shift(self.config, self.name, signal, baseline=baseline, reference=label)

    def dim(self, dimension: str) -> MeanShift:
        """The mean-shift detector of one dimension, created on its first score."""
        det = self.dims.get(dimension)
        if det is None:
            ref = self.active_reference
            values = ref.scores.get(dimension) if ref else None
            det = MeanShift(
                self.name, f"score.{dimension}", delta=self.config.adwin_delta, min_shift=self.config.min_mean_shift,
                reference_mean=sum(values) / len(values) if values else None, cooldown=cooldown(self.config),
                reference=ref.label if values and ref else "",
            )
            self.dims[dimension] = det
        return det

    def detectors(self) -> list[Detector]:
        """Every detector of this filter: the fixed ones, then one per dimension in name order."""
        fixed: list[Detector | None] = [self.wa, self.residual, self.prefilter_rate, self.escalation]
        return [d for d in fixed if d is not None] + [self.dims[k] for k in sorted(self.dims)]

    def status(self) -> str:
        """`drift` while any detector is in its cooldown, `warming_up` until references exist, else `ok`."""
        dets = self.detectors()
        if any(d.cooldown.active for d in dets):
            return "drift"
        if not dets or not all(d.ready for d in dets if d.n > 0) or (self.wa is not None and not self.wa.ready):
            return "warming_up"
        return "ok"

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def summary(self) -> dict[str, Any]:
        """This filter's part of the monitor state."""
        return {
            "status": self.status(),
            "filter_version": self.filter_version,
            "fingerprint": self.fingerprint,
            "counts": dict(self.counts),
            "resets": self.resets,
            "reference": self.reference_note,
            "reference_summary": self.reference.summary() if self.reference else None,
            "detectors": [d.state() for d in self.detectors()],
        }
