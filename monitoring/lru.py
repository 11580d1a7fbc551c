"""A bounded least-recently-used mapping: the monitor's seen article ids and the spot-check's recent articles."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most `capacity` entries; adding one more forgets the least recently added or refreshed.

    >>> seen: LRU[str, None] = LRU(2)
    >>> [seen.put(k, None) for k in ("a", "b", "a", "c")]
    [True, True, False, True]
    >>> "b" in seen, "a" in seen, len(seen)
    (False, True, 2)
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"LRU capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def put(self, key: K, value: V) -> bool:
        """Store (or refresh) `key`; True when it was not held before."""
        new = key not in self._items
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return new

    def get(self, key: K) -> V | None:
        """The value of `key`, or None (no refresh: reading does not keep an entry alive)."""
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
