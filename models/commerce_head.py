"""Commerce head: a logistic classifier on the shared embedding, P(article is commerce/promotional).

Serving side only (load, verify, score); its training lives in models/training/commerce.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from filters.timeutil import now_iso
from models.artifacts import MANIFEST, ArtifactError, sha256_file

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "filters" / "commerce" / "artifacts"
HEAD_WEIGHTS = "commerce_head.safetensors"
HEAD_CONFIG = "commerce_head.json"


@dataclass
class CommerceHead:
    """Standardise → logistic regression; block when probability ≥ `threshold`."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5
    embedding: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        x = (np.asarray(embeddings, dtype=np.float64) - self.mean) / self.std
        return 1.0 / (1.0 + np.exp(-(x @ self.coef.astype(np.float64) + self.intercept)))

    def save(self, directory: Path = DEFAULT_DIR) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"mean": self.mean.astype(np.float32), "std": self.std.astype(np.float32),
                   "coef": self.coef.astype(np.float32)}, str(directory / HEAD_WEIGHTS))
        meta = {"type": "logistic", "intercept": self.intercept, "threshold": self.threshold,
                "embedding": self.embedding, "metrics": self.metrics}
        (directory / HEAD_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        manifest = {
            "created_at": now_iso(),
            "embedding": self.embedding,
            "files": {n: sha256_file(directory / n) for n in (HEAD_WEIGHTS, HEAD_CONFIG)},
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path = DEFAULT_DIR) -> CommerceHead:
        """Load and verify checksums; a changed file raises ArtifactError naming it."""
        directory = Path(directory)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise ArtifactError(f"{manifest_path}: no commerce head here; train one with `distillery train-commerce`")
        manifest = json.loads(manifest_path.read_text())
        for name, digest in manifest.get("files", {}).items():
            path = directory / name
            if not path.is_file() or sha256_file(path) != digest:
                raise ArtifactError(
                    f"{path}: missing or changed since training; re-train with `distillery train-commerce`"
                )
        meta = json.loads((directory / HEAD_CONFIG).read_text())
        t = load_file(str(directory / HEAD_WEIGHTS))
        return cls(t["mean"], t["std"], t["coef"], float(meta["intercept"]), float(meta["threshold"]),
                   meta.get("embedding", {}), meta.get("metrics", {}))


def load_default() -> CommerceHead | None:
    """The shipped head, or None when no artifacts exist."""
    if not (DEFAULT_DIR / MANIFEST).is_file():
        return None
    return CommerceHead.load(DEFAULT_DIR)
