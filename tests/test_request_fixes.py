"""The fixes of a denial are worked out with the request values the decision had (the
version being uploaded): a rule that passed with them is not told to change. Before, the
fixes' own check of the publisher ran without them, so a version_tag rule that passed
"failed" there and got a fix saying the version differs from the tag it equals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import tppolicy
from tppolicy.tools.explain import decision_fixes, record_fixes

CASES = Path(__file__).parent / "cases"


@pytest.fixture(scope="module")
def buildkite() -> tuple[tppolicy.Policy, tppolicy.Engine, dict[str, Any]]:
    table = yaml.safe_load((CASES / "buildkite.tptest.yaml").read_text("utf-8"))
    policy = tppolicy.compile_publishers_text(
        yaml.safe_dump({"publishers": table["publishers"]}), "buildkite.yaml")
    engine = tppolicy.Engine(publishers=table["publishers"], clock=lambda: 0.0)
    return policy, engine, table["claims"]["tag-build"]


def test_a_rule_that_passed_with_the_request_gets_no_fix(
        buildkite: tuple[tppolicy.Policy, tppolicy.Engine, dict[str, Any]]) -> None:
    policy, engine, tag_build = buildkite
    claims = {**tag_build, "build_source": "api"}  # v1.2.3 uploading 1.2.3: the tag's
    request = {"version": "1.2.3"}
    decision = policy.evaluate(claims, explain=True, request=request)
    assert [r.rule for r in decision.failed] == ["build_source"]
    assert sorted(decision_fixes(policy, decision, claims, request=request)) == ["build_source"]
    result = engine.check_claims(claims, request)
    provider = engine.checked_provider("buildkite")
    assert provider is not None and result.decision.record is not None
    fixes = record_fixes(provider, result.decision.record, result.decision, claims,
                         request=request)
    assert [fix.check for fix in fixes] == ["build_source"]


def test_a_rule_that_failed_with_the_request_keeps_its_fix(
        buildkite: tuple[tppolicy.Policy, tppolicy.Engine, dict[str, Any]]) -> None:
    policy, _, tag_build = buildkite
    request = {"version": "1.2.4"}
    decision = policy.evaluate(tag_build, explain=True, request=request)
    assert [r.rule for r in decision.failed] == ["version_tag"]
    fixes = decision_fixes(policy, decision, tag_build, request=request)
    assert fixes["version_tag"].text.startswith(
        "The build is for the tag 'v1.2.3', but the version being uploaded is '1.2.4'")
