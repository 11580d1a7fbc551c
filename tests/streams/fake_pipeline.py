"""A tiny deterministic stand-in for models.pipeline.Pipeline (the models.seams.ScoringPipeline protocol) for fast
stream tests. It shares the real pipeline's input decisions (payload limits, dedupe) and fakes the models.

Rules, by title: "coupon" -> commerce block; "poison" -> route raises; "deep" -> Stage 2; content shorter
than 40 characters -> filter prefilter result; otherwise a stage-1 result. Set FAKE_PIPELINE_DELAY (seconds per
batch call) to slow it down, e.g. to kill a worker mid-stream.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from filters.article import Article, ArticleError
from filters.prefilter import Decision
from filters.spec import FilterSpec, parse_spec
from models.deduper import Deduper
from models.payload import PayloadError, PayloadLimits, decode_payload
from models.records import Prepared, Rejection, Result, Stage, Stage2Request

FILTERS = ("alpha", "beta")


def _spec(name: str) -> FilterSpec:
    data = {
        "name": name,
        "version": 1,
        "dimensions": [{"name": "impact", "weight": 0.6}, {"name": "evidence", "weight": 0.4}],
        "tiers": [{"name": "high", "threshold": 6.0}, {"name": "low", "threshold": 0.0}],
        "hybrid": {"threshold": 2.0, "protected_tier": "high"},
    }
    return parse_spec(data, Path(f"/nonexistent/{name}/v1/filter.yaml"))


class FakeRules:
    """Commerce rules: a title with "coupon" is commerce."""

    def check(self, article: Mapping[str, Any]) -> Decision:
        if "coupon" in str(article.get("title", "")).lower():
            return Decision(False, "commerce:coupon", "coupon")
        return Decision(True, "passed")


class FakeCommerceGate:
    """The commerce gate (models.seams.CommerceGate): the fake rules, no head."""

    def __init__(self) -> None:
        self._rules = FakeRules()

    @property
    def rules(self) -> FakeRules:
        return self._rules

    @property
    def head(self) -> None:
        return None

    def decide(self, article: Mapping[str, Any], probability: float | None = None, *, rules: bool = True) -> Decision:
        return self._rules.check(article) if rules else Decision(True, "passed")


class FakeStudent:
    """A Stage-2 student (models.seams.StudentModel): 7.0 on every dimension."""

    def __init__(self, n_dims: int = 2) -> None:
        self.n_dims = n_dims

    def predict(self, articles: Sequence[Mapping[str, Any]], batch_size: int = 16) -> np.ndarray:
        return np.full((len(articles), self.n_dims), 7.0, dtype=np.float32)


def _delay() -> None:
    time.sleep(float(os.environ.get("FAKE_PIPELINE_DELAY", "0")))


class FakePipeline:
    """Implements prepare / route / stage2 / score_batch on two two-dimension specs."""

    def __init__(self, filters: Sequence[str] | None = None, limits: PayloadLimits | None = None) -> None:
        self._specs = {name: _spec(name) for name in (filters or FILTERS)}
        self.limits = limits or PayloadLimits()
        self.commerce = FakeCommerceGate()
        self.student = FakeStudent()

    @property
    def specs(self) -> dict[str, FilterSpec]:
        return self._specs

    def prepare(self, payloads: Sequence[Any], received_at: float | None = None,
                deduper: Deduper | None = None) -> list[Prepared | Rejection]:
        _delay()
        arrived = time.time() if received_at is None else received_at
        out: list[Prepared | Rejection] = []
        for payload in payloads:
            try:
                article = Article.parse(decode_payload(payload, self.limits)).as_dict()
            except PayloadError as err:
                out.append(Rejection("invalid", str(err), err.article_id, payload, code=err.code))
                continue
            except ArticleError as err:
                out.append(Rejection("invalid", str(err), None, payload))
                continue
            decision = self.commerce.rules.check(article)
            if not decision.passed:
                out.append(Rejection("commerce", decision.reason, article["id"], article))
                continue
            digest = hashlib.sha256(f"{article['title']}\n{article['content']}".encode()).hexdigest()
            first = deduper.duplicate_of(digest, article["id"]) if deduper is not None else None
            if first is not None:
                out.append(Rejection("duplicate", "duplicate", article["id"], payload, content_hash=digest,
                                     duplicate_of=first))
                continue
            vector = np.frombuffer(bytes.fromhex(digest), dtype=np.uint8)[:8].astype(np.float32) / 255.0
            out.append(Prepared(article=article, content_hash=digest, embedding=vector, received_at=arrived))
        return out

    def _result(self, article: dict, name: str, stage: Stage, value: float, **extra: Any) -> Result:
        scores = {"impact": value, "evidence": value}
        tier = "high" if value >= 6.0 else "low"
        return Result(article_id=article["id"], filter=name, filter_version=1, stage=stage, scores=scores,
                      weighted_average=value, tier=tier, title=article["title"], fingerprint=f"fake:{os.getpid()}",
                      **extra)

    def route(self, prepared: Sequence[Prepared], filter_name: str) -> list[Result | Stage2Request]:
        _delay()
        out: list[Result | Stage2Request] = []
        for item in prepared:
            article = item.article
            if "poison" in article["title"].lower():
                raise RuntimeError(f"poisoned article {article['id']}")
            if len(article["content"]) < 40:
                out.append(self._result(article, filter_name, "prefilter", 0.0, prefilter_reason="too_short"))
            elif "deep" in article["title"].lower():
                out.append(Stage2Request(article, filter_name, 1, {"impact": 5.0, "evidence": 5.0}, 5.0, 0.9,
                                         item.received_at))
            else:
                out.append(self._result(article, filter_name, "stage1", 1.0, probe_scores={"impact": 1.0}))
        return out

    def stage2(self, requests: Sequence[Stage2Request]) -> list[Result]:
        _delay()
        raw = self.student.predict([r.article for r in requests]) if requests else np.zeros((0, 2))
        return [self._result(r.article, r.filter, "stage2", float(row[0]), probe_scores=r.probe_scores)
                for r, row in zip(requests, raw, strict=True)]

    def score_batch(self, payloads: Sequence[Any],
                    deduper: Deduper | None = None) -> tuple[list[Result], list[Rejection]]:
        prepared = self.prepare(payloads, deduper=deduper if deduper is not None else Deduper())
        rejections = [p for p in prepared if isinstance(p, Rejection)]
        ok = [p for p in prepared if isinstance(p, Prepared)]
        results: list[Result] = []
        requests: list[Stage2Request] = []
        for name in self.specs:
            for routed in self.route(ok, name):
                if isinstance(routed, Stage2Request):
                    requests.append(routed)
                else:
                    results.append(routed)
        return results + self.stage2(requests), rejections


def load(filters: Sequence[str] | None = None, *, device: str | None = None, with_student: bool = True,
         limits: PayloadLimits | None = None) -> FakePipeline:
    """Factory named by DISTILLERY_PIPELINE_FACTORY=fake_pipeline:load."""
    return FakePipeline(filters, limits)
