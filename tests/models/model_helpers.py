"""Helpers for the models tests: synthetic labelled rows, spec/data writers and a fake student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

GOOD = ["solar", "turbine", "battery", "grid", "deployed", "emissions", "measured", "heatpump"]
FILLER = ["market", "city", "people", "report", "today", "meeting", "weather", "football", "music", "school",
          "police", "train", "river", "garden", "price", "museum"]
DIMS = ["impact", "evidence", "reach"]


def synthetic_rows(n: int = 160, seed: int = 0) -> list[dict]:
    """Rows whose scores grow with the number of 'good' words: learnable by a probe on hashed words."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = int(rng.integers(0, len(GOOD) + 1))
        words = list(rng.choice(GOOD, size=k, replace=False)) + list(rng.choice(FILLER, size=12))
        rng.shuffle(words)
        base = min(10.0, 1.1 * k)
        scores = {d: float(np.clip(round(2 * (base + rng.normal(0, 0.5))) / 2, 0, 10)) for d in DIMS}
        rows.append({"id": f"syn-{i}", "title": f"Story {i} {words[0]}", "text": " ".join(words * 4),
                     "url": f"https://example.org/{i}", "source": "test_source", "scores": scores})
    return rows


def write_spec(root: Path, data: dict) -> Path:
    path = root / data["name"] / f"v{data['version']}" / "filter.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class FakeStudent:
    """Stands in for models.student.Student: raw scores = 0.8 × good-word count (+ offset), recorded calls."""

    def __init__(self, dims: list[str], offset: float = 0.0) -> None:
        self.dims = dims
        self.offset = offset
        self.calls: list[int] = []
        self.device = "cpu"

    def predict(self, articles, batch_size: int = 16) -> np.ndarray:
        self.calls.append(len(articles))
        out = np.zeros((len(articles), len(self.dims)), dtype=np.float32)
        for i, a in enumerate(articles):
            words = set(f"{a.get('title', '')} {a.get('content', '')}".split())
            out[i] = 1.1 * len(words & set(GOOD)) + self.offset
        return out
