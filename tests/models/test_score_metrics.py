"""The one metrics module: values on small hand-computed cases, and the WA from the postfilter's definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.metrics import (
    bootstrap_ci,
    mae,
    mae_report,
    per_dimension_mae,
    rmse,
    spearman,
    tier_accuracy,
    wa_mae,
)

PRED = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
REF = np.array([[1.0, 3.0, 3.0], [2.0, 4.0, 6.0]])


def test_error_metrics_by_hand():
    assert mae(PRED, REF) == pytest.approx((0 + 1 + 0 + 2 + 0 + 2) / 6)
    assert per_dimension_mae(PRED, REF, ["a", "b", "c"]) == pytest.approx({"a": 1.0, "b": 0.5, "c": 1.0})
    assert rmse(PRED, REF) == pytest.approx(math.sqrt((1 + 4 + 4) / 6))
    # WA with weights .5/.3/.2: 0.5+0.6+0.6=1.7 vs 0.5+0.9+0.6=2.0; 4.0 vs 1.0+1.2+1.2=3.4
    assert wa_mae(PRED, REF, [0.5, 0.3, 0.2]) == pytest.approx((0.3 + 0.6) / 2)
    with pytest.raises(ValueError, match="differ in shape"):
        mae(PRED, REF[:1])


def test_report_clamps_and_ranks(tiny_spec):
    report = mae_report(np.array([[12.0, -1.0, 5.0]]), np.array([[10.0, 0.0, 5.0]]), ["impact", "evidence", "reach"],
                        tiny_spec.weights)
    assert report["mae"] == 0.0 and report["wa_mae"] == 0.0 and report["n"] == 1
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert math.isnan(spearman([1, 2], [2, 1]))
    assert tier_accuracy(tiny_spec, REF, REF) == 1.0
    assert bootstrap_ci(np.array([2.0, 2.0, 2.0]), 20) == [2.0, 2.0]
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([]), 20))
