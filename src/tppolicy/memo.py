"""Values computed from immutable objects (syntax tree nodes, rules), kept by identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ByIdentity(Generic[K, V]):
    """`compute(key)` kept by the key's identity: each entry holds its key, so that the id
    stays the key's own while the entry lives (an id is reused once its object is gone).
    Emptied when `limit` entries are held: a bounded memory, whatever the input. For pure
    functions of objects that never change (the frozen nodes of a policy's syntax tree):
    many publishers' bound rules share nodes, and each is asked of again and again."""

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int = 4096) -> None:
        self._entries: dict[int, tuple[K, V]] = {}
        self._limit = limit

    def get(self, key: K, compute: Callable[[K], V]) -> V:
        """The value kept for `key`, or `compute(key)`, kept."""
        entry = self._entries.get(id(key))
        if entry is not None and entry[0] is key:
            return entry[1]
        value = compute(key)
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[id(key)] = (key, value)
        return value
