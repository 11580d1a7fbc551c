"""The one text recipe: article → model input text, with a head+tail window fitted to a tokenizer's limit.

Every call site (probe training, inference, screening, commerce head, student, evaluation) goes through
`model_text`, so the oracle-free models always see the same view of an article.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol


class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer the recipe needs."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...

    def num_special_tokens_to_add(self, pair: bool = ...) -> int: ...


@dataclass(frozen=True)
class Recipe:
    """How an article becomes text for a model; its fingerprint is stored with every trained artifact."""

    template: str = "{title}\n\n{content}"
    max_tokens: int = 256  # the model's token budget, special tokens included
    head_fraction: float = 0.5  # share of the window kept from the start; the rest comes from the end
    separator: str = " [...] "
    prefix: str = ""  # e.g. "passage: " for e5-family models

    def fingerprint(self) -> str:
        """Stable 16-hex digest of every field that changes what a model sees."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def render(article: Mapping[str, Any], template: str = "{title}\n\n{content}") -> str:
    """Fill the template from an article dict (`content` or `text`); title or content alone if one is empty."""
    title = str(article.get("title") or "").strip()
    content = str(article.get("content") or article.get("text") or "").strip()
    if not title or not content:
        return title or content
    return template.format(title=title, content=content)


def head_tail(text: str, tokenizer: Tokenizer, recipe: Recipe) -> str:
    """Keep the head and tail of `text` so that, re-tokenised with special tokens, it fits `max_tokens`.

    Unlike a plain head+tail cut, the budget subtracts the special tokens and the separator's own tokens, so the
    tail is never cut by the final truncation.
    """
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):  # the whole text is tokenised on purpose, to cut it: HF's "longer than max" is noise
        warned["sequence-length-is-longer-than-the-specified-maximum"] = True
    ids = tokenizer.encode(text, add_special_tokens=False)
    prefix_len = len(tokenizer.encode(recipe.prefix, add_special_tokens=False)) if recipe.prefix else 0
    budget = recipe.max_tokens - tokenizer.num_special_tokens_to_add(False) - prefix_len
    if len(ids) <= budget:
        return text
    budget -= len(tokenizer.encode(recipe.separator, add_special_tokens=False)) + 2  # decode/re-encode slack
    head = max(1, int(budget * recipe.head_fraction))
    tail = max(0, budget - head)
    head_text = tokenizer.decode(ids[:head], skip_special_tokens=True)
    tail_text = tokenizer.decode(ids[len(ids) - tail:], skip_special_tokens=True) if tail else ""
    return head_text + recipe.separator + tail_text


def model_text(article: Mapping[str, Any], recipe: Recipe, tokenizer: Tokenizer | None = None) -> str:
    """THE recipe: render the article, fit it with head+tail to the tokenizer's budget, add the prefix."""
    text = render(article, recipe.template)
    if tokenizer is not None:
        text = head_tail(text, tokenizer, recipe)
    return recipe.prefix + text
