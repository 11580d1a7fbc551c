"""Data loading errors and the stratified 80/10/10 split (duplicates kept on one side)."""

from __future__ import annotations

import numpy as np
import pytest
from model_helpers import synthetic_rows, write_jsonl

from models.training.data import DataError, load_dataset
from models.training.split import split_dataset


def test_split_is_stratified_seeded_and_keeps_duplicates_together(tiny_spec, tmp_path):
    rows = synthetic_rows(200, seed=1)
    rows += [{**rows[0], "id": "dup-1"}, {**rows[0], "id": "dup-2"}]
    data = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows), tiny_spec)
    a = split_dataset(data, tiny_spec.weights, seed=42)
    b = split_dataset(data, tiny_spec.weights, seed=42)
    assert all(np.array_equal(x, y) for x, y in zip(a.as_dict().values(), b.as_dict().values(), strict=True))
    sizes = {k: len(v) for k, v in a.as_dict().items()}
    assert sum(sizes.values()) == 202 and abs(sizes["test"] - 20) <= 3 and abs(sizes["val"] - 20) <= 3
    ids = data.ids
    where = {name: {ids[i] for i in idx} for name, idx in a.as_dict().items()}
    dup_parts = [name for name, s in where.items() if {"syn-0", "dup-1", "dup-2"} & s]
    assert len(dup_parts) == 1
    wa = data.weighted_averages(tiny_spec.weights)
    high_share = {k: float((wa[v] >= 4).mean()) for k, v in a.as_dict().items()}
    assert max(high_share.values()) - min(high_share.values()) < 0.15


def test_data_errors_name_file_and_row(tiny_spec, tmp_path):
    with pytest.raises(DataError, match="no such file; pass a JSONL file"):
        load_dataset(tmp_path / "missing.jsonl", tiny_spec)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "title": "t", "text": "x", "scores": {"impact": 1}}\n')
    with pytest.raises(DataError, match=r"row 1 \(id '1'\) lacks scores for \['evidence', 'reach'\]"):
        load_dataset(bad, tiny_spec)
    bad.write_text("{oops\n")
    with pytest.raises(DataError, match="bad.jsonl:1: not valid JSON"):
        load_dataset(bad, tiny_spec)
