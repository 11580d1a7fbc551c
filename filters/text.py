"""Text cleaning applied to every article before rules and models see it."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

# Zero-width and invisible formatting characters (U+200B/C/D, FEFF, 2060, 180E, as the anchor's text cleaning) plus
# soft hyphen and word joiners that break regex word boundaries.
_ZERO_WIDTH = "\u200b\u200c\u200d\ufeff\u2060\u180e\u00ad\u2061\u2062\u2063\u2064"
# Bidirectional control marks: LRM/RLM/ALM, embeddings/overrides and isolates.
_BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE_RE = re.compile(f"[{_ZERO_WIDTH}{_BIDI}]")
# Lone surrogates (from bad JSON escapes) and non-characters.
_SURROGATE_RE = re.compile("[\ud800-\udfff\ufffe\uffff]")
# C0/C1 control characters except tab, newline and carriage return.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BLOCK_TAG_RE = re.compile(r"<\s*(?:br|/p|/div|/li|/h[1-6]|/tr|p|div|li|h[1-6]|tr)\b[^>]*>", re.IGNORECASE)
_SCRIPT_RE = re.compile(r"<\s*(script|style)\b[^>]*>.*?<\s*/\s*\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_TAG_RE = re.compile(r"</?[a-zA-Z][^<>]{0,2000}>")
_LEFTOVER_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});")
_SPACES_RE = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE_RE = re.compile(r" *\n *")
_MANY_NEWLINES_RE = re.compile(r"\n{3,}")


def _drop_invalid_unicode(text: str) -> str:
    """Remove lone surrogates (which cannot be encoded) and replacement-only garbage."""
    text = _SURROGATE_RE.sub("", text)
    # Round-trip guards against anything else the encoder refuses.
    return text.encode("utf-8", errors="ignore").decode("utf-8", errors="ignore")


def clean_text(text: Any) -> str:
    """Clean one string: HTML unescape + tag strip, invisible/bidi/control removal, invalid unicode, whitespace.

    Entities are unescaped twice because feeds often double-escape (`&amp;amp;`); tags become spaces or
    newlines so words on either side do not merge. The result is NFC-normalised and stripped.
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    text = _drop_invalid_unicode(text)
    text = html.unescape(html.unescape(text))
    text = _SCRIPT_RE.sub(" ", text)
    text = _COMMENT_RE.sub(" ", text)
    text = _BLOCK_TAG_RE.sub("\n", text)
    text = _TAG_RE.sub(" ", text)
    text = _LEFTOVER_ENTITY_RE.sub(" ", text)
    text = _INVISIBLE_RE.sub("", text)
    text = _CONTROL_RE.sub(" ", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = unicodedata.normalize("NFC", text)
    text = _SPACES_RE.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE_RE.sub("\n", text)
    text = _MANY_NEWLINES_RE.sub("\n\n", text)
    return text.strip()


def clean_article(article: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the article with `title` and `content`/`text` cleaned; other fields are left as they are."""
    out = dict(article)
    for key in ("title", "content", "text"):
        value = out.get(key)
        if isinstance(value, str):
            out[key] = clean_text(value)
    return out
