"""Fixtures for the filters tests: small hand-written articles and prefilter rule sets."""

from __future__ import annotations

import pytest

from filters.spec import PrefilterRules

FILLER = (
    "The municipal council published the annual report on Tuesday, describing the work of the past year "
    "in plain terms and listing the budget lines that changed. Residents can read it at the town hall. "
)


def make_article(title: str = "Town hall publishes annual report", body: str = "", pad: bool = True, **extra) -> dict:
    """An Article.as_dict()-style mapping; with `pad` the body gets neutral filler to pass length checks."""
    return {
        "id": extra.pop("id", "a1"),
        "title": title,
        "content": (body + " " + FILLER * 3).strip() if pad else body,
        "url": extra.pop("url", "https://news.example.org/2026/report"),
        "source": extra.pop("source", "example_news"),
        "source_type": extra.pop("source_type", "news"),
        **extra,
    }


@pytest.fixture
def article():
    return make_article


@pytest.fixture
def rich_rules() -> PrefilterRules:
    """Rules exercising every step of the prefilter engine."""
    return PrefilterRules.model_validate(
        {
            "min_content_length": 300,
            "scan_chars": 400,
            "reason_prefix": "excluded_",
            "excluded_source_types": ["code_repo"],
            "domain_exclusions": {"vc": ["techcrunch.com", "medium.com/tag/programming"], "sports": ["espn"]},
            "source_exclusions": {"tabloids": ["daily_gossip"]},
            "source_allowlist": ["reuters"],
            "override_keywords": [r"\bnet[ -]zero\b"],
            "exclusions": [
                {
                    "category": "corporate_finance",
                    "patterns": [r"\bIPO\b", r"\bfunding round\b", r"\bbörsengang\b"],
                    "exceptions": [r"\bcooperative\b"],
                },
                {
                    "category": "speculation",
                    "patterns": [r"\bcould transform\b", r"\bgame[- ]changer\b", r"\baims to\b"],
                    "min_matches": 2,
                    "unless_patterns": [r"\bresulted in\b"],
                },
                {
                    "category": "crime",
                    "patterns": [r"\bsentenced to\b"],
                    "positive_patterns": [r"\breform\b", r"\brehabilitation\b"],
                    "positive_threshold": 2,
                },
            ],
            "required_topics": [{"reason": "not_civic_topic", "keywords": [r"\bcouncil\b", r"\bgemeente\w*"]}],
        }
    )


@pytest.fixture
def filler() -> str:
    """One neutral paragraph (about 200 characters) mentioning the council."""
    return FILLER
