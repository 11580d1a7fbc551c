"""Stage-1 → Stage-2 routers at inference: the probe-WA threshold (baseline), classifiers P(WA ≥ edge), kNN memories.

Fitting and choosing a router (training only) is `models.router_fit`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from safetensors.numpy import load_file, save_file

from filters.postfilter import weighted_averages
from models.errors import ModelsError

ROUTER_CONFIG = "router.json"
ROUTER_WEIGHTS = "router.safetensors"
RouterKind = Literal["wa_threshold", "classifier", "ensemble", "knn_classifier"]
KNN_K = 10
KNN_STATS_K = 20  # neighbours behind the knn_classifier's neighbourhood statistics
KNN_STATS = 8  # number of those statistics (columns appended to router_features)


class RouterError(ModelsError, ValueError):
    """A router asked to score without the inputs its kind needs, or trained on one-class data."""


def router_features(standardised: np.ndarray, probe_scores: np.ndarray, weights: list[float]) -> np.ndarray:
    """Classifier input: the probe-standardised embedding, the probe's scores and WA (scaled to ~unit range)."""
    wa = weighted_averages(probe_scores, weights).astype(np.float32)
    return np.hstack([standardised, probe_scores / 5.0 - 1.0, (wa / 5.0 - 1.0)[:, None]]).astype(np.float32)


def knn_max_wa(embeddings: np.ndarray, bank: np.ndarray, bank_wa: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Highest reference WA among the k most cosine-similar labelled training articles."""
    q = np.asarray(embeddings, dtype=np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    sims = q @ bank.astype(np.float32).T
    k = min(k, bank.shape[0])
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return bank_wa.astype(np.float64)[idx].max(1)


def knn_features(embeddings: np.ndarray, bank: np.ndarray, bank_wa: np.ndarray, protected: float,
                 chunk: int = 1024) -> np.ndarray:
    """Neighbourhood statistics of each article among the labelled training articles (cosine similarity), scaled
    like the WA columns (x / 5 − 1): max WA of the 10 nearest, mean WA of the 5 nearest, similarity-weighted mean
    WA of the 20 nearest, share of the 20 nearest ≥ `protected`, share of the 10 nearest ≥ `protected` − 0.5,
    the top similarity, max WA of the 3 nearest, WA of the nearest."""
    q = normalise(embeddings)
    b = np.asarray(bank, dtype=np.float32)
    bwa = np.asarray(bank_wa, dtype=np.float64)
    k = min(KNN_STATS_K, b.shape[0])
    out = np.zeros((len(q), KNN_STATS), dtype=np.float64)
    for start in range(0, len(q), chunk):
        sims = q[start:start + chunk] @ b.T
        idx = np.argsort(-sims, axis=1)[:, :k]
        sim = np.take_along_axis(sims, idx, 1).astype(np.float64)
        v = bwa[idx]
        wts = np.exp(10 * (sim - sim[:, :1]))
        wts /= wts.sum(1, keepdims=True)
        out[start:start + chunk] = np.column_stack([
            v[:, :10].max(1), v[:, :5].mean(1), (wts * v).sum(1), (v >= protected).mean(1),
            (v[:, :10] >= protected - 0.5).mean(1), sim[:, 0], v[:, :3].max(1), v[:, 0]])
    return (out / 5.0 - 1.0).astype(np.float32)


def cdf_rank(values: np.ndarray, breakpoints: np.ndarray) -> np.ndarray:
    return np.interp(values, breakpoints, np.linspace(0, 1, len(breakpoints)))


BANK_STEM = "router_bank"  # shared kNN bank of every router in one artifacts directory

@dataclass
class Router:
    """Routes an article to Stage 2 when its statistic ≥ `threshold`; the statistic depends on `kind`:

    - `wa_threshold`: the probe's weighted average (the anchor's router, kept as the baseline);
    - `classifier`: P(reference WA ≥ protected edge) from a logistic head on embedding + probe outputs;
    - `ensemble`: mean of the ranks of that probability and of the highest reference WA among the k nearest
      labelled training articles (a kNN memory of the training set, fp16 embeddings shipped with the router);
    - `knn_classifier`: P(reference WA ≥ protected edge − margin) from a logistic head on embedding + probe outputs
      + the article's neighbourhood statistics in that kNN memory (`knn_features`); the softer target builds margin.
    """

    kind: RouterKind
    threshold: float
    protected_threshold: float
    coef: np.ndarray | None = None
    intercept: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    bank: np.ndarray | None = None  # (m, dim) L2-normalised training embeddings (fp16)
    bank_wa: np.ndarray | None = None  # (m,) their reference WA
    cdf_p: np.ndarray | None = None  # rank breakpoints of the classifier logit
    cdf_knn: np.ndarray | None = None  # rank breakpoints of the kNN max WA

    def ensemble_statistic(self, logits: np.ndarray, knn: np.ndarray) -> np.ndarray:
        assert self.cdf_p is not None and self.cdf_knn is not None
        return 0.5 * (cdf_rank(logits, self.cdf_p) + cdf_rank(knn, self.cdf_knn))

    def statistic(self, features: np.ndarray | None, probe_wa: np.ndarray | None,
                  embeddings: np.ndarray | None = None) -> np.ndarray:
        """The route score of each article (see the class docstring); `probe_wa` is needed by `wa_threshold` only."""
        if self.kind == "wa_threshold":
            if probe_wa is None:
                raise RouterError("a wa_threshold router needs the probe's weighted averages")
            return np.asarray(probe_wa, dtype=np.float64)
        if features is None or self.coef is None:
            raise RouterError(f"a {self.kind} router needs features (see router_features)")
        features = np.asarray(features, dtype=np.float64)
        if self.kind == "knn_classifier":
            if embeddings is None or self.bank is None or self.bank_wa is None:
                raise RouterError("a knn_classifier router needs the raw embeddings and its training bank")
            features = np.hstack([features, knn_features(embeddings, self.bank, self.bank_wa,
                                                         self.protected_threshold)])
        logits = features @ self.coef.astype(np.float64) + self.intercept
        if self.kind in ("classifier", "knn_classifier"):
            return 1.0 / (1.0 + np.exp(-logits))
        if embeddings is None or self.bank is None or self.bank_wa is None:
            raise RouterError("an ensemble router needs the raw embeddings and its training bank")
        return self.ensemble_statistic(logits, knn_max_wa(embeddings, self.bank, self.bank_wa))

    def needs_stage2(self, statistic: np.ndarray) -> np.ndarray:
        return np.asarray(statistic) >= self.threshold

    def with_threshold(self, threshold: float) -> Router:
        return Router(self.kind, float(threshold), self.protected_threshold, self.coef, self.intercept,
                      dict(self.metrics), self.bank, self.bank_wa, self.cdf_p, self.cdf_knn)

    def save(self, directory: Path, stem: str = "router") -> list[Path]:
        """JSON + safetensors; the kNN bank (training embeddings, several MB) is written once per directory to
        `router_bank.safetensors` and shared by every router that uses it."""
        directory.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"kind": self.kind, "threshold": self.threshold,
                                "protected_threshold": self.protected_threshold, "intercept": self.intercept,
                                "metrics": self.metrics}
        paths = [directory / f"{stem}.json"]
        if self.coef is not None:
            tensors = {"coef": self.coef.astype(np.float32)}
            if self.kind in ("ensemble", "knn_classifier"):
                assert self.bank is not None and self.bank_wa is not None
                meta["bank"] = BANK_STEM
                bank_path = directory / f"{BANK_STEM}.safetensors"
                save_file({**pack_bank(self.bank), "bank_wa": self.bank_wa.astype(np.float16)}, str(bank_path))
                paths.append(bank_path)
            if self.kind == "ensemble":
                assert self.cdf_p is not None and self.cdf_knn is not None
                tensors |= {"cdf_p": self.cdf_p.astype(np.float32), "cdf_knn": self.cdf_knn.astype(np.float32)}
            save_file(tensors, str(directory / f"{stem}.safetensors"))
            paths.append(directory / f"{stem}.safetensors")
        paths[0].write_text(json.dumps(meta, indent=2) + "\n")
        return paths

    @classmethod
    def load(cls, directory: Path, stem: str = "router") -> Router:
        meta = json.loads((directory / f"{stem}.json").read_text())
        t: dict[str, np.ndarray] = {}
        if meta["kind"] != "wa_threshold":
            t = load_file(str(directory / f"{stem}.safetensors"))
        if meta.get("bank"):
            t |= unpack_bank(load_file(str(directory / f"{meta['bank']}.safetensors")))
        return cls(meta["kind"], float(meta["threshold"]), float(meta["protected_threshold"]), t.get("coef"),
                   float(meta.get("intercept", 0.0)), meta.get("metrics", {}), t.get("bank"), t.get("bank_wa"),
                   t.get("cdf_p"), t.get("cdf_knn"))


def route_statistic(router: Router, probe: Any, embeddings: np.ndarray, probe_scores: np.ndarray,
                    weights: list[float]) -> np.ndarray:
    """The router's statistic for raw embeddings and the probe's scores (features built as the router needs)."""
    wa = weighted_averages(probe_scores, weights)
    if router.kind == "wa_threshold":
        return router.statistic(None, wa)
    feats = router_features(probe.standardise(embeddings), probe_scores, weights)
    return router.statistic(feats, wa, embeddings)


def normalise(embeddings: np.ndarray) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float32)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def quantise_bank(bank: np.ndarray) -> np.ndarray:
    """The kNN bank as it is stored and served: int8 codes times a power-of-two row scale (a quarter of float32, half
    of float16: a 512-d bank of ~5k articles is ~2.7 MB), as float16. Fitting uses this array; saving and loading it
    gives it back bit for bit (power-of-two scales make the round trip exact), so serving sees what fitting saw."""
    return unpack_bank(pack_bank(bank))["bank"]


def pack_bank(bank: np.ndarray) -> dict[str, np.ndarray]:
    """Tensors of a bank for safetensors: int8 codes + float32 power-of-two row scales (`quantise_bank`)."""
    b = np.asarray(bank, dtype=np.float32)
    top = np.maximum(np.abs(b).max(axis=1), 2.0**-20)
    scale = np.exp2(np.ceil(np.log2(top / 127.0))).astype(np.float32)
    return {"bank_q": np.clip(np.rint(b / scale[:, None]), -127, 127).astype(np.int8), "bank_scale": scale}


def unpack_bank(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of `pack_bank` (float16 `bank`); files written before the int8 format hold `bank` itself."""
    if "bank_q" not in tensors:
        return tensors
    out = {k: v for k, v in tensors.items() if k not in ("bank_q", "bank_scale")}
    out["bank"] = (tensors["bank_q"].astype(np.float32) * tensors["bank_scale"][:, None]).astype(np.float16)
    return out
