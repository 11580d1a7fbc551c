"""One contract for every drift detector in monitoring/detectors (River's check_estimator idea).

Each detector class must: return None or an Alert from `update()`, skip non-finite values, stay silent on a
stationary stream from a fixed seed, alert within K updates of a clear shift, and report a JSON-able state with
the common keys. A new detector class fails `test_every_detector_has_a_contract_case` until it gets a case here.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import monitoring.detectors as detectors_pkg
from monitoring.alerts import Alert
from monitoring.detectors import Detector, DistributionShift, MeanShift, RateShift, ResidualDrift

STATIONARY = 5_000
WITHIN = 400  # updates after the shift by which the first alert must come
COMMON_STATE_KEYS = {"filter", "signal", "detector", "updates", "skipped", "ready", "statistic", "firings",
                     "reference", "cooldown", "last_alert"}

Draw = Callable[[np.random.Generator], float]


@dataclass(frozen=True)
class Case:
    """How to build one detector and which streams it sees before and after the shift."""

    make: Callable[[], Detector]
    before: Draw
    after: Draw
    stationary: int = STATIONARY


CASES: dict[type[Detector], Case] = {
    MeanShift: Case(lambda: MeanShift("f", "score.x"), lambda g: g.normal(5, 1), lambda g: g.normal(7, 1)),
    DistributionShift: Case(
        lambda: DistributionShift("f", "weighted_average", np.random.default_rng(1).normal(5, 1, 2_000),
                                  window=200, step=50),
        lambda g: g.normal(5, 1), lambda g: g.normal(6.5, 1)),
    RateShift: Case(lambda: RateShift("f", "rate.x", baseline=0.1, window=200),
                    lambda g: float(g.random() < 0.1), lambda g: float(g.random() < 0.3), stationary=10_000),
    ResidualDrift: Case(lambda: ResidualDrift("f", mean=0.0, std=1.0), lambda g: g.normal(0, 1),
                        lambda g: g.normal(1.5, 1)),
}


def _detector_classes() -> set[type[Detector]]:
    return {obj for _, obj in inspect.getmembers(detectors_pkg, inspect.isclass)
            if issubclass(obj, Detector) and obj is not Detector}


def test_every_detector_has_a_contract_case():
    assert _detector_classes() == set(CASES), "add a Case for each new detector class"


@pytest.mark.parametrize("cls", sorted(CASES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_detector_contract(cls):
    case = CASES[cls]
    det = case.make()
    rng = np.random.default_rng(7)

    # uniform return type; non-finite values are skipped and counted, never fed to the test
    assert det.update(float("nan"), now=0.0) is None and det.update(float("inf"), now=0.0) is None
    assert det.skipped == 2 and det.n == 0

    outputs = [det.update(case.before(rng), now=0.0) for _ in range(case.stationary)]
    assert all(out is None for out in outputs), f"{cls.__name__} alerted on a stationary stream"
    assert det.firings == 0 and det.n == case.stationary

    first = None
    for i in range(WITHIN):
        out = det.update(case.after(rng), now=0.0)
        assert out is None or isinstance(out, Alert)
        if out is not None:
            first = i
            break
    assert first is not None, f"{cls.__name__} missed a clear shift within {WITHIN} updates"
    assert out is not None and out.detector == cls.name and out.signal == det.signal and out.filter == "f"
    assert out.severity in ("warning", "critical") and out.index == det.n

    state = det.state()
    assert COMMON_STATE_KEYS <= set(state)
    assert state["detector"] == cls.name and state["updates"] == det.n and state["firings"] >= 1
    assert json.loads(json.dumps(state)) == state  # the snapshot the state file holds survives a JSON round trip


@pytest.mark.parametrize("cls", sorted(CASES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_detectors_are_deterministic(cls):
    """Two detectors built alike and fed the same seeded stream give the same statistic and firings."""
    runs = []
    for _ in range(2):
        det, rng = CASES[cls].make(), np.random.default_rng(3)
        for _ in range(2_000):
            det.update(CASES[cls].after(rng), now=0.0)
        runs.append((det.n, det.firings, det.state()["statistic"]))
    assert runs[0] == runs[1]


def _feed(det: Detector, draw: Draw, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        det.update(draw(rng), now=0.0)


@pytest.mark.parametrize("cls", sorted(CASES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_reset_returns_a_detector_to_its_fresh_state(cls):
    """After a drift episode, `reset()` makes the detector behave exactly like a newly built one."""
    case = CASES[cls]
    used = case.make()
    _feed(used, case.before, 2_000, seed=1)  # a drift episode: fills windows, fires, opens a cooldown
    _feed(used, case.after, 1_000, seed=4)
    assert used.firings >= 1 and used.cooldown.fired >= 1
    used.reset()
    fresh = case.make()
    assert used.state() == fresh.state()
    for det in (used, fresh):
        _feed(det, case.before, 2_000, seed=2)
        _feed(det, case.after, 500, seed=3)
    assert used.state() == fresh.state()
