"""Train/val/test split: 80/10/10, stratified on weighted-average bins, fixed seed; exact duplicates kept together."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from models.artifacts import read_manifest
from models.training.data import DataError, Dataset

WA_BINS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)


@dataclass
class Split:
    """Row indices of each part into the source dataset."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def as_dict(self) -> dict[str, list[int]]:
        return {"train": self.train.tolist(), "val": self.val.tolist(), "test": self.test.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[int]]) -> Split:
        return cls(*(np.asarray(data[k], dtype=int) for k in ("train", "val", "test")))


def wa_bins(wa: np.ndarray) -> np.ndarray:
    return np.digitize(wa, WA_BINS)


def _strata(bins: np.ndarray, min_count: int) -> np.ndarray:
    """Merge bins too small to stratify into their lower neighbour."""
    bins = bins.copy()
    for b in sorted(set(bins.tolist()), reverse=True):
        if (bins == b).sum() < min_count and b > bins.min():
            lower = max(x for x in set(bins.tolist()) if x < b)
            bins[bins == b] = lower
    return bins


def text_key(article: dict) -> str:
    text = f"{article.get('title', '')}\n{article.get('content', '')}".strip().lower()
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()


def split_dataset(data: Dataset, weights: list[float], seed: int = 42,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Split:
    """Stratified split on WA bins. Rows with identical text are grouped: the group goes where its first row goes."""
    keys = [text_key(a) for a in data.articles]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    heads = np.array(sorted(set(first.values())), dtype=int)
    wa = data.weighted_averages(weights)[heads]
    n = len(heads)
    if n < 10:
        raise DataError(f"{data.source}: {n} distinct articles are too few to split 80/10/10; give at least 10")
    strata = _strata(wa_bins(wa), min_count=10)
    holdout = fractions[1] + fractions[2]
    strat = strata if min(np.bincount(strata)[np.unique(strata)]) >= 2 else None
    tr, rest = train_test_split(np.arange(n), test_size=holdout, random_state=seed, stratify=strat)
    rest_strata = strata[rest]
    ok = min(np.bincount(rest_strata)[np.unique(rest_strata)]) >= 2
    va, te = train_test_split(rest, test_size=fractions[2] / holdout, random_state=seed,
                              stratify=rest_strata if ok else None)
    part = {}
    for name, idx in (("train", tr), ("val", va), ("test", te)):
        for h in heads[idx]:
            part[keys[h]] = name
    groups: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, k in enumerate(keys):
        groups[part[k]].append(i)
    return Split(*(np.asarray(groups[k], dtype=int) for k in ("train", "val", "test")))


def training_part(data: Dataset, spec: Any, part: str) -> Dataset:
    """The `train`/`val`/`test` part of `data` as the spec's trained artifacts split it (same file, same seed).

    Refuses another file than the one the artifacts were trained on: its split would not be the held-out one."""
    if part not in ("train", "val", "test"):
        raise DataError(f"unknown split part {part!r}; use all, train, val or test")
    recorded = (read_manifest(spec.artifacts_dir).get("training_data") or {})
    if recorded.get("sha256") != data.data_hash:
        raise DataError(f"{data.source} is not the file {spec.key} was trained on ({recorded.get('path')}, sha256 "
                        f"{str(recorded.get('sha256'))[:12]}…), so it has no {part} split; use --split all")
    split = split_dataset(data, spec.weights, seed=int(recorded.get("split_seed", 42)))
    return data.subset(getattr(split, part))
