"""THE scoring pipeline shared by stream, batch and evaluation: prepare → route (Stage 1) → Stage 2."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from filters.article import Article, ArticleError
from filters.postfilter import postfilter, weighted_average
from filters.spec import FilterSpec, SpecError, resolve_served, trained_specs
from filters.text import clean_article
from filters.timeutil import now_iso
from models.artifacts import MANIFEST, read_manifest
from models.deduper import Deduper
from models.embedding import Encoder
from models.errors import ModelsError
from models.filter_models import FilterModels, commerce_gate
from models.payload import NO_CONTENT, PayloadError, PayloadLimits, decode_payload
from models.records import Prepared, Rejection, Result, Stage, Stage2Request
from models.router import route_statistic
from models.seams import CommerceGate, ProbabilityHead

__all__ = ["Deduper", "FilterModels", "Pipeline", "PipelineError", "content_hash"]

log = logging.getLogger(__name__)

class PipelineError(ModelsError, RuntimeError):
    """The pipeline cannot be built; the message names the filter and the fix."""


def _by_dimension(dims: Sequence[str], row: np.ndarray) -> dict[str, float]:
    """One score row as the `{dimension: float}` mapping results carry."""
    return {d: float(v) for d, v in zip(dims, row, strict=True)}


def content_hash(article: Mapping[str, Any]) -> str:
    """Dedup key: sha256 of the cleaned, case- and whitespace-normalised title + content."""
    text = f"{article.get('title', '')}\n{article.get('content', '')}".lower()
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()


def _clean(article: dict[str, Any]) -> dict[str, Any]:
    return clean_article(article)


class Pipeline:
    """Loaded filters + the shared encoder + the commerce gate: owns every scoring decision (payload limits,
    validation, commerce, dedupe, escalation, arrival time and latency). Stateless per call: the dedupe memory is a
    Deduper the caller passes (one per worker, or one per batch run)."""

    def __init__(self, encoder: Encoder, filters: Mapping[str, FilterModels], commerce: CommerceGate | None = None,
                 *, apply_prefilter: bool = True, limits: PayloadLimits | None = None,
                 dedupe_size: int = 100_000) -> None:
        self.encoder = encoder
        self.filters = dict(filters)
        self.commerce = commerce
        self.apply_prefilter = apply_prefilter
        self.limits = limits or PayloadLimits()
        self.dedupe_size = dedupe_size

    @property
    def specs(self) -> dict[str, FilterSpec]:
        return {name: fm.spec for name, fm in self.filters.items()}

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def load(cls, filters: Sequence[str] | None = None, *, device: str | None = None, with_student: bool = True,
             encoder: Encoder | None = None, commerce: bool = True, stage1_only: bool = False,
             limits: PayloadLimits | None = None, dedupe_size: int = 100_000,
             student_preference: str | None = None) -> Pipeline:
        """Load named filters (name, name/vN or path) or, with None, every shipped filter whose artifacts exist.

        `with_student=False` skips loading students (a worker without the stage2 role) but NOT escalation, which
        follows the artifacts; `stage1_only=True` serves the probe's scores for every article (no Stage 2)."""
        specs: list[FilterSpec] = []
        if filters is None:
            specs = list(trained_specs().values())
            if not specs:
                raise PipelineError("no filter has trained artifacts; run `distillery train --filter PATH --data FILE`")
        else:
            for ref in filters:
                try:
                    spec = resolve_served(ref)
                except SpecError as err:
                    raise PipelineError(str(err)) from None
                if not (spec.artifacts_dir / MANIFEST).is_file():
                    raise PipelineError(
                        f"filter {spec.key} has no trained artifacts in {spec.artifacts_dir}; train it with "
                        f"`distillery train --filter {spec.path} --data FILE.jsonl`"
                    )
                specs.append(spec)
        if encoder is None:
            model_ids: set[str] = set()
            for spec in specs:
                emb = read_manifest(spec.artifacts_dir).get("embedding") or {}
                if emb.get("model_id"):
                    model_ids.add(str(emb["model_id"]))
            if len(model_ids) > 1:
                raise PipelineError(f"loaded filters use different embedding models {sorted(model_ids)}; re-train "
                                    "them on one model so each article is embedded once")
            encoder = Encoder.shared(next(iter(model_ids), None))
        models = {s.name: FilterModels.load(s, encoder, device=device, with_student=with_student,
                                            student_preference=student_preference, stage1_only=stage1_only)
                  for s in specs}
        return cls(encoder, models, commerce_gate(encoder) if commerce else None, limits=limits,
                   dedupe_size=dedupe_size)

    # -- step 1: limits, validate, clean, commerce, dedupe, embed once ---------------------------------
    def prepare(self, payloads: Sequence[Any], received_at: float | None = None,
                deduper: Deduper | None = None) -> list[Prepared | Rejection]:
        """Check each payload's size/UTF-8/depth before parsing, validate + clean it, block commerce (rules before,
        head after the one batched embedding) and — with a deduper — content that another article already had.

        `received_at` (default: now) is the articles' one arrival time; results measure latency from it."""
        arrived = time.time() if received_at is None else float(received_at)
        out: list[Prepared | Rejection | None] = [None] * len(payloads)
        pending: list[tuple[int, dict[str, Any], str]] = []
        for i, payload in enumerate(payloads):
            try:
                data = decode_payload(payload, self.limits)
                article = _clean(Article.parse(data).as_dict())
            except PayloadError as err:
                out[i] = Rejection("invalid", str(err), err.article_id, payload, code=err.code)
                continue
            except ArticleError as err:
                ident = data.get("id") if isinstance(data, Mapping) else None
                out[i] = Rejection("invalid", str(err), str(ident) if ident is not None else None, payload)
                continue
            if not article.get("content"):
                out[i] = Rejection("invalid", f"article {article['id']!r} has no content/text after cleaning",
                                   article["id"], payload, code=NO_CONTENT)
                continue
            if self.commerce is not None:
                decision = self.commerce.rules.check(article)
                if not decision.passed:
                    out[i] = Rejection("commerce", decision.reason, article["id"], payload)
                    continue
            digest = content_hash(article)
            first = deduper.duplicate_of(digest, str(article["id"])) if deduper is not None else None
            if first is not None:
                out[i] = Rejection("duplicate", "duplicate", article["id"], payload, content_hash=digest,
                                   duplicate_of=first)
                continue
            pending.append((i, article, digest))
        if pending:
            emb = self.encoder.encode([a for _, a, _ in pending])
            probs = None
            head = self.commerce.head if self.commerce is not None else None
            if isinstance(head, ProbabilityHead):
                probs = head.probabilities(emb)
            for j, (i, article, h) in enumerate(pending):
                p = float(probs[j]) if probs is not None else None
                if self.commerce is not None:
                    decision = self.commerce.decide(article, p, rules=False)  # rules already ran before embedding
                    if not decision.passed:
                        out[i] = Rejection("commerce", decision.reason, article["id"], payloads[i])
                        continue
                out[i] = Prepared(article, h, emb[j], p, arrived)
        return [x for x in out if x is not None]

    # -- step 2: prefilter, probe, router -------------------------------------------------------------
    def _models(self, filter_name: str) -> FilterModels:
        try:
            return self.filters[filter_name]
        except KeyError:
            raise PipelineError(f"filter {filter_name!r} is not loaded; loaded: {sorted(self.filters)}") from None

    def _result(self, fm: FilterModels, article: Mapping[str, Any], stage: Stage, raw: Mapping[str, float] | None,
                received_at: float, *, probe_scores: dict[str, float] | None = None,
                reason: str | None = None, tier_logits: Any | None = None, student: str = "") -> Result:
        latency = (time.time() - received_at) * 1000 if received_at > 0 else 0.0
        if raw is None:
            scores, wa, tier, gated, caps = {}, 0.0, fm.spec.tiers[-1].name, False, []
        else:
            s = postfilter(fm.spec, raw)
            scores, wa, tier, gated, caps = s.scores, s.weighted_average, s.tier, s.gatekeeper_applied, s.caps_applied
        confidence, source = None, "postfilter"
        if raw is not None and fm.tiers is not None and tier_logits is not None:
            wa2 = weighted_average(fm.spec, raw) if stage == "stage2" else None
            (tier, confidence), source = fm.tiers.serve(tier_logits, wa2, wa, fm.spec.tier_model.policy), "tier_model"
        return Result(article_id=str(article["id"]), filter=fm.spec.name, filter_version=fm.spec.version,
                      stage=stage, scores=scores, weighted_average=wa, tier=tier, gatekeeper_applied=gated,
                      caps_applied=caps, probe_scores=probe_scores, prefilter_reason=reason,
                      fingerprint=fm.fingerprint, latency_ms=round(latency, 3), scored_at=now_iso(),
                      title=str(article.get("title", ""))[:300],
                      flags=fm.prefilter.flags(article) if fm.prefilter is not None else [],
                      tier_confidence=confidence, tier_source=source, student=student)

    def probe_scores(self, filter_name: str, embeddings: np.ndarray,
                     articles: Sequence[Mapping[str, Any]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Probe scores (n, n_dims) and the router statistic (n,) for a batch of embeddings (+ their articles,
        whose source/language the probe may use)."""
        fm = self._models(filter_name)
        scores = fm.probe.predict(embeddings, articles)
        return scores, route_statistic(fm.router, fm.probe, embeddings, scores, fm.spec.weights)

    def _tier_logits(self, fm: FilterModels, emb: np.ndarray, scores: np.ndarray,
                     articles: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """The tier model's Stage-1 logits (n, n_edges), or None without a tier model."""
        if fm.tiers is None:
            return None
        r = fm.router
        texts = self.encoder.texts(articles) if fm.tiers.lexical is not None else None
        feats = fm.tiers.features(fm.probe.standardise(emb), scores, fm.spec.weights, emb, r.bank, r.bank_wa,
                                  r.protected_threshold, texts)
        return fm.tiers.stage1_logits(feats)

    def route(self, prepared: Sequence[Prepared], filter_name: str) -> list[Result | Stage2Request]:
        """Prefilter → probe → router: a Result (prefilter/stage1) or a Stage2Request per article, in order."""
        fm = self._models(filter_name)
        out: list[Result | Stage2Request | None] = [None] * len(prepared)
        passed: list[int] = []
        for i, p in enumerate(prepared):
            if self.apply_prefilter and fm.prefilter is not None:
                decision = fm.prefilter.check(p.article)
                if not decision.passed:
                    out[i] = self._result(fm, p.article, "prefilter", None, p.received_at, reason=decision.reason)
                    continue
            passed.append(i)
        if passed:
            emb = np.stack([prepared[i].embedding for i in passed])
            scores, stat = self.probe_scores(filter_name, emb, [prepared[i].article for i in passed])
            wa = fm.probe.weighted_average(scores)
            to_stage2 = fm.router.needs_stage2(stat)
            tl = self._tier_logits(fm, emb, scores, [prepared[i].article for i in passed])
            if tl is not None and fm.tiers is not None:  # an article the tier model serves as a needle: Stage 2
                to_stage2 |= fm.tiers.needle_mask(fm.tiers.probabilities(tl), fm.spec.hybrid.protected_tier,
                                                  fm.spec.tier_model.policy)
            dims = fm.spec.dimension_names
            served = fm.calibration.stage1(scores)
            escalates = fm.escalates
            for j, i in enumerate(passed):
                art, received = prepared[i].article, prepared[i].received_at
                ps = _by_dimension(dims, scores[j])
                if to_stage2[j] and escalates:
                    out[i] = Stage2Request(art, fm.spec.name, fm.spec.version, ps, float(wa[j]), float(stat[j]),
                                           received, tier_logits=None if tl is None else [float(v) for v in tl[j]])
                else:
                    out[i] = self._result(fm, art, "stage1", _by_dimension(dims, served[j]), received,
                                          probe_scores=ps, reason="passed", tier_logits=None if tl is None else tl[j])
        return [x for x in out if x is not None]

    # -- step 3: student, calibration, postfilter -----------------------------------------------------
    def stage2(self, requests: Sequence[Stage2Request], batch_size: int = 16) -> list[Result]:
        """Score Stage-2 requests grouped by filter (one student batch per filter), in request order."""
        out: list[Result | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.filter, []).append(i)
        for name, idx in groups.items():
            fm = self._models(name)
            dims = fm.spec.dimension_names
            probe = np.array([[requests[i].probe_scores[d] for d in dims] for i in idx], dtype=np.float64)
            if fm.student is None and fm.escalates:
                raise PipelineError(
                    f"filter {fm.spec.key} has a student in its artifacts but this process did not load it: run "
                    "Stage 2 in a worker with the stage2 role (it loads the students), or load the pipeline with "
                    "with_student=True"
                )
            stage: Stage
            if fm.student is None:  # a filter without a student: Stage 2 serves what Stage 1 would have
                stage, scores = "stage1", fm.calibration.stage1(probe)
            else:
                raw = fm.student.predict([requests[i].article for i in idx], batch_size=batch_size)
                languages = [requests[i].article.get("language") for i in idx]  # absent: the global blend
                stage, scores = "stage2", fm.calibration.stage2(raw, probe, languages)
            for j, i in enumerate(idx):
                r = requests[i]
                out[i] = self._result(fm, r.article, stage, _by_dimension(dims, scores[j]), r.received_at,
                                      probe_scores=r.probe_scores, reason="passed", tier_logits=r.tier_logits,
                                      student=getattr(fm.student, "name", "") if stage == "stage2" else "")
        return [x for x in out if x is not None]

    # -- batch -----------------------------------------------------------------------------------------
    def score_prepared(self, prepared: Sequence[Prepared], filters: Sequence[str] | None = None) -> list[Result]:
        """Route every prepared article through every (or the named) filter, then one Stage-2 pass."""
        results: list[Result] = []
        requests: list[Stage2Request] = []
        for name in filters or list(self.filters):
            for item in self.route(prepared, name):
                if isinstance(item, Stage2Request):
                    requests.append(item)
                else:
                    results.append(item)
        results.extend(self.stage2(requests))
        return results

    def score_batch(self, payloads: Sequence[Any],
                    deduper: Deduper | None = None) -> tuple[list[Result], list[Rejection]]:
        """prepare → route (every filter) → stage2: the same objects and decisions the stream uses, dedupe included
        (pass one Deduper for a run of several calls; by default each call dedupes within itself)."""
        deduper = deduper if deduper is not None else Deduper(self.dedupe_size)
        items = self.prepare(payloads, received_at=time.time(), deduper=deduper)
        prepared = [p for p in items if isinstance(p, Prepared)]
        rejected = [p for p in items if isinstance(p, Rejection)]
        return self.score_prepared(prepared), rejected
