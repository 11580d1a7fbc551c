"""Commerce head: a logistic classifier on the shared embedding, P(article is commerce/promotional)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedKFold

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


def _fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    mean = x.mean(0)
    std = x.std(0) + 1e-6
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    clf.fit((x - mean) / std, y)
    return mean, std, clf.coef_[0], float(clf.intercept_[0])


def _prob(x: np.ndarray, mean: np.ndarray, std: np.ndarray, coef: np.ndarray, b: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(((x - mean) / std) @ coef + b)))


def out_of_fold(x: np.ndarray, y: np.ndarray, c: float, folds: int = 5, seed: int = 42) -> np.ndarray:
    """Out-of-fold probabilities from stratified K-fold: no row is scored by a head trained on it."""
    oof = np.zeros(len(y))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        oof[te] = _prob(x[te], *_fit(x[tr], y[tr], c))
    return oof


THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.01), 2)


def f1_at(y: np.ndarray, prob: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """F1 of `prob >= t` for every threshold at once."""
    pred = prob[None, :] >= thresholds[:, None]
    tp = (pred & (y[None, :] == 1)).sum(1)
    denom = pred.sum(1) + (y == 1).sum()
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def select(x: np.ndarray, y: np.ndarray, cs: tuple[float, ...], folds: int = 5, repeats: int = 2,
           seed: int = 42) -> tuple[float, float, float]:
    """C and threshold maximising out-of-fold F1 (repeated stratified CV); threshold = middle of the best plateau."""
    best = (-1.0, cs[0], 0.5)
    for c in cs:
        oofs = [out_of_fold(x, y, c, folds, seed + r) for r in range(repeats)]
        f1s = np.mean([f1_at(y, o) for o in oofs], axis=0)
        top = float(f1s.max())
        if top > best[0] + 1e-9:
            best = (top, c, float(np.median(THRESHOLDS[f1s >= top - 1e-9])))
    return best


def train_commerce_head(
    x: np.ndarray, y: np.ndarray, embedding: dict[str, Any], *, cs: tuple[float, ...] = (0.01, 0.1, 1.0, 3.0),
    folds: int = 5, seed: int = 42,
) -> CommerceHead:
    """Nested stratified CV for an honest F1 (C and threshold chosen inside each outer training fold), then
    C/threshold chosen on all rows and the shipped head fitted on all rows."""
    y = np.asarray(y, dtype=int)
    pred = np.zeros(len(y), dtype=bool)
    prob = np.zeros(len(y))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        _, c, t = select(x[tr], y[tr], cs, folds, 1, seed)
        prob[te] = _prob(x[te], *_fit(x[tr], y[tr], c))
        pred[te] = prob[te] >= t
    f1_inner, c, t = select(x, y, cs, folds, 2, seed)
    metrics = {
        "cv": f"nested stratified {folds}-fold (outer scores never seen by the head or its C/threshold choice)",
        "n": int(len(y)), "n_positive": int(y.sum()), "C": c, "threshold": t,
        "f1_nested_cv": float(f1_score(y, pred)), "precision_nested_cv": float(precision_score(y, pred)),
        "recall_nested_cv": float(recall_score(y, pred)), "f1_selection_oof": f1_inner,
    }
    mean, std, coef, b = _fit(x, y, c)
    return CommerceHead(mean, std, coef, b, t, embedding, metrics)
