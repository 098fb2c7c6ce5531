"""Provider knowledge as data: `fix`, `note`, `identity rule`, `exact_case`, `workflows`
in the language (parse, check, print) and what the tools take from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tppolicy
from tppolicy.errors import PolicyCheckError
from tppolicy.language.check import CheckedProvider, check_provider
from tppolicy.language.ops import FUNCTIONS, EvalError, Glob
from tppolicy.language.parse import parse_policy
from tppolicy.language.printer import format_policy
from tppolicy.language.providers import load_providers
from tppolicy.language.texts import empty_claim_text, fix_for, notes_for, parse_text

PROVIDER = """
provider ci {
  issuer "https://ci.example.com"
  workflows github_actions { repository: publisher.org + "/" + publisher.repo file: publisher.repo }
  claims { required org, repo, env: string }
  fields {
    org: string exact_case "the CI spells it in lowercase"
    repo: string
    env: string = ""
  }
  let token_place = claims.org + "/" + claims.repo
  lookup {
    identity publisher.org == claims.org
    key publisher.repo == claims.repo
  }
  note when publisher.env == "" and claims.env != "" "token env {claims.env} is ignored"
  identity rule org {
    require claims.org == publisher.org
    fix publisher when lower(claims.org) == lower(publisher.org) "case: write {claims.org}"
    fix publisher "the token comes from {token_place}, not {publisher.org}"
  }
  rule repo: claims.repo == publisher.repo
  rule env {
    require publisher.env == "" or claims.env == publisher.env
    fix workflow or publisher "set `environment: {publisher.env}` ({{literally}})"
  }
}
"""


def _provider(text: str = PROVIDER) -> CheckedProvider:
    return check_provider(parse_policy(text, "ci.tpp").providers[0], text)


def _errors(text: str) -> list[str]:
    with pytest.raises(PolicyCheckError) as caught:
        _provider(text)
    return [f"{d.message} | {d.hint}" for d in caught.value.diagnostics]


def test_round_trip_of_the_new_items() -> None:
    parsed = parse_policy(PROVIDER)
    printed = format_policy(parsed)
    assert parse_policy(printed) == parsed
    assert format_policy(parse_policy(printed)) == printed
    assert "identity rule org {" in printed
    assert 'fix workflow or publisher "set' in printed
    assert 'exact_case "the CI spells it in lowercase"' in printed
    assert "  workflows github_actions" in printed


def test_checked_provider_holds_the_data() -> None:
    provider = _provider()
    assert provider.identity_rules == frozenset({"org"})
    assert provider.exact_case == {"org": "the CI spells it in lowercase"}
    assert provider.workflows == "github_actions"
    assert set(provider.fixes) == {"org", "env"}
    claims = {"org": "Acme", "repo": "r", "env": "x"}
    fields = {"org": "acme", "repo": "r", "env": "prod"}
    assert fix_for(provider.fixes["org"], claims, provider.claim_types, fields) == (
        "publisher", "case: write Acme")
    other = {**claims, "org": "evil"}
    assert fix_for(provider.fixes["org"], other, provider.claim_types, fields) == (
        "publisher", "the token comes from evil/r, not acme")
    assert fix_for(provider.fixes["env"], claims, provider.claim_types, fields) == (
        "workflow or publisher", "set `environment: prod` ({literally})")
    assert notes_for(provider.notes, claims, provider.claim_types, {**fields, "env": ""}) == (
        "token env x is ignored",)
    assert notes_for(provider.notes, claims, provider.claim_types, fields) == ()


def test_a_fix_that_cannot_be_filled_in_is_skipped() -> None:
    provider = _provider()
    # claims.org is not a string: the condition and the text fail, so no fix is given
    found = fix_for(provider.fixes["org"], {"org": 5, "repo": "r"}, provider.claim_types,
                    {"org": "acme", "repo": "r", "env": ""})
    assert found is None


QUOTING = """
provider ci {
  issuer "https://ci.example.com"
  claims { required org, src: string }
  fields { org: string  sources: string = "" }
  lookup { key publisher.org == claims.org }
  rule src {
    require publisher.sources == "" or claims.src in split(publisher.sources, ",")
    fix publisher when claims.src == "x"
        "unquoted {claims.src}, quoted '{claims.org}'"
    fix workflow or publisher
        "started by '{claims.src}': add '{claims.src}' to sources"
  }
  rule org {
    require claims.org == publisher.org
    fix publisher when claims.org == ""
        "the token's org is empty"
    fix publisher "the token's org is '{claims.org}'"
  }
}
"""


def test_a_fix_quoting_an_empty_claim_is_worded_not_quoted() -> None:
    """"add '' to sources" reads as two quotes: a fix quoting a claim that is empty gives
    way to the next fix (the file's own words for the empty case), and when none is left,
    to words that say the claim is empty."""
    provider = _provider(QUOTING)
    fields = {"org": "acme", "sources": "a,b"}
    fixes = provider.fixes
    assert fix_for(fixes["src"], {"org": "acme", "src": "c"}, provider.claim_types,
                   fields) == ("workflow or publisher", "started by 'c': add 'c' to sources")
    assert fix_for(fixes["src"], {"org": "acme", "src": ""}, provider.claim_types,
                   fields) == ("workflow or publisher", empty_claim_text("src"))
    assert "''" not in empty_claim_text("src")
    # an empty value outside quotes is shown as it is (the text words it)
    assert fix_for(fixes["src"], {"org": "acme", "src": "x"}, provider.claim_types,
                   fields) == ("publisher", "unquoted x, quoted 'acme'")
    assert fix_for(fixes["org"], {"org": "", "src": "a"}, provider.claim_types,
                   fields) == ("publisher", "the token's org is empty")


@pytest.mark.parametrize(("wrong", "expected"), [
    ("{claims.ogr}", "unknown claim 'ogr' | did you mean 'org'?"),
    ("{publisher.rep}", "unknown publisher field 'rep' | did you mean 'repo'?"),
    ("{token_plac}", "'token_plac' is not defined | did you mean 'token_place'?"),
    ("{request.versoin}", "unknown request value 'versoin' | did you mean 'version'?"),
    ("{lower(claims.org)}", "is not a placeholder"),
    ("a lone { brace", "a lone '{'"),
])
def test_placeholders_are_checked(wrong: str, expected: str) -> None:
    text = PROVIDER.replace("case: write {claims.org}", wrong.replace('"', '\\"'))
    assert any(expected in error for error in _errors(text)), _errors(text)


def test_unknown_place_and_workflow_kind() -> None:
    text = PROVIDER.replace("fix workflow or publisher", "fix workflw").replace(
        "workflows github_actions", "workflows github")
    errors = _errors(text)
    assert any("unknown place 'workflw' for a fix | did you mean 'workflow'?" in e for e in errors)
    assert any("unknown workflow kind 'github'" in e for e in errors)


def test_a_fix_in_a_publisher_block_is_refused() -> None:
    text = PROVIDER + """
publisher { provider ci projects ["x"] fields { org = "o" repo = "r" }
  rule org { require claims.org == "o" fix "no" } }
"""
    with pytest.raises(PolicyCheckError) as caught:
        tppolicy.load_policy_text(text, "p.tpp")
    assert "a fix belongs in a provider's rule" in str(caught.value)


def test_parse_text_pieces() -> None:
    assert parse_text("a {claims.x} {{b}} {y}") == [
        "a ", ("claims", "x", 2), " ", "{", "b", "}", " ", (None, "y", 19)]


# ----------------------------------------------------------- shipped provider files
def test_every_shipped_rule_has_a_fix() -> None:
    for provider in load_providers().values():
        for rule in provider.rules:
            assert rule.name in provider.fixes, f"{provider.name}: rule {rule.name} has no fix"


def test_the_environment_note_comes_from_the_provider_file() -> None:
    policy = tppolicy.compile_publishers_text(
        "publishers: [{provider: github, projects: [x], repository_owner: o, "
        "repository_name: r, repository_owner_id: '1', workflow_filename: release.yml}]")
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": "pypi",
              "repository": "o/r", "repository_owner": "o", "repository_owner_id": "1",
              "job_workflow_ref": "o/r/.github/workflows/release.yml@refs/tags/v1",
              "ref": "refs/tags/v1", "sha": "abc", "event_name": "push", "jti": "j",
              "environment": "pypi"}
    decision = policy.evaluate(claims, explain=True)
    assert decision.allowed
    assert decision.notes == ("the token has environment 'pypi' but this publisher accepts "
                              "any environment; name it in the publisher to require it",)


# ----------------------------------------------------------- issue 12, items 10 and 14
def test_lower_folds_ascii_only() -> None:
    lower = FUNCTIONS["lower"][0]
    assert lower("Kube-Release") == "kube-release"
    assert lower("\u212aube-release") == "\u212aube-release"  # Kelvin sign stays
    assert lower("İ") == "İ"


def _reference(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z", re.S)


def test_glob_agrees_with_a_regular_expression() -> None:
    import random

    rng = random.Random(7)
    for _ in range(5000):
        pattern = "".join(rng.choice("ab/*?") for _ in range(rng.randint(0, 9)))
        text = "".join(rng.choice("ab/") for _ in range(rng.randint(0, 9)))
        assert Glob(pattern)(text) == bool(_reference(pattern).match(text)), (pattern, text)


def test_glob_lengths_are_bounded() -> None:
    with pytest.raises(EvalError, match="limited to 1024"):
        Glob("refs/tags/" + "*a" * 600)
    with pytest.raises(EvalError, match="limited to 4096"):
        Glob("refs/*")("refs/" + "a" * 5000)
    # the worst case of the former O(n*m) matcher answers (how fast is for benchmarks/)
    assert Glob("*a" * 500 + "b")("a" * 1000) is False


def test_a_long_ref_pattern_in_a_publisher_is_refused() -> None:
    with pytest.raises(tppolicy.TppolicyError, match="limited to 1024 characters"):
        tppolicy.compile_publishers_text(
            "publishers: [{provider: github, projects: [x], repository_owner: o, "
            "repository_name: r, repository_owner_id: '1', workflow_filename: release.yml, "
            f"ref_pattern: 'refs/tags/{'v*' * 600}'}}]")


# ------------------------------------------------------------------------ extends
def test_github_enterprise_extends_github() -> None:
    providers = load_providers()
    github, enterprise = providers["github"], providers["github_enterprise"]
    assert [r.name for r in enterprise.rules] == [r.name for r in github.rules] + ["issuer"]
    assert list(enterprise.fields) == [*github.fields, "issuer_url"]
    assert enterprise.issuers == () and enterprise.ast.custom_issuers
    assert enterprise.identity_rules == github.identity_rules | {"issuer"}
    assert set(enterprise.fixes) == {*github.fixes, "issuer"}
    assert enterprise.workflows == "github_actions"


def test_extends_in_extra_files_in_any_order(tmp_path: Path) -> None:
    (tmp_path / "a.tpp").write_text(
        'provider child extends parent {\n  issuer "https://c.example.com"\n'
        '  fields { extra: string = "" }\n'
        '  rule repo: claims.repo == publisher.repo and publisher.extra == ""\n}\n')
    (tmp_path / "b.tpp").write_text(PROVIDER.replace("provider ci", "provider parent"))
    providers = load_providers([tmp_path])
    child = providers["child"]
    assert child.issuers == ("https://c.example.com",)
    assert [r.name for r in child.rules] == ["org", "repo", "env"]
    assert "extra" in child.fields and "org" in child.fields


@pytest.mark.parametrize(("text", "message"), [
    ('provider x extends githb { issuer "https://x.example.com" }',
     "extends 'githb', which is not a known provider"),
    ('provider x extends y { issuer "https://x.example.com" }\n'
     'provider y extends x { issuer "https://y.example.com" }', "which extends it in turn"),
])
def test_extends_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "x.tpp").write_text(text)
    with pytest.raises(PolicyCheckError, match=message):
        load_providers([tmp_path])


def test_long_values_are_cut_in_the_middle() -> None:
    from tppolicy.language.texts import render_value

    shown = render_value("a" * 150 + "X" + "b" * 5_000_000)
    assert len(shown) == 203 and shown.startswith("a" * 100) and shown.endswith("b" * 100)
    assert render_value("short") == "short"
