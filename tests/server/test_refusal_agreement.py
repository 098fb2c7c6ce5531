"""For every denial in the case tables (tests/cases), the server's refusal (the mint-token
description its core writes) says what `tppolicy check` says, within the disclosure rules:
each failing reason the token's holder may see with its message, each disclosable fix, and
no fix the holder may not see (issue 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import tppolicy
from tppolicy.server.core import describe_refusal, refusal_fixes
from tppolicy.tools.explain import decision_fixes

CASES = sorted((Path(__file__).parent.parent / "cases").glob("*.tptest.yaml"))


def _denials() -> list[Any]:
    found = []
    for path in CASES:
        table = yaml.safe_load(path.read_text("utf-8"))
        for case in table["cases"]:
            if not case["allowed"] and "claims" in case:
                found.append(pytest.param(path, table, case,
                                          id=f"{path.stem}: {case['name']}"))
    return found


_ENGINES: dict[tuple[Path, str], tuple[tppolicy.Policy, tppolicy.Engine]] = {}


def _fronts(path: Path, table: dict[str, Any],
            audience: str) -> tuple[tppolicy.Policy, tppolicy.Engine]:
    """The table's publishers as `tppolicy check` and as the server load them."""
    if (path, audience) not in _ENGINES:
        issuers = table.get("issuers") or {}
        policy = tppolicy.compile_publishers_text(
            yaml.safe_dump({"publishers": table["publishers"]}, sort_keys=False), path.name,
            issuers=issuers)
        engine = tppolicy.Engine(publishers=table["publishers"], audience=audience,
                                 issuers=issuers, clock=lambda: 0.0)
        _ENGINES[path, audience] = policy, engine
    return _ENGINES[path, audience]


@pytest.mark.parametrize(("path", "table", "case"), _denials())
def test_the_server_refusal_agrees_with_check(path: Path, table: dict[str, Any],
                                              case: dict[str, Any]) -> None:
    claims = dict(table["claims"][case["claims"]]) if isinstance(case["claims"], str) \
        else dict(case["claims"])
    claims.update(case.get("set") or {})
    for name in case.get("unset") or []:
        claims.pop(name, None)
    audience = case.get("audience", table.get("audience", "pypi"))
    request = case.get("request")
    policy, engine = _fronts(path, table, audience)
    # what `tppolicy check` says, as the token's holder may see it
    decision = policy.evaluate(claims, audience=audience, explain=True, request=request)
    shown = decision.disclosed()
    fixes = decision_fixes(policy, decision, claims, request=request)
    # what the server answers
    result = engine.check_claims(claims, request)
    description = describe_refusal(result, refusal_fixes(engine, result, request))
    failed = [r for r in shown.reasons if not r.passed]
    if [r.rule for r in failed] == ["publisher"]:
        assert description == failed[0].message
    for reason in failed:
        if reason.code != "replayed":
            assert _clause(f"{reason.rule}: {reason.message}") in description \
                or description == reason.message
    for label, reasons in shown.also:  # the other publishers of the identity, as check lists them
        listed = f"; also for this identity: publisher '{label}': " in description
        assert listed == bool(reasons), (label, description)  # none listed with nothing failed
    for fix in fixes.values():
        told = f"fix: {_clause(fix.text)}" in description
        assert told == (fix.disclosable and shown.closest is not None), (fix, description)
    # one list of clauses separated by "; ": no sentence's full stop before a separator
    assert ".;" not in description and ".)" not in description, description
    assert ": )" not in description and ": ;" not in description, description


def _clause(text: str) -> str:
    """A sentence as the description lists it, as a clause: without its final full stop."""
    return text.removesuffix(".")
