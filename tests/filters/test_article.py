"""The article model: aliases, passthrough metadata and one clear error per invalid field."""

from __future__ import annotations

import pytest

from filters.article import Article, ArticleError


def test_text_is_an_alias_of_content_and_unknown_fields_pass_through():
    a = Article.parse({"id": 7, "title": " Solar farm ", "text": "Body", "feed": "rss", "published_date": "2026-01-02"})
    assert (a.id, a.title, a.content) == ("7", "Solar farm", "Body")
    assert a.metadata == {"feed": "rss"}
    assert a.published is not None and a.published.year == 2026
    assert a.as_dict()["published"].startswith("2026-01-02")


def test_null_optional_fields_mean_missing():
    a = Article.parse({"id": "a", "title": "t", "content": None, "url": None, "language": None, "source": None})
    assert (a.content, a.url, a.language, a.source) == ("", "", "", "")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"title": "t"}, "invalid article '<no id>': id: Field required"),
        ({"id": "a", "title": ""}, "invalid article 'a': title: String should have at least 1 character"),
        ({"id": "a", "title": "t", "url": "ftp://x"}, "url must start with http:// or https://"),
        ({"id": "a", "title": "t", "published": "yesterday"}, "invalid article 'a': published:"),
        ([1, 2], "article must be a JSON object, got list"),
    ],
)
def test_each_invalid_field_is_named(payload, message):
    with pytest.raises(ArticleError) as err:
        Article.parse(payload)
    assert message in str(err.value)
