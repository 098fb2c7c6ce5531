"""The publishers loader's fast validation path never accepts what the JSON Schema refuses."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from tests.conftest import ROOT
from tppolicy.decide import publishers as P
from tppolicy.language.providers import load_providers

_VALUES: list[Any] = ["", " ", "x", " x", "x ", "octo-org", "a/b", "release.yml",
                      "ci/release.yml", "é", "\t", "*", "refs/tags/v*", "65", 65, 0, -1,
                      3.0, 2.5, True, False, None, [], ["x"], {}, {"a": "b"}]


def _schema_accepts(data: Any, providers: Any) -> bool:
    validator = P._validator_class()(P.publishers_schema(providers))
    return not any(True for _ in validator.iter_errors(data))


def _variants(entry: dict[str, Any], keys: list[str]) -> list[dict[str, Any]]:
    out = []
    for key in [*keys, "name", "projects", "pending_project", "provider", "unknown"]:
        if key in entry:
            removed = dict(entry)
            del removed[key]
            out.append(removed)
        for value in _VALUES:
            changed = dict(entry)
            changed[key] = value
            out.append(changed)
    for projects in ([], ["a", "a"], ["-a"], ["a b"], ["ok", 3], ["Ok.Name_x-1"]):
        out.append({**entry, "projects": projects})
    return out


def test_fast_path_never_accepts_what_the_schema_refuses() -> None:
    providers = {name: p.ast for name, p in load_providers().items()}
    Draft202012Validator.check_schema(P.publishers_schema(providers))
    examples = yaml.safe_load((ROOT / "examples" / "publishers.yaml").read_text())
    accepted = 0
    for base in examples["publishers"]:
        for provider in providers.values():
            entry = copy.deepcopy(base)
            entry["provider"] = provider.name
            for variant in _variants(entry, [d.name for d in provider.fields]):
                data = {"publishers": [variant]}
                if P._plainly_valid(data, providers):
                    accepted += 1
                    assert _schema_accepts(data, providers), variant
    assert accepted > 50  # the fast path is taken for the common cases
    odd: list[Any] = [None, [], {"publishers": None}, {"publishers": []},
                      {"publishers": [], "x": 1}, {"publishers": [None]}]
    for value in odd:
        if P._plainly_valid(value, providers):
            assert _schema_accepts(value, providers), value


def test_the_shipped_example_takes_the_fast_path() -> None:
    providers = {name: p.ast for name, p in load_providers().items()}
    examples = yaml.safe_load((ROOT / "examples" / "publishers.yaml").read_text())
    assert P._plainly_valid(examples, providers)
