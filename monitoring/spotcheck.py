"""Oracle spot-check: a stratified hourly sample of served articles re-scored by the oracle gives a live MAE."""

from __future__ import annotations

import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from filters.postfilter import postfilter
from filters.spec import SpecError, resolve_served
from filters.timeutil import to_iso
from models.oracle.client import OracleClient
from models.oracle.prompting import Prompt
from models.oracle.providers import make_provider
from models.oracle.validation import extract_json, validate_response
from monitoring.alerts import Alert, Cooldown
from monitoring.errors import MonitorConfigError
from monitoring.lru import LRU
from monitoring.metrics import Metrics

# article (with title and content) -> the oracle's capped dimension scores, or None when the call failed
OracleFn = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, float] | None]]
# (filter name, oracle dimension scores) -> the weighted average the filter would serve for them
WeightedFn = Callable[[str, Mapping[str, float]], float]
STRATA_EDGES = (2.0, 4.0, 6.0, 8.0)  # WA bins: <2, 2-4, 4-6, 6-8, >=8
log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One served result picked for a spot-check, with the article the oracle needs."""

    filter: str
    article: dict[str, Any]
    served_weighted_average: float
    stratum: int
    period: int


def stratum(weighted_average: float, edges: Sequence[float] = STRATA_EDGES) -> int:
    return sum(1 for e in edges if weighted_average >= e)


@dataclass
class _Period:
    index: int
    reservoirs: dict[int, list[Sample]] = field(default_factory=dict)
    seen: dict[int, int] = field(default_factory=dict)


class StratifiedSampler:
    """Per filter and per `period_s` (an hour): reservoir-sample up to `k` results, spread over the WA strata.

    Each stratum keeps ceil(k / n_strata) slots, so the rare high scores are checked as often as the common
    low ones; when a period closes, `due()` hands out its samples (at most k, fewest-first across strata).
    """

    def __init__(self, k: int = 20, period_s: float = 3_600.0, edges: Sequence[float] = STRATA_EDGES,
                 seed: int = 0) -> None:
        if k < 1 or period_s <= 0:
            raise ValueError(f"spot-check needs k >= 1 and period_s > 0, got k={k}, period_s={period_s}")
        self.k = k
        self.period_s = period_s
        self.edges = tuple(edges)
        self.per_stratum = math.ceil(k / (len(self.edges) + 1))
        self._rng = random.Random(seed)
        self._periods: dict[str, _Period] = {}
        self._closed: list[_Period] = []

    def offer(self, filter_name: str, article: Mapping[str, Any], served_wa: float, now: float) -> None:
        """Consider one served result (only stage1/stage2 results carry a model score worth checking)."""
        index = int(now // self.period_s)
        period = self._periods.get(filter_name)
        if period is None or period.index != index:
            if period is not None and period.index < index:
                self._closed.append(period)
            period = self._periods[filter_name] = _Period(index)
        s = stratum(served_wa, self.edges)
        seen = period.seen.get(s, 0) + 1
        period.seen[s] = seen
        reservoir = period.reservoirs.setdefault(s, [])
        sample = Sample(filter_name, dict(article), float(served_wa), s, index)
        if len(reservoir) < self.per_stratum:
            reservoir.append(sample)
        else:
            j = self._rng.randrange(seen)
            if j < self.per_stratum:
                reservoir[j] = sample

    def due(self, now: float) -> list[Sample]:
        """Samples of every period that has ended by `now` (each handed out once)."""
        index = int(now // self.period_s)
        closed, self._closed = self._closed, []
        for name, period in list(self._periods.items()):
            if period.index < index:
                closed.append(period)
                del self._periods[name]
        out: list[Sample] = []
        for period in closed:
            picked: list[Sample] = []
            pools = [list(period.reservoirs[s]) for s in sorted(period.reservoirs)]
            while len(picked) < self.k and any(pools):
                for pool in pools:  # round-robin over strata so every stratum gets its share
                    if pool and len(picked) < self.k:
                        picked.append(pool.pop(0))
            out += picked
        return out


class SpotCheck:
    """Live MAE of served weighted averages against the oracle, per filter, over the last `window` checks.

    Alerts (signal `live_mae`, detector `oracle_spotcheck`) when at least `min_samples` checks give a MAE
    above the held-out MAE by more than `margin`; the held-out MAE comes from the artifact's evaluation.
    """

    def __init__(
        self,
        heldout_mae: Mapping[str, float],
        weighted: WeightedFn,
        *,
        margin: float = 0.3,
        min_samples: int = 20,
        window: int = 200,
        metrics: Metrics | None = None,
        cooldown_events: int = 50,
        cooldown_seconds: float = 6 * 3_600.0,
    ) -> None:
        self.heldout_mae = dict(heldout_mae)
        self.weighted = weighted
        self.margin = margin
        self.min_samples = min_samples
        self.window = window
        self.metrics = metrics
        self._errors: dict[str, deque[float]] = {}
        self._cooldowns: dict[str, Cooldown] = {}
        self._cooldown_args = (cooldown_events, cooldown_seconds)
        self.failures: dict[str, int] = {}

    def live_mae(self, filter_name: str) -> float:
        errors = self._errors.get(filter_name)
        return sum(errors) / len(errors) if errors else float("nan")

    def record(self, sample: Sample, oracle_scores: Mapping[str, float] | None, now: float | None = None
               ) -> Alert | None:
        """Compare one oracle judgment with what was served; return an alert when the live MAE is too high."""
        name = sample.filter
        if oracle_scores is None:
            self.failures[name] = self.failures.get(name, 0) + 1
            return None
        now = time.time() if now is None else now
        error = abs(self.weighted(name, oracle_scores) - sample.served_weighted_average)
        errors = self._errors.setdefault(name, deque(maxlen=self.window))
        errors.append(error)
        mae = self.live_mae(name)
        if self.metrics is not None:
            self.metrics.live_mae(name, mae, n=1)
        cooldown = self._cooldowns.setdefault(name, Cooldown(*self._cooldown_args))
        cooldown.tick()
        heldout = self.heldout_mae.get(name)
        if heldout is None or len(errors) < self.min_samples or mae <= heldout + self.margin:
            return None
        if not cooldown.allow(now):
            return None
        return Alert(
            filter=name, signal="live_mae", detector="oracle_spotcheck", value=mae, baseline=heldout,
            window=len(errors), severity="critical" if mae > heldout + 2 * self.margin else "warning",
            detected_at=to_iso(now),
            message=f"oracle spot-check MAE {mae:.2f} > held-out {heldout:.2f} + margin {self.margin:.2f}",
            details={"margin": self.margin, "failures": self.failures.get(name, 0)},
        )

    async def check(self, samples: Sequence[Sample], oracle: OracleFn, now: float | None = None) -> list[Alert]:
        """Ask the oracle about each sample (sequentially: a handful per hour) and record the outcomes."""
        alerts = []
        for sample in samples:
            try:
                scores = await oracle(sample.article)
            except Exception:  # a failed oracle call is counted, never fatal to monitoring
                scores = None
            alert = self.record(sample, scores, now)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def state(self) -> dict[str, Any]:
        return {
            name: {"live_mae": self.live_mae(name), "n": len(errors), "heldout_mae": self.heldout_mae.get(name),
                   "failures": self.failures.get(name, 0)}
            for name, errors in sorted(self._errors.items())
        }


def spec_weighted(filter_name: str, scores: Mapping[str, float]) -> float:
    """The served WA for oracle scores: the served spec's postfilter (weights, gatekeepers)."""
    return postfilter(resolve_served(filter_name), scores).weighted_average


def oracle_scorer(spec: Any, client: Any, max_words: int | None = 800) -> OracleFn:
    """An OracleFn over the oracle client of `models.oracle` (prompt of the spec, validated and capped reply)."""
    prompt = Prompt.for_spec(spec)

    async def score(article: Mapping[str, Any]) -> Mapping[str, float] | None:
        completion = await client.complete(prompt.render(article, max_words))
        return validate_response(spec, extract_json(completion.reply.text)).scores

    return score


class SpotCheckRunner:
    """Glue for the monitor agent: remembers recent articles, samples served results, runs due checks.

    Results carry no article text, so the agent also feeds `articles.embedded` records to `remember` (a
    bounded LRU of the last `articles` articles); a result whose article was not seen is not sampled.
    """

    def __init__(self, sampler: StratifiedSampler, check: SpotCheck, oracles: Mapping[str, OracleFn],
                 articles: int = 2_000) -> None:
        self.sampler = sampler
        self.check = check
        self.oracles = dict(oracles)
        self.capacity = articles
        self._articles: LRU[str, dict[str, Any]] = LRU(articles)
        self.busy = False
        self.offered = 0

    def remember(self, article: Mapping[str, Any]) -> None:
        ident = str(article.get("id") or "")
        if not ident:
            return
        self._articles.put(ident, dict(article))

    def offer(self, result: Mapping[str, Any], now: float) -> None:
        """Consider one result record for the sample (stage1/stage2 of a filter with an oracle)."""
        name = str(result.get("filter") or "")
        if result.get("stage") not in ("stage1", "stage2") or name not in self.oracles:
            return
        article = self._articles.get(str(result.get("article_id") or ""))
        wa = result.get("weighted_average")
        if article is None or wa is None:
            return
        self.offered += 1
        self.sampler.offer(name, article, float(wa), now)

    async def run_due(self, now: float) -> list[Alert]:
        """Check every sample of the periods that ended; one run at a time (`busy`)."""
        if self.busy:
            return []
        self.busy = True
        try:
            alerts: list[Alert] = []
            for sample in self.sampler.due(now):
                alerts += await self.check.check([sample], self.oracles[sample.filter], now)
            return alerts
        finally:
            self.busy = False

    @classmethod
    def build(cls, filters: Sequence[str], heldout_mae: Mapping[str, float], *, provider: str, model: str,
              k: int = 20, period_s: float = 3_600.0, margin: float = 0.3,
              metrics: Metrics | None = None) -> SpotCheckRunner:
        """A runner asking `provider`/`model` about up to `k` served results per filter and period.

        Each filter is checked against its SERVED version (filters.spec.resolve_served), the one the stream scores
        with; a filter without a spec here is skipped with a warning.
        """
        if not model:
            raise MonitorConfigError(f"spot-check provider {provider!r} needs a model (the oracle's model id)")
        client = OracleClient(make_provider(provider), model, concurrency=2)
        oracles: dict[str, OracleFn] = {}
        for name in filters:
            try:
                oracles[name] = oracle_scorer(resolve_served(name), client)
            except (SpecError, FileNotFoundError) as err:
                log.warning("spot-check: skipping filter %s: %s", name, err)
        sampler = StratifiedSampler(k=k, period_s=period_s)
        check = SpotCheck(heldout_mae, spec_weighted, margin=margin, metrics=metrics)
        return cls(sampler, check, oracles)
