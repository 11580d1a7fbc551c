"""Drift alert records and the cooldown that turns one drift into one alert instead of thousands."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from filters.timeutil import to_iso

Severity = Literal["warning", "critical"]
ALERT_SCHEMA_VERSION = 1


@dataclass
class Alert:
    """One drift finding: which filter and signal, which detector, the value against its baseline."""

    filter: str  # filter name, or "" for global signals (commerce, DLQ)
    signal: str  # e.g. "score.evidence", "weighted_average", "residual", "rate.escalation"
    detector: str  # "adwin", "ks", "page_hinkley", "binomial"
    value: float  # the drifted statistic (window mean, window rate, KS D, ...)
    baseline: float  # the reference it is compared with
    window: int  # samples behind `value`
    severity: Severity
    detected_at: str  # ISO-8601 UTC
    message: str = ""
    reference: str = ""  # "artifact:<fingerprint>" or "warmup"
    index: int = 0  # how many updates the detector had seen when it fired (for delay measurements)
    details: dict[str, Any] = field(default_factory=dict)
    schema_version: int = ALERT_SCHEMA_VERSION

    @property
    def key(self) -> str:
        """Kafka key on `alerts.drift`: alerts of one signal land on one partition, in order."""
        return f"{self.filter}:{self.signal}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> str:
        """One log line: what drifted, by how much, and against what."""
        where = self.filter or "global"
        return (
            f"[{self.severity}] {where} {self.signal} drift ({self.detector}): value {self.value:.4g} vs baseline "
            f"{self.baseline:.4g} over {self.window} samples at {self.detected_at}"
            + (f" — {self.message}" if self.message else "")
        )


class Cooldown:
    """Suppress repeat firings of one signal: after an alert, stay quiet for `events` updates and `seconds`.

    Both limits must have passed before the next alert (events keep tests deterministic; seconds bound the
    alert rate on a busy stream). Suppressed firings are counted so the report can show them.
    """

    def __init__(self, events: int = 5_000, seconds: float = 3_600.0) -> None:
        if events < 0 or seconds < 0:
            raise ValueError(f"cooldown limits must be >= 0, got events={events}, seconds={seconds}")
        self.events = events
        self.seconds = seconds
        self._since_alert: int | None = None
        self._last_at: float | None = None
        self.suppressed = 0
        self.fired = 0

    def reset(self) -> None:
        """Forget the last alert and the counts (the limits stay)."""
        self._since_alert, self._last_at, self.suppressed, self.fired = None, None, 0, 0

    def tick(self) -> None:
        """Count one update of the guarded detector."""
        if self._since_alert is not None:
            self._since_alert += 1

    @property
    def active(self) -> bool:
        """True while the last alert is still within the event cooldown."""
        return self._since_alert is not None and self._since_alert < self.events

    def allow(self, now: float | None = None) -> bool:
        """Decide whether a firing becomes an alert (and start the cooldown if so)."""
        now = time.time() if now is None else now
        quiet_events = self._since_alert is None or self._since_alert >= self.events
        quiet_time = self._last_at is None or now - self._last_at >= self.seconds
        if quiet_events and quiet_time:
            self._since_alert = 0
            self._last_at = now
            self.fired += 1
            return True
        self.suppressed += 1
        return False

    def state(self) -> dict[str, Any]:
        return {
            "fired": self.fired,
            "suppressed": self.suppressed,
            "active": self.active,
            "last_alert_at": to_iso(self._last_at) if self._last_at is not None else None,
        }
