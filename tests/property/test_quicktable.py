"""The C quick table answers as a dict does, whatever is stored, replaced, popped and
deleted, in whatever order (keys short and long, ASCII or not, sharing hashes' low bits
or not), and keeps each key's aux beside its value; the `DictTable` that replaces it
without the extension answers alike."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tppolicy.decide.index import DictTable

try:
    from tppolicy.decide._quicktable import QuickTable
except ImportError:
    QuickTable = None  # type: ignore[assignment,misc]

# Short keys collide in few slots; long ones (> 100 UTF-8 bytes) live on the heap.
KEYS = st.one_of(
    st.sampled_from(["", "a", "b", "a\x1fb", "o\x1fr\x1f1\x1frelease.yml"]),
    st.text(max_size=6),
    st.text(alphabet="xyé\x1f", min_size=100, max_size=140),
)  # st.text draws no lone surrogate (the table never holds one)


# The auxes a table is given: a few objects, two of them equal and not the same.
_SHAPE = ("pypi", True)
AUXES = [_SHAPE, _SHAPE[:1] + _SHAPE[1:], (), "x", None]


class SameAsADict(RuleBasedStateMachine):
    table_class: Any = QuickTable

    def __init__(self) -> None:
        super().__init__()
        self.table = self.table_class()
        self.model: dict[str, Any] = {}
        self.auxes: dict[str, Any] = {}  # key -> its aux (the object), None for none

    @rule(key=KEYS, value=st.integers())
    def store(self, key: str, value: int) -> None:
        self.table[key] = value
        self.model[key] = value
        self.auxes[key] = None

    @rule(key=KEYS, value=st.integers(), aux=st.sampled_from(range(len(AUXES))))
    def put(self, key: str, value: int, aux: int) -> None:
        self.table.put(key, value, AUXES[aux])
        self.model[key] = value
        self.auxes[key] = AUXES[aux]

    @rule(key=KEYS)
    def quick_reads(self, key: str) -> None:
        assert self.table.prefetch(key) is None
        aux = self.table.aux(key)
        assert aux is self.auxes.get(key)
        for other in AUXES:
            expected = self.model[key] if key in self.model and other is aux else None
            assert self.table.value(key, other) == expected

    @rule(key=KEYS)
    def pop(self, key: str) -> None:
        assert self.table.pop(key, "absent") == self.model.pop(key, "absent")
        self.auxes.pop(key, None)

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
            del self.auxes[key]

    @rule(key=KEYS)
    def read(self, key: str) -> None:
        assert (key in self.table) == (key in self.model)
        assert self.table.get(key, "absent") == self.model.get(key, "absent")
        if key in self.model:
            assert self.table[key] == self.model[key]

    @rule(first=st.integers(0, 10_000), count=st.integers(1, 300))
    def many(self, first: int, count: int) -> None:  # resizes, and deleted slots reused
        for n in range(first, first + count):
            self.table.put(f"n{n}", n, AUXES[n % len(AUXES)])
            self.model[f"n{n}"] = n
            self.auxes[f"n{n}"] = AUXES[n % len(AUXES)]
        for n in range(first, first + count, 2):
            assert self.table.pop(f"n{n}") == self.model.pop(f"n{n}")
            del self.auxes[f"n{n}"]

    @invariant()
    def same(self) -> None:
        assert len(self.table) == len(self.model)
        assert sorted(self.table.items()) == sorted(self.model.items())
        assert all(self.table.aux(key) is aux for key, aux in self.auxes.items())


class DictTableSameAsADict(SameAsADict):
    table_class = DictTable


TestSameAsADict = pytest.mark.slow(pytest.mark.skipif(QuickTable is None, reason="not built")(
    SameAsADict.TestCase))  # the default run's budget
TestSameAsADict.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestDictTableSameAsADict = pytest.mark.slow(DictTableSameAsADict.TestCase)
TestDictTableSameAsADict.settings = settings(max_examples=30, stateful_step_count=40,
                                             deadline=None)
