"""Every shipped filter spec loads, matches its directory, has a usable prompt, and keeps the anchor's code values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from filters.prefilter import Prefilter
from filters.spec import FILTERS_ROOT, load_spec, resolve_spec, spec_paths

SHIPPED = spec_paths()
IDS = [p.relative_to(FILTERS_ROOT).parent.as_posix() for p in SHIPPED]
EXPECTED = {
    "ai_engineering_practice/v2", "belonging/v1", "cultural_discovery/v5", "foresight/v1", "future_of_education/v1",
    "investment_risk/v6", "nature_recovery/v2", "seece/v1", "sustainability/v1", "sustainability_technology/v3",
    "thriving/v1", "uplifting/v1", "uplifting/v6", "uplifting/v7",
}


def test_every_filter_the_anchor_documents_is_shipped():
    assert set(IDS) == EXPECTED


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_spec_loads_and_matches_its_directory(path: Path):
    spec = load_spec(path)
    assert spec.name == path.parent.parent.name
    assert f"v{spec.version}" == path.parent.name
    assert sum(spec.weights) == pytest.approx(1.0, abs=1e-6)
    assert spec.hybrid.threshold < spec.protected_threshold, "the probe must route the protected tier to Stage 2"
    for name, rule in spec.content_types.items():
        assert rule.max_score is None or rule.max_score <= 10, name


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_drafts_say_what_is_missing_and_others_do_not(path: Path):
    spec = load_spec(path)
    if spec.status == "draft":
        assert spec.missing, f"{spec.key} is a draft: list what is missing"
    else:
        assert not spec.missing, f"{spec.key} lists missing parts but is {spec.status}: make it a draft"


NON_DRAFT = [p for p in SHIPPED if load_spec(p).status != "draft"]
NON_DRAFT_IDS = [p.relative_to(FILTERS_ROOT).parent.as_posix() for p in NON_DRAFT]


@pytest.mark.parametrize("path", NON_DRAFT, ids=NON_DRAFT_IDS)
def test_prompt_has_one_article_slot_and_names_everything(path: Path):
    spec = load_spec(path)
    assert spec.prompt_path.is_file(), f"{spec.key} needs {spec.prompt_path}"
    text = spec.prompt_path.read_text(encoding="utf-8")
    assert text.count("{{ARTICLE}}") == 1
    for dim in spec.dimension_names:
        assert f'"{dim}": {{"score": 0.0' in text, f"{dim} missing from the JSON schema of {spec.key}"
        assert f"### {dim} " in text, f"{dim} has no scoring section in {spec.key}"
    for ctype in spec.content_types:
        assert f"`{ctype}`" in text, f"content_type {ctype} not described in {spec.key}"
    assert "EXACT QUOTE" in text and "No evidence in article" in text
    assert not re.search(r'"(tier|overall_score|weighted_average)"\s*:', text), "no tier/overall fields in the output"
    assert 80 <= len(text.splitlines()) <= 220


@pytest.mark.parametrize("path", NON_DRAFT, ids=NON_DRAFT_IDS)
def test_prompt_examples_are_valid_outputs(path: Path):
    """Worked examples parse as JSON, carry every dimension with a half-point score and a content_type of the spec."""
    import json

    spec = load_spec(path)
    text = spec.prompt_path.read_text(encoding="utf-8")
    examples = [json.loads(line) for line in text.splitlines() if line.startswith('{"content_type"')]
    assert len(examples) >= 2
    for example in examples:
        assert example["content_type"] in spec.content_types
        for flag in example.get("content_flags", []):
            assert flag in spec.content_types
        for dim in spec.dimension_names:
            score = example[dim]["score"]
            assert 0.0 <= score <= 10.0 and score * 2 == int(score * 2), (dim, score)
            assert example[dim]["evidence"]
            if example[dim]["evidence"] == "No evidence in article":
                assert score <= 2.0, f"{dim}: a score above 2 needs a quote (the prompt's own evidence rule)"


# -- constant drift (§20.1): the anchor's code values, pinned -------------------------------------------------


def gate(key: str) -> tuple[str, float, float]:
    (g,) = resolve_spec(key).gatekeepers
    return g.dimension, g.min, g.cap


def tiers(key: str) -> list[tuple[str, float]]:
    return [(t.name, t.threshold) for t in resolve_spec(key).tiers]


GATES = {
    "uplifting/v6": ("evidence_level", 3.0, 3.0),
    "uplifting/v7": ("evidence_level", 3.0, 3.0),
    "cultural_discovery/v5": ("evidence_quality", 3.0, 4.0),  # code cap 4.0, not the prompt's 3.0
    "sustainability_technology/v3": ("technology_readiness_level", 3.0, 2.2),
    "investment_risk/v6": ("evidence_quality", 4.0, 2.9),
    "belonging/v1": ("community_fabric", 3.0, 3.42),
    "nature_recovery/v2": ("recovery_evidence", 3.0, 3.5),
    "foresight/v1": ("evidence_foundation", 3.0, 3.0),
    "thriving/v1": ("evidence_level", 3.0, 3.0),
    "ai_engineering_practice/v2": ("methodological_rigor", 3.0, 3.0),
    "sustainability/v1": ("technical_credibility", 5.0, 4.0),
}


@pytest.mark.parametrize(("key", "expected"), GATES.items(), ids=list(GATES))
def test_gatekeepers_match_the_anchor_code(key, expected):
    assert gate(key) == expected


GEMMA_TIERS = [("high", 7.0), ("medium", 4.0), ("low", 0.0)]
TIERS = {
    **{k: GEMMA_TIERS for k in GATES if k not in {"sustainability/v1", "ai_engineering_practice/v2"}},
    "sustainability/v1": [("breakthrough", 7.5), ("promising", 5.0), ("monitoring", 3.0), ("not_relevant", 0.0)],
    "ai_engineering_practice/v2": [("high", 6.0), ("medium", 3.5), ("low", 0.0)],
}


@pytest.mark.parametrize(("key", "expected"), TIERS.items(), ids=list(TIERS))
def test_tiers_match_the_anchor_code(key, expected):
    # sustainability_technology v3 and investment_risk v6 configs had 4 tiers; the code has 3 (§19).
    assert tiers(key) == expected


WEIGHTS = {
    "uplifting/v6": [0.25, 0.15, 0.10, 0.20, 0.20, 0.10],
    "uplifting/v7": [0.30, 0.20, 0.15, 0.10, 0.10, 0.15],
    "cultural_discovery/v5": [0.25, 0.20, 0.25, 0.15, 0.15],
    "sustainability_technology/v3": [0.15, 0.15, 0.20, 0.30, 0.10, 0.10],
    "investment_risk/v6": [0.20, 0.25, 0.15, 0.15, 0.15, 0.10],
    "belonging/v1": [0.25, 0.25, 0.10, 0.15, 0.15, 0.10],
    "nature_recovery/v2": [0.25, 0.20, 0.20, 0.15, 0.10, 0.10],
    "foresight/v1": [0.25, 0.20, 0.20, 0.15, 0.10, 0.10],
    "thriving/v1": [0.40, 0.25, 0.10, 0.10, 0.15],
    "ai_engineering_practice/v2": [0.25, 0.20, 0.20, 0.20, 0.15],
    "sustainability/v1": [0.25, 0.20, 0.15, 0.15, 0.10, 0.05, 0.05, 0.05],
    "uplifting/v1": [0.125] * 8,
}


@pytest.mark.parametrize(("key", "expected"), WEIGHTS.items(), ids=list(WEIGHTS))
def test_weights_match_the_anchor(key, expected):
    assert resolve_spec(key).weights == pytest.approx(expected)


PROBE_THRESHOLDS = {
    "uplifting/v6": 2.25, "uplifting/v7": 1.0, "cultural_discovery/v5": 1.25, "sustainability_technology/v3": 1.25,
    "investment_risk/v6": 1.5, "belonging/v1": 1.0, "nature_recovery/v2": 0.75, "foresight/v1": 2.25,
    "thriving/v1": 2.25,
}


@pytest.mark.parametrize(("key", "expected"), PROBE_THRESHOLDS.items(), ids=list(PROBE_THRESHOLDS))
def test_probe_thresholds_are_the_code_defaults(key, expected):
    assert resolve_spec(key).hybrid.threshold == expected


def test_content_type_rules_pinned():
    sust = resolve_spec("sustainability/v1").content_types
    assert sust["greenwashing_risk"].max_dimensions == {"technical_credibility": 3.0}
    assert sust["greenwashing_risk"].max_overall == 4.0
    assert sust["vaporware"].max_overall == 5.0
    assert sust["fossil_transition"].max_dimensions == {"climate_impact_potential": 4.0}
    assert sust["fossil_transition"].max_overall == 4.0
    cd = resolve_spec("cultural_discovery/v5").content_types
    assert {k: v.max_score for k, v in cd.items() if v.max_score is not None} == {
        "political_conflict": 3.0, "tourism_fluff": 2.0, "celebrity_art": 2.0, "appropriation_debate": 3.0,
    }
    assert {k: v.penalty for k, v in cd.items() if v.penalty} == {
        "historical_harm_reckoning": 2.5, "commemoration_memorial": 2.5, "perpetrator_biography": 3.5,
        "decline_loss": 2.0, "launch_announcement": 2.5,
    }
    ir = resolve_spec("investment_risk/v6").content_types
    assert ir["stock_picking"].max_dimensions == {"risk_domain_type": 2.0, "impact_breadth": 2.0}
    assert resolve_spec("belonging/v1").content_types["self_help"].max_score == 3.0
    assert resolve_spec("nature_recovery/v2").content_types["climate_tech"].max_score == 3.0


def test_preprocessing_windows():
    assert resolve_spec("investment_risk/v6").preprocessing.tail_tokens == 0
    assert resolve_spec("sustainability_technology/v3").preprocessing.tail_tokens == 0  # trained without head+tail
    for key in ("uplifting/v7", "cultural_discovery/v5", "belonging/v1", "nature_recovery/v2"):
        pre = resolve_spec(key).preprocessing
        assert (pre.head_tokens, pre.tail_tokens) == (256, 256)


def test_length_rule_is_the_oracles_not_servings():
    """Every shipped spec serves short articles (flagged) and keeps the 300-character minimum for labelling."""
    from filters.spec import load_spec, spec_paths

    for spec in map(load_spec, spec_paths()):
        assert spec.prefilter.min_content_length is None, spec.key
        assert spec.prefilter.short_content_chars == 300, spec.key
        assert spec.oracle.min_content_length == 300, spec.key


# -- the prefilter sections compile and behave on small self-written articles -----------------------------------

BODY = " It was reported on Tuesday by local officials, who gave further details to reporters at a briefing."


def article(title: str, content: str, **extra) -> dict:
    return {"title": title, "content": (content + BODY * 4).strip(), "url": "https://news.example.org/a", **extra}


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_prefilter_compiles_and_blocks_excluded_source_types(path: Path):
    spec = load_spec(path)
    pf = Prefilter.for_spec(spec)
    blocked = spec.prefilter.excluded_source_types[0]
    decision = pf.check(article("A story", "Something happened.", source_type=blocked))
    assert decision.reason == f"excluded_source_type:{blocked}"


PREFILTER_CASES = [
    ("sustainability_technology/v3", article("Solar farm opens", "A new solar power plant with battery storage."),
     "passed"),
    ("sustainability_technology/v3", article("Football final", "The team won the cup after extra time."),
     "not_sustainability_topic"),
    ("sustainability_technology/v3", article("Black Friday", "Get 40% off laptops with this promo code today."),
     "excluded_product_deals"),
    ("sustainability_technology/v3", article("Black Friday", "Get 40% off solar panels with this promo code."),
     "passed"),
    ("nature_recovery/v2", article("Otters return", "Otters are breeding again along the restored river."), "passed"),
    ("nature_recovery/v2", article("Coral catastrophe", "The coral reef is dying, a devastating loss for species."),
     "disaster_no_recovery"),
    ("nature_recovery/v2", article("Budget vote", "The council approved the annual budget."), "not_nature_topic"),
    ("uplifting/v7", article("Startup news", "The company raised $20 million in a funding round."),
     "corporate_finance"),
    ("uplifting/v7", article("Co-op grows", "The worker-owned cooperative raised $2 million in a funding round."),
     "passed"),
    ("uplifting/v7", article("Violence report", "Domestic violence services expanded with new shelters."), "passed"),
    ("cultural_discovery/v5", article("Top 10 hidden gems", "Book now for the best hidden gems of the coast."),
     "tourism_fluff"),
    ("investment_risk/v6", article("Rates", "The Federal Reserve signalled higher interest rates.", source="blog_x"),
     "investment_keyword:federal reserve"),
    # an investment keyword passes before the blocked sources are checked (anchor order)
    ("investment_risk/v6", article("Telescope", "The Fed cut rates; inflation hit NASA.", source="nasa_news"),
     "investment_keyword:the fed"),
    ("investment_risk/v6", article("Hype", "This coin is going to the moon, don't miss it.", source="blog_x"),
     "fomo_speculation"),
    ("investment_risk/v6", article("Telescope", "A new telescope image.", source="nasa_news"), "blocked_source:nasa"),
    ("investment_risk/v6", article("Markets", "Shares moved.", source="reuters_business"), "allowed_source:reuters"),
    ("belonging/v1", article("RIP Jan", "The village said goodbye at the funeral."), "obituary_funeral"),
    ("belonging/v1", article("Supper club", "Neighbours gather every week for a shared meal."), "passed"),
    ("ai_engineering_practice/v2", article("Copilot at work", "Our embedded firmware engineers use Copilot."),
     "passed"),
    ("ai_engineering_practice/v2", article("Groceries", "Prices of vegetables rose again."), "no_ai_tool"),
]


@pytest.mark.parametrize(("key", "doc", "reason"), PREFILTER_CASES)
def test_prefilter_decisions_on_small_articles(key, doc, reason):
    assert Prefilter.for_spec(resolve_spec(key)).check(doc).reason == reason


def test_short_text_is_served_and_flagged():
    short = {"title": "Solar", "content": "A solar plant opened.", "url": "https://x.org"}
    for key in ("sustainability/v1", "cultural_discovery/v5"):
        pf = Prefilter.for_spec(resolve_spec(key))
        assert pf.check(short).passed
        assert pf.flags(short) == ["short_content"]


@pytest.mark.parametrize("path", NON_DRAFT, ids=NON_DRAFT_IDS)
def test_every_dimension_has_the_five_scale_bands(path: Path):
    for dim in load_spec(path).dimensions:
        assert list(dim.scale) == ["0-2", "3-4", "5-6", "7-8", "9-10"], dim.name
        assert dim.description and all(dim.scale.values()), dim.name


# snake_case names only: plain words such as `justice` or `progress` (uplifting v1) are ordinary English.
ALL_DIMENSIONS = {d for p in SHIPPED for d in load_spec(p).dimension_names if "_" in d}


@pytest.mark.parametrize("path", NON_DRAFT, ids=NON_DRAFT_IDS)
def test_prompt_mentions_no_dimension_of_another_filter(path: Path):
    spec = load_spec(path)
    text = spec.prompt_path.read_text(encoding="utf-8")
    foreign = {d for d in ALL_DIMENSIONS - set(spec.dimension_names) if re.search(rf"\b{d}\b", text)}
    assert not foreign, f"{spec.key} prompt names dimensions it does not score: {sorted(foreign)}"


@pytest.mark.parametrize(("title", "body", "reason"), [
    ("Offshore wind farm starts feeding the grid", "The 400 MW project supplies homes.", "passed"),
    ("New LLM tops a reasoning benchmark", "The model answers questions better than before.",
     "excluded_ai_ml_infrastructure"),
    ("An LLM helps grid operators", "Operators balance energy demand with forecasts.", "passed"),
    ("Compiler speeds up kernels", "Efficiency and latency improve on GPUs in the data centre.", "passed"),
    ("Compiler speeds up kernels", "Efficiency improves in the new release.", "not_sustainability_topic"),
    ("Black Friday: 30% off air fryers", "Deals on kitchen gadgets all week.", "excluded_product_deals"),
    ("Village choir wins a prize", "Black Friday crowds heard the singers; the hall runs on solar.", "passed"),
    ("Les bornes de recharge arrivent", "Le réseau installe des bornes pour voitures.", "passed"),
])
def test_sustainability_technology_prefilter(title, body, reason):
    """Exclusions read the title (what the article is about); topic keywords read title + body, where two weaker
    technology-performance signals count as one sustainability keyword (tuned on the shared frozen half)."""
    pf = Prefilter.for_spec(resolve_spec("sustainability_technology/v3"))
    assert pf.check({"title": title, "content": body, "url": "https://example.org/a"}).reason == reason


def test_title_only_rules_of_the_anchor():
    """investment_risk's clickbait check and belonging's uppercase RIP rule read the title only (anchor)."""
    ir = Prefilter.for_spec(resolve_spec("investment_risk/v6"))
    body = "A long post about a small company and its shares; readers called the rally shocking. " * 4
    assert ir.check({"title": "Shocking rally: this one stock", "content": body}).reason == "clickbait"
    assert ir.check({"title": "A small company and its shares", "content": body}).passed
    bel = Prefilter.for_spec(resolve_spec("belonging/v1"))
    text = "Neighbours gathered in the village hall to share stories and food with families. " * 4
    assert bel.check({"title": "RIP Jan, the baker", "content": text}).reason.endswith("obituary_funeral")
    assert bel.check({"title": "Village bakery reopens", "content": text + " RIP to the old oven."}).passed
