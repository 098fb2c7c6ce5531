"""The C quick table answers as a dict does, whatever is stored, replaced, popped and
deleted, in whatever order (keys short and long, ASCII or not, sharing hashes' low bits
or not)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

quicktable = pytest.importorskip("tppolicy.decide._quicktable")

# Short keys collide in few slots; long ones (> 108 UTF-8 bytes) live on the heap.
KEYS = st.one_of(
    st.sampled_from(["", "a", "b", "a\x1fb", "o\x1fr\x1f1\x1frelease.yml"]),
    st.text(max_size=6),
    st.text(alphabet="xyé\x1f", min_size=100, max_size=140),
)  # st.text draws no lone surrogate (the table never holds one)


class SameAsADict(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = quicktable.QuickTable()
        self.model: dict[str, Any] = {}

    @rule(key=KEYS, value=st.integers())
    def store(self, key: str, value: int) -> None:
        self.table[key] = value
        self.model[key] = value

    @rule(key=KEYS)
    def pop(self, key: str) -> None:
        assert self.table.pop(key, "absent") == self.model.pop(key, "absent")

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        present = key in self.model
        try:
            del self.table[key]
        except KeyError:
            assert not present
        else:
            assert present
            del self.model[key]

    @rule(key=KEYS)
    def read(self, key: str) -> None:
        assert (key in self.table) == (key in self.model)
        assert self.table.get(key, "absent") == self.model.get(key, "absent")
        if key in self.model:
            assert self.table[key] == self.model[key]

    @rule(first=st.integers(0, 10_000), count=st.integers(1, 300))
    def many(self, first: int, count: int) -> None:  # resizes, and deleted slots reused
        for n in range(first, first + count):
            self.table[f"n{n}"] = n
            self.model[f"n{n}"] = n
        for n in range(first, first + count, 2):
            assert self.table.pop(f"n{n}") == self.model.pop(f"n{n}")

    @invariant()
    def same(self) -> None:
        assert len(self.table) == len(self.model)
        assert sorted(self.table.items()) == sorted(self.model.items())


TestSameAsADict = pytest.mark.slow(SameAsADict.TestCase)  # the default run's budget
TestSameAsADict.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
