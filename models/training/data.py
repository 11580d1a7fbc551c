"""Labelled rows: load the JSONL data format, clean the text, and hold labels in the spec's dimension order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from filters.jsonl import read_objects
from filters.postfilter import weighted_averages
from filters.spec import FilterSpec
from filters.text import clean_article
from models.artifacts import sha256_file
from models.errors import ModelsError


class DataError(ModelsError, ValueError):
    """A data file that cannot be used for training or evaluation; the message names the file and line."""


def clean(article: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline's text cleaning (filters.text.clean_article) applied to a data row."""
    return clean_article(dict(article))


@dataclass
class Dataset:
    """Articles (cleaned dicts with title/content/source) and labels (n, n_dims) in spec order."""

    articles: list[dict[str, Any]]
    labels: np.ndarray
    dimension_names: list[str]
    source: str = ""
    data_hash: str = ""

    def __len__(self) -> int:
        return len(self.articles)

    def subset(self, idx: np.ndarray | list[int]) -> Dataset:
        idx = np.asarray(idx, dtype=int)
        return Dataset([self.articles[i] for i in idx], self.labels[idx], self.dimension_names, self.source,
                       self.data_hash)

    def weighted_averages(self, weights: list[float]) -> np.ndarray:
        """The oracle WA of every row (`filters.postfilter.weighted_averages`, no gatekeepers)."""
        return weighted_averages(self.labels, weights)

    @property
    def ids(self) -> list[str]:
        return [a["id"] for a in self.articles]

    def student_rows(self) -> list[dict[str, Any]]:
        """Rows for the student API: the cleaned article plus its `{dimension: score}` labels."""
        dims = self.dimension_names
        return [{**a, "scores": dict(zip(dims, map(float, y), strict=True))}
                for a, y in zip(self.articles, self.labels, strict=True)]


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file of objects; errors name the file and the line."""
    numbered = read_objects(path, expected="a JSONL file of {id, title, text, scores} rows", error=DataError,
                            allow_empty=False)
    return [row for _, row in numbered]


def to_article(row: Mapping[str, Any]) -> dict[str, Any]:
    """The article part of a data row, in the pipeline's field names (`text` → `content`)."""
    art = {
        "id": str(row.get("id", "")),
        "title": str(row.get("title") or ""),
        "content": str(row.get("content") or row.get("text") or ""),
        "url": str(row.get("url") or ""),
        "source": str(row.get("source") or ""),
        "source_type": str(row.get("source_type") or ""),
        "language": str(row.get("language") or ""),
    }
    return clean(art)


def load_dataset(path: str | Path, spec: FilterSpec) -> Dataset:
    """Rows with `scores` for every dimension of `spec`; a missing dimension is an error naming row and fix."""
    path = Path(path)
    rows = load_rows(path)
    dims = spec.dimension_names
    labels = np.zeros((len(rows), len(dims)), dtype=np.float64)
    for i, row in enumerate(rows):
        scores = row.get("scores")
        if not isinstance(scores, Mapping):
            raise DataError(f"{path}: row {i + 1} (id {row.get('id')!r}) has no `scores` object")
        missing = [d for d in dims if d not in scores]
        if missing:
            raise DataError(
                f"{path}: row {i + 1} (id {row.get('id')!r}) lacks scores for {missing}; the data does not match "
                f"filter {spec.key} (dimensions {dims})"
            )
        labels[i] = [float(scores[d]) for d in dims]
    return Dataset([to_article(r) for r in rows], labels, dims, str(path), sha256_file(path))
