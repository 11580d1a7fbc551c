"""Active learning: pick scored articles worth sending to the oracle, and screen a corpus from seed positives."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from filters.postfilter import weighted_average
from filters.spec import FilterSpec
from filters.text import clean_article
from models.embedding import Encoder
from models.errors import ModelsError

BUCKETS = ("needle", "disagreement", "uncertain", "high")
DEFAULT_SPLIT = {"high": 0.4, "uncertain": 0.25, "disagreement": 0.2, "needle": 0.15}
ARTICLE_FIELDS = ("id", "title", "text", "url", "source", "source_type", "published", "language")


class ActiveError(ModelsError, ValueError):
    """An active-learning input that cannot be used; the message says what to pass instead."""


def parse_split(text: str) -> dict[str, float]:
    """`high=0.4,uncertain=0.3,...` → shares normalised to 1 (unknown bucket names are an error)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in BUCKETS:
            raise ActiveError(f"unknown bucket {name!r} in --split; use {', '.join(BUCKETS)}")
        try:
            out[name] = float(value)
        except ValueError:
            raise ActiveError(f"--split {part!r}: the share must be a number, e.g. {name}=0.25") from None
        if out[name] < 0:
            raise ActiveError(f"--split {part!r}: shares must not be negative")
    total = sum(out.values())
    if total <= 0:
        raise ActiveError("--split needs at least one positive share, e.g. high=0.5,needle=0.5")
    return {k: v / total for k, v in out.items()}


@dataclass(frozen=True)
class SelectConfig:
    """Where the oracle's labels help most (docs/oracle.md, `distillery active select`).

    high: final WA ≥ `min_wa`; uncertain: probe WA within ±`band` of `edge` (default: the spec's protected tier
    edge, where routing and tier mistakes happen); disagreement: |student WA − probe WA| ≥ `disagreement`
    (Stage-2 results only); needle: the rarest predicted tier at or above the protected tier, highest WA first.
    """

    min_wa: float = 5.5
    band: float = 1.0
    edge: float | None = None
    disagreement: float = 1.5
    split: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLIT))
    seed: int = 42


@dataclass
class Candidate:
    """One scored article of the filter, with the numbers the buckets look at."""

    article_id: str
    stage: str
    tier: str
    wa: float
    probe_wa: float | None
    student_wa: float | None


@dataclass(frozen=True)
class Selection:
    article_id: str
    bucket: str
    reason: str
    weighted_average: float
    probe_weighted_average: float | None
    tier: str


def _wa(spec: FilterSpec, scores: Mapping[str, Any] | None) -> float | None:
    if not scores or any(d not in scores for d in spec.dimension_names):
        return None
    return weighted_average(spec, {d: float(scores[d]) for d in spec.dimension_names})


def candidates(spec: FilterSpec, results: Iterable[Mapping[str, Any]]) -> list[Candidate]:
    """Score rows (Result.as_dict or `scores.<filter>` records) of this filter that passed its prefilter; the
    newest row per article wins."""
    out: dict[str, Candidate] = {}
    for r in results:
        if r.get("filter") != spec.name or r.get("stage") == "prefilter" or not r.get("article_id"):
            continue
        probe_wa = _wa(spec, r.get("probe_scores"))
        student_wa = _wa(spec, r.get("scores")) if r.get("stage") == "stage2" else None
        out[str(r["article_id"])] = Candidate(str(r["article_id"]), str(r.get("stage")), str(r.get("tier")),
                                              float(r.get("weighted_average") or 0.0), probe_wa, student_wa)
    return list(out.values())


def _buckets(spec: FilterSpec, cands: Sequence[Candidate], config: SelectConfig) -> dict[str, list[tuple]]:
    """Each bucket's candidates in priority order, as (candidate, reason)."""
    edge = spec.protected_threshold if config.edge is None else config.edge
    rng = random.Random(config.seed)
    high = [c for c in cands if c.wa >= config.min_wa]
    rng.shuffle(high)  # a random sample over the whole high range, not just the very top
    uncertain = sorted((c for c in cands if c.probe_wa is not None and abs(c.probe_wa - edge) <= config.band),
                       key=lambda c: (abs((c.probe_wa or 0.0) - edge), c.article_id))
    disagree = sorted(
        (c for c in cands if c.student_wa is not None and c.probe_wa is not None
         and abs(c.student_wa - c.probe_wa) >= config.disagreement),
        key=lambda c: (-abs((c.student_wa or 0.0) - (c.probe_wa or 0.0)), c.article_id))
    protected = spec.tier_names[: spec.tier_names.index(spec.hybrid.protected_tier) + 1]
    counts = Counter(c.tier for c in cands)
    present = [t for t in protected if counts.get(t)]
    rare = min(present, key=lambda t: (counts[t], protected.index(t))) if present else None
    by_wa = sorted(cands, key=lambda c: (-c.wa, c.article_id))
    needle = [c for c in by_wa if c.tier == rare] + [c for c in by_wa if c.tier != rare]
    return {
        "high": [(c, f"WA {c.wa:.2f} >= {config.min_wa}") for c in high],
        "uncertain": [(c, f"probe WA {c.probe_wa:.2f} within {config.band} of edge {edge}") for c in uncertain],
        "disagreement": [(c, f"student WA {c.student_wa:.2f} vs probe WA {c.probe_wa:.2f}") for c in disagree],
        "needle": [(c, f"tier {c.tier} (rarest: {rare}), WA {c.wa:.2f}") for c in needle],
    }


def select(spec: FilterSpec, results: Iterable[Mapping[str, Any]], budget: int,
           config: SelectConfig = SelectConfig(), exclude: Iterable[str] = ()) -> list[Selection]:
    """Up to `budget` distinct articles: each bucket first takes its share (rounded down), then the budget left
    by short buckets is filled from the others in turn."""
    if budget < 0:
        raise ActiveError(f"--budget must be positive, got {budget}")
    excluded = set(exclude)
    cands = [c for c in candidates(spec, results) if c.article_id not in excluded]
    pools = _buckets(spec, cands, config)
    chosen: dict[str, Selection] = {}
    cursor = dict.fromkeys(BUCKETS, 0)

    def take(bucket: str) -> bool:
        pool = pools[bucket]
        while cursor[bucket] < len(pool):
            c, reason = pool[cursor[bucket]]
            cursor[bucket] += 1
            if c.article_id not in chosen:
                chosen[c.article_id] = Selection(c.article_id, bucket, reason, c.wa, c.probe_wa, c.tier)
                return True
        return False

    for bucket in BUCKETS:
        quota = int(budget * config.split.get(bucket, 0.0))
        for _ in range(quota):
            if len(chosen) >= budget or not take(bucket):
                break
    active = [b for b in BUCKETS if config.split.get(b, 0.0) > 0]
    while len(chosen) < budget and active:
        for bucket in list(active):
            if len(chosen) >= budget:
                break
            if not take(bucket):
                active.remove(bucket)
    return list(chosen.values())


def with_articles(selections: Sequence[Selection], articles: Iterable[Mapping[str, Any]]) -> tuple[list[dict], int]:
    """Rows for `oracle label`: the article fields plus an `active` block; returns (rows, ids not found)."""
    by_id = {str(a.get("id")): a for a in articles if a.get("id") not in (None, "")}
    rows, missing = [], 0
    for s in selections:
        art = by_id.get(s.article_id)
        if art is None:
            missing += 1
            continue
        row = {k: art[k] for k in ARTICLE_FIELDS if k in art}
        if "text" not in row and "content" in art:
            row["text"] = art["content"]
        row["active"] = {"bucket": s.bucket, "reason": s.reason, "weighted_average": round(s.weighted_average, 4),
                         "probe_weighted_average": None if s.probe_weighted_average is None
                         else round(s.probe_weighted_average, 4), "tier": s.tier}
        rows.append(row)
    return rows, missing


# -- embedding screening (seed centroid) ---------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def screen(seeds: Sequence[Mapping[str, Any]], corpus: Sequence[Mapping[str, Any]], top_k: int, *, encoder: Any = None,
           chunk: int = 256, progress: bool = True, exclude: Iterable[str] = ()) -> list[tuple[dict, float]]:
    """Rank the corpus by cosine to the L2-renormalised centroid of the seeds' embeddings, through the shared
    encoder and text recipe (the same vectors the probes see); seeds and `exclude` ids are left out."""
    if not seeds:
        raise ActiveError("screening needs at least one seed article (a few known positives)")
    if top_k < 1:
        raise ActiveError(f"--top-k must be at least 1, got {top_k}")
    if encoder is None:
        encoder = Encoder.shared()
    centroid = _unit(_unit(encoder.encode([clean_article(s) for s in seeds])).mean(axis=0, keepdims=True))[0]
    skip = {str(s.get("id")) for s in seeds} | set(exclude)
    pool = [a for a in corpus if str(a.get("id")) not in skip]
    sims = np.zeros(len(pool), dtype=np.float32)
    bar = tqdm(total=len(pool), desc="screen", unit="art", disable=not progress)
    for start in range(0, len(pool), chunk):
        part = pool[start:start + chunk]
        sims[start:start + len(part)] = _unit(encoder.encode([clean_article(a) for a in part])) @ centroid
        bar.update(len(part))
    bar.close()
    order = np.argsort(-sims, kind="stable")[:top_k]
    return [(dict(pool[i]), float(sims[i])) for i in order]
