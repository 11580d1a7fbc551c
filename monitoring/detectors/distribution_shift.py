"""Shape shift of the weighted-average distribution: a windowed two-sample KS test against a reference."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import kstwobign, wasserstein_distance

from monitoring.alerts import Cooldown
from monitoring.detectors.base import Detector, Finding


def ks_statistic(sorted_reference: np.ndarray, window: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D between a pre-sorted reference and a window (exact on ties)."""
    w = np.sort(window)
    grid = np.concatenate([sorted_reference, w])
    cdf_ref = np.searchsorted(sorted_reference, grid, side="right") / sorted_reference.size
    cdf_win = np.searchsorted(w, grid, side="right") / w.size
    return float(np.max(np.abs(cdf_ref - cdf_win)))


def ks_critical(alpha: float, n: int, m: int) -> float:
    """The asymptotic two-sample KS critical value D_alpha for sizes n and m."""
    return math.sqrt(-math.log(alpha / 2.0) / 2.0) * math.sqrt((n + m) / (n * m))


class DistributionShift(Detector):
    """Every `step` updates, compare the last `window` values with the reference by a two-sample KS test.

    False-alarm budget: at most `budget` expected false alarms over `horizon_windows` tests, spent by
    Bonferroni: each test runs at alpha = budget / horizon_windows (overlapping windows only make this
    more conservative). `min_statistic` is the smallest KS D worth an alert. Without a reference, the
    first `warmup` values become it ("warmup" reference). Per-update KS (River's KSWIN) is ~3k updates/s;
    this runs one test per `step` updates.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = DistributionShift("uplifting", "weighted_average", rng.normal(5, 1, 2_000), window=200, step=50)
    >>> [det.update(x, now=0.0) for x in rng.normal(5, 1, 3_000)].count(None)
    3000
    >>> alerts = [a for a in (det.update(x, now=0.0) for x in rng.normal(6.5, 1, 400)) if a]
    >>> alerts[0].detector, alerts[0].value > alerts[0].baseline
    ('ks', True)
    """

    name = "ks"

    def __init__(
        self,
        filter_name: str,
        signal: str,
        reference_values: Sequence[float] | None = None,
        *,
        window: int = 500,
        step: int = 100,
        budget: float = 0.01,
        horizon_windows: int = 100_000,
        min_statistic: float = 0.1,
        warmup: int = 1_000,
        cooldown: Cooldown | None = None,
        reference: str = "",
    ) -> None:
        super().__init__(filter_name, signal, cooldown=cooldown, reference=reference or "warmup")
        if window < 20 or step < 1:
            raise ValueError(f"KS window must be >= 20 and step >= 1, got window={window}, step={step}")
        if not 0 < budget < horizon_windows:
            raise ValueError(f"false-alarm budget must be in (0, horizon_windows), got {budget}")
        self.window = window
        self.step = step
        self.budget = budget
        self.horizon_windows = horizon_windows
        self.alpha = budget / horizon_windows
        self.min_statistic = min_statistic
        self.warmup = warmup
        self._values: deque[float] = deque(maxlen=window)
        self._warm: list[float] = []
        self._reference: np.ndarray | None = None
        self.tests = 0
        self.last_d = float("nan")
        self.last_wasserstein = float("nan")
        self._given: tuple[Sequence[float], str] | None = None  # the construction-time reference, kept by reset()
        if reference_values is not None and len(reference_values) > 0:
            self._given = (list(reference_values), reference or "artifact")
            self.set_reference(*self._given)
        self._label0 = self.reference

    def _reset(self) -> None:
        self._values.clear()
        self._warm, self._reference, self.tests = [], None, 0
        self.last_d = self.last_wasserstein = float("nan")
        self.reference = self._label0
        if self._given is not None:
            self.set_reference(*self._given)

    def set_reference(self, values: Sequence[float], label: str) -> None:
        ref = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
        if ref.size < 20:
            raise ValueError(f"a KS reference needs at least 20 finite values, got {ref.size}")
        self._reference = np.sort(ref)
        self.reference = label
        self.threshold = max(ks_critical(self.alpha, self.window, ref.size), self.min_statistic)

    @property
    def ready(self) -> bool:
        return self._reference is not None

    @property
    def statistic(self) -> float:
        """KS D of the last test."""
        return self.last_d

    def _step(self, x: float) -> Finding | None:
        if self._reference is None:
            self._warm.append(x)
            if len(self._warm) >= self.warmup:
                self.set_reference(self._warm, "warmup")
                self._warm = []
            return None
        self._values.append(x)
        if len(self._values) < self.window or self.n % self.step:
            return None
        window = np.fromiter(self._values, dtype=np.float64, count=len(self._values))
        d = ks_statistic(self._reference, window)
        self.tests += 1
        self.last_d = d
        self.last_wasserstein = float(wasserstein_distance(window, self._reference))
        if d <= self.threshold:
            return None
        en = self.window * self._reference.size / (self.window + self._reference.size)
        p_value = float(kstwobign.sf(d * math.sqrt(en)))
        ref_mean, win_mean = float(self._reference.mean()), float(window.mean())
        return Finding(
            value=d,
            baseline=self.threshold,
            window=self.window,
            severity="critical" if d >= 2 * self.threshold else "warning",
            message=(
                f"KS D={d:.3f} > {self.threshold:.3f}; window mean {win_mean:.2f} vs reference {ref_mean:.2f}, "
                f"Wasserstein {self.last_wasserstein:.2f}"
            ),
            details={
                "p_value": p_value,
                "alpha": self.alpha,
                "wasserstein": self.last_wasserstein,
                "window_mean": win_mean,
                "reference_mean": ref_mean,
                "reference_size": int(self._reference.size),
            },
        )

    def _extra_state(self) -> dict[str, Any]:
        ref = self._reference
        return {
            "tests": self.tests,
            "alpha_per_test": self.alpha,
            "threshold": getattr(self, "threshold", None),
            "wasserstein": self.last_wasserstein if math.isfinite(self.last_wasserstein) else None,
            "reference_size": int(ref.size) if ref is not None else 0,
            "reference_mean": float(ref.mean()) if ref is not None else None,
            "warmup_collected": len(self._warm),
        }
