"""Rate shift of a yes/no event (block, escalation, dead letter): a binomial test per tumbling window."""

from __future__ import annotations

from typing import Any

from scipy.stats import binom

from monitoring.alerts import Cooldown, Severity
from monitoring.detectors.base import Detector, Finding


class RateShift(Detector):
    """Count events in tumbling windows of `window` trials; test each against the baseline rate.

    The test is two-sided exact binomial at alpha = budget / horizon_windows (Bonferroni over windows), and
    the change must also be at least `min_relative` of the baseline (the anchor's "pass rate drifts > 20 %
    relative" trigger) and `min_absolute`, so a huge stream does not alert on a 0.1-point wobble. Without a
    baseline, the first `warmup_windows` windows set it.

    >>> det = RateShift("", "rate.dlq", baseline=0.1, window=100)
    >>> [det.update(i % 10 == 0, now=0.0) for i in range(1_000)].count(None)  # exactly 10 %
    1000
    >>> alerts = [a for a in (det.update(i % 2 == 0, now=0.0) for i in range(100)) if a]  # 50 %
    >>> alerts[0].value, alerts[0].baseline, alerts[0].severity
    (0.5, 0.1, 'critical')
    """

    name = "binomial"

    def __init__(
        self,
        filter_name: str,
        signal: str,
        *,
        baseline: float | None = None,
        window: int = 1_000,
        budget: float = 0.01,
        horizon_windows: int = 10_000,
        min_relative: float = 0.2,
        min_absolute: float = 0.01,
        warmup_windows: int = 2,
        cooldown: Cooldown | None = None,
        reference: str = "",
    ) -> None:
        super().__init__(filter_name, signal, cooldown=cooldown, reference=reference or "warmup")
        if window < 10:
            raise ValueError(f"rate window must be >= 10 trials, got {window}")
        if baseline is not None and not 0.0 <= baseline <= 1.0:
            raise ValueError(f"baseline rate must be in [0, 1], got {baseline}")
        self.window = window
        self.alpha = budget / horizon_windows
        self.min_relative = min_relative
        self.min_absolute = min_absolute
        self.warmup_windows = warmup_windows
        self.baseline = baseline
        self._given = (baseline, reference or ("artifact" if baseline is not None else "warmup"))
        if baseline is not None:
            self.reference = reference or "artifact"
        self._k = 0
        self._n = 0
        self._warm_k = 0
        self._warm_n = 0
        self.last_rate = float("nan")
        self.total_events = 0

    def _reset(self) -> None:
        self.baseline, self.reference = self._given
        self._k = self._n = self._warm_k = self._warm_n = self.total_events = 0
        self.last_rate = float("nan")

    @property
    def ready(self) -> bool:
        return self.baseline is not None

    @property
    def statistic(self) -> float:
        """The rate of the last complete window."""
        return self.last_rate

    @property
    def running_rate(self) -> float:
        """The rate in the window being filled (nan when empty)."""
        return self._k / self._n if self._n else float("nan")

    def _step(self, x: float) -> Finding | None:
        event = 1 if x >= 0.5 else 0
        self._k += event
        self._n += 1
        self.total_events += event
        if self._n < self.window:
            return None
        k, n = self._k, self._n
        self._k = self._n = 0
        self.last_rate = k / n
        if self.baseline is None:
            self._warm_k += k
            self._warm_n += n
            if self._warm_n >= self.warmup_windows * self.window:
                self.baseline = self._warm_k / self._warm_n
            return None
        return self._test(k, n)

    def _test(self, k: int, n: int) -> Finding | None:
        assert self.baseline is not None
        # A zero baseline would make any single event "impossible"; keep a floor of half an event per warm-up.
        p0 = min(max(self.baseline, 0.5 / max(self.warmup_windows * self.window, n)), 1 - 1e-9)
        rate = k / n
        change = rate - self.baseline
        needed = max(self.min_relative * self.baseline, self.min_absolute)
        if abs(change) < needed:
            return None
        p_value = float(min(1.0, 2 * min(binom.cdf(k, n, p0), binom.sf(k - 1, n, p0))))
        if p_value >= self.alpha:
            return None
        relative = change / self.baseline if self.baseline > 0 else None
        severity: Severity = "critical" if abs(change) >= 2 * needed else "warning"
        return Finding(
            value=rate,
            baseline=self.baseline,
            window=n,
            severity=severity,
            message=f"rate {rate:.3f} vs baseline {self.baseline:.3f} ({k}/{n}, p={p_value:.2g})",
            details={"p_value": p_value, "alpha": self.alpha, "relative_change": relative, "events": k},
        )

    def _extra_state(self) -> dict[str, Any]:
        running = self.running_rate
        return {
            "baseline": self.baseline,
            "window": self.window,
            "running_rate": running if running == running else None,
            "alpha_per_window": self.alpha,
            "events": self.total_events,
        }
