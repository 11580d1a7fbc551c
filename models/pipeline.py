"""THE scoring pipeline shared by stream, batch and evaluation: prepare → route (Stage 1) → Stage 2."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from filters.article import Article, ArticleError
from filters.postfilter import postfilter
from filters.spec import FilterSpec, SpecError, resolve_served, trained_specs
from models.artifacts import MANIFEST, ArtifactError, manifest_digest, verify_artifacts
from models.calibration import Calibration
from models.embedding import Encoder
from models.probe import Probe
from models.records import Prepared, Rejection, Result, Stage2Request
from models.router import Router, route_statistic
from models.student_select import student_dir

log = logging.getLogger(__name__)

STUDENT_DIR = "student"


class PipelineError(RuntimeError):
    """The pipeline cannot be built; the message names the filter and the fix."""


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _by_dimension(dims: Sequence[str], row: np.ndarray) -> dict[str, float]:
    """One score row as the `{dimension: float}` mapping results carry."""
    return {d: float(v) for d, v in zip(dims, row, strict=True)}


def content_hash(article: Mapping[str, Any]) -> str:
    """Dedup key: sha256 of the cleaned, case- and whitespace-normalised title + content."""
    text = f"{article.get('title', '')}\n{article.get('content', '')}".lower()
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()


def _clean(article: dict[str, Any]) -> dict[str, Any]:
    from filters.text import clean_article

    return clean_article(article)


@dataclass
class FilterModels:
    """Everything one filter version needs at inference, loaded from verified artifacts."""

    spec: FilterSpec
    probe: Probe
    router: Router
    calibration: Calibration
    student: Any | None = None  # models.student.Student
    prefilter: Any | None = None  # filters.prefilter.Prefilter
    fingerprint: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, spec: FilterSpec, encoder: Encoder | None = None, *, device: str | None = None,
             with_student: bool = True, directory: Path | None = None) -> FilterModels:
        """Verify the manifest (checksums, spec and encoder fingerprints), then load probe, router, calibration,
        prefilter and — when present and wanted — the student."""
        directory = directory or spec.artifacts_dir
        manifest = verify_artifacts(directory, spec, encoder.fingerprint() if encoder else None)
        probe = Probe.load(directory)
        router = Router.load(directory)
        calibration = Calibration.load(directory, spec.dimension_names)
        student = None
        listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else None
        chosen = student_dir(directory, device, listed=listed) if with_student else None  # Gemma on CUDA, else MiniLM
        if chosen is not None:
            from models.student import Student

            student = Student.load(chosen[1], device=device)
            student.name = chosen[0]  # type: ignore[attr-defined]  # which student serves: Result.student
            recorded = (manifest.get("student") or {}).get("recipe")
            if recorded is not None and recorded != student.fingerprint().get("recipe"):
                raise ArtifactError(
                    f"{directory / STUDENT_DIR}: the student's preprocessing differs from the one recorded in "
                    f"{directory / MANIFEST}; re-train with `distillery train --filter {spec.path}`"
                )
        elif with_student:
            log.warning("filter %s has no student in %s: articles above the router's operating point get "
                        "probe scores (stage1)", spec.key, directory)
        from filters.prefilter import Prefilter

        return cls(spec, probe, router, calibration, student, Prefilter.for_spec(spec), manifest_digest(directory),
                   manifest)


def _commerce_gate(encoder: Encoder) -> Any | None:
    """The combined commerce filter (rules + head), or None when the rules module is not installed.

    The head must have been trained on this encoder's vectors; another model is refused with the fix."""
    try:
        from filters.commerce import CommerceFilter, CommerceRules
    except ImportError:
        log.warning("filters.commerce not available: no commerce gate")
        return None
    from models.commerce_head import DEFAULT_DIR, load_default

    head = load_default()
    if head is not None and head.embedding:
        mine = encoder.fingerprint()
        for key in ("model_id", "dimension", "recipe_fingerprint"):
            if head.embedding.get(key) != mine.get(key):
                raise ArtifactError(
                    f"{DEFAULT_DIR}: the commerce head was trained on embedding {key}={head.embedding.get(key)!r} "
                    f"but the encoder has {mine.get(key)!r}; re-train it with `distillery train-commerce --data "
                    "commerce.jsonl` or load the pipeline with commerce=False"
                )
    threshold = head.threshold if head is not None else 0.5
    return CommerceFilter(CommerceRules.default(), head=head, threshold=threshold)


class Pipeline:
    """Loaded filters + the shared encoder + the commerce gate. Stateless per call (dedup lives in Deduper)."""

    def __init__(self, encoder: Encoder, filters: Mapping[str, FilterModels], commerce: Any | None = None, *,
                 apply_prefilter: bool = True) -> None:
        self.encoder = encoder
        self.filters = dict(filters)
        self.commerce = commerce
        self.apply_prefilter = apply_prefilter
        self._warned: set[str] = set()

    @property
    def specs(self) -> dict[str, FilterSpec]:
        return {name: fm.spec for name, fm in self.filters.items()}

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def load(cls, filters: Sequence[str] | None = None, *, device: str | None = None, with_student: bool = True,
             encoder: Encoder | None = None, commerce: bool = True) -> Pipeline:
        """Load named filters (name, name/vN or path) or, with None, every shipped filter whose artifacts exist."""
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
            model_ids = set()
            for spec in specs:
                from models.artifacts import read_manifest

                emb = read_manifest(spec.artifacts_dir).get("embedding") or {}
                model_ids.add(emb.get("model_id"))
            model_ids.discard(None)
            if len(model_ids) > 1:
                raise PipelineError(f"loaded filters use different embedding models {sorted(model_ids)}; re-train "
                                    "them on one model so each article is embedded once")
            encoder = Encoder.shared(next(iter(model_ids), None))
        models = {s.name: FilterModels.load(s, encoder, device=device, with_student=with_student) for s in specs}
        return cls(encoder, models, _commerce_gate(encoder) if commerce else None)

    # -- step 1: validate, clean, commerce, embed once ------------------------------------------------
    def prepare(self, payloads: Sequence[Any], received_at: float | None = None) -> list[Prepared | Rejection]:
        """Validate + clean each payload, block commerce (rules before, head after the one batched embedding)."""
        out: list[Prepared | Rejection | None] = [None] * len(payloads)
        pending: list[tuple[int, dict[str, Any], str]] = []
        for i, payload in enumerate(payloads):
            try:
                data = orjson.loads(payload) if isinstance(payload, bytes | bytearray | str) else payload
                article = _clean(Article.parse(data).as_dict())
            except (orjson.JSONDecodeError, ArticleError) as err:
                ident = payload.get("id") if isinstance(payload, Mapping) else None
                out[i] = Rejection("invalid", str(err), str(ident) if ident is not None else None, payload)
                continue
            if not article.get("content"):
                out[i] = Rejection("invalid", f"article {article['id']!r} has no content/text after cleaning",
                                   article["id"], payload)
                continue
            if self.commerce is not None:
                decision = self.commerce.rules.check(article) if hasattr(self.commerce, "rules") else None
                if decision is not None and not decision.passed:
                    out[i] = Rejection("commerce", decision.reason, article["id"], payload)
                    continue
            pending.append((i, article, content_hash(article)))
        if pending:
            emb = self.encoder.encode([a for _, a, _ in pending])
            probs = None
            head = getattr(self.commerce, "head", None) if self.commerce is not None else None
            if head is not None:
                probs = head.probabilities(emb)
            for j, (i, article, h) in enumerate(pending):
                p = float(probs[j]) if probs is not None else None
                if self.commerce is not None:
                    decision = self.commerce.decide(article, p, rules=False)  # rules already ran before embedding
                    if not decision.passed:
                        out[i] = Rejection("commerce", decision.reason, article["id"], payloads[i])
                        continue
                out[i] = Prepared(article, h, emb[j], p)
        if received_at is not None:
            for item in out:
                if isinstance(item, Prepared):
                    item.article.setdefault("_received_at", received_at)
        return [x for x in out if x is not None]

    # -- step 2: prefilter, probe, router -------------------------------------------------------------
    def _models(self, filter_name: str) -> FilterModels:
        try:
            return self.filters[filter_name]
        except KeyError:
            raise PipelineError(f"filter {filter_name!r} is not loaded; loaded: {sorted(self.filters)}") from None

    def _result(self, fm: FilterModels, article: Mapping[str, Any], stage: str, raw: Mapping[str, float] | None,
                *, probe_scores: dict[str, float] | None = None, reason: str | None = None) -> Result:
        received = article.get("_received_at")
        latency = (time.time() - received) * 1000 if isinstance(received, float | int) else 0.0
        if raw is None:
            scores, wa, tier, gated, caps = {}, 0.0, fm.spec.tiers[-1].name, False, []
        else:
            s = postfilter(fm.spec, raw)
            scores, wa, tier, gated, caps = s.scores, s.weighted_average, s.tier, s.gatekeeper_applied, s.caps_applied
        return Result(article_id=str(article["id"]), filter=fm.spec.name, filter_version=fm.spec.version,
                      stage=stage, scores=scores, weighted_average=wa, tier=tier, gatekeeper_applied=gated,
                      caps_applied=caps, probe_scores=probe_scores, prefilter_reason=reason,
                      fingerprint=fm.fingerprint, latency_ms=round(latency, 3), scored_at=_now_iso(),
                      title=str(article.get("title", ""))[:300])

    def probe_scores(self, filter_name: str, embeddings: np.ndarray,
                     articles: Sequence[Mapping[str, Any]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Probe scores (n, n_dims) and the router statistic (n,) for a batch of embeddings (+ their articles,
        whose source/language the probe may use)."""
        fm = self._models(filter_name)
        scores = fm.probe.predict(embeddings, articles)
        return scores, route_statistic(fm.router, fm.probe, embeddings, scores, fm.spec.weights)

    def route(self, prepared: Sequence[Prepared], filter_name: str) -> list[Result | Stage2Request]:
        """Prefilter → probe → router: a Result (prefilter/stage1) or a Stage2Request per article, in order."""
        fm = self._models(filter_name)
        out: list[Result | Stage2Request | None] = [None] * len(prepared)
        passed: list[int] = []
        for i, p in enumerate(prepared):
            if self.apply_prefilter and fm.prefilter is not None:
                decision = fm.prefilter.check(p.article)
                if not decision.passed:
                    out[i] = self._result(fm, p.article, "prefilter", None, reason=decision.reason)
                    continue
            passed.append(i)
        if passed:
            emb = np.stack([prepared[i].embedding for i in passed])
            scores, stat = self.probe_scores(filter_name, emb, [prepared[i].article for i in passed])
            wa = fm.probe.weighted_average(scores)
            to_stage2 = fm.router.needs_stage2(stat)
            dims = fm.spec.dimension_names
            served = fm.calibration.stage1(scores)
            for j, i in enumerate(passed):
                art = prepared[i].article
                ps = _by_dimension(dims, scores[j])
                if to_stage2[j] and fm.student is not None:
                    received = art.get("_received_at")
                    out[i] = Stage2Request(art, fm.spec.name, fm.spec.version, ps, float(wa[j]), float(stat[j]),
                                           float(received) if isinstance(received, float | int) else time.time())
                else:
                    if to_stage2[j] and fm.spec.name not in self._warned:
                        self._warned.add(fm.spec.name)
                        log.warning("filter %s: no student loaded; routed articles get probe scores", fm.spec.key)
                    out[i] = self._result(fm, art, "stage1", _by_dimension(dims, served[j]), probe_scores=ps,
                                          reason="passed")
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
            if fm.student is None:  # a Stage-2 worker without a student serves what Stage 1 would have
                stage, scores = "stage1", fm.calibration.stage1(probe)
            else:
                raw = fm.student.predict([requests[i].article for i in idx], batch_size=batch_size)
                stage, scores = "stage2", fm.calibration.apply(fm.calibration.combine(raw, probe))
            for j, i in enumerate(idx):
                r = requests[i]
                out[i] = self._result(fm, r.article, stage, _by_dimension(dims, scores[j]), probe_scores=r.probe_scores,
                                      reason="passed")
                out[i].student = getattr(fm.student, "name", "") if stage == "stage2" else ""  # type: ignore[union-attr]
        return [x for x in out if x is not None]

    # -- batch -----------------------------------------------------------------------------------------
    def score_prepared(self, prepared: Sequence[Prepared], filters: Sequence[str] | None = None) -> list[Result]:
        """Route every prepared article through every (or the named) filter, then one Stage-2 pass."""
        results: list[Result] = []
        requests: list[Stage2Request] = []
        for name in filters or list(self.filters):
            for item in self.route(prepared, name):
                (requests if isinstance(item, Stage2Request) else results).append(item)
        results.extend(self.stage2(requests))
        return results

    def score_batch(self, payloads: Sequence[Any]) -> tuple[list[Result], list[Rejection]]:
        """prepare → route (every filter) → stage2: the same objects the stream uses."""
        items = self.prepare(payloads, received_at=time.time())
        prepared = [p for p in items if isinstance(p, Prepared)]
        rejected = [p for p in items if isinstance(p, Rejection)]
        return self.score_prepared(prepared), rejected


class Deduper:
    """Bounded LRU of content hashes."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seen(self, content_hash: str) -> bool:
        """True if already seen (and refresh it); otherwise record it and return False."""
        if content_hash in self._seen:
            self._seen.move_to_end(content_hash)
            return True
        self._seen[content_hash] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._seen)
