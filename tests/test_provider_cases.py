"""The per-provider case tables in tests/cases/*.yaml, run through the publishers file
and through the compiled policy text, which must decide identically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import tppolicy

CASES_DIR = Path(__file__).parent / "cases"


def _load_tables() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    params = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        table = yaml.safe_load(path.read_text("utf-8"))
        for case in table["cases"]:
            params.append((path.stem, table, case))
    return params


TABLES = _load_tables()


@pytest.fixture(scope="module")
def policies() -> dict[str, tuple[tppolicy.Policy, tppolicy.Policy]]:
    result = {}
    for path in sorted(CASES_DIR.glob("*.yaml")):
        table = yaml.safe_load(path.read_text("utf-8"))
        issuers = table.get("issuers") or {}
        text = yaml.safe_dump({"publishers": table["publishers"]}, sort_keys=False)
        from_yaml = tppolicy.compile_publishers_text(text, f"{path.name}#publishers",
                                                     issuers=issuers)
        compiled = tppolicy.format_policy(from_yaml)
        from_text = tppolicy.load_policy_text(compiled, f"{path.name}#compiled", issuers=issuers)
        result[path.stem] = (from_yaml, from_text)
    return result


def _claims(table: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    claims = dict(table["claims"][case["claims"]])
    claims.update(case.get("set") or {})
    for name in case.get("unset") or []:
        claims.pop(name, None)
    return claims


def test_every_provider_has_a_case_table() -> None:
    assert {path.stem for path in CASES_DIR.glob("*.yaml")} >= {
        "github", "gitlab", "google", "activestate"}


@pytest.mark.parametrize(("provider", "table", "case"), TABLES,
                         ids=[f"{p}: {c['name']}" for p, _, c in TABLES])
def test_case(policies: dict[str, tuple[tppolicy.Policy, tppolicy.Policy]], provider: str,
              table: dict[str, Any], case: dict[str, Any]) -> None:
    claims = _claims(table, case)
    from_yaml, from_text = policies[provider]
    audience, request = case.get("audience", "pypi"), case.get("request")
    decision = from_yaml.evaluate(claims, audience=audience, explain=True, request=request)
    again = from_text.evaluate(claims, audience=audience, explain=True, request=request)
    assert decision == again, "the compiled policy decides differently from the publishers file"
    quick = from_yaml.evaluate(claims, audience=audience, request=request)
    assert (quick.allowed, quick.publisher, quick.learned) == (
        decision.allowed, decision.publisher, decision.learned)
    assert dict(decision.learned) == case.get("learned", {})
    failing = sorted({r.rule for r in decision.reasons if not r.passed})
    assert decision.allowed is case["allowed"], f"reasons: {decision.reasons}"
    if case["allowed"]:
        assert decision.publisher == case["publisher"]
        assert decision.pending is case.get("pending", False)
    else:
        assert decision.publisher is None
        assert failing == sorted(set(case["failing"])), f"reasons: {decision.reasons}"
    if "reason_contains" in case:
        messages = " | ".join(r.message for r in decision.reasons if not r.passed)
        assert case["reason_contains"] in messages
