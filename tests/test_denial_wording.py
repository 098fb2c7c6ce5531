"""Two misleading denial texts (issue 16). A fix suggested adding 'pull_request_target' to
a github publisher's allowed_events, an event the provider's event_name rule refuses
whatever the publisher says; and a reason for a claim the token lacks read "token has
nothing, publisher expects 'v1.2.3'" instead of naming the missing claim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tppolicy.tools.explain import decision_fixes

from .conftest import run_cli
from .test_denials import _google, _table_decisions


def test_no_fix_suggests_an_event_the_event_name_rule_refuses() -> None:
    seen = 0
    for name, policy, claims, request, decision in _table_decisions():
        if claims.get("event_name") != "pull_request_target":
            continue
        fixes = decision_fixes(policy, decision, claims, request=request)
        for rule, fix in fixes.items():
            seen += 1
            assert "add 'pull_request_target'" not in fix.text, (name, rule, fix.text)
            if rule == "allowed_events":
                assert "can never publish" in fix.text, (name, fix.text)
    assert seen >= 4


def test_no_fix_suggests_allowing_an_event_the_publisher_also_denies() -> None:
    seen = 0
    for name, policy, claims, request, decision in _table_decisions():
        failed = {r.rule for r in decision.reasons if not r.passed}
        if not {"allowed_events", "denied_events"} <= failed:
            continue
        seen += 1
        text = decision_fixes(policy, decision, claims, request=request)["allowed_events"].text
        assert "to the publisher's allowed_events" not in text, (name, text)
        assert "would not help" in text, (name, text)
    assert seen >= 1


def test_no_reason_in_the_case_tables_reads_token_has_nothing() -> None:
    messages = [(name, r.rule, r.message) for name, _, _, _, d in _table_decisions()
                for r in d.reasons]
    assert [m for m in messages if "has nothing" in m[2]] == []
    assert any(m[2].startswith("token has no 'build_tag' claim, publisher expects 'v1.2.3'")
               for m in messages)


def test_check_names_the_missing_claim_and_keeps_actual_null(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = yaml.safe_load((Path(__file__).parent / "cases/google.tptest.yaml")
                           .read_text("utf-8"))
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(yaml.safe_dump({"publishers": table["publishers"]}), "utf-8")
    claims = dict(table["claims"]["locked-sa"])
    claims.pop("sub")
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(claims), "utf-8")
    args = ("check", "--publishers", str(publishers), "--claims", str(path))
    code, out, _ = run_cli(capsys, *args)
    assert code == 1
    assert "FAIL  sub: token has no 'sub' claim, publisher expects '104455667788990011223'" \
        in out
    assert "nothing" not in out
    code, out, _ = run_cli(capsys, *args, "--format", "json")
    first = json.loads(out)["reasons"][0]
    assert (first["rule"], first["actual"]) == ("sub", None)
    assert first["message"].startswith("token has no 'sub' claim")


def test_a_null_claim_is_called_null() -> None:
    engine, claims = _google()
    result = engine.check_claims({**claims, "sub": None})
    failed = [r for r in result.decision.reasons if not r.passed]
    assert failed[0].message.startswith("token's 'sub' claim is null, publisher expects")


def test_a_pinned_identity_the_token_lacks_is_named_without_its_value() -> None:
    engine, claims = _google()
    claims.pop("sub")
    result = engine.check_claims(claims)
    failed = [r for r in result.disclosed().reasons if not r.passed]
    assert failed[0].rule == "sub"
    assert failed[0].message.startswith("token has no sub, which the publisher pins")
    assert "nothing" not in failed[0].message
    assert "104455667788990011223" not in failed[0].message
