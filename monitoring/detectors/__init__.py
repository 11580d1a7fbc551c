"""Drift detectors, one small class per concern, all with `update(value, now=None) -> Alert | None`."""

from __future__ import annotations

from monitoring.detectors.base import Detector, Finding
from monitoring.detectors.distribution_shift import DistributionShift
from monitoring.detectors.mean_shift import MeanShift
from monitoring.detectors.rate import RateShift
from monitoring.detectors.residual import ResidualDrift

__all__ = ["Detector", "DistributionShift", "Finding", "MeanShift", "RateShift", "ResidualDrift"]
