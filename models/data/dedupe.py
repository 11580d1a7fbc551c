"""Duplicate detection over label rows: id, normalised URL, content hash and near-duplicate titles."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.data.rows import content_key, normalize_url, title_words


@dataclass(frozen=True)
class TitleRule:
    """Titles of at least `min_words` words are near-duplicates when their word sets have Jaccard ≥ `jaccard`,
    or when one is a prefix of the other of at least `prefix_words` words (collectors cut titles at a hyphen)."""

    min_words: int = 4
    jaccard: float = 0.9
    prefix_words: int = 6


def _near(a: list[str], b: list[str], rule: TitleRule) -> bool:
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) >= rule.prefix_words and long_[: len(short)] == short:
        return True
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) >= rule.jaccard


def find_duplicates(rows: Sequence[Mapping[str, Any]], rule: TitleRule = TitleRule()) -> dict[int, tuple[str, int]]:
    """Index of each duplicate row → (kind, index of the row it duplicates). Earlier rows win, so order the
    rows by preference (e.g. newest label first) before calling."""
    dupes: dict[int, tuple[str, int]] = {}
    seen: dict[str, dict[str, int]] = {"id": {}, "url": {}, "content": {}}
    buckets: dict[tuple[str, ...], list[tuple[int, list[str]]]] = defaultdict(list)
    for i, row in enumerate(rows):
        keys = {"id": str(row.get("id") or ""), "url": normalize_url(str(row.get("url") or "")),
                "content": content_key(row)}
        hit = next(((kind, seen[kind][k]) for kind, k in keys.items() if k and k in seen[kind]), None)
        words = title_words(str(row.get("title") or ""))
        bucket = tuple(words[:3])
        if hit is None and len(words) >= rule.min_words:
            hit = next((("title", j) for j, other in buckets[bucket] if _near(words, other, rule)), None)
        if hit is not None:
            dupes[i] = hit
            continue
        for kind, k in keys.items():
            if k:
                seen[kind][k] = i
        if len(words) >= rule.min_words:
            buckets[bucket].append((i, words))
    return dupes
