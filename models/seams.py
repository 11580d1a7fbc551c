"""Protocols at the seams of scoring: what agents, batch and evaluation call (ScoringPipeline), what Stage 2 needs of
a student, and the commerce gate. The real objects and the stream tests' fake pipeline both implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from models.records import Prepared, Rejection, Result, Stage2Request

if TYPE_CHECKING:
    from filters.prefilter import Decision
    from filters.spec import FilterSpec
    from models.deduper import Deduper


@runtime_checkable
class StudentModel(Protocol):
    """A Stage-2 student: raw scores (n, n_dims) for a batch of cleaned articles."""

    def predict(self, articles: Sequence[Mapping[str, Any]], batch_size: int = 16) -> np.ndarray: ...


@runtime_checkable
class ProbabilityHead(Protocol):
    """The commerce head: P(commerce) per embedding row."""

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray: ...


class CommerceRuleCheck(Protocol):
    """The commerce rules: a decision from the article text alone (runs before embedding)."""

    def check(self, article: Mapping[str, Any]) -> Decision: ...


class CommerceGate(Protocol):
    """Rules before the embedding, the head's probability after it (filters.commerce.CommerceFilter)."""

    @property
    def rules(self) -> CommerceRuleCheck: ...

    @property
    def head(self) -> object | None:
        """The trained head (a ProbabilityHead) or None for rules only."""

    def decide(self, article: Mapping[str, Any], probability: float | None = None, *,
               rules: bool = True) -> Decision: ...


class ScoringPipeline(Protocol):
    """Every scoring decision, in the three steps the stream runs in separate agents (and batch chains in-process).

    prepare: payload limits, validation, cleaning, commerce, dedupe, one embedding. route: the filter's prefilter,
    probe and router (escalation follows the filter's artifacts). stage2: student, calibration, postfilter."""

    @property
    def specs(self) -> Mapping[str, FilterSpec]: ...

    def prepare(self, payloads: Sequence[Any], received_at: float | None = None,
                deduper: Deduper | None = None) -> list[Prepared | Rejection]: ...

    def route(self, prepared: Sequence[Prepared], filter_name: str) -> list[Result | Stage2Request]: ...

    def stage2(self, requests: Sequence[Stage2Request]) -> list[Result]: ...

    def score_batch(self, payloads: Sequence[Any],
                    deduper: Deduper | None = None) -> tuple[list[Result], list[Rejection]]: ...
