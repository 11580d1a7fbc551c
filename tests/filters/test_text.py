"""Text cleaning: HTML, invisible characters, invalid unicode and whitespace."""

from __future__ import annotations

from filters.text import clean_article, clean_text


def test_html_is_unescaped_and_tags_become_spaces():
    assert clean_text("<p>Solar&nbsp;farm</p><p>opens &amp; runs</p>") == "Solar farm\n\nopens & runs"
    assert clean_text("a<b>bold</b>word") == "a bold word"
    assert clean_text("AT&amp;amp;T") == "AT&T"  # double-escaped feeds


def test_script_style_and_comments_are_dropped():
    assert clean_text("x<script>var a = 1 < 2;</script>y<!-- hidden --><style>p{}</style>z") == "x y z"


def test_zero_width_and_bidi_marks_are_removed():
    assert clean_text("sol\u200bar pa\u200dnel\ufeff \u202eok\u202c \u2066x\u2069") == "solar panel ok x"


def test_invalid_unicode_and_controls():
    assert clean_text("bad\ud800 surrogate\x00 and\x07 bell") == "bad surrogate and bell"


def test_whitespace_is_collapsed_but_paragraphs_survive():
    assert clean_text("  one   two\t\tthree \n\n\n\n four\r\nfive  ") == "one two three\n\nfour\nfive"


def test_non_strings_and_none():
    assert clean_text(None) == ""
    assert clean_text(42) == "42"


def test_clean_text_is_stable_on_clean_text():
    once = clean_text("<div>Caf\u0065\u0301 &lt;3 &amp; more</div>")
    assert once == "Café <3 & more"
    assert clean_text(once) == once


def test_clean_article_cleans_title_and_body_only():
    original = {"id": "x", "title": " <b>Hi</b> ", "text": "a&amp;b", "url": "https://e.org/?a=1&amp;b=2"}
    cleaned = clean_article(original)
    assert cleaned == {"id": "x", "title": "Hi", "text": "a&b", "url": "https://e.org/?a=1&amp;b=2"}
    assert original["title"] == " <b>Hi</b> "  # not mutated
