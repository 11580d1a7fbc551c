"""The detector base class: counts updates, turns findings into cooldown-gated alerts, reports its state."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from filters.timeutil import to_iso
from monitoring.alerts import Alert, Cooldown, Severity


@dataclass
class Finding:
    """What a detector saw when it fired, before the cooldown decides whether it becomes an alert."""

    value: float
    baseline: float
    window: int
    severity: Severity
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Detector(ABC):
    """One signal of one filter. Subclasses implement `_step(x) -> Finding | None` and `statistic`.

    `firings` counts every raw detection (what the false-alarm tests count); `alerts` counts those that
    passed the cooldown. Non-finite values are skipped and counted, never fed to the test.
    """

    name: ClassVar[str] = "detector"

    def __init__(self, filter_name: str, signal: str, *, cooldown: Cooldown | None = None, reference: str = "") -> None:
        self.filter = filter_name
        self.signal = signal
        self.cooldown = cooldown if cooldown is not None else Cooldown()
        self.reference = reference
        self.n = 0
        self.skipped = 0
        self.firings = 0
        self.first_firing: int | None = None
        self.last_alert: Alert | None = None

    @abstractmethod
    def _step(self, x: float) -> Finding | None:
        """Feed one finite value; return a Finding when the test fires."""

    @property
    @abstractmethod
    def statistic(self) -> float:
        """The detector's current statistic (exported as a gauge)."""

    @property
    def ready(self) -> bool:
        """False while the detector still collects its warm-up reference."""
        return True

    def reset(self) -> None:
        """Back to the state just after construction: counts, cooldown and learnt state cleared; settings and a
        reference given at construction (from `reference.json`) kept, a warm-up reference dropped."""
        self.n = self.skipped = self.firings = 0
        self.first_firing, self.last_alert = None, None
        self.cooldown.reset()
        self._reset()

    @abstractmethod
    def _reset(self) -> None:
        """Clear the subclass's learnt state (see `reset`)."""

    def update(self, value: float, now: float | None = None) -> Alert | None:
        """Feed one observation; return an Alert when the test fires outside the cooldown."""
        x = float(value)
        if not math.isfinite(x):
            self.skipped += 1
            return None
        self.n += 1
        self.cooldown.tick()
        finding = self._step(x)
        if finding is None:
            return None
        self.firings += 1
        if self.first_firing is None:
            self.first_firing = self.n
        now = time.time() if now is None else now
        if not self.cooldown.allow(now):
            return None
        alert = Alert(
            filter=self.filter,
            signal=self.signal,
            detector=self.name,
            value=float(finding.value),
            baseline=float(finding.baseline),
            window=int(finding.window),
            severity=finding.severity,
            detected_at=to_iso(now),
            message=finding.message,
            reference=self.reference,
            index=self.n,
            details=finding.details,
        )
        self.last_alert = alert
        return alert

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot for `distillery monitor report`."""
        stat = self.statistic
        return {
            "filter": self.filter,
            "signal": self.signal,
            "detector": self.name,
            "updates": self.n,
            "skipped": self.skipped,
            "ready": self.ready,
            "statistic": stat if math.isfinite(stat) else None,
            "firings": self.firings,
            "reference": self.reference,
            "cooldown": self.cooldown.state(),
            "last_alert": self.last_alert.as_dict() if self.last_alert else None,
            **self._extra_state(),
        }

    def _extra_state(self) -> dict[str, Any]:
        return {}
