"""Detector settings of the drift monitor: a plain dataclass with validated construction, no environment reading.

The worker builds it from its settings (streams owns the environment); `MonitorConfig.from_mapping` takes typed
values or the strings of a settings source and names the key that cannot be used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from monitoring.errors import MonitorConfigError

REFERENCE_MODES = ("auto", "artifact", "warmup")


@dataclass(frozen=True)
class MonitorConfig:
    """Detector settings; the defaults are the ones measured in docs/monitoring.md."""

    adwin_delta: float = 1e-5
    min_mean_shift: float = 0.5  # score points
    ks_window: int = 500
    ks_step: int = 100
    ks_min_statistic: float = 0.1
    false_alarm_budget: float = 0.01  # expected false alarms per signal over the horizon below
    # KS tests run every `ks_step` (100) updates: 100,000 tests cover 10 M updates.
    horizon_windows: int = 100_000
    # Rate tests run once per tumbling window of `rate_window` (1,000) trials: 10,000 windows cover the same
    # 10 M events, so both kinds of detector spend `false_alarm_budget` over the same stretch of traffic.
    rate_horizon_windows: int = 10_000
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

    def __post_init__(self) -> None:
        if self.reference not in REFERENCE_MODES:
            raise MonitorConfigError(f"monitor reference must be auto, artifact or warmup, got {self.reference!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, labels: Mapping[str, str] | None = None) -> MonitorConfig:
        """Defaults overridden by `values` (field name -> value or its string form); unknown names are refused.

        Strings are converted to the field's type: `"300"` -> 300, `"stage1,stage2"` -> ('stage1', 'stage2').
        `labels` names each field as its source knows it (e.g. its environment variable) in error messages.

        >>> MonitorConfig.from_mapping({"warmup": "300", "score_stages": "stage1, stage2"}).warmup
        300
        >>> MonitorConfig.from_mapping({"warmup": "many"}, labels={"warmup": "DISTILLERY_MONITOR_WARMUP"})
        Traceback (most recent call last):
        ...
        monitoring.errors.MonitorConfigError: DISTILLERY_MONITOR_WARMUP='many' is not a valid int
        """
        defaults = cls()
        known = {f.name for f in fields(cls)}
        changes: dict[str, Any] = {}
        for name, raw in values.items():
            if name not in known:
                raise MonitorConfigError(f"monitor setting {name!r} is unknown; use one of {', '.join(sorted(known))}")
            changes[name] = _coerce(getattr(defaults, name), raw, (labels or {}).get(name, name))
        if changes.get("reference", "auto") not in REFERENCE_MODES:
            where = (labels or {}).get("reference", "reference")
            raise MonitorConfigError(f"{where} must be auto, artifact or warmup, got {changes['reference']!r}")
        return replace(defaults, **changes)


def _coerce(current: Any, raw: Any, where: str) -> Any:
    """`raw` as the type of the default `current`: strings are parsed, numbers are checked."""
    number = isinstance(current, int | float) and not isinstance(current, bool)
    if isinstance(raw, str):
        if isinstance(current, tuple):
            return tuple(x.strip() for x in raw.split(",") if x.strip())
        if isinstance(current, bool):
            return raw.strip().lower() in ("1", "true", "yes")
        if number:
            try:
                return type(current)(raw)
            except ValueError:
                raise MonitorConfigError(f"{where}={raw!r} is not a valid {type(current).__name__}") from None
        return raw
    if isinstance(current, tuple):
        return tuple(str(x) for x in raw)
    if number:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise MonitorConfigError(f"{where}={raw!r} is not a valid {type(current).__name__}")
        return type(current)(raw)
    return raw
