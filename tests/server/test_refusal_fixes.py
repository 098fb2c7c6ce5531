"""The server's refusals (mint-token) say what to change with the same provider-file fixes
`tppolicy check` prints, within the disclosure rules: only to a token sharing the
publisher's identity, and only the fixes a stranger could not learn anything from."""

from __future__ import annotations

import json
from typing import Any

import tppolicy
from tppolicy.tools.explain import decision_fixes

from .conftest import GH_ROW, TestClient, github_claims
from .test_app import error, mint


def _check_fixes(**changes: Any) -> dict[str, str]:
    """What `tppolicy check` would print as fixes for these claims, against the same row."""
    row = {**GH_ROW, "name": "release", "projects": ["sampleproject", "sample-extras"]}
    policy = tppolicy.compile_publishers_text(json.dumps({"publishers": [row]}))
    claims = github_claims(**changes)
    decision = policy.evaluate(claims, explain=True)
    return {check: fix.text for check, fix in decision_fixes(policy, decision, claims).items()
            if fix.disclosable}


def test_a_near_miss_is_told_the_fix_check_prints(client: TestClient) -> None:
    code, description = error(mint(client, environment="release"))
    assert code == "invalid-publisher"
    fixes = _check_fixes(environment="release")
    assert fixes["environment"].startswith("Rename the environment")
    assert "environment: token has 'release', publisher expects 'pypi'" in description
    assert f"pypi' (ignoring case); fix: {fixes['environment']}" in description


def test_a_stranger_is_told_no_fix(client: TestClient) -> None:
    stranger = error(mint(client, repository="mallory/sampleproject",
                          repository_owner="mallory", repository_owner_id="666"))
    assert stranger == ("invalid-publisher", "valid token, but no corresponding github publisher")
