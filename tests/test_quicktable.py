"""The index's C quick table (`tppolicy/decide/_quicktable.c`): built by the install,
the same answers as a dict (the property suite compares them at length), refusing what
it cannot hold, and never read past its end."""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from typing import Any

import pytest

from tppolicy.decide import index as index_module

try:
    from tppolicy.decide._quicktable import QuickTable
except ImportError:  # not built: every test but the first is skipped, the first fails
    QuickTable = None  # type: ignore[assignment,misc]

PURE = not index_module.EXTENSION_WANTED  # TPPOLICY_NO_EXTENSION=1, or no GIL
pytestmark = pytest.mark.skipif(QuickTable is None and PURE, reason="TPPOLICY_NO_EXTENSION=1")


def test_the_install_built_the_extension_and_the_index_uses_it() -> None:
    """`pip install -e .` (`.ci/run`) compiles it (hatch_build.py); the index takes it
    unless TPPOLICY_NO_EXTENSION=1 says otherwise (or the interpreter has no GIL)."""
    if PURE:
        assert index_module.QUICK_TABLE is index_module.DictTable
    else:
        assert QuickTable is not None, "the install did not build _quicktable (a C compiler?)"
        assert index_module.QUICK_TABLE is QuickTable


def test_keys_inline_and_on_the_heap() -> None:
    table = QuickTable()
    # A slot holds up to 100 bytes of key inline (128 less the hash, value, aux and
    # length); the boundary on both sides, in one- and two-byte characters.
    keys = ["", "a", "a\x1fb\x1f1\x1frelease.yml", "é" * 50, "é" * 51, "x" * 99, "x" * 100,
            "x" * 101, "x" * 108, "y" * 5000, "\U0001f600" * 30, "\x00nul"]
    for n, key in enumerate(keys):
        table[key] = n
    assert len(table) == len(keys)
    for n, key in enumerate(keys):
        assert table[key] == n and key in table and table.get(key) == n
    assert sorted(table.items()) == sorted((k, n) for n, k in enumerate(keys))
    for key in ["x" * 110, "y" * 4999, "é" * 55, "b", "x" * 100 + "!", "x" * 98]:
        assert key not in table and table.get(key) is None and table.get(key, 7) == 7
        with pytest.raises(KeyError):
            table[key]


def test_what_it_cannot_hold_is_never_found() -> None:
    """A lookup of a non-str, a str subclass or a lone surrogate (no UTF-8 form) finds
    nothing (KeyError, as the quick check expects); storing one is a TypeError."""

    class Name(str):
        pass

    table = QuickTable()
    table["k"] = 1
    for key in (Name("k"), b"k", 1, None, ("k",), "\ud800"):
        with pytest.raises(KeyError):
            table[key]  # type: ignore[index]
        assert key not in table and table.get(key) is None and table.pop(key, 5) == 5
    for key in (b"k", 1, Name("k")):
        with pytest.raises(TypeError):
            table[key] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        table["\ud800"] = 2  # encoding error reported as a key the table cannot hold
    assert dict(table.items()) == {"k": 1}


def test_replace_pop_and_delete_keep_references_right() -> None:
    class Value:
        pass

    table = QuickTable()
    first, second = Value(), Value()
    gone = weakref.ref(first)
    table["k"] = first
    table["k"] = second
    del first
    gc.collect()
    assert gone() is None and table["k"] is second
    assert sys.getrefcount(second) == 3  # this name, the table, the argument
    assert table.pop("k") is second
    assert sys.getrefcount(second) == 2 and len(table) == 0
    with pytest.raises(KeyError):
        table.pop("k")
    table["k"] = second
    del table["k"]
    with pytest.raises(KeyError):
        del table["k"]
    assert sys.getrefcount(second) == 2


def test_a_cycle_through_the_table_is_collected() -> None:
    class Holder:
        table: object

    holder = Holder()
    holder.table = QuickTable()
    holder.table["self"] = holder
    gone = weakref.ref(holder)
    del holder
    gc.collect()
    assert gone() is None


def test_deletions_and_insertions_at_any_fill_stay_found() -> None:
    """Deleted slots are reclaimed by the next resize: churn at a steady size neither
    loses entries nor grows without end."""
    table = QuickTable()
    live: dict[str, int] = {}
    for n in range(20_000):
        key = f"key{n}"
        table[key] = live[key] = n
        if n >= 100:
            old = f"key{n - 100}"
            assert table.pop(old) == live.pop(old)
    assert len(table) == len(live) == 100
    assert dict(table.items()) == live


def test_readers_in_other_threads_see_whole_tables_while_it_grows() -> None:
    table = QuickTable()
    table["always"] = "here"
    stop = threading.Event()
    misses: list[object] = []

    def read() -> None:
        while not stop.is_set():
            if table.get("always") != "here":
                misses.append(table.get("always"))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for n in range(100_000):
            table[f"k{n}"] = n
            if n % 3 == 0:
                del table[f"k{n}"]
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert not misses


def test_a_finalizer_run_by_a_replacement_sees_a_whole_table() -> None:
    """A value's finalizer runs when the table drops it: it may read and change the
    table, which is consistent by then."""
    table = QuickTable()
    seen: list[object] = []

    class Noisy:
        def __del__(self) -> None:
            seen.append(table.get("k"))
            table["from-finalizer"] = 1

    table["k"] = Noisy()
    table["k"] = "new"
    assert seen == ["new"] and table["from-finalizer"] == 1
    table["gone"] = Noisy()
    assert table.pop("gone") is not None  # dropped here: the finalizer reads "k"
    assert seen == ["new", "new"]


def test_takes_no_arguments() -> None:
    with pytest.raises(TypeError):
        QuickTable({"a": 1})  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        QuickTable(a=1)  # type: ignore[call-arg]


def test_keys_chosen_to_share_a_first_slot_do_not_form_one_long_run() -> None:
    """With PYTHONHASHSEED set, str hashes are known in advance: someone adding
    publishers could choose keys that an unsalted table would send to one first slot
    (here: the same top 10 bits of hash * 2^64/phi, the table's mixing without its
    secret), making each lookup among them read hundreds of slots. The process's secret
    spreads them."""
    golden = 0x9E3779B97F4A7C15
    chosen: list[str] = []
    n = 0
    while len(chosen) < 400:  # 400 keys: a table of 1 024 slots (top 10 bits)
        key = f"owner{n}\x1frepo\x1f1\x1frelease.yml"
        n += 1
        if ((hash(key) % 2**64) * golden % 2**64) >> 54 == 0:
            chosen.append(key)
    table = QuickTable()
    for key in chosen:
        table[key] = key
    assert all(table[key] == key for key in chosen)
    probes = sorted(table._probes(key) for key in chosen)
    assert probes[-1] < 40, probes[-20:]  # unsalted: the n-th key would read n slots


@pytest.fixture(params=["c", "dict"])
def table_class(request: pytest.FixtureRequest) -> Any:
    """The C table, and the `DictTable` that replaces it without the extension."""
    if request.param == "c":
        if QuickTable is None:
            pytest.skip("not built")
        return QuickTable
    return index_module.DictTable


def test_an_aux_is_kept_beside_its_value_and_read_by_identity(table_class: Any) -> None:
    """What a quick check reads (`tppolicy.language.compile._compile_check`): the aux
    stored beside a key's value, then the value only while that aux (the same object,
    not an equal one) is still the key's."""
    table = table_class()
    shape = ("pypi", True)
    equal = shape[:1] + shape[1:]
    assert equal == shape and equal is not shape
    table.put("k", "decision", shape)
    table["plain"] = "other"
    table.prefetch("k")  # asks the CPU for the slot: nothing to see but no error
    table.prefetch("absent")
    assert table.aux("k") is shape and table.value("k", shape) == "decision"
    assert table.value("k", equal) is None and table.value("k", None) is None
    assert table.aux("plain") is None and table.value("plain", None) == "other"
    assert table.aux("absent") is None and table.value("absent", None) is None
    assert table["k"] == "decision" and len(table) == 2
    table.put("k", "changed", equal)  # another publisher put there meanwhile
    assert table.value("k", shape) is None and table.value("k", equal) == "changed"
    table["k"] = "no aux"
    assert table.aux("k") is None and table.value("k", equal) is None
    assert table.pop("k") == "no aux" and table.aux("k") is None
    table.put("k", "again", shape)
    del table["k"]
    assert table.aux("k") is None and table.value("k", shape) is None
    assert sorted(table.items()) == [("plain", "other")]


def test_reads_of_keys_it_cannot_hold_find_nothing() -> None:
    if QuickTable is None:
        pytest.skip("not built")
    table = QuickTable()
    table.prefetch("k")  # an empty table
    assert table.aux("k") is None
    table.put("k", 1, "aux")
    for key in ("\ud800", b"k", 1, None, ("k",)):
        table.prefetch(key)
        assert table.aux(key) is None and table.value(key, "aux") is None
    with pytest.raises(TypeError):
        table.put(b"k", 1, "aux")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        table.put("k", 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        table.value("k")  # type: ignore[call-arg]


def test_an_aux_is_released_with_its_entry_and_visited_by_the_collector() -> None:
    if QuickTable is None:
        pytest.skip("not built")

    class Shape:
        table: object

    table = QuickTable()
    shape = Shape()
    gone = weakref.ref(shape)
    table.put("k", 1, shape)
    assert sys.getrefcount(shape) == 3  # this name, the table, the argument
    table.put("k", 2, shape)
    assert sys.getrefcount(shape) == 3
    table["k"] = 3  # replaced without one
    assert sys.getrefcount(shape) == 2
    table.put("k", 1, shape)
    assert table.pop("k") == 1 and sys.getrefcount(shape) == 2
    table.put("k", 1, shape)
    del table["k"]
    assert sys.getrefcount(shape) == 2
    table.put("k", 1, shape)
    for n in range(1000):  # resizes move the aux with its entry
        table[f"n{n}"] = n
    assert table.aux("k") is shape
    shape.table = table  # a cycle through an aux
    del shape, table
    gc.collect()
    assert gone() is None


def test_a_dict_table_keeps_its_pairs_with_every_dict_method() -> None:
    """`DictTable` is a dict: whichever of a dict's methods changes it, its (aux, value)
    pairs, which a quick check reads, say the same."""
    table = index_module.DictTable()
    shape = ("pypi",)
    table.put("a", 1, shape)
    table.update({"b": 2}, c=3)
    assert table.setdefault("a", 9) == 1 and table.setdefault("d", 4) == 4
    assert table.aux("a") is shape and table.value("b", None) == 2
    assert table.value("d", None) == 4
    key, value = table.popitem()
    assert value == {"a": 1, "b": 2, "c": 3, "d": 4}[key] and key not in table
    assert table.aux(key) is None and table.value(key, None) is None
    assert dict(table) == {k: v for k, (_, v) in table.entries.items()}
    table.clear()
    assert table == {} and table.entries == {} and table.value("a", shape) is None
