"""A compiled function's claims prologue in C (`_prologue.Prologue`) reads and tests the
claims as the Python prologue does: the compiled checks decide alike with it and
without it, on real claims and on claims missing, mistyped or given as another mapping."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

import tppolicy
from tests.conftest import load_claims
from tppolicy.language import compile as compile_module
from tppolicy.language.compile import _WRONG_TYPE, compile_predicate

prologue = pytest.importorskip("tppolicy.language._prologue")
REQUIRED, TYPED, OTHER = 0, 1, 2


@pytest.mark.parametrize(("kind", "cls", "claims", "expected"), [
    (REQUIRED, str, {"a": "x"}, ("x",)),
    (REQUIRED, str, {}, None),  # missing
    (REQUIRED, str, {"a": None}, None),
    (REQUIRED, str, {"a": 1}, None),  # mistyped
    (REQUIRED, int, {"a": True}, None),  # a bool is not an int, as `__class__ is int` says
    (REQUIRED, None, {"a": 0}, (0,)),  # no class: anything but null
    (REQUIRED, None, {"a": None}, None),
    (TYPED, str, {}, (None,)),
    (TYPED, str, {"a": None}, (None,)),
    (TYPED, str, {"a": ["x"]}, None),
    (OTHER, str, {"a": 1}, (_WRONG_TYPE,)),  # mistyped: the marker, not a refusal
    (OTHER, str, {"a": None}, (None,)),
    (OTHER, None, {"a": {"b": 1}}, ({"b": 1},)),
])
def test_each_kind_of_read(kind: int, cls: type | None, claims: dict[str, Any],
                           expected: tuple[Any, ...] | None) -> None:
    take = prologue.Prologue(("a",), (cls,), (kind,), _WRONG_TYPE).take
    assert take(claims) == expected
    assert take(MappingProxyType(claims)) == expected  # read through `get`


def test_a_failing_mapping_raises_its_error() -> None:
    class Failing(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise LookupError(key)

    take = prologue.Prologue(("a", "b"), (str, str), (REQUIRED, OTHER), _WRONG_TYPE).take
    with pytest.raises(LookupError):
        take(Failing(a="x"))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        prologue.Prologue(("a",), (), (0,), None)
    with pytest.raises(ValueError, match="a kind 0, 1 or 2"):
        prologue.Prologue(("a",), (str,), (3,), None)


def _variants(claims: dict[str, Any]) -> list[Any]:
    """The claims, each claim removed, made null or of another type, and as a mapping."""
    out: list[Any] = [claims, MappingProxyType(claims)]
    for name in sorted(claims):
        out.append({k: v for k, v in claims.items() if k != name})
        for value in (None, 1, True, ["x"], {"x": 1}, "x"):
            out.append({**claims, name: value})
    return out


def test_compiled_checks_decide_alike_with_either_prologue(
        example_policy: tppolicy.Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    publishers = example_policy.publishers
    with_c = [compile_predicate(p.provider, p.rules) for p in publishers]
    assert all(any(n.startswith("_take") for n in f.__code__.co_names) for f in with_c)
    monkeypatch.setattr(compile_module, "_Prologue", None)
    with_python = [compile_predicate(p.provider, p.rules) for p in publishers]
    checked = 0
    for name in ("github-release", "github-wrong-environment", "gitlab-release",
                 "google-cloud-build", "activestate-build"):
        for claims in _variants(load_claims(name)):
            for c, python, publisher in zip(with_c, with_python, publishers, strict=True):
                assert c(claims) is python(claims), (publisher.label, claims)
                checked += 1
    assert checked > 1000
