"""The usual answer at once (`Template.check`, `Decider.allowed`) decides exactly as the
general path: for every case table's claims and many variations of them (each claim
missing, of another type, changed, in another case), through both fronts, the decision
with the one-function check equals the decision without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import tppolicy
from tppolicy.decide.core import Decider
from tppolicy.decide.engine import CheckResult, Engine

CASES_DIR = Path(__file__).parent / "cases"
TABLES = sorted(CASES_DIR.glob("*.tptest.yaml"))


@pytest.fixture(autouse=True, params=["c-table", pytest.param("dict", marks=pytest.mark.slow)])
def _both_quick_tables(request: pytest.FixtureRequest) -> None:
    """Every test here runs with the C quick table and with the dict that replaces it
    when the extension is not built (conftest's `pure_quick_table`); the dict's runs are
    in the slow group (.ci/run runs it), the install's table in the default run."""
    if request.param == "dict":
        request.getfixturevalue("pure_quick_table")

def _variations(claims: dict[str, Any], every: bool) -> Iterator[dict[str, Any]]:
    yield claims
    for name, value in claims.items():
        yield {k: v for k, v in claims.items() if k != name}
        if isinstance(value, str) and not every:
            yield {**claims, name: value + "x"}
            continue
        yield {**claims, name: 7}
        if isinstance(value, str):
            yield {**claims, name: value + "x"}
            yield {**claims, name: value.upper()}
            yield {**claims, name: ""}
            if "/" in value:
                yield {**claims, name: value.replace("/", "\x1f")}


def _cases(table: dict[str, Any], every: bool) -> Iterator[tuple[dict[str, Any], str]]:
    for case in table["cases"]:
        if case.get("request"):
            continue
        claims = dict(table["claims"][case["claims"]])
        claims.update(case.get("set") or {})
        for name in case.get("unset") or []:
            claims.pop(name, None)
        # Variations of the allowed claims: the answers at once and their neighbours.
        for variation in _variations(claims, every) if case["allowed"] else (claims,):
            yield variation, case.get("audience", "pypi")


def _general(decider: Decider) -> list[Any]:
    """Turn the one-function check off; returns what to give back to `_restore`."""
    saved = [index.check for index in decider.indexes.values()]
    for index in decider.indexes.values():
        index.check = None
    return saved


def _restore(decider: Decider, saved: list[Any]) -> None:
    for index, check in zip(decider.indexes.values(), saved, strict=True):
        index.check = check


def _same(fast: CheckResult, general: CheckResult) -> bool:
    return (fast == general and fast.decision.record is general.decision.record
            and fast.to_json() == general.to_json())


@pytest.mark.parametrize("path", [  # the *_constraints tables in the slow group
    pytest.param(t, marks=pytest.mark.slow if "constraints" in t.name else ())
    for t in TABLES], ids=lambda p: p.name.removesuffix(".tptest.yaml"))
def test_the_usual_answer_at_once_is_the_general_answer(path: Path) -> None:
    """Each claim of the allowed cases missing or changed (the default run)."""
    _compare(path, every=False)


@pytest.mark.slow
@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.name.removesuffix(".tptest.yaml"))
def test_every_variation_decides_alike_at_once(path: Path) -> None:
    """Each claim also of another type, empty, in upper case, split otherwise."""
    _compare(path, every=True)


def _compare(path: Path, every: bool) -> None:
    table = yaml.safe_load(path.read_text("utf-8"))
    issuers = table.get("issuers") or {}
    engine = Engine(publishers=table["publishers"], issuers=issuers)
    policy = tppolicy.compile_publishers_text(
        yaml.safe_dump({"publishers": table["publishers"]}), issuers=issuers)
    deciders = [engine._core, policy._core]
    for claims, audience in _cases(table, every):
        engine.audience = audience
        fast = engine.check_claims(claims)
        fast_policy = policy.evaluate(claims, audience=audience)
        saved = [_general(decider) for decider in deciders]
        try:
            assert engine._core.allowed(claims, audience) is None
            general = engine.check_claims(claims)
            general_policy = policy.evaluate(claims, audience=audience)
        finally:
            for decider, checks in zip(deciders, saved, strict=True):
                _restore(decider, checks)
        assert _same(fast, general), (claims, fast, general)
        assert fast_policy == general_policy, (claims, fast_policy, general_policy)
        assert fast_policy.publisher == general_policy.publisher
        if engine._core.allowed(claims, audience) is not None:
            ANSWERED.add(path.name)


ANSWERED: set[str] = set()


def test_the_answers_at_once_were_compared() -> None:
    """The comparison above is not vacuous: the one-function check answered in most
    tables (not in those where every key is shared by two publishers)."""
    if len(ANSWERED) < 5:
        for path in TABLES:
            _compare(path, every=False)
    assert len(ANSWERED) >= 5, ANSWERED


def test_a_shared_bucket_or_own_rules_take_the_general_path() -> None:
    rows = [{"provider": "github", "name": name, "projects": ["p"], "repository_owner": "o",
             "repository_name": "r", "repository_owner_id": "1",
             "workflow_filename": "release.yml", "environment": environment}
            for name, environment in (("with-env", "pypi"), ("any-env", ""))]
    engine = Engine(publishers=rows)
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": "pypi",
              "repository": "o/r", "repository_owner": "o", "repository_owner_id": "1",
              "job_workflow_ref": "o/r/.github/workflows/release.yml@refs/tags/v1",
              "ref": "refs/tags/v1", "sha": "a" * 40, "event_name": "push", "jti": "j",
              "environment": "PyPI"}
    assert engine._core.allowed(claims, "pypi") is None  # two publishers share the key
    assert engine.check_claims(claims).decision.publisher == "with-env"
    assert engine.check_claims({**claims, "environment": "other"}).decision.publisher \
        == "any-env"


def test_a_key_part_holding_the_separator_gets_no_quick_entry() -> None:
    """The one-function check takes a publisher's key fields from the token's key parts,
    which is sound only when equal joined keys have equal parts: a publisher whose key
    field holds the separator (no publishers file admits one, but a record may be built
    directly) is decided by the general path."""
    from tppolicy.decide.index import ProviderIndex, Record
    from tppolicy.language.providers import load_providers

    provider = load_providers()["github"]
    index = ProviderIndex(provider)
    template = index.template
    given = {"repository_owner": "o", "repository_name": "r", "repository_owner_id": "1",
             "workflow_filename": "release.yml"}

    def record(record_id: str, **changes: str) -> Record:
        values = {**given, **changes}
        fields = tuple(values.get(name, decl.default.value if decl.default else None)
                       for name, decl in provider.fields.items())
        key, prefer, slots = template.derive(fields)
        return Record(record_id, "github", record_id, ("p",), None, fields, key, prefer, slots,
                      template.predicate)

    plain = record("plain")
    index.add(plain)
    assert len(index.quick) == 1
    odd = record("odd", repository_owner="o\x1fr")
    index.add(odd)
    assert len(index.quick) == 1 and len(index.normal) == 2
    index.remove(plain)
    assert len(index.quick) == 0 and len(index.normal) == 1


# The claims of the publisher _github_rows makes third (project p3).
_O3_CLAIMS = {"iss": "https://token.actions.githubusercontent.com", "aud": "pypi",
              "repository": "o3/r", "repository_owner": "o3", "repository_owner_id": "3",
              "job_workflow_ref": "o3/r/.github/workflows/release.yml@refs/tags/v1",
              "ref": "refs/tags/v1", "sha": "a" * 40, "event_name": "push", "jti": "j",
              "environment": "pypi"}


def _github_rows(count: int, **changes: str) -> list[dict[str, Any]]:
    return [{"provider": "github", "projects": [f"p{i}"], "repository_owner": f"o{i}",
             "repository_name": "r", "repository_owner_id": str(i),
             "workflow_filename": "release.yml", "environment": "pypi" if i % 2 else "",
             **changes} for i in range(count)]


def _github_index(engine: Engine) -> Any:
    return engine._core.indexes["github"]


def test_publishers_configured_alike_share_one_shape() -> None:
    """A quick entry is the publisher's decision, with its shape as the entry's aux: the
    values of publishers configured alike are one object, so a random check among many
    publishers finds them in the CPU caches."""
    engine = Engine(publishers=_github_rows(6))
    index = _github_index(engine)
    records = sorted(engine.publishers(), key=lambda record: record.label)
    entries = sorted(index.quick.items(), key=lambda entry: entry[1].publisher)
    decisions = [decision for _, decision in entries]
    assert [decision.publisher for decision in decisions] == [r.label for r in records]
    assert all(d is r.decision(index.issuer) for d, r in zip(decisions, records, strict=True))
    shapes = {id(index.quick.aux(key)) for key, _ in entries}
    assert len(shapes) == 2  # with environment pypi, and without
    shape = index.quick.aux(entries[0][0])
    assert shape is not None and len(shape) > 2


def test_an_entry_changed_while_the_rules_run_is_not_returned() -> None:
    """The check reads an entry's shape, runs the rules against it, then takes the
    decision only if the entry still holds that shape: a publisher put there meanwhile
    (another thread, between the two reads) with other values is left to the general
    path (None), never answered with rules it was not checked against."""
    engine = Engine(publishers=_github_rows(4))
    index = _github_index(engine)
    key = next(key for key, decision in index.quick.items() if decision.projects == ("p3",))
    table = index.quick
    narrowed = next(d for k, d in table.items() if k != key)
    other_shape = table.aux(next(k for k, d in table.items() if d is narrowed))

    class Racing:
        """The table, with another publisher put at the key once its shape is read."""

        def __getattr__(self, name: str) -> Any:
            return getattr(table, name)

        def aux(self, asked: str) -> Any:
            shape = table.aux(asked)
            if asked == key:
                table.put(key, narrowed, shape[:1] + shape[1:])  # equal, not the same
            return shape

    original = table.value(key, table.aux(key))
    assert index.check(dict(_O3_CLAIMS), table) is original
    assert index.check(dict(_O3_CLAIMS), Racing()) is None
    table.put(key, original, other_shape)  # the shape of the other environment
    assert index.check(dict(_O3_CLAIMS), table) is original  # both shapes allow


def test_rules_split_around_the_entry_read_keep_their_order_and_names() -> None:
    """`_split_conjuncts`: the conjuncts reading none of the shape's names run before
    the entry is read, the others after, each group in its order; a conjunct reading a
    name that a late one assigns (`:=`) is late too; a constant stays late."""
    import ast

    from tppolicy.language.compile import _split_conjuncts

    def split(source: str, late: set[str]) -> tuple[list[str], list[str]]:
        early, rest = _split_conjuncts(ast.parse(source, mode="eval").body, late)
        return [ast.unparse(e) for e in early], [ast.unparse(e) for e in rest]

    assert split("a and (b and e0) and c != '' and (v1 or d)", {"e0", "v1"}) == (
        ["a", "b", "c != ''"], ["e0", "v1 or d"])  # nested conjunctions flattened
    assert split("(t := v1 + 'x') and a == t and b", {"v1"}) == (
        ["b"], ["(t := (v1 + 'x'))", "a == t"])
    assert split("(t := a) and e0 == t", {"e0"}) == (["(t := a)"], ["e0 == t"])
    assert split("True", set()) == ([], ["True"])
    assert split("a or e0", {"e0"}) == ([], ["a or e0"])


def test_a_shape_no_entry_holds_is_forgotten() -> None:
    engine = Engine(publishers=_github_rows(4))
    index = _github_index(engine)
    assert len(index._shapes) == 2
    records = list(engine.publishers())
    engine.remove_publisher(records[1].id)
    engine.remove_publisher(records[3].id)  # the last two with environment pypi
    assert len(index._shapes) == 1
    engine.add_publisher({**_github_rows(8)[7], "environment": "other"})
    assert len(index._shapes) == 2
    for record in list(engine.publishers()):
        engine.remove_publisher(record.id)
    assert len(index.quick) == 0 and index._shapes == {}


def test_only_the_same_values_share_a_shape() -> None:
    """Equal is not enough: 1, 1.0 and True are equal, and -0.0 is 0.0."""
    from tppolicy.decide.index import _shape_signature

    assert _shape_signature((True, "a")) != _shape_signature((1, "a"))
    assert _shape_signature(((1,), "")) != _shape_signature(((True,), ""))
    assert _shape_signature((0.0,)) is None and _shape_signature(((-0.0,),)) is None
    assert _shape_signature(("a", None, (), 3)) == _shape_signature(("a", None, (), 3))


def test_a_sparse_copy_is_the_same_table_with_more_room() -> None:
    import sys

    from tppolicy.decide.index import sparse_copy

    for table in ({f"k{i}": i for i in range(5000)}, {"\x00\x000": 1, "a": 2}, {}):
        copy = sparse_copy(table)
        assert copy == table and list(copy) == list(table)
        if len(table) > 100:  # a table three times its entries (CPython), never smaller
            assert sys.getsizeof(copy) > sys.getsizeof(dict(table))


def test_a_bulk_load_settles_the_quick_entries_and_they_still_decide(
        pure_quick_table: None) -> None:
    """Without the C table (`TPPOLICY_NO_EXTENSION=1`, no compiler), the quick entries
    are a `DictTable`, its entries rebuilt sparse after a bulk load."""
    import sys

    from tppolicy.decide.index import SETTLE_FROM, DictTable

    engine = Engine(publishers=_github_rows(SETTLE_FROM + 10))
    index = _github_index(engine)
    assert type(index.quick) is DictTable
    assert index._settled == len(index.quick) == len(index.quick.entries) == SETTLE_FROM + 10
    assert sys.getsizeof(index.quick.entries) > sys.getsizeof(dict(index.quick.entries))
    assert index.quick == dict(index.quick) and all(
        index.quick.value(key, index.quick.aux(key)) is decision
        for key, decision in index.quick.items())
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": "pypi",
              "repository": "o7/r", "repository_owner": "o7", "repository_owner_id": "7",
              "job_workflow_ref": "o7/r/.github/workflows/release.yml@refs/tags/v1",
              "ref": "refs/tags/v1", "sha": "a" * 40, "event_name": "push", "jti": "j",
              "environment": "pypi"}
    assert engine._core.allowed(claims, "pypi") is not None
    assert engine.check_claims(claims).decision.projects == ("p7",)
    engine.add_publishers(_github_rows(SETTLE_FROM + 20)[SETTLE_FROM + 10:])  # too few
    assert index._settled == SETTLE_FROM + 10 and len(index.quick) == SETTLE_FROM + 20


@pytest.mark.slow  # threads racing: in the slow group
def test_checks_while_bulk_loads_settle_the_quick_table() -> None:
    """A reader never misses a loaded publisher while bulk loads add others and rebuild
    the quick table (the new table replaces the old one whole)."""
    import threading

    from tppolicy.decide.index import SETTLE_FROM

    rows = _github_rows(3 * SETTLE_FROM)
    engine = Engine(publishers=rows[:SETTLE_FROM])
    claims = dict(_O3_CLAIMS)
    failures: list[Any] = []
    done = threading.Event()

    def check() -> None:
        while not done.is_set():
            result = engine.check_claims(claims)
            if not result.allowed or result.decision.projects != ("p3",):
                failures.append(result)

    reader = threading.Thread(target=check)
    reader.start()
    try:
        tables = set()
        for first in range(SETTLE_FROM, len(rows), 512):
            engine.add_publishers(rows[first:first + 512])
            tables.add(id(_github_index(engine).quick))
    finally:
        done.set()
        reader.join()
    assert not failures
    if isinstance(_github_index(engine).quick, dict):  # a DictTable
        assert len(tables) > 1  # the dict was rebuilt meanwhile (the C table grows in place)


@pytest.mark.slow  # threads racing: in the slow group
def test_checks_while_a_publisher_is_replaced_and_others_come_and_go() -> None:
    """A reader of one publisher sees it (its old or its new projects) at every moment
    while it is replaced (its quick entry changed in place) and other publishers are
    removed and added again (their quick entries removed and added)."""
    import threading

    rows = _github_rows(600)
    engine = Engine(publishers=rows)
    watched = next(r for r in engine.publishers() if r.projects == ("p3",))
    claims = dict(_O3_CLAIMS)
    failures: list[Any] = []
    checked = 0
    done = threading.Event()

    def check() -> None:
        nonlocal checked
        while not done.is_set():
            result = engine.check_claims(claims)
            checked += 1
            if not result.allowed or result.decision.projects not in (("p3",), ("q3",)):
                failures.append(result)

    reader = threading.Thread(target=check)
    reader.start()
    try:
        for turn in range(30):
            engine.add_publisher({**rows[3], "projects": ["q3" if turn % 2 else "p3"]},
                                 id=watched.id)
            others = [r for r in engine.publishers() if r.id != watched.id][:200]
            for record in others:
                engine.remove_publisher(record.id)
            engine.settle(0)
            for record in others:  # its row again ("p12": rows[12])
                engine.add_publisher(rows[int(record.projects[0][1:])])
    finally:
        done.set()
        reader.join()
    assert not failures and checked > 0
    assert len(_github_index(engine).quick) == 600
    assert engine._core.allowed(claims, "pypi") is not None
