"""Stage-1 → Stage-2 router: the anchor's probe-WA threshold (baseline) and a classifier P(WA ≥ protected edge)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression

ROUTER_CONFIG = "router.json"
ROUTER_WEIGHTS = "router.safetensors"
RouterKind = Literal["wa_threshold", "classifier"]


def router_features(standardised: np.ndarray, probe_scores: np.ndarray, weights: list[float]) -> np.ndarray:
    """Classifier input: the probe-standardised embedding, the probe's scores and WA (scaled to ~unit range)."""
    wa = probe_scores @ np.asarray(weights, dtype=np.float32)
    return np.hstack([standardised, probe_scores / 5.0 - 1.0, (wa / 5.0 - 1.0)[:, None]]).astype(np.float32)


def choose_operating_point(scores: np.ndarray, positive: np.ndarray, max_fn: float) -> float:
    """Highest threshold t such that the share of positives with score < t stays ≤ `max_fn` (route if score ≥ t)."""
    pos = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(positive, dtype=bool)])
    if len(pos) == 0:
        return float(np.min(scores)) if len(scores) else 0.0
    allowed = int(np.floor(max_fn * len(pos)))  # positives we may lose
    # route iff score >= t; losing `allowed` positives means t = the (allowed)-th smallest positive score
    return float(pos[allowed]) if allowed < len(pos) else float(pos[-1])


@dataclass
class Router:
    """Routes an article to Stage 2 when its statistic ≥ `threshold`; the statistic depends on `kind`."""

    kind: RouterKind
    threshold: float
    protected_threshold: float
    coef: np.ndarray | None = None
    intercept: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)

    def statistic(self, features: np.ndarray | None, probe_wa: np.ndarray) -> np.ndarray:
        """The route score: probe WA (baseline) or P(reference WA ≥ protected edge) (classifier)."""
        if self.kind == "wa_threshold":
            return np.asarray(probe_wa, dtype=np.float64)
        if features is None or self.coef is None:
            raise ValueError("a classifier router needs features (see router_features)")
        logits = np.asarray(features, dtype=np.float64) @ self.coef.astype(np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def needs_stage2(self, statistic: np.ndarray) -> np.ndarray:
        return np.asarray(statistic) >= self.threshold

    def with_threshold(self, threshold: float) -> Router:
        return Router(self.kind, float(threshold), self.protected_threshold, self.coef, self.intercept,
                      dict(self.metrics))

    def save(self, directory: Path, stem: str = "router") -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "threshold": self.threshold, "protected_threshold": self.protected_threshold,
                "intercept": self.intercept, "metrics": self.metrics}
        paths = [directory / f"{stem}.json"]
        if self.coef is not None:
            save_file({"coef": self.coef.astype(np.float32)}, str(directory / f"{stem}.safetensors"))
            paths.append(directory / f"{stem}.safetensors")
        paths[0].write_text(json.dumps(meta, indent=2) + "\n")
        return paths

    @classmethod
    def load(cls, directory: Path, stem: str = "router") -> Router:
        meta = json.loads((directory / f"{stem}.json").read_text())
        coef = None
        if meta["kind"] == "classifier":
            coef = load_file(str(directory / f"{stem}.safetensors"))["coef"]
        return cls(meta["kind"], float(meta["threshold"]), float(meta["protected_threshold"]), coef,
                   float(meta.get("intercept", 0.0)), meta.get("metrics", {}))


def fit_classifier(
    features: np.ndarray, positive: np.ndarray, c: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, float]:
    """L2 logistic regression, balanced classes (positives are rare); returns (coef, intercept)."""
    if positive.all() or not positive.any():
        raise ValueError("router training needs both protected and unprotected articles in the training split")
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
    clf.fit(features, positive.astype(int))
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def oof_classifier_scores(features: np.ndarray, positive: np.ndarray, folds: int = 5, c: float = 0.05,
                          seed: int = 0) -> np.ndarray:
    """Out-of-fold P(protected) over a training set, for choosing the operating point on unseen predictions."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros(len(features))
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for tr, te in skf.split(features, positive.astype(int)):
        coef, b = fit_classifier(features[tr], positive[tr], c, seed)
        out[te] = 1.0 / (1.0 + np.exp(-(features[te].astype(np.float64) @ coef + b)))
    return out
