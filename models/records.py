"""Domain records passed between pipeline steps (no Kafka here; streams/records.py puts them on the wire)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Stage = Literal["prefilter", "stage1", "stage2"]


@dataclass
class Rejection:
    """An article stopped before the filters: invalid (→ DLQ), duplicate, or blocked by the commerce prefilter.

    `reason` is human-readable (for invalid input it says what was wrong and what to do); `code` is its bounded,
    stable form for metric labels and the DLQ record (`too_large`, `too_deep`, `invalid_utf8`, `invalid_json`,
    `invalid_article`, `no_content`, `duplicate`, `commerce`). A duplicate names its `content_hash` and the id of the
    earlier article with that content (`duplicate_of`)."""

    kind: Literal["invalid", "duplicate", "commerce"]
    reason: str
    article_id: str | None
    payload: Any
    code: str = ""
    content_hash: str | None = None
    duplicate_of: str | None = None

    def __post_init__(self) -> None:
        if not self.code:
            self.code = self.kind if self.kind != "invalid" else "invalid_article"


@dataclass
class Prepared:
    """A valid, cleaned, non-commerce article with its one shared embedding."""

    article: dict[str, Any]  # Article.as_dict() after text cleaning
    content_hash: str
    embedding: np.ndarray  # float32, shape (dim,)
    commerce_probability: float | None = None
    received_at: float = 0.0  # time.time() when the article entered the pipeline: the ONE arrival time (latency)


@dataclass
class Stage2Request:
    """An article that a filter's router sent to Stage 2, with the probe's scores for comparison."""

    article: dict[str, Any]
    filter: str  # filter name
    filter_version: int
    probe_scores: dict[str, float]
    probe_weighted_average: float
    route_score: float  # the router's statistic (e.g. P(WA >= protected edge))
    received_at: float  # time.time() when the article entered the pipeline (for latency)
    tier_logits: list[float] | None = None  # the tier model's Stage-1 logits (models.tiers), refined in Stage 2


@dataclass
class Result:
    """One article scored by one filter: the record published on `scores.<filter>`."""

    article_id: str
    filter: str
    filter_version: int
    stage: Stage
    scores: dict[str, float]
    weighted_average: float
    tier: str
    gatekeeper_applied: bool = False
    caps_applied: list[str] = field(default_factory=list)
    probe_scores: dict[str, float] | None = None
    prefilter_reason: str | None = None
    fingerprint: str = ""
    latency_ms: float = 0.0
    scored_at: str = ""
    title: str = ""
    flags: list[str] = field(default_factory=list)  # quality flags, e.g. `short_content` (filters.prefilter)
    tier_confidence: float | None = None  # the tier model's probability that `tier` is right (None: no tier model)
    tier_source: str = "postfilter"  # `tier_model` (calibrated for tiers) or `postfilter` (from the served WA)
    student: str = ""  # which Stage-2 student scored it ("minilm", "gemma"); "" for probe scores

    @property
    def key(self) -> str:
        """Kafka key: a replay overwrites instead of duplicating (compaction-friendly)."""
        return f"{self.article_id}:{self.filter}:{self.filter_version}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
