"""Bulk loading of publishers (`Engine.add_publishers`): the collector paused and the
host's setting restored, rows checked as before, shapes shared exactly as before."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tppolicy.decide.engine import Engine, collector_paused
from tppolicy.decide.index import _shape_signature
from tppolicy.errors import ConfigError


def _row(i: int, **changes: Any) -> dict[str, Any]:
    row = {"provider": "github", "repository_owner": f"org{i // 5}",
           "repository_name": f"repo{i}", "repository_owner_id": str(1000 + i // 5),
           "workflow_filename": "release.yml", "environment": "pypi" if i % 2 else "",
           "projects": [f"project-{i}"]}
    row.update(changes)
    return row


class _Watched(Mapping[str, Any]):
    """A row that notes whether the collector was enabled when the engine read it."""

    def __init__(self, row: dict[str, Any], seen: list[bool]) -> None:
        self._row = row
        self._seen = seen

    def __getitem__(self, key: str) -> Any:
        self._seen.append(gc.isenabled())
        return self._row[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)


@pytest.fixture
def collector() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.parametrize("enabled", [True, False])
def test_a_bulk_load_pauses_the_collector_and_restores_the_hosts_setting(
        collector: None, enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    seen: list[bool] = []
    engine = Engine()
    engine.add_publishers(_Watched(_row(i), seen) for i in range(20))
    assert seen and not any(seen)
    assert len(engine) == 20
    assert gc.isenabled() is enabled


@pytest.mark.parametrize("enabled", [True, False])
def test_the_setting_is_restored_when_the_load_fails(collector: None, enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    engine = Engine()
    with pytest.raises(ConfigError):
        engine.add_publishers([_row(1), _row(2, repository_owner=" x")])
    assert gc.isenabled() is enabled

    def rows() -> Iterator[dict[str, Any]]:
        yield _row(1)
        raise RuntimeError("the host's row source failed")

    with pytest.raises(RuntimeError):
        engine.add_publishers(rows())
    assert gc.isenabled() is enabled
    assert len(engine) == 0


def test_overlapping_pauses_restore_once_the_last_ends(collector: None) -> None:
    gc.enable()
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    second.__enter__()
    assert not gc.isenabled()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second load is still under way
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_concurrent_loads_leave_the_collector_enabled(collector: None) -> None:
    gc.enable()
    engine = Engine()
    errors: list[BaseException] = []

    def load(first: int) -> None:
        try:
            for start in range(first, first + 200, 20):
                engine.add_publishers(_row(i) for i in range(start, start + 20))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(engine) == 800
    assert gc.isenabled()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("repository_owner", "", "'': a GitHub user or organization name"),
    ("repository_owner", " a", "' a' is not printable ASCII without surrounding blanks"),
    ("repository_owner", "a ", "'a ' is not printable ASCII without surrounding blanks"),
    ("repository_owner", "a\tb", "'a\\tb' is not printable ASCII"),
    ("repository_owner", "\u00e9", "'\u00e9' is not printable ASCII"),
    ("repository_owner", 3, "expected string, found an integer"),
    ("environment", " ", "' ' is not printable ASCII"),
    ("environment", "\x7f", "'\\x7f' is not printable ASCII"),
    ("repository_owner_id", "", "'': the owner's numeric id"),
    ("workflow_filename", "", "'': a workflow file name"),
    ("workflow_filename", "x.txt", "'x.txt': a workflow file name"),
])
def test_row_values_are_checked_as_the_schema_says(field: str, value: Any,
                                                   message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Engine().add_publishers([_row(1), _row(2, **{field: value})])
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.path == f"publishers[1].{field}"
    assert diagnostic.message.startswith(message)


def test_fields_left_out_take_their_defaults() -> None:
    row = _row(1)
    del row["environment"]
    engine = Engine()
    (record,) = engine.add_publishers([row])
    assert record.field_values(engine.decider.indexes["github"].checked)["environment"] == ""


def _reference_signature(value: Any) -> Any:
    """The signature as it was computed before the flat-tuple shortcut."""
    cls = value.__class__
    if cls is tuple:
        parts = []
        for item in value:
            part = _reference_signature(item)
            if part is None:
                return None
            parts.append(part)
        return (tuple, *parts)
    if cls in (str, int, bool, type(None)):
        return cls, value
    return None


_VALUES = st.recursive(
    st.one_of(st.sampled_from(["", "a", "b"]), st.sampled_from([0, 1, -1]), st.booleans(),
              st.none(), st.sampled_from([0.0, -0.0, 1.0])),
    lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=8)


@given(st.lists(_VALUES, max_size=4).map(tuple), st.lists(_VALUES, max_size=4).map(tuple))
def test_shapes_are_shared_exactly_when_they_were_before(a: tuple[Any, ...],
                                                         b: tuple[Any, ...]) -> None:
    new_a, new_b = _shape_signature(a), _shape_signature(b)
    old_a, old_b = _reference_signature(a), _reference_signature(b)
    assert (new_a is None) == (old_a is None)
    assert (new_b is None) == (old_b is None)
    if old_a is not None and old_b is not None:
        assert (new_a == new_b) == (old_a == old_b)


def test_flat_shapes_of_equal_values_of_other_classes_are_not_shared() -> None:
    assert _shape_signature(("a", 1, ())) != _shape_signature(("a", True, ()))
    assert _shape_signature(("a", 1)) == _shape_signature(("a", 1))
    assert _shape_signature((1.0,)) is None


def test_a_string_that_passed_for_one_field_is_still_checked_for_another() -> None:
    engine = Engine()
    with pytest.raises(ConfigError) as caught:  # "org0" passed as an owner in row 0
        engine.add_publishers([_row(0), _row(1, repository_owner_id="org0"),
                               _row(2, workflow_filename="org0")])
    assert [d.path for d in caught.value.diagnostics] == [
        "publishers[1].repository_owner_id", "publishers[2].workflow_filename"]
    records = engine.add_publishers([_row(i) for i in range(12)])  # owners repeat
    assert [r.fields[0] for r in records] == [f"org{i // 5}" for i in range(12)]
    assert records[0].fields[0] is records[4].fields[0]  # one copy of a repeated value


def _claims(i: int) -> dict[str, Any]:
    repository = f"org{i // 5}/repo{i}"
    ref = "refs/tags/v1"
    return {"iss": "https://token.actions.githubusercontent.com", "aud": "pypi",
            "repository": repository, "repository_owner": f"org{i // 5}",
            "repository_owner_id": str(1000 + i // 5), "sub": f"repo:{repository}:ref:{ref}",
            "job_workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
            "ref": ref, "sha": "a" * 40, "event_name": "push", "jti": "j", "exp": 2, "iat": 1,
            **({"environment": "pypi"} if i % 2 else {})}


def test_publishers_added_one_by_one_are_settled_as_a_bulk_load(pure_quick_table: None
                                                                 ) -> None:
    """A server loads its database with `add_publisher` and then `Engine.settle`: the
    quick table is rebuilt sparse (as after `add_publishers`) and every publisher is
    still found, by the quick path and the general one alike."""
    from tppolicy.decide.index import SETTLE_FROM

    count = SETTLE_FROM + 500
    one_by_one = Engine(huge_pages=False)
    for i in range(count):
        one_by_one.add_publisher(_row(i))
    index = one_by_one._indexes["github"]
    before = index.quick
    one_by_one.settle(count)
    assert index.quick is not before and index.quick == before  # rebuilt, the same entries
    bulk = Engine(publishers=[_row(i) for i in range(count)], huge_pages=False)
    for i in range(0, count, 7):
        claims = _claims(i)
        mine, theirs = one_by_one.check_claims(claims), bulk.check_claims(claims)
        assert mine.allowed and theirs.allowed, (i, mine.reasons)
        assert mine.decision == theirs.decision
        assert one_by_one._core.decide(claims, audience="pypi") == mine.decision
