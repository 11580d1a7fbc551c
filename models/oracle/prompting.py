"""The one prompt template: load a filter's prompt.md, hash it, and insert an article at `{{ARTICLE}}`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filters.spec import FilterSpec, SpecError
from filters.text import clean_article

PLACEHOLDER = "{{ARTICLE}}"
COMPRESSION_MARK = "\n\n[...content compressed...]\n\n"


def prompt_hash(text: str) -> str:
    """First 12 hex of the SHA-256 of the prompt file's text (recorded with every label as provenance)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Prompt:
    """A validated prompt template with its provenance hash."""

    template: str
    hash: str
    path: Path | None = None

    @classmethod
    def from_text(cls, text: str, path: Path | None = None) -> Prompt:
        where = str(path) if path else "prompt"
        count = text.count(PLACEHOLDER)
        if count != 1:
            raise SpecError(
                f"{where}: the prompt must contain the placeholder {PLACEHOLDER} exactly once (found {count}); "
                "put it where the article goes"
            )
        return cls(template=text, hash=prompt_hash(text), path=path)

    @classmethod
    def for_spec(cls, spec: FilterSpec) -> Prompt:
        """The prompt of a filter (`oracle.prompt`, relative to filter.yaml)."""
        path = spec.prompt_path
        if not path.is_file():
            raise SpecError(
                f"{path}: filter {spec.key} has no oracle prompt; write {spec.oracle.prompt} next to filter.yaml "
                f"with the placeholder {PLACEHOLDER}"
            )
        return cls.from_text(path.read_text(encoding="utf-8"), path)

    def render(self, article: Mapping[str, Any], max_words: int | None = 800) -> str:
        """The prompt with the article block inserted (the single insertion point for every provider)."""
        return self.template.replace(PLACEHOLDER, article_block(article, max_words))


def article_text(article: Mapping[str, Any]) -> str:
    return str(article.get("content") or article.get("text") or "").strip()


def compress_words(text: str, max_words: int | None, head_share: float = 0.7) -> str:
    """Keep the first 70 % and last 30 % of `max_words` words when the text is longer (lead and conclusion)."""
    words = text.split()
    if not max_words or len(words) <= max_words:
        return text
    head = int(max_words * head_share)
    tail = max_words - head
    return " ".join(words[:head]) + COMPRESSION_MARK + " ".join(words[-tail:])


def article_block(article: Mapping[str, Any], max_words: int | None = 800) -> str:
    """`Title: …\\nSource: …\\nPublished: …\\n\\n{text}` from a cleaned article; empty header lines are left out."""
    lines = [f"Title: {str(article.get('title') or '').strip()}"]
    if article.get("source"):
        lines.append(f"Source: {article['source']}")
    if article.get("published"):
        lines.append(f"Published: {article['published']}")
    return "\n".join(lines) + "\n\n" + compress_words(article_text(article), max_words)


def clean(article: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline's text cleaning, so the oracle reads what the models read."""
    return clean_article(dict(article))


def content_hash(article: Mapping[str, Any]) -> str:
    """SHA-256 of the cleaned title and text: the article part of the cache key."""
    title = str(article.get("title") or "").strip()
    return hashlib.sha256(f"{title}\n\n{article_text(article)}".encode()).hexdigest()
