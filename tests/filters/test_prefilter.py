"""The prefilter engine: every step of the documented order, its reasons and its guards."""

from __future__ import annotations

import time

import pytest

from filters.prefilter import MAX_TITLE_CHARS, Decision, Prefilter, domain_matches, nested_quantifier, url_host_path
from filters.spec import PrefilterRules, SpecError, parse_spec


@pytest.fixture
def pf(rich_rules):
    return Prefilter(rich_rules, "tiny/v1")


def test_plain_article_passes(pf, article):
    assert pf.check(article()) == Decision(True, "passed")


def test_validation_reasons(pf, article, filler):
    assert pf.check(article(title="  ")) == Decision(False, "missing_title")
    assert pf.check({"content": filler * 3}) == Decision(False, "missing_title")
    assert pf.check(article(body="", pad=False)) == Decision(False, "empty_content")
    assert pf.check(article(body="<p>\u200b</p>", pad=False)) == Decision(False, "empty_content")


def test_text_field_is_an_alias_of_content(pf, article):
    a = article()
    a["text"] = a.pop("content")
    assert pf.check(a).passed


def test_source_type_exclusion_comes_before_length(pf, article):
    short = article(body="short", pad=False, source_type="Code_Repo")
    assert pf.check(short) == Decision(False, "excluded_source_type:code_repo")


def test_min_length_reason_names_the_minimum_and_can_be_ignored(rich_rules, article):
    short = article(body="Council news in brief.", pad=False)
    assert Prefilter(rich_rules).check(short) == Decision(False, "content_too_short_300chars")
    assert Prefilter(rich_rules).check(short).matched == str(len("Council news in brief."))
    assert Prefilter(rich_rules, ignore_length=True).check(short) == Decision(True, "passed")
    no_min = rich_rules.model_copy(update={"min_content_length": None})
    assert Prefilter(no_min).check(short).passed


def test_length_counts_cleaned_text(rich_rules, article):
    padded = article(body="<div>" + "&nbsp;" * 400 + "council</div>", pad=False)
    assert Prefilter(rich_rules).check(padded).reason == "content_too_short_300chars"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://techcrunch.com/2026/01/01/x", "excluded_domain_vc"),
        ("https://www.techcrunch.com/x", "excluded_domain_vc"),
        ("https://eu.techcrunch.com/x", "excluded_domain_vc"),
        ("https://medium.com/tag/programming/latest", "excluded_domain_vc"),
        ("https://www.espn.co.uk/football", "excluded_domain_sports"),
        ("https://nottechcrunch.com/x", "passed"),
        ("https://medium.com/@someone/gardens", "passed"),
        ("https://news.example.org/espn-story", "passed"),
    ],
)
def test_domain_exclusions_match_hosts_not_substrings(pf, article, url, reason):
    assert pf.check(article(url=url)).reason == reason


def test_domain_helpers():
    assert url_host_path("HTTPS://WWW.Example.COM/A/b?x=1") == ("example.com", "/a/b")
    assert url_host_path("") == ("", "")
    assert domain_matches("example.com", "sub.example.com", "/")
    assert not domain_matches("example.com", "badexample.com", "/")
    assert domain_matches("people", "people.com", "/")
    assert not domain_matches("people", "peoplesoft.com", "/")


def test_source_block_beats_allowlist_and_allowlist_passes_at_once(pf, article):
    assert pf.check(article(source="daily_gossip_uk")) == Decision(False, "blocked_source:daily_gossip")
    # allowed sources skip exclusions and required topics
    allowed = article(title="Reuters: IPO planned", body="No civic words here. " * 20, pad=False, source="reuters_biz")
    assert pf.check(allowed) == Decision(True, "allowed_source:reuters")


def test_exclusion_category_with_reason_prefix(pf, article):
    d = pf.check(article(title="Startup files for IPO"))
    assert d == Decision(False, "excluded_corporate_finance")
    assert d.matched == r"\bIPO\b"


def test_multilingual_word_boundaries(pf, article):
    assert pf.check(article(body="Der Börsengang ist geplant.")).reason == "excluded_corporate_finance"
    # no boundary hit inside a longer word
    assert pf.check(article(body="Die Börsengangster-Satire.")).passed


def test_exceptions_bypass_their_own_category_only(pf, article):
    assert pf.check(article(body="The cooperative held a funding round.")).passed
    assert pf.check(article(body="The cooperative members were sentenced to prison.")).reason == "excluded_crime"


def test_min_matches_and_unless_patterns(pf, article):
    assert pf.check(article(body="The plan aims to help.")).passed
    assert pf.check(article(body="The plan aims to be a game-changer.")).reason == "excluded_speculation"
    assert pf.check(article(body="The plan aims to be a game changer; it resulted in less waste.")).passed


def test_positive_threshold(pf, article):
    assert pf.check(article(body="He was sentenced to two years; reform debated.")).reason == "excluded_crime"
    assert pf.check(article(body="He was sentenced to two years; reform and rehabilitation debated.")).passed


def test_global_override_bypasses_every_category(pf, article):
    assert pf.check(article(title="Net-zero startup files for IPO")).passed
    assert pf.check(article(title="Net zero plan", body="Crime: he was sentenced to jail.")).passed


def test_scan_window_bounds_content(pf, article, filler):
    late = article(body=filler * 5 + " The firm plans an IPO.", pad=False)
    assert pf.check(late).passed  # beyond scan_chars=400


def test_required_topics(pf, article):
    off_topic = article(title="Weather", body="Sunny spells all week long across the region. " * 10, pad=False)
    assert pf.check(off_topic) == Decision(False, "not_civic_topic")
    dutch = article(title="Gemeenteraad besluit", body="Het besluit valt volgende week. " * 12, pad=False)
    assert pf.check(dutch).passed


def test_case_sensitive_inline_flag_works_because_text_is_not_lowercased(article):
    rules = PrefilterRules.model_validate(
        {"min_content_length": None, "exclusions": [{"category": "obit", "patterns": ["(?-i:\\bRIP\\b)"]}]}
    )
    pf = Prefilter(rules)
    assert pf.check(article(title="RIP a local legend")).reason == "obit"
    assert pf.check(article(title="Rip currents warning")).passed


def test_bad_regex_names_filter_field_and_pattern():
    rules = PrefilterRules.model_validate({"exclusions": [{"category": "deals", "patterns": ["ok", "(unclosed"]}]})
    with pytest.raises(SpecError) as err:
        Prefilter(rules, "tiny/v1")
    message = str(err.value)
    assert "filter tiny/v1 prefilter" in message
    assert "exclusions[0] (deals).patterns[1]" in message
    assert "'(unclosed'" in message


def test_bad_keyword_regex_in_required_topics():
    rules = PrefilterRules.model_validate({"required_topics": [{"reason": "r", "keywords": ["[a-"]}]})
    with pytest.raises(SpecError, match=r"required_topics\[0\] \(r\)\.keywords\[0\]"):
        Prefilter(rules, "x/v1")


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(?:\w+\s?)*deal", r"x(?:y|(z*))+"])
def test_nested_unbounded_repeats_are_refused(pattern):
    rules = PrefilterRules.model_validate({"exclusions": [{"category": "bad", "patterns": [pattern]}]})
    with pytest.raises(SpecError, match="nests an unbounded repeat"):
        Prefilter(rules, "x/v1")


@pytest.mark.parametrize("pattern", [r"(?:\w+\s+){0,4}deals", r"\btop \d+\b", r"a+b*c?"])
def test_ordinary_repeats_are_allowed(pattern):
    assert nested_quantifier(pattern) is False


def test_regexes_see_bounded_text(article):
    rules = PrefilterRules.model_validate(
        {"min_content_length": None, "scan_chars": 100, "exclusions": [{"category": "slow", "patterns": ["a*b"]}]}
    )
    pf = Prefilter(rules)
    assert len(pf.scan_text("t" * 10_000, "c" * 10_000)) == MAX_TITLE_CHARS + 1 + 100
    huge = article(title="a" * 100_000, body="a" * 100_000, pad=False)
    start = time.perf_counter()
    assert pf.check(huge).passed
    assert time.perf_counter() - start < 2.0


def test_for_spec_uses_the_spec_rules_and_key(tiny_spec_data, tmp_path, article):
    data = {**tiny_spec_data, "prefilter": {"exclusions": [{"category": "deal", "patterns": ["[bad"]}]}}
    spec = parse_spec(data, tmp_path / "tiny" / "v1" / "filter.yaml")
    with pytest.raises(SpecError, match="filter tiny/v1 prefilter"):
        Prefilter.for_spec(spec)
    ok = parse_spec({**tiny_spec_data, "prefilter": {"min_content_length": 10}}, tmp_path / "f.yaml")
    assert Prefilter.for_spec(ok).check(article()).passed
    assert Prefilter.for_spec(ok)(article(body="x", pad=False)).reason == "content_too_short_10chars"


def test_short_content_is_flagged_not_blocked_by_default(article):
    rules = PrefilterRules()  # defaults: no serving length block, flag under 300 characters
    assert rules.min_content_length is None and rules.short_content_chars == 300
    short = article(body="Solar farm opens in Drenthe.", pad=False)
    pf = Prefilter(rules)
    assert pf.check(short) == Decision(True, "passed")
    assert pf.flags(short) == ["short_content"]
    assert pf.flags(article(body="x" * 300, pad=False)) == []
    assert Prefilter(rules.model_copy(update={"short_content_chars": None})).flags(short) == []


def test_short_content_flag_counts_cleaned_text(article):
    pf = Prefilter(PrefilterRules(short_content_chars=20))
    assert pf.flags(article(body="<p>" + "&nbsp;" * 50 + "tiny</p>", pad=False)) == ["short_content"]
    assert pf.flags({"title": "t", "text": "y" * 25}) == []


def _topic_rules(**category: object) -> PrefilterRules:
    return PrefilterRules.model_validate({
        "exclusions": [{"category": "ml", "patterns": [r"\bLLMs?\b"], **category}],
        "required_topics": [{"reason": "off_topic", "keywords": [r"\bsolar\b"],
                             "secondary_keywords": [r"\befficien\w*", r"\bcosts?\b", r"\bgrid\b"],
                             "secondary_min_matches": 2}],
    })


def test_title_scoped_category_ignores_a_passing_mention_in_the_body():
    body = "A solar cooperative cut its costs; an LLM summarised the minutes."
    text_scope, title_scope = Prefilter(_topic_rules()), Prefilter(_topic_rules(scope="title"))
    assert text_scope.check({"title": "Village solar plant", "content": body}) == Decision(False, "ml")
    assert title_scope.check({"title": "Village solar plant", "content": body}) == Decision(True, "passed")
    assert title_scope.check({"title": "LLM serving at scale", "content": body}) == Decision(False, "ml")


def test_title_scoped_category_exceptions_still_read_the_body():
    pf = Prefilter(_topic_rules(scope="title", exceptions=[r"\bgrid\b"]))
    assert pf.check({"title": "An LLM for operators", "content": "It balances the grid with solar."}).passed


def test_secondary_keywords_count_only_together():
    pf = Prefilter(_topic_rules())
    assert pf.check({"title": "Plant", "content": "A new solar array."}).passed
    assert pf.check({"title": "Plant", "content": "Efficiency rose while costs fell."}).passed  # two signals
    assert pf.check({"title": "Plant", "content": "Efficiency rose sharply."}) == Decision(False, "off_topic")
    assert pf.check({"title": "Plant", "content": "Efficient, more efficient."}) == Decision(False, "off_topic")
