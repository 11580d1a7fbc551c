"""Each detector: found within a stated delay after a known change point, silent on 20,000 stationary samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitoring.alerts import Cooldown
from monitoring.detectors import DistributionShift, MeanShift, RateShift, ResidualDrift
from monitoring.detectors.distribution_shift import ks_critical, ks_statistic

N_STATIONARY = 20_000
CHANGE_AT = 5_000


# ---- ADWIN mean shift ----------------------------------------------------------------------------------------------
def test_mean_shift_silent_on_stationary_scores(rng, feed, scores):
    det = MeanShift("tiny", "score.impact")
    assert feed(det, scores(rng, N_STATIONARY, 4.0)) == []
    assert det.firings == 0
    assert det.n == N_STATIONARY


def test_mean_shift_finds_a_one_and_a_half_point_shift_within_250_samples(rng, feed, scores):
    stream = np.concatenate([scores(rng, CHANGE_AT, 4.0), scores(rng, N_STATIONARY - CHANGE_AT, 5.5)])
    det = MeanShift("tiny", "score.impact", cooldown=Cooldown(events=100_000, seconds=0))
    alerts = feed(det, stream)
    assert len(alerts) == 1  # one drift, one alert (later firings are suppressed by the cooldown)
    alert = alerts[0]
    assert 0 < alert.index - CHANGE_AT <= 250
    assert (alert.filter, alert.signal, alert.detector) == ("tiny", "score.impact", "adwin")
    assert alert.baseline == pytest.approx(4.0, abs=0.15)
    assert alert.value == pytest.approx(5.5, abs=0.5)
    assert alert.severity == "critical"  # shift >= 2 x min_shift


def test_mean_shift_ignores_a_significant_but_small_shift(rng, feed, scores):
    stream = np.concatenate([scores(rng, 10_000, 4.0, sd=0.5), scores(rng, 10_000, 4.3, sd=0.5)])
    det = MeanShift("tiny", "score.impact", min_shift=0.5)
    assert feed(det, stream) == []
    assert det.detections >= 1  # ADWIN saw it; the size check kept it quiet


# ---- windowed KS distribution shift -------------------------------------------------------------------------------
def _wa(rng, n, shifted=False):
    base = np.clip(rng.gamma(2.0, 1.2, n), 0, 10)
    if not shifted:
        return base
    return np.where(rng.random(n) < 0.3, np.clip(rng.normal(6.5, 1.0, n), 0, 10), base)


def test_ks_statistic_and_critical_value():
    ref = np.sort(np.arange(100, dtype=float))
    assert ks_statistic(ref, np.arange(100, dtype=float)) == 0.0
    assert ks_statistic(ref, np.arange(100, 200, dtype=float)) == 1.0
    assert ks_statistic(ref, np.arange(50, 150, dtype=float)) == pytest.approx(0.5)
    # alpha 0.05, n=m=100: the textbook 1.358 * sqrt(2/100)
    assert ks_critical(0.05, 100, 100) == pytest.approx(1.358 * math.sqrt(0.02), rel=1e-3)


def test_distribution_shift_silent_on_stationary_weighted_averages(rng, feed):
    det = DistributionShift("tiny", "weighted_average", _wa(rng, 1_000), window=500, step=100)
    assert feed(det, _wa(rng, N_STATIONARY)) == []
    assert det.firings == 0
    assert det.tests == (N_STATIONARY - 500) // 100 + 1
    assert det.alpha == pytest.approx(0.01 / 100_000)
    assert det.reference == "artifact"


def test_distribution_shift_finds_a_new_mode_within_400_samples(rng, feed):
    det = DistributionShift("tiny", "weighted_average", _wa(rng, 1_000), reference="artifact:abc123")
    stream = np.concatenate([_wa(rng, CHANGE_AT), _wa(rng, N_STATIONARY - CHANGE_AT, shifted=True)])
    alerts = feed(det, stream)
    # The drift persists for 15,000 updates: the default cooldown (5,000 updates and one hour, at one update a
    # second here) turns ~150 firing tests into 3 alerts, a reminder per cooldown instead of one per window.
    assert det.firings > 100
    assert len(alerts) == 3
    assert all(b.index - a.index >= 5_000 for a, b in zip(alerts, alerts[1:], strict=False))
    alert = alerts[0]
    assert 0 < alert.index - CHANGE_AT <= 400
    assert alert.detector == "ks" and alert.reference == "artifact:abc123"
    assert alert.value > alert.baseline  # D above the Bonferroni critical value
    assert alert.details["p_value"] < det.alpha
    assert alert.details["window_mean"] > alert.details["reference_mean"]


def test_distribution_shift_warms_up_its_reference_when_none_is_given(rng, feed):
    det = DistributionShift("tiny", "weighted_average", warmup=1_000)
    feed(det, _wa(rng, 999))
    assert not det.ready and det.tests == 0
    stream = np.concatenate([_wa(rng, CHANGE_AT - 999), _wa(rng, 5_000, shifted=True)])
    alerts = feed(det, stream)
    assert det.ready and det.reference == "warmup"
    assert len(alerts) == 1 and alerts[0].reference == "warmup"


def test_distribution_shift_rejects_a_tiny_reference():
    with pytest.raises(ValueError, match="at least 20 finite values"):
        DistributionShift("tiny", "weighted_average", [1.0, 2.0, float("nan")])


# ---- Page-Hinkley on the scaled residual ---------------------------------------------------------------------------
def test_residual_drift_silent_on_stationary_residuals(rng, feed):
    det = ResidualDrift("tiny", mean=0.2, std=0.8)
    assert feed(det, rng.normal(0.2, 0.8, N_STATIONARY)) == []
    assert det.firings == 0


def test_residual_drift_finds_a_one_sd_shift_within_120_samples(rng, feed):
    det = ResidualDrift("tiny", mean=0.2, std=0.8)
    stream = np.concatenate([rng.normal(0.2, 0.8, CHANGE_AT), rng.normal(1.0, 0.8, 5_000)])
    alerts = feed(det, stream)
    assert len(alerts) == 1
    alert = alerts[0]
    assert 0 < alert.index - CHANGE_AT <= 120
    assert alert.detector == "page_hinkley" and alert.signal == "residual"
    assert alert.baseline == pytest.approx(0.2)
    assert alert.details["shift_sd"] > 0.5


def test_residual_drift_finds_a_downward_shift_after_a_warmup(rng, feed):
    det = ResidualDrift("tiny", warmup=200)
    stream = np.concatenate([rng.normal(-0.1, 0.5, CHANGE_AT), rng.normal(-0.8, 0.5, 2_000)])
    alerts = feed(det, stream)
    assert det.reference == "warmup" and det.mean == pytest.approx(-0.1, abs=0.1)
    assert len(alerts) == 1 and 0 < alerts[0].index - CHANGE_AT <= 120
    assert alerts[0].value < alerts[0].baseline


# ---- binomial rate windows -------------------------------------------------------------------------------------------
def test_rate_shift_silent_on_stationary_rates(rng, feed):
    for p in (0.3, 0.02):
        det = RateShift("tiny", "rate.escalation", baseline=p)
        assert feed(det, rng.random(N_STATIONARY) < p) == []
        assert det.firings == 0


def test_rate_shift_finds_a_third_more_escalations_within_one_window(rng, feed):
    det = RateShift("tiny", "rate.escalation", baseline=0.3, window=1_000)
    stream = np.concatenate([rng.random(CHANGE_AT) < 0.3, rng.random(5_000) < 0.4])
    alerts = feed(det, stream)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.index - CHANGE_AT <= 1_000  # the first full window after the change
    assert alert.value == pytest.approx(0.4, abs=0.04) and alert.baseline == 0.3
    assert alert.window == 1_000


def test_rate_shift_learns_its_baseline_and_catches_a_dlq_burst(rng, feed):
    det = RateShift("", "rate.dlq", window=500, warmup_windows=2)
    stream = np.concatenate([rng.random(CHANGE_AT) < 0.002, rng.random(1_000) < 0.05])
    alerts = feed(det, stream)
    assert det.baseline == pytest.approx(0.002, abs=0.004) and det.reference == "warmup"
    assert len(alerts) == 1 and alerts[0].index - CHANGE_AT <= 500
    assert alerts[0].severity == "critical"


def test_detectors_skip_non_finite_values():
    det = MeanShift("tiny", "score.impact")
    assert det.update(float("nan")) is None and det.update(float("inf")) is None
    assert det.n == 0 and det.skipped == 2
