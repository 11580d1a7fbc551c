"""Replay-safe dedupe by content hash: the one dedupe decision that the stream and batch scoring share."""

from __future__ import annotations

from collections import OrderedDict


class Deduper:
    """Bounded LRU of content hash -> the id of the first article that had this content.

    An article is a duplicate only when ANOTHER id already had its content: the same article read again (a replay
    after a crash or rebalance, or a resent message) is processed again as itself, never blocked as its own duplicate.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError(f"dedupe capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._first: OrderedDict[str, str] = OrderedDict()

    def duplicate_of(self, content_hash: str, article_id: str) -> str | None:
        """The id of the earlier article with this content when it is another article, else None (and remember it).

        Either way the hash becomes the most recently used entry."""
        first = self._first.get(content_hash)
        if first is not None:
            self._first.move_to_end(content_hash)
            return first if first != article_id else None
        self._first[content_hash] = article_id
        if len(self._first) > self.capacity:
            self._first.popitem(last=False)
        return None

    def __len__(self) -> int:
        return len(self._first)
