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
    # the fix is the list's last clause: its full stop left out before the ")" (not ".)")
    assert fixes["environment"].endswith("to 'release'.")
    assert description.endswith(
        f"pypi' (ignoring case); fix: {fixes['environment'].removesuffix('.')})")


def test_a_stranger_is_told_no_fix(client: TestClient) -> None:
    stranger = error(mint(client, repository="mallory/sampleproject",
                          repository_owner="mallory", repository_owner_id="666"))
    assert stranger == ("invalid-publisher", "valid token, but no corresponding github publisher")


def test_the_owner_in_another_case_is_told_the_case_fix(client: TestClient) -> None:
    # GitHub names ignore case: 'Octo-Org' is the publisher's own owner, spelled as GitHub
    # spells it. PyPI's lookup is exact, so this stays a denial, but the real owner is told
    # what to change (issue 16), as `tppolicy check` says it.
    changes = {"repository": "Octo-Org/sampleproject", "repository_owner": "Octo-Org",
               "job_workflow_ref": "Octo-Org/sampleproject/.github/workflows/release.yml"
                                   "@refs/tags/v1.2.3"}
    code, description = error(mint(client, **changes))
    assert code == "invalid-publisher"
    fixes = _check_fixes(**changes)
    assert fixes["repository"].startswith("Fix the owner's case: GitHub spells it 'Octo-Org'")
    assert description.startswith("valid token, but no corresponding publisher (closest "
                                   "publisher 'release': repository: token has "
                                   "'Octo-Org/sampleproject', publisher expects "
                                   "'octo-org/sampleproject'; fix: "
                                   + fixes["repository"].removesuffix(".") + "; ")
    assert fixes["repository"].endswith(".") and ".;" not in description


def test_a_case_twin_with_another_owner_id_is_told_nothing(client: TestClient) -> None:
    # the same name in another case but another owner id: another account, a stranger
    stranger = error(mint(client, repository="Octo-Org/sampleproject",
                          repository_owner="Octo-Org", repository_owner_id="666"))
    assert stranger == ("invalid-publisher", "valid token, but no corresponding github publisher")


def test_each_publisher_of_the_identity_is_listed(index: Any, client: TestClient) -> None:
    # issue 16: with several publishers for the token's identity, say what each expects
    index.storage.put_publisher("staging", {**GH_ROW, "name": "staging",
                                            "projects": ["sampleproject"],
                                            "workflow_filename": "staging.yml",
                                            "environment": "testpypi"})
    index.storage.put_publisher("other", {**GH_ROW, "name": "other", "projects": ["other"],
                                          "repository_owner": "mallory",
                                          "repository_owner_id": "666"})
    index.sync(force=True)
    code, description = error(mint(client, environment="release"))
    assert code == "invalid-publisher"
    assert description.startswith("valid token, but no corresponding publisher (closest "
                                  "publisher 'release': environment: ")
    assert ("; also for this identity: publisher 'staging': job_workflow_ref: token has "
            in description)
    assert "environment: token has 'release', publisher expects 'testpypi'" in description
    assert "mallory" not in description and "'other'" not in description
