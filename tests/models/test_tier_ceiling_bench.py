"""bench/tier_ceiling.py: the measured run-to-run noise of near-duplicate pairs and the simulated relabellings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from models.training.data import Dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("tier_ceiling", ROOT / "bench" / "tier_ceiling.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_near_duplicate_pairs_measure_label_disagreement(bench):
    """Two copies of one story (labelled 1 point apart on 2 of 4 dimensions) form the only pair: MAE 0.5."""
    story = "The wind farm off the coast was commissioned on Monday and will power 300,000 homes, the operator said."
    other = ["Football club signs young striker", "Heavy rain floods harbour district",
             "Museum reopens Rembrandt gallery", "Bakery chain raises bread prices", "Police search missing hiker"]
    arts = [{"id": "a", "title": "Wind farm opens", "content": story, "language": "en"},
            {"id": "b", "title": "Wind farm opens", "content": story + " Construction took two years.",
             "language": "en"}] + [{"id": f"o{i}", "title": t, "content": t, "language": "nl"}
                                   for i, t in enumerate(other)]
    labels = np.zeros((len(arts), 4))
    labels[0] = [6, 5, 4, 3]
    labels[1] = [7, 5, 5, 3]
    report = bench.near_duplicate_pairs(Dataset(arts, labels, ["a", "b", "c", "d"]), 0.8)
    assert report["all"]["pairs"] == 1 and report["all"]["dimension_mae"] == 0.5
    assert report["all"]["identical_share"] == 0.0
    assert list(report["by_language"]) == ["en"] and report["mean_score_at_least_2"]["pairs"] == 1


def test_two_relabellings_disagree_more_than_one_and_the_labels(bench):
    """The run-to-run axis the measured pairs are read on: two noisy runs differ more than one run from the
    expected score, and the shared share keeps the per-dimension MAE."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 11, size=(4000, 8)).astype(float)
    one = bench.relabel(labels, 0.75, 0.0, rng)
    two = bench.relabel(labels, 0.75, 0.0, rng)
    to_labels, run_to_run = np.abs(one - labels).mean(), np.abs(one - two).mean()
    assert 1.3 < run_to_run / to_labels < 1.9
    assert set(np.unique(one)) <= set(range(11))
    shared = bench.relabel(labels, 0.75, 0.5, rng)
    assert abs(np.abs(shared - labels).mean() - to_labels) < 0.05
