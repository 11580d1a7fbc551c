"""Label-free accuracy drift: Page-Hinkley on the scaled student-minus-probe residual of escalated articles."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from river.drift import PageHinkley

from monitoring.alerts import Cooldown
from monitoring.detectors.base import Detector, Finding

MIN_STD = 1e-3


class ResidualDrift(Detector):
    """Page-Hinkley (both directions) on z = (residual - mean) / std, clipped to ±`clip`.

    When inputs shift, the frozen-embedding probe drifts before the student does, so the residual's mean
    moves although no label is available. Scaling by the reference spread makes `delta` and `threshold`
    filter-independent: a shift of s standard deviations is found after about threshold / (s - delta)
    samples. Without `mean`/`std` (from `reference.json`), the first `warmup` residuals set them.

    >>> import numpy as np
    >>> rng, det = np.random.default_rng(0), ResidualDrift("uplifting", mean=0.0, std=1.0)
    >>> [det.update(x, now=0.0) for x in rng.normal(0, 1, 3_000)].count(None)
    3000
    >>> alerts = [a for a in (det.update(x, now=0.0) for x in rng.normal(1.5, 1, 200)) if a]
    >>> alerts[0].detector, alerts[0].details["shift_sd"] > 1
    ('page_hinkley', True)
    """

    name = "page_hinkley"

    def __init__(
        self,
        filter_name: str,
        signal: str = "residual",
        *,
        mean: float | None = None,
        std: float | None = None,
        delta: float = 0.25,
        threshold: float = 50.0,
        min_instances: int = 30,
        clip: float = 6.0,
        warmup: int = 200,
        recent: int = 50,
        cooldown: Cooldown | None = None,
        reference: str = "",
    ) -> None:
        super().__init__(filter_name, signal, cooldown=cooldown, reference=reference or "warmup")
        self.delta = delta
        self.threshold = threshold
        self.min_instances = min_instances
        self.clip = clip
        self.warmup = warmup
        # alpha=1: no forgetting. With forgetting the sums settle into an AR(1) whose spread (~70 sd at
        # 0.9999) exceeds any sensible threshold, which made river's default fire on stationary data.
        self._ph = PageHinkley(min_instances=min_instances, delta=delta, threshold=threshold, alpha=1.0, mode="both")
        self._warm: list[float] = []
        self._recent: deque[float] = deque(maxlen=recent)
        self.mean: float | None = None
        self.std: float | None = None
        self._given: tuple[float, float, str] | None = None  # the construction-time reference, kept by reset()
        if mean is not None and std is not None:
            self._given = (mean, std, reference or "artifact")
            self.set_reference(*self._given)
        self._label0 = self.reference

    def _reset(self) -> None:
        self._ph = PageHinkley(min_instances=self.min_instances, delta=self.delta, threshold=self.threshold,
                               alpha=1.0, mode="both")
        self._warm = []
        self._recent.clear()
        self.mean = self.std = None
        self.reference = self._label0
        if self._given is not None:
            self.set_reference(*self._given)

    def set_reference(self, mean: float, std: float, label: str) -> None:
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise ValueError(f"residual reference must be finite, got mean={mean}, std={std}")
        self.mean, self.std = float(mean), max(float(std), MIN_STD)
        self.reference = label

    @property
    def ready(self) -> bool:
        return self.mean is not None

    @property
    def recent_mean(self) -> float:
        return float(np.mean(self._recent)) if self._recent else float("nan")

    @property
    def statistic(self) -> float:
        """The larger of the two Page-Hinkley cumulative statistics (alarm at `threshold`)."""
        ph = self._ph
        up = ph._sum_increase - ph._min_increase if math.isfinite(ph._min_increase) else 0.0
        down = ph._max_decrease - ph._sum_decrease if ph._max_decrease >= 0 else 0.0
        return float(max(up, down, 0.0))

    def _step(self, x: float) -> Finding | None:
        self._recent.append(x)
        if self.mean is None:
            self._warm.append(x)
            if len(self._warm) >= self.warmup:
                self.set_reference(float(np.mean(self._warm)), float(np.std(self._warm)), "warmup")
                self._warm = []
            return None
        assert self.std is not None
        z = min(max((x - self.mean) / self.std, -self.clip), self.clip)
        self._ph.update(z)
        if not self._ph.drift_detected:
            return None
        recent = self.recent_mean
        shift_sd = (recent - self.mean) / self.std
        return Finding(
            value=recent,
            baseline=self.mean,
            window=len(self._recent),
            severity="critical" if abs(shift_sd) >= 1.0 else "warning",
            message=f"probe-vs-student residual mean moved {shift_sd:+.2f} sd (student minus probe WA)",
            details={"shift_sd": shift_sd, "std": self.std},
        )

    def _extra_state(self) -> dict[str, Any]:
        recent = self.recent_mean
        return {
            "reference_mean": self.mean,
            "reference_std": self.std,
            "recent_mean": recent if math.isfinite(recent) else None,
            "threshold": self.threshold,
            "warmup_collected": len(self._warm),
        }
