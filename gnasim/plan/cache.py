"""The one bounded cache every plan cache uses (least recently used entries go first).

Plans and per-axis statistics are immutable, so a cache only trades memory for time. A lookup of
many keys returns the values it found or computed itself: it never reads back an entry that the
bound may just have evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar
from weakref import WeakSet

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_ALL: WeakSet = WeakSet()


class BoundedCache(Generic[K, V]):
    """A dict of at most ``maxsize`` entries, least recently used evicted first."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize: must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        _ALL.add(self)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: K) -> bool:
        return key in self._data

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return value

    def get_many(self, keys: Iterable[K], compute: Callable[[list[K]], list[V]]) -> list[V]:
        """Values of ``keys`` in order; the missing ones computed together by ``compute``."""
        keys = list(keys)
        found: dict[K, V] = {}
        missing: list[K] = []
        for k in dict.fromkeys(keys):
            v = self.get(k)
            if v is None:
                missing.append(k)
            else:
                found[k] = v
        if missing:
            for k, v in zip(missing, compute(missing), strict=True):
                found[k] = self.put(k, v)
        return [found[k] for k in keys]

    def clear(self) -> None:
        self._data.clear()


def clear_all() -> None:
    """Empty every bounded cache (for cold-start benchmarks and tests)."""
    for cache in list(_ALL):
        cache.clear()
