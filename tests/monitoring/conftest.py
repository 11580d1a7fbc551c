"""Seeded synthetic streams and a deterministic feeder for the monitoring tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261126)


@pytest.fixture
def scores() -> Callable[..., np.ndarray]:
    """Score-like values: normal, clipped to 0-10, rounded to one decimal like served scores."""

    def make(rng: np.random.Generator, n: int, mean: float, sd: float = 2.0) -> np.ndarray:
        return np.clip(rng.normal(mean, sd, n), 0.0, 10.0).round(1)

    return make


@pytest.fixture
def feed() -> Callable[..., list]:
    """Feed every value with a deterministic clock (one second per update); return the alerts."""

    def run(detector, values) -> list:
        alerts = []
        for i, x in enumerate(values):
            alert = detector.update(float(x), now=float(i))
            if alert is not None:
                alerts.append(alert)
        return alerts

    return run
