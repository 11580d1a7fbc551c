"""The postfilter reproduces the anchor's arithmetic (§1.3) plus in-code caps and penalties on the shipped specs.

Every expected weighted average below is worked out by hand in the comment of its row, so a drift in a spec's
weights, caps, gatekeeper or tiers shows up as a failing row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from filters.postfilter import apply_caps, assign_tier, postfilter, weighted_average
from filters.spec import resolve_spec


@dataclass(frozen=True)
class Case:
    """One row: raw scores in spec dimension order, labels, and the expected outcome."""

    id: str
    filter: str
    raw: tuple[float, ...]
    wa: float
    tier: str
    gated: bool = False
    content_type: str | None = None
    flags: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()
    scores: tuple[float, ...] | None = None  # expected post-cap scores when they differ from the clamped raw ones
    extra: dict = field(default_factory=dict)


CASES = [
    # uplifting v6 weights .25 .15 .10 .20(evidence, gate <3 -> 3.0) .20 .10
    # 8*.25 + 6*.15 + 4*.10 + 2*.20 + 6*.20 + 5*.10 = 2.0+0.9+0.4+0.4+1.2+0.5 = 5.4 -> evidence 2.0 < 3 -> capped 3.0
    Case("uplifting6-gatekeeper", "uplifting/v6", (8, 6, 4, 2.0, 6, 5), 3.0, "low", gated=True),
    # same with evidence exactly at the gate (3.0 is not < 3.0): 5.4 + 1.0*.20 = 5.6
    Case("uplifting6-gate-boundary", "uplifting/v6", (8, 6, 4, 3.0, 6, 5), 5.6, "medium"),
    # corporate_finance clamps every dimension to 2.0 -> WA 2.0
    Case("uplifting6-corporate-cap", "uplifting/v6", (8, 8, 8, 8, 8, 8), 2.0, "low",
         content_type="corporate_finance", caps=("corporate_finance",), scores=(2, 2, 2, 2, 2, 2)),
    # a content type without a rule changes nothing: all 7 -> 7.0 exactly at the high edge
    Case("uplifting6-no-cap-type", "uplifting/v6", (7, 7, 7, 7, 7, 7), 7.0, "high", content_type="solutions_story"),
    # uplifting v7 weights .30 .20 .15 .10(gate) .10 .15: 5*.30 + 4*.20 + 2*.15 + 4*.10 + 4*.10 + 4*.15
    # = 1.5+0.8+0.3+0.4+0.4+0.6 = 4.0 exactly at the medium edge
    Case("uplifting7-medium-edge", "uplifting/v7", (5, 4, 2, 4, 4, 4), 4.0, "medium"),
    # 3.9999 just below the edge stays low: all 3.9999
    Case("uplifting7-below-edge", "uplifting/v7", (3.9999,) * 6, 3.9999, "low"),
    # legacy uplifting v1, equal weights .125, no gatekeeper; 11 clamps to 10, -1 to 0: 4*10*.125 = 5.0
    Case("uplifting1-clamp", "uplifting/v1", (11, 11, 11, 11, -1, -1, -1, -1), 5.0, "medium",
         scores=(10, 10, 10, 10, 0, 0, 0, 0)),
    # cultural_discovery v5 weights .25 .20 .25 .15 .15(evidence, gate <3 -> 4.0)
    # commemoration_memorial penalty 2.5 on every dim: 8,7,6,6,5 -> 5.5,4.5,3.5,3.5,2.5
    # 5.5*.25 + 4.5*.20 + 3.5*.25 + 3.5*.15 + 2.5*.15 = 1.375+0.9+0.875+0.525+0.375 = 4.05 -> evidence 2.5 < 3 -> 4.0
    Case("cd5-penalty-then-gate", "cultural_discovery/v5", (8, 7, 6, 6, 5), 4.0, "medium", gated=True,
         content_type="commemoration_memorial", caps=("commemoration_memorial",), scores=(5.5, 4.5, 3.5, 3.5, 2.5)),
    # clamp first, then subtract: political_conflict (max 3.0) + decline_loss (penalty 2.0)
    # 9,2.5,8,1,6 -> clamp 3,2.5,3,1,3 -> minus 2 (floor 0) 1,0.5,1,0,1
    # 1*.25 + 0.5*.20 + 1*.25 + 0*.15 + 1*.15 = 0.25+0.1+0.25+0+0.15 = 0.75 (subtracting first would give 2.05)
    Case("cd5-clamp-then-subtract", "cultural_discovery/v5", (9, 2.5, 8, 1, 6), 0.75, "low",
         content_type="political_conflict", flags=("decline_loss",), caps=("political_conflict", "decline_loss"),
         scores=(1, 0.5, 1, 0, 1)),
    # several penalties: the highest wins (perpetrator_biography 3.5 over historical_harm_reckoning 2.5): 6 -> 2.5
    Case("cd5-highest-penalty", "cultural_discovery/v5", (6, 6, 6, 6, 6), 2.5, "low",
         content_type="historical_harm_reckoning", flags=("perpetrator_biography",),
         caps=("historical_harm_reckoning", "perpetrator_biography"), scores=(2.5,) * 5),
    # several max_score types: the lowest wins (tourism_fluff 2.0 over political_conflict 3.0): 9 -> 2
    Case("cd5-lowest-max", "cultural_discovery/v5", (9, 9, 9, 9, 9), 2.0, "low",
         content_type="political_conflict", flags=("tourism_fluff",), caps=("political_conflict", "tourism_fluff"),
         scores=(2,) * 5),
    # speculation: evidence <= 2 then WA <= 3.0: 8*.85 + 2*.15 = 7.1 -> 3.0; gate (evidence 2 < 3) cap 4.0 not reached
    Case("cd5-speculation", "cultural_discovery/v5", (8, 8, 8, 8, 8), 3.0, "low",
         content_type="speculation", caps=("speculation",), scores=(8, 8, 8, 8, 2)),
    # cd gatekeeper cap is the code's 4.0 (not the prompt's 3.0): all 8, evidence 2 -> 8*.85 + 2*.15 = 7.1 -> 4.0
    Case("cd5-gate-cap-4", "cultural_discovery/v5", (8, 8, 8, 8, 2), 4.0, "medium", gated=True),
    # sustainability v1 weights .25 .20(credibility, gate <5 -> 4.0) .15 .15 .10 .05 .05 .05
    # greenwashing_risk: credibility 7 -> 3; 8*.25 + 3*.20 + 6*.15 + 6*.15 + 5*.10 + 4*.05 + 6*.05 + 5*.05
    # = 2.0+0.6+0.9+0.9+0.5+0.2+0.3+0.25 = 5.65 -> overall cap 4.0; gate needs WA > 4.0, so not applied
    Case("sust1-greenwashing", "sustainability/v1", (8, 7, 6, 6, 5, 4, 6, 5), 4.0, "monitoring",
         content_type="greenwashing_risk", caps=("greenwashing_risk",), scores=(8, 3, 6, 6, 5, 4, 6, 5)),
    # fossil_transition: climate 9 -> 4; 4*.25 + 6*.75 = 5.5 -> overall 4.0
    Case("sust1-fossil", "sustainability/v1", (9, 6, 6, 6, 6, 6, 6, 6), 4.0, "monitoring",
         content_type="fossil_transition", caps=("fossil_transition",), scores=(4, 6, 6, 6, 6, 6, 6, 6)),
    # vaporware: only the overall cap 5.0: all 8 -> 5.0 exactly at the promising edge
    Case("sust1-vaporware", "sustainability/v1", (8,) * 8, 5.0, "promising",
         content_type="vaporware", caps=("vaporware",)),
    # gate: credibility 4.5 < 5: 8*.80 + 4.5*.20 = 7.3 -> 4.0
    Case("sust1-gate", "sustainability/v1", (8, 4.5, 8, 8, 8, 8, 8, 8), 4.0, "monitoring", gated=True),
    # tier edges 7.5 / 5.0 / 3.0 (credibility 3 < 5 but WA 3.0 is under the 4.0 cap) / below 3.0
    Case("sust1-breakthrough-edge", "sustainability/v1", (7.5,) * 8, 7.5, "breakthrough"),
    Case("sust1-promising-edge", "sustainability/v1", (5.0,) * 8, 5.0, "promising"),
    Case("sust1-monitoring-edge", "sustainability/v1", (3.0,) * 8, 3.0, "monitoring"),
    Case("sust1-not-relevant", "sustainability/v1", (2.5,) * 8, 2.5, "not_relevant"),
    # non-finite -> 0: climate NaN, credibility +inf, economic -inf -> 0,0,0; 6*(.15+.10+.05+.05+.05) = 2.4
    Case("sust1-non-finite", "sustainability/v1", (math.nan, math.inf, -math.inf, 6, 6, 6, 6, 6), 2.4, "not_relevant",
         scores=(0, 0, 0, 6, 6, 6, 6, 6)),
    # investment_risk v6 weights .20 .25 .15 .15(evidence, gate <4 -> 2.9) .15 .10
    # evidence 3.5: 6*.85 + 3.5*.15 = 5.1+0.525 = 5.625 -> 2.9
    Case("ir6-gate", "investment_risk/v6", (6, 6, 6, 3.5, 6, 6), 2.9, "low", gated=True),
    # evidence exactly 4.0 is not gated: 5.1 + 0.6 = 5.7
    Case("ir6-gate-boundary", "investment_risk/v6", (6, 6, 6, 4.0, 6, 6), 5.7, "medium"),
    # stock_picking flag caps risk_domain_type and impact_breadth at 2: 7,6,5,6,8,4 -> 2,6,5,6,2,4
    # 2*.20 + 6*.25 + 5*.15 + 6*.15 + 2*.15 + 4*.10 = 0.4+1.5+0.75+0.9+0.3+0.4 = 4.25
    Case("ir6-stock-picking", "investment_risk/v6", (7, 6, 5, 6, 8, 4), 4.25, "medium",
         content_type="macro_risk", flags=("stock_picking",), caps=("stock_picking",), scores=(2, 6, 5, 6, 2, 4)),
    # belonging v1: community_fabric (weight .25) < 3 -> cap 3.42: 7*.75 + 2.5*.25 = 5.875 -> 3.42
    Case("belonging1-gate", "belonging/v1", (7, 2.5, 7, 7, 7, 7), 3.42, "low", gated=True),
    # nature_recovery v2: recovery_evidence (.25) < 3 -> cap 3.5: 2*.25 + 8*.75 = 6.5 -> 3.5
    Case("nature2-gate", "nature_recovery/v2", (2, 8, 8, 8, 8, 8), 3.5, "low", gated=True),
    # sustainability_technology v3: TRL (.15) < 3 -> cap 2.2: 2.5*.15 + 7*.85 = 6.325 -> 2.2
    Case("sustech3-gate", "sustainability_technology/v3", (2.5, 7, 7, 7, 7, 7), 2.2, "low", gated=True),
    # out-of-scope category zeroes every dimension
    Case("sustech3-out-of-scope", "sustainability_technology/v3", (9,) * 6, 0.0, "low",
         content_type="consumer_electronics", caps=("consumer_electronics",), scores=(0,) * 6),
    # ai_engineering_practice tiers 6.0 / 3.5 / 0: all 6 -> high, all 3.5 -> medium
    Case("aieng2-high-edge", "ai_engineering_practice/v2", (6,) * 5, 6.0, "high"),
    Case("aieng2-medium-edge", "ai_engineering_practice/v2", (3.5,) * 5, 3.5, "medium"),
    # foresight soft cap: only the WA is capped, dimensions stay as scored: all 7 -> 4.0
    Case("foresight1-soft-cap", "foresight/v1", (7,) * 6, 4.0, "medium",
         content_type="no_decision_context", caps=("no_decision_context",)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_anchor_arithmetic(case: Case):
    spec = resolve_spec(case.filter)
    raw = dict(zip(spec.dimension_names, case.raw, strict=True))
    out = postfilter(spec, raw, content_type=case.content_type, flags=case.flags)
    assert out.weighted_average == pytest.approx(case.wa, abs=1e-6)
    assert out.tier == case.tier
    assert out.gatekeeper_applied is case.gated
    assert out.caps_applied == list(case.caps)
    clamped = tuple(min(10.0, max(0.0, x)) if math.isfinite(x) else 0.0 for x in case.raw)
    expected = case.scores if case.scores is not None else clamped
    assert list(out.scores) == spec.dimension_names
    assert tuple(out.scores.values()) == pytest.approx(expected, abs=1e-6)


def test_gatekeeper_can_be_skipped_for_stage1_results():
    spec = resolve_spec("uplifting/v6")
    raw = dict(zip(spec.dimension_names, (8, 6, 4, 2.0, 6, 5), strict=True))
    out = postfilter(spec, raw, apply_gatekeepers=False)
    assert out.weighted_average == pytest.approx(5.4)
    assert out.tier == "medium"
    assert out.gatekeeper_applied is False


def test_missing_dimension_raises_naming_filter_and_dimensions():
    spec = resolve_spec("investment_risk/v6")
    raw = dict.fromkeys(spec.dimension_names[:4], 5.0)
    expected = r"investment_risk/v6 lack dimensions \['impact_breadth', 'retail_actionability'\]"
    with pytest.raises(ValueError, match=expected):
        postfilter(spec, raw)


def test_extra_dimensions_are_ignored():
    spec = resolve_spec("belonging/v1")
    raw = {**dict.fromkeys(spec.dimension_names, 5.0), "unrelated": 10.0}
    out = postfilter(spec, raw)
    assert set(out.scores) == set(spec.dimension_names)
    assert out.weighted_average == pytest.approx(5.0)


def test_unknown_labels_apply_nothing():
    spec = resolve_spec("nature_recovery/v2")
    raw = dict.fromkeys(spec.dimension_names, 6.0)
    scores, overall, applied = apply_caps(spec, raw, ["not_a_type", "ecosystem_recovery"])
    assert scores == dict.fromkeys(spec.dimension_names, 6.0)
    assert overall is None
    assert applied == []


def test_repeated_label_applies_once():
    spec = resolve_spec("cultural_discovery/v5")
    raw = dict.fromkeys(spec.dimension_names, 6.0)
    out = postfilter(spec, raw, content_type="decline_loss", flags=["decline_loss"])
    assert out.caps_applied == ["decline_loss"]
    assert out.weighted_average == pytest.approx(4.0)


def test_helpers_match_postfilter():
    spec = resolve_spec("sustainability/v1")
    scores = dict(zip(spec.dimension_names, (8, 7, 6, 6, 5, 4, 6, 5), strict=True))
    assert weighted_average(spec, scores) == pytest.approx(6.45)
    assert assign_tier(spec, 7.4999) == "promising"
    assert assign_tier(spec, 0.0) == "not_relevant"


def test_one_weighted_average_for_rows_mappings_and_partial_records():
    import numpy as np

    from filters.postfilter import PostfilterError, weighted_averages

    spec = resolve_spec("sustainability")
    rows = np.array([[float(i) for i in range(len(spec.dimension_names))], [2.0] * len(spec.dimension_names)])
    vec = weighted_averages(rows, spec.weights)
    assert vec[1] == pytest.approx(2.0)
    assert weighted_average(spec, dict(zip(spec.dimension_names, rows[0], strict=True))) == pytest.approx(vec[0])
    assert weighted_averages(rows[0], spec.weights) == pytest.approx(vec[0])  # one row
    with pytest.raises(PostfilterError, match="2 dimensions but there are"):
        weighted_averages(rows[:, :2], spec.weights)
    # partial: the dimensions present, weights renormalised (the monitor's records); NaN when none is present
    assert weighted_average({"a": 0.75, "b": 0.25}, {"a": 4.0}, partial=True) == pytest.approx(4.0)
    assert weighted_average({"a": 0.75, "b": 0.25}, {"a": 4.0, "b": 8.0}) == pytest.approx(5.0)
    assert math.isnan(weighted_average({"a": 1.0}, {"z": 1.0}, partial=True))
    with pytest.raises(PostfilterError, match=r"lack dimensions \['b'\]"):
        weighted_average({"a": 0.75, "b": 0.25}, {"a": 4.0})
