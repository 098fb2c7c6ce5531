"""`tppolicy.tools.explain`: ranking, rule-by-rule checks, fixes in plain words, disclosure."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

import tppolicy
from tppolicy.tools.explain import Advice, Candidate, advise

from .conftest import EXAMPLES, load_claims

CASES = EXAMPLES.parent / "tests" / "cases"


@pytest.fixture(scope="module")
def gitlab_policy() -> tppolicy.Policy:
    table = yaml.safe_load((CASES / "gitlab.tptest.yaml").read_text())
    text = yaml.safe_dump({"publishers": table["publishers"]}, sort_keys=False)
    return tppolicy.compile_publishers_text(text, issuers=table["issuers"])


def claims(name: str, **changes: Any) -> dict[str, Any]:
    value = load_claims(name)
    for key, new in changes.items():
        if new is None:
            value.pop(key, None)
        else:
            value[key] = new
    return value


def top(advice: Advice) -> Candidate:
    return advice.candidates[0]


def fix_text(candidate: Candidate) -> str:
    return " | ".join(f.text for f in candidate.fixes)


def failing(candidate: Candidate) -> list[str]:
    return [c.name for c in candidate.checks if not c.passed]


# ------------------------------------------------------------------- ranking
def test_allowed_token_ranks_the_chosen_publisher_first(
        example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims("github-release"))
    assert advice.allowed and advice.decision.publisher == "sampleproject-github"
    assert [c.publisher for c in advice.candidates] == ["sampleproject-github",
                                                        "new-plugin-pending"]
    assert top(advice).chosen and top(advice).fixes == ()
    assert all(c.passed for c in top(advice).checks)


def test_every_publisher_of_the_provider_and_no_other(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims("gitlab-release"))
    assert [c.provider for c in advice.candidates] == ["gitlab"]


def test_ranked_by_identity_then_passing_checks(example_policy: tppolicy.Policy) -> None:
    # A token of the plugin's repository: the pending publisher is its identity.
    advice = advise(example_policy, claims("github-pending-plugin", environment="pypi",
                                           event_name="pull_request_target"))
    assert [c.publisher for c in advice.candidates] == ["new-plugin-pending",
                                                        "sampleproject-github"]
    assert failing(top(advice)) == ["event_name"]


def test_checks_have_expected_and_actual(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims("github-wrong-environment"))
    env = next(c for c in top(advice).checks if c.name == "environment")
    assert (env.passed, env.expected, env.actual) == (False, "pypi", "release")
    assert env.expectation == "'pypi' (ignoring case)"
    event = next(c for c in top(advice).checks if c.name == "event_name")
    assert event.expectation == "anything but 'pull_request_target'"
    kinds = [c.kind for c in top(advice).checks]
    assert kinds == ["lookup"] * 4 + ["rule"] * 6


# --------------------------------------------------------------- GitHub fixes
def test_fix_rename_the_environment(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("github-wrong-environment")))
    assert candidate.fixes[0].where == "workflow or publisher"
    assert candidate.fixes[0].text.startswith("Rename the environment: the job ran in "
                                              "'release', the publisher expects 'pypi'.")
    assert candidate.fixes[0].disclosable


def test_fix_missing_environment(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("github-release", environment=None)))
    assert "ran without a deployment environment" in fix_text(candidate)
    assert "Add `environment: pypi` to the publishing job" in fix_text(candidate)


def test_fix_workflow_filename_case(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "github-release",
        job_workflow_ref="octo-org/sampleproject/.github/workflows/Release.yml@refs/tags/v1.2.0")))
    assert [f.where for f in candidate.fixes] == ["publisher"]
    assert fix_text(candidate).startswith("Fix the workflow filename's case: the file is "
                                          "'Release.yml', the publisher says 'release.yml'")


def test_fix_yaml_extension(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "github-release",
        job_workflow_ref="octo-org/sampleproject/.github/workflows/release.yaml@refs/tags/v1.2.0")))
    assert "write workflow_filename: release.yaml" in fix_text(candidate)


def test_fix_another_workflow(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "github-release",
        job_workflow_ref="octo-org/sampleproject/.github/workflows/ci.yml@refs/tags/v1.2.0")))
    assert "The token comes from the workflow 'ci.yml', the publisher is for 'release.yml'" in (
        fix_text(candidate))


def test_fix_reusable_workflow_from_another_repository(
        example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "github-release",
        job_workflow_ref="octo-org/shared/.github/workflows/release.yml@refs/tags/v1.2.0")))
    assert len(candidate.fixes) == 1
    assert "cannot accept a reusable workflow from another repository" in fix_text(candidate)
    assert candidate.fixes[0].disclosable  # the repository identity matches


def test_fix_possible_resurrection(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("github-release",
                                                  repository_owner_id="9999001")))
    assert failing(candidate) == ["lookup.repository_owner_id", "repository_owner_id"]
    assert len(candidate.fixes) == 1
    assert fix_text(candidate).startswith("Possible resurrection: the token's owner is called "
                                          "'octo-org' but its id is '9999001', not '65'")
    assert not candidate.fixes[0].disclosable


def test_fix_another_repository(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "github-release", repository="octo-org/other",
        job_workflow_ref="octo-org/other/.github/workflows/release.yml@refs/tags/v1.2.0")))
    assert len(candidate.fixes) == 1  # job_workflow_ref fails for the same reason
    assert "The token comes from the repository 'octo-org/other'" in fix_text(candidate)


def test_fix_owner_case(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "github-release", repository="Octo-Org/sampleproject", repository_owner="Octo-Org",
        job_workflow_ref="Octo-Org/sampleproject/.github/workflows/release.yml@refs/tags/v1.2.0")))
    assert fix_text(candidate).startswith("Fix the owner's case: GitHub spells it 'Octo-Org'")
    assert len(candidate.fixes) == 1


def test_fix_another_owner(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("github-release", repository_owner="evil-org")))
    assert "The token comes from another owner: 'evil-org'" in fix_text(candidate)


def test_fix_pull_request_target(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("github-pull-request-target")))
    assert fix_text(candidate).startswith("The job was triggered by pull_request_target, "
                                          "which PyPI refuses")
    assert candidate.fixes[0].where == "workflow"


# --------------------------------------------------------------- token fixes
def test_fix_audience_testpypi(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims("github-release", aud="testpypi"))
    assert not advice.allowed
    assert [c.name for c in advice.token_checks if not c.passed] == ["aud"]
    assert "run with --audience testpypi" in advice.token_fixes[0].text
    assert top(advice).fixes == ()  # the publisher itself matches
    allowed = advise(example_policy, claims("github-release", aud="testpypi"),
                     audience="testpypi")
    assert allowed.allowed


def test_fix_audience_other(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims("github-release", aud="https://github.com/octo-org"))
    assert "Request it for 'pypi'" in advice.token_fixes[0].text


def test_fix_github_enterprise_issuer(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims(
        "github-release", iss="https://token.actions.githubusercontent.com/octo-enterprise"))
    assert advice.provider == "github" and advice.provider_guessed
    assert "does not support GitHub Enterprise" in advice.token_fixes[0].text
    assert advice.token_fixes[0].where == "operator"
    assert top(advice).publisher == "sampleproject-github"
    ghes = advise(example_policy, claims("github-release",
                                         iss="https://github.example.com/_services/token"))
    assert "GitHub Enterprise Server" in ghes.token_fixes[0].text


def test_fix_unregistered_gitlab_instance(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims("gitlab-release", iss="https://gitlab.acme.example"))
    assert "--issuer https://gitlab.acme.example=gitlab" in advice.token_fixes[0].text
    assert "lookup.issuer_url" in failing(top(advice))


def test_unknown_issuer_without_a_likely_provider(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, {"iss": "https://example.com", "aud": "pypi"})
    assert advice.provider is None and advice.candidates == ()
    assert "No provider trusts the issuer" in advice.token_fixes[0].text
    no_iss = advise(example_policy, {"aud": "pypi"})
    assert "do not look like the claims of an OIDC token" in no_iss.token_fixes[0].text


def test_fix_missing_claim(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims("github-release", jti=None))
    assert [c.name for c in advice.token_checks if not c.passed] == ["claims.jti"]
    assert "missing claim 'jti'" in advice.token_fixes[0].text


# -------------------------------------------------------- GitLab, Google, ActiveState
def test_fix_gitlab_namespace_case(gitlab_policy: tppolicy.Policy) -> None:
    token = {"iss": "https://gitlab.com", "aud": "pypi", "jti": "x", "sha": "abc",
             "ref_path": "refs/heads/main", "sub": "project_path:maxiv/detector-tools:ref:main",
             "project_path": "maxiv/detector-tools",
             "ci_config_ref_uri": "gitlab.com/maxiv/detector-tools//.gitlab-ci.yml"
                                  "@refs/heads/main"}
    advice = advise(gitlab_policy, token)
    candidate = top(advice)
    assert candidate.publisher == "maxiv"
    assert failing(candidate) == ["ci_config_ref_uri"]
    assert fix_text(candidate).startswith("GitLab namespace case mismatch")
    assert "#18797" in fix_text(candidate)


def test_fix_gitlab_environment_case(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("gitlab-release", environment="Production")))
    assert "GitLab environment names are case-sensitive" in fix_text(candidate)


def test_fix_gitlab_pipeline_file(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "gitlab-release",
        ci_config_ref_uri="gitlab.com/octo-group/python/sampleproject//.gitlab-ci.yml"
                          "@refs/tags/v1.2.0")))
    assert "The pipeline ran from '.gitlab-ci.yml', the publisher is for 'ci/release.yml'" in (
        fix_text(candidate))


def test_fix_gitlab_another_project(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "gitlab-release", project_path="octo-group/python/other",
        sub="project_path:octo-group/python/other:ref_type:tag:ref:v1.2.0")))
    assert "The token comes from the GitLab project 'octo-group/python/other'" in (
        fix_text(candidate))
    assert not candidate.fixes[0].disclosable


def test_fix_google_email_verified(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("google-cloud-build", email_verified=False)))
    assert fix_text(candidate).startswith("The token's email_verified claim is false")
    assert candidate.fixes[0].disclosable


def test_fix_google_recreated_account(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("google-cloud-build", sub="1234")))
    assert "deleted and re-created" in fix_text(candidate)
    assert not candidate.fixes[0].disclosable


def test_fix_activestate(example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("activestate-build", builder="other",
                                                  actor_id="someone")))
    text = fix_text(candidate)
    assert "not 'pypi-publisher'" in text
    assert "another ActiveState user" in text


def test_generic_fix_for_an_unknown_rule(tmp_path: Any) -> None:
    provider = tmp_path / "ci.tpp"
    provider.write_text("""
provider ci {
  issuer "https://ci.example.com"
  claims { required repo, channel: string }
  fields { repo: string  channel: string }
  lookup { key publisher.repo == claims.repo }
  rule repo: claims.repo == publisher.repo
  rule channel: claims.channel == publisher.channel
}
""")
    providers = tppolicy.load_providers([provider])
    policy = tppolicy.compile_publishers_text(
        "publishers: [{provider: ci, projects: [x], repo: r, channel: stable}]",
        providers=providers)
    advice = advise(policy, {"iss": "https://ci.example.com", "aud": "pypi", "repo": "r",
                             "channel": "beta"})
    candidate = top(advice)
    assert fix_text(candidate) == ("channel: token has 'beta', publisher expects 'stable'. "
                                   "Change the publisher or the CI job so that they agree.")
    # without an identity table, the lookup keys are the identity: channel is disclosable
    assert candidate.fixes[0].disclosable


# ---------------------------------------------------------------- disclosure
def test_disclosure_follows_the_identity(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims("github-wrong-environment"))
    first, second = advice.candidates
    assert first.identity_matches
    assert all(c.disclosable for c in first.checks if not c.identity)
    assert not any(c.disclosable for c in first.checks if c.identity)
    # the pending publisher is another repository: nothing about it is disclosable
    assert not second.identity_matches
    assert not any(c.disclosable for c in second.checks)
    assert not any(f.disclosable for f in second.fixes)


def test_fixes_only_for_the_closest(example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims("github-wrong-environment"), fixes_for=1)
    assert advice.candidates[0].fixes and not advice.candidates[1].fixes


def test_json_round_trip(example_policy: tppolicy.Policy) -> None:
    payload = advise(example_policy, claims("github-wrong-environment")).to_json()
    assert json.loads(json.dumps(payload)) == payload
    assert payload["candidates"][0]["rank"] == 1
    assert payload["candidates"][0]["fixes"][0]["check"] == "environment"
    assert payload["decision"]["closest_publisher"] == "sampleproject-github"


def test_never_raises_on_odd_claims(example_policy: tppolicy.Policy) -> None:
    for odd in ({}, {"iss": 5}, {"iss": "https://token.actions.githubusercontent.com"},
                {**load_claims("github-release"), "repository": 7, "job_workflow_ref": None},
                {**load_claims("gitlab-release"), "ci_config_ref_uri": "no-separator"}):
        advice = advise(example_policy, odd)
        assert not advice.allowed


# ------------------------------------------------------------------- tokens
def test_advise_token_verified_fresh_and_refused(example_policy: tppolicy.Policy) -> None:
    from tppolicy.token.keys import KeyCache
    from tppolicy.tools.explain import advise_token

    from .tokens import GITHUB, fresh, jwks, rsa_key

    key = rsa_key()
    keys = KeyCache()
    keys.add_static(GITHUB, jwks(key))
    verifier = tppolicy.Verifier.for_policy(example_policy, keys=keys)
    good = key.sign(fresh(load_claims("github-release")))
    assert advise_token(example_policy, good, verifier).allowed

    expired = key.sign(load_claims("github-wrong-environment"))  # issued in 2025
    advice = advise_token(example_policy, expired, verifier)
    assert not advice.allowed
    assert advice.token_checks[0].name == "token"
    assert "(expired)" in advice.token_checks[0].message
    assert "CI tokens live for minutes" in advice.token_fixes[0].text
    assert top(advice).publisher == "sampleproject-github"  # ranked on the unverified claims
    assert "Rename the environment" in fix_text(top(advice))

    garbage = advise_token(example_policy, "not.a.token", verifier)
    assert not garbage.allowed and garbage.candidates == ()
    assert garbage.decision.reasons[0].rule == "token"


def test_identity_keys_of_another_provider(tmp_path: Any) -> None:
    provider = tmp_path / "ci.tpp"
    provider.write_text("""
provider ci {
  issuer "https://ci.example.com"
  claims { required org, repo, channel: string }
  fields { org: string  repo: string  channel: string }
  lookup {
    identity publisher.org == claims.org
    key publisher.repo == claims.repo
  }
  rule org: claims.org == publisher.org
  rule repo: claims.repo == publisher.repo
  rule channel: claims.channel == publisher.channel
}
""")
    policy = tppolicy.compile_publishers_text(
        "publishers: [{provider: ci, projects: [x], org: o, repo: r, channel: stable}]",
        providers=tppolicy.load_providers([provider]))
    candidate = top(advise(policy, {"iss": "https://ci.example.com", "aud": "pypi",
                                    "org": "o", "repo": "other", "channel": "beta"}))
    rows = {c.name: (c.identity, c.disclosable) for c in candidate.checks}
    assert rows["lookup.org"] == (True, False) and rows["org"] == (True, False)
    # the org (the identity) matches: the repository and channel are disclosable
    assert rows["lookup.repo"] == (False, True) and rows["channel"] == (False, True)


# ------------------------------------- issue 16: the misleading fixes, each corrected
def test_activestate_sub_for_another_project_is_named_as_such(
        example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "activestate-build", sub="org:octo-org:project:other-runtime")))
    assert failing(candidate) == ["sub"]
    assert fix_text(candidate).startswith(
        "The token's sub 'org:octo-org:project:other-runtime' names another organization or "
        "project than its organization and project claims ('octo-org'/'octo-runtime')")


def test_activestate_organisation_mismatch_is_the_organisations(
        example_policy: tppolicy.Policy) -> None:
    advice = advise(example_policy, claims(
        "activestate-build", organization="other-org", sub="org:other-org:project:octo-runtime"))
    assert next(r.rule for r in advice.decision.reasons if not r.passed) == "organization"
    assert fix_text(top(advice)).startswith(
        "The token comes from the ActiveState organization 'other-org', the publisher is for "
        "'octo-org'")


def test_gitlab_sub_for_another_project(gitlab_policy: tppolicy.Policy) -> None:
    table = yaml.safe_load((CASES / "gitlab.tptest.yaml").read_text())
    base = next(iter(table["claims"].values()))
    advice = advise(gitlab_policy, {**base, "sub": "project_path:evil/other:ref_type:tag"})
    candidate = top(advice)
    assert "sub" in failing(candidate)
    assert "names another project than its project_path" in fix_text(candidate)
    assert "The token comes from the GitLab project" not in fix_text(candidate)


def test_an_empty_repository_claim_is_not_another_owner(
        example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("github-release", repository="")))
    text = fix_text(candidate)
    assert text.startswith("The token's repository claim is empty")
    assert "another owner" not in text


def test_a_reusable_workflow_of_the_repository_at_another_ref(
        example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims(
        "github-release", job_workflow_ref="octo-org/sampleproject/.github/workflows/"
                                           "release.yml@refs/heads/main")))
    assert failing(candidate) == ["job_workflow_ref"]
    assert fix_text(candidate).startswith(
        "The job ran 'release.yml' at 'refs/heads/main', but the run is for 'refs/tags/v1.2.0'")
    decision = advise(example_policy, claims(
        "github-release", job_workflow_ref="octo-org/sampleproject/.github/workflows/"
                                           "release.yml@refs/heads/main")).decision
    assert not any("cannot read workflow_filename" in r.message for r in decision.reasons)


def test_gitlab_empty_ref_path_is_not_an_empty_sha(gitlab_policy: tppolicy.Policy) -> None:
    table = yaml.safe_load((CASES / "gitlab.tptest.yaml").read_text())
    base = next(iter(table["claims"].values()))
    advice = advise(gitlab_policy, {**base, "ref_path": ""})
    messages = [r.message for r in advice.decision.reasons if not r.passed]
    assert any("the ref_path claim is empty" in m for m in messages)
    assert not any("sha" in m for m in messages)
    assert "The token's ref_path claim is empty" in fix_text(top(advice))


def test_an_environment_with_a_trailing_blank_is_fixed_in_the_workflow(
        example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("github-release", environment="pypi ")))
    assert [f.where for f in candidate.fixes] == ["workflow"]
    text = fix_text(candidate)
    assert "with blanks around its name" in text
    assert "change the publisher's environment to 'pypi '" not in text


def test_a_google_token_without_sub_has_incomplete_claims(
        example_policy: tppolicy.Policy) -> None:
    candidate = top(advise(example_policy, claims("google-cloud-build", sub=None)))
    text = fix_text(candidate)
    assert text.startswith("The token has no sub, but every Google ID token carries one")
    assert "re-created" not in text


def test_a_token_of_a_provider_the_file_does_not_hold(tmp_path: Any) -> None:
    only_gitlab = tppolicy.compile_publishers_text(
        "publishers: [{provider: gitlab, projects: [x], namespace: grp, project: proj, "
        "workflow_filepath: .gitlab-ci.yml}]")
    advice = advise(only_gitlab, claims("github-release"))
    assert advice.candidates == ()
    assert ("The token comes from github (issuer 'https://token.actions.githubusercontent.com'),"
            " but no publisher of this file is a github publisher: it holds gitlab publishers "
            "only") in advice.token_fixes[-1].text


def test_a_claim_compared_with_a_value_is_described_as_by_its_sides() -> None:
    """`Explainer.describe` of a claim compared with a value (not under lower()) takes a
    short way (`_compared`): the failure `_described` gives by the condition's sides, for
    every operator, values of any type, a claim missing, null, long or of a list, and a
    value that reads claims or cannot be read."""
    from tppolicy.decide.reasons import Explainer
    from tppolicy.language import ast as A
    from tppolicy.language.ops import EvalError

    long = "octo/repo/.github/workflows/release.yml@refs/tags/v1.2.3-and-some-more"
    claims = {"name": "pypi", "count": 3, "flag": True, "null": None, "long": long,
              "items": ["a", "b"], "ref": "refs/tags/v1"}
    values: list[A.Expr] = [
        A.Literal("pypi"), A.Literal("PyPI"), A.Literal(""), A.Literal(3), A.Literal(True),
        A.Literal(None), A.Literal(long.replace("release", "other")), A.Literal(long),
        A.ListExpr((A.Literal("a"), A.Literal("b"))), A.Claim("name"), A.Claim("missing"),
        A.Concat(A.Literal("octo/repo/.github/workflows/release.yml@"), A.Claim("ref")),
        A.Concat(A.Literal("x"), A.Claim("missing")), A.FieldRef("unbound")]
    compared = 0
    for bound_only in (False, True):
        explainer = Explainer(claims, {"count": "int", "flag": "bool"}, bound_only=bound_only)
        for op in ("==", "!=", "<", ">="):
            for name in (*claims, "missing"):
                for value in values:
                    condition = A.Compare(op, A.Claim(name), value)
                    try:
                        reference = explainer._described(condition)
                    except EvalError as exc:
                        with pytest.raises(EvalError) as raised:
                            explainer._compared(condition)
                        assert str(raised.value) == str(exc)
                        continue
                    assert explainer._compared(condition) == reference
                    assert explainer.describe(condition) == reference
                    compared += 1
    assert compared > 400
