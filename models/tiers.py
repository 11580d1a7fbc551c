"""The tier model (serving side): the served tier and its `tier_confidence` from classifiers calibrated for tiers.

Per-dimension scores stay MAE-honest (medians on the oracle's grid), and medians shrink toward the middle, so a
tier read off their weighted average under-calls the rare high tiers (the needles). The tier model instead holds one
logistic head per tier edge t (every tier but the lowest), each estimating P(oracle WA ≥ t):

- Stage 1: on the router's features (probe scores and WA; the probe-standardised embedding too in models fitted
  before `embedding_features`) plus the article's
  neighbourhood statistics in the router's kNN memory (`models.router.knn_features`, the same bank: no second copy)
  plus, when fitted, each edge's lexical logit (hashed word TF-IDF, `models/lexical.py`);
- Stage 2 (optional per edge): `a · stage-1 logit + b · (Stage-2 WA − t) + c`, which adds the student's evidence.

The tier is the highest tier whose probability reaches its operating point (chosen on validation data for a policy:
`recall`, `balanced` or `precision`; see `models/training/tiers.py`). `tier_confidence` is the model's probability
of the served tier's band. Stored as `tiers.json` + `tiers.safetensors` (no pickle).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from models.artifacts import ArtifactError
from models.lexical import NGRAMS, LexicalHeads
from models.router import KNN_STATS, knn_features, router_features

TIERS_JSON = "tiers.json"
TIERS_WEIGHTS = "tiers.safetensors"
POLICIES = ("recall", "balanced", "precision")


class TierModelError(ArtifactError):
    """A tier model that cannot be used; the message names the file and the fix (an ArtifactError, so every
    command that reports broken artifacts reports this one too)."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


@dataclass
class TierModel:
    """P(WA ≥ edge) heads for a filter's tier edges (highest first) and the operating point of each policy."""

    tier_names: list[str]  # all tiers, highest first (the spec's order); the last one has no head
    edges: list[float]  # the WA threshold of every tier but the last, highest first
    coef: np.ndarray  # (n_edges, n_features) Stage-1 heads
    intercept: np.ndarray  # (n_edges,)
    stage2: np.ndarray | None = None  # (n_edges, 3): a, b, c of the Stage-2 refinement; None = Stage-1 only
    platt: np.ndarray | None = None  # (n_edges, 2): probability = sigmoid(a · logit + b); None = sigmoid(logit)
    operating_points: dict[str, list[float]] = field(default_factory=dict)  # policy → cutoff per edge
    policy: str = "balanced"
    uses_knn: bool = True
    metrics: dict[str, Any] = field(default_factory=dict)
    # the first `n_unmodelled` edges (the highest tiers) had too few training articles for a head: an article the
    # model puts in the highest modelled tier moves up to them by the postfilter rule (served WA ≥ edge)
    n_unmodelled: int = 0
    lexical: LexicalHeads | None = None  # per-edge word TF-IDF heads whose logits join the Stage-1 features
    # False: the heads see the probe's scores and WA, not the 512-d standardised embedding (which overfits them; the
    # embedding still reaches them through the probe, the kNN statistics and the router)
    embedding_features: bool = True

    # -- features and probabilities ----------------------------------------------------------------
    def features(self, standardised: np.ndarray, probe_scores: np.ndarray, weights: list[float],
                 embeddings: np.ndarray | None = None, bank: np.ndarray | None = None,
                 bank_wa: np.ndarray | None = None, protected: float = 0.0,
                 texts: Sequence[str] | None = None) -> np.ndarray:
        """The Stage-1 input: router features (+ kNN statistics in the router's memory, + the lexical logits of the
        articles' recipe `texts`, when the model uses them)."""
        f = router_features(standardised, probe_scores, weights)
        parts = [f if self.embedding_features else f[:, np.asarray(standardised).shape[1]:]]
        if self.uses_knn:
            if embeddings is None or bank is None or bank_wa is None:
                raise TierModelError("this tier model uses kNN statistics: it needs the raw embeddings and the "
                                     "router's kNN memory (a knn_classifier/ensemble router); re-fit it with "
                                     "`distillery train-step tiers`")
            parts.append(knn_features(embeddings, bank, bank_wa, protected))
        if self.lexical is not None:
            if texts is None or len(texts) != len(parts[0]):
                raise TierModelError("this tier model uses lexical heads: it needs each article's recipe text "
                                     "(Encoder.texts); pass `texts`")
            parts.append(self.lexical.logits(texts))
        return np.hstack(parts).astype(np.float32)

    def stage1_logits(self, features: np.ndarray) -> np.ndarray:
        """(n, n_edges) logits of P(WA ≥ edge) from the Stage-1 features."""
        if features.shape[1] != self.coef.shape[1]:
            raise TierModelError(f"tier model expects {self.coef.shape[1]} features, got {features.shape[1]}; "
                                 "re-fit it with `distillery train-step tiers` after re-training the probe/router")
        return np.asarray(features, dtype=np.float64) @ self.coef.T.astype(np.float64) + self.intercept

    def logits(self, stage1: np.ndarray, stage2_wa: np.ndarray | None = None) -> np.ndarray:
        """Final logits: the Stage-1 ones, refined by the Stage-2 WA where given (NaN = not scored by Stage 2)."""
        z = np.array(stage1, dtype=np.float64, ndmin=2)
        if self.stage2 is None or stage2_wa is None:
            return z
        wa = np.asarray(stage2_wa, dtype=np.float64).reshape(-1, 1)
        edges = np.asarray(self.edges)[None, :]
        a, b, c = (self.stage2[:, k][None, :] for k in range(3))
        refined = a * z + b * (wa - edges) + c
        return np.where(np.isfinite(wa), refined, z)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """P(WA ≥ edge), made monotone over the edges (a higher edge never more likely than a lower one)."""
        z = np.array(logits, dtype=np.float64, ndmin=2)
        if self.platt is not None:
            z = self.platt[:, 0][None, :] * z + self.platt[:, 1][None, :]
        p = _sigmoid(z)
        return np.minimum.accumulate(p[:, ::-1], axis=1)[:, ::-1] if p.shape[1] > 1 else p

    # -- decision ------------------------------------------------------------------------------------
    def cutoffs(self, policy: str | None = None) -> list[float]:
        policy = policy or self.policy
        if policy not in self.operating_points:
            raise TierModelError(f"tier model has no operating point for policy {policy!r}; use one of "
                                 f"{sorted(self.operating_points)}")
        return self.operating_points[policy]

    def decide(self, probs: np.ndarray, policy: str | None = None,
               served_wa: np.ndarray | None = None) -> list[tuple[str, float]]:
        """(tier, tier_confidence) per row: the highest modelled tier whose P(WA ≥ edge) reaches its cutoff, else the
        lowest tier; the confidence is the probability of that tier's band, P(WA ≥ its edge) − P(WA ≥ the edge
        above). Rows in the highest modelled tier move up to unmodelled tiers by `served_wa` (postfilter rule)."""
        cut = np.asarray(self.cutoffs(policy))
        probs = np.array(probs, dtype=np.float64, ndmin=2)
        top = self.n_unmodelled
        out: list[tuple[str, float]] = []
        for i, row in enumerate(probs):
            hit = [k for k in range(top, len(self.edges)) if row[k] >= cut[k]]
            k = hit[0] if hit else len(self.edges)
            upper = row[k - 1] if k > top else 0.0
            lower = row[k] if k < len(self.edges) else 1.0
            band = 1.0 - upper if k == len(self.edges) else lower - upper
            if k == top and served_wa is not None:
                k = next((j for j in range(top) if served_wa[i] >= self.edges[j]), k)
            out.append((self.tier_names[k], float(min(1.0, max(0.0, band)))))
        return out

    def serve(self, stage1_logits: Any, stage2_wa: float | None, served_wa: float,
              policy: str | None = None) -> tuple[str, float]:
        """The (tier, tier_confidence) of one served result: Stage-1 logits (from routing), refined by the Stage-2
        WA (weighted average of the Stage-2 scores before the postfilter) when the article went through Stage 2."""
        wa2 = np.array([np.nan if stage2_wa is None else stage2_wa])
        probs = self.probabilities(self.logits(np.asarray(stage1_logits, dtype=np.float64)[None, :], wa2))
        return self.decide(probs, policy, np.array([served_wa]))[0]

    def needle_mask(self, probs: np.ndarray, needle_tier: str, policy: str | None = None) -> np.ndarray:
        """Rows the model serves at `needle_tier` or above (e.g. to route them to Stage 2)."""
        k = self.tier_names.index(needle_tier)
        cut = np.asarray(self.cutoffs(policy))[: k + 1]
        return np.asarray((np.array(probs, ndmin=2)[:, : k + 1] >= cut).any(axis=1), dtype=bool)

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, np.ndarray] = {"coef": self.coef.astype(np.float32),
                                          "intercept": self.intercept.astype(np.float64)}
        if self.stage2 is not None:
            tensors["stage2"] = self.stage2.astype(np.float64)
        if self.platt is not None:
            tensors["platt"] = self.platt.astype(np.float64)
        if self.lexical is not None:
            tensors.update(self.lexical.tensors())
        save_file(tensors, str(directory / TIERS_WEIGHTS))
        meta = {"kind": "tier_model", "tier_names": self.tier_names, "edges": self.edges,
                "n_features": int(self.coef.shape[1]), "uses_knn": self.uses_knn, "knn_stats": KNN_STATS,
                "embedding_features": self.embedding_features,
                "stage2": self.stage2 is not None, "policy": self.policy, "n_unmodelled": self.n_unmodelled,
                "operating_points": self.operating_points, "metrics": self.metrics,
                "lexical": None if self.lexical is None else {"n_features": self.lexical.n_features,
                                                              "ngrams": list(NGRAMS), "text": "Encoder.texts"}}
        (directory / TIERS_JSON).write_text(json.dumps(meta, indent=2) + "\n")
        return [directory / TIERS_JSON, directory / TIERS_WEIGHTS]

    @classmethod
    def load(cls, directory: Path, tier_names: list[str] | None = None) -> TierModel | None:
        """The tier model in `directory`, or None when there is none; a model fitted for other tiers is refused."""
        path = directory / TIERS_JSON
        if not path.is_file():
            return None
        try:
            meta = json.loads(path.read_text())
            tensors = load_file(str(directory / TIERS_WEIGHTS))
        except (OSError, json.JSONDecodeError, Exception) as err:  # noqa: BLE001 - safetensors raises its own types
            raise TierModelError(f"{path}: unreadable tier model ({err}); re-fit it with `distillery train-step "
                                 "tiers`") from None
        if tier_names is not None and meta["tier_names"] != list(tier_names):
            raise TierModelError(f"{path}: fitted for tiers {meta['tier_names']} but the spec has {list(tier_names)}; "
                                 "re-fit it with `distillery train-step tiers`")
        return cls(meta["tier_names"], [float(e) for e in meta["edges"]], tensors["coef"].astype(np.float64),
                   tensors["intercept"].astype(np.float64), tensors.get("stage2"), tensors.get("platt"),
                   {k: [float(x) for x in v] for k, v in meta["operating_points"].items()},
                   meta.get("policy", "balanced"), bool(meta.get("uses_knn", True)), meta.get("metrics", {}),
                   int(meta.get("n_unmodelled", 0)), LexicalHeads.from_tensors(tensors),
                   bool(meta.get("embedding_features", True)))
