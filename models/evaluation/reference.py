"""The monitor's reference from a filter's served test-split results and the oracle's scores (training time)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from filters.postfilter import postfilter
from filters.spec import FilterSpec
from models.errors import ModelsError
from models.metrics import mae
from models.reference import ServedReference, summarise_results


class ReferenceDataError(ModelsError, ValueError):
    """Results without the oracle scores a reference needs; the message names the filter and the article."""


def build_reference(spec: FilterSpec, results: Sequence[Any], oracle: Mapping[str, Sequence[float]],
                    fingerprint: str) -> ServedReference:
    """The monitor's reference from the served test-split results.

    `oracle` maps article id → oracle scores (spec dimension order); `heldout_mae` is the served WA (postfilter
    included) against the oracle's postfiltered WA, as the live oracle spot-check measures it. The prefilter is
    off in evaluation, so no prefilter-block rate is recorded (it would read 0 and alarm on every block).
    """
    dims = spec.dimension_names
    missing = [r.article_id for r in results if r.article_id not in oracle]
    if missing:
        raise ReferenceDataError(f"reference for {spec.key}: no oracle scores for {len(missing)} results "
                                 f"(e.g. {missing[0]!r}); evaluate on labelled rows only")
    oracle_wa = [postfilter(spec, dict(zip(dims, map(float, oracle[r.article_id]), strict=True))).weighted_average
                 for r in results]
    served = [r.weighted_average for r in results]
    heldout = mae(served, oracle_wa) if served else None
    ref = summarise_results(results, dict(zip(dims, spec.weights, strict=True)), fingerprint, heldout)
    ref.rates.pop("prefilter_block", None)
    served_tiers = [r.tier for r in results if r.stage != "prefilter"]
    for tier in spec.tier_names:  # the served tier distribution (tier model or postfilter), for the monitor
        ref.rates[f"tier_share:{tier}"] = served_tiers.count(tier) / len(served_tiers) if served_tiers else 0.0
    return ref
