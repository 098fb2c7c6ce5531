"""The language features behind the optional constraints (docs/constraints.md): request
values, optional rules, field-valued glob patterns and `learn`; the shipped providers'
constraints beyond what the case tables show; and the providers added as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import tppolicy
from tppolicy.errors import ConfigError, PolicyCheckError
from tppolicy.language import ast as A
from tppolicy.language.check import check_provider
from tppolicy.language.interpret import Interpreter
from tppolicy.language.ops import EvalError
from tppolicy.language.parse import parse_policy
from tppolicy.language.printer import format_policy
from tppolicy.language.providers import load_providers
from tppolicy.tools.lint import lint_publishers_text

from .conftest import ROOT, run_cli

CASES = ROOT / "tests" / "cases"

HEADER = '''provider p {
  issuer "https://issuer.example"
  claims {
    required repository: string
    present ref: string
    unchecked workflow_ref: string
  }
  fields {
    repo: string
    ref_pattern: string = ""
    tag: string = ""
    pin: bool = false
  }
  lookup { key publisher.repo == claims.repository }
  rule repository: claims.repository == publisher.repo
'''


def _provider(body: str) -> tppolicy.CheckedProvider:
    text = HEADER + body + "}\n"
    return check_provider(parse_policy(text, "p.tpp").providers[0], text)


def _messages(body: str) -> str:
    with pytest.raises(PolicyCheckError) as info:
        _provider(body)
    return str(info.value)


def _policy(body: str, publishers: str) -> tppolicy.Policy:
    providers = {"p": _provider(body)}
    return tppolicy.compile_publishers_text(publishers, providers=providers)


def _table(name: str) -> dict[str, Any]:
    value: dict[str, Any] = yaml.safe_load((CASES / f"{name}.tptest.yaml").read_text("utf-8"))
    return value


CLAIMS = {"iss": "https://issuer.example", "aud": "pypi", "repository": "octo/repo",
          "ref": "refs/tags/v1.2.3", "workflow_ref": "octo/repo/.github/workflows/r.yml"}


# ---------------------------------------------------------------- request values
def test_request_values_are_typed_and_nullable() -> None:
    _provider('rule tag: publisher.tag == "" or claims.ref == "refs/tags/" + request.version\n')
    message = _messages('rule tag: claims.ref == request.versoin\n'
                        'rule t2: request.version\n')
    assert "unknown request value 'versoin'" in message
    assert "did you mean 'version'?" in message
    assert "a condition must be a boolean, found string or null" in message


def test_a_lookup_cannot_read_request_values() -> None:
    text = HEADER.replace("lookup { key publisher.repo == claims.repository }",
                          "lookup { key publisher.repo == claims.repository + request.version }")
    with pytest.raises(PolicyCheckError) as info:
        check_provider(parse_policy(text + "}\n", "p.tpp").providers[0], text)
    assert "a lookup key cannot read request values" in str(info.value)


def test_a_rule_reading_the_version_decides_with_it() -> None:
    policy = _policy('optional rule tag: publisher.tag == "" or claims.ref == "refs/tags/" + '
                     'replace(publisher.tag, "{version}", request.version)\n',
                     "publishers:\n- {provider: p, projects: [x], repo: octo/repo, "
                     "tag: 'v{version}'}\n")
    assert policy.evaluate(CLAIMS, request={"version": "1.2.3"}).allowed
    denied = policy.evaluate(CLAIMS, request={"version": "1.2.4"}, explain=True)
    assert [r.rule for r in denied.failed] == ["tag"]
    assert "'refs/tags/v1.2.4'" in denied.failed[0].message
    missing = policy.evaluate(CLAIMS, explain=True)
    assert missing.failed[0].message.startswith("the request gives no 'version'")
    assert not policy.evaluate(CLAIMS).allowed


@pytest.mark.parametrize(("request_values", "message"), [
    ({"versoin": "1"}, "unknown request value 'versoin' (known: version)"),
    ({"version": 1}, "request value 'version' is an integer, expected a string"),
    (["version"], "request values must be a mapping, not a list"),
])
def test_bad_request_values_deny(request_values: Any, message: str) -> None:
    policy = tppolicy.compile_publishers_file(ROOT / "examples" / "publishers.yaml")
    claims = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    decision = policy.evaluate(claims, request=request_values)
    assert not decision.allowed
    assert [(r.rule, r.message) for r in decision.failed] == [("request", message)]


def test_request_values_never_look_like_claims() -> None:
    """The request rides under a key that is no string: never a claim, never reported."""
    policy = tppolicy.compile_publishers_file(ROOT / "examples" / "publishers.yaml")
    claims = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    decision = policy.evaluate({**claims, "extra": "x"}, explain=True,
                               request={"version": "1"})
    assert decision.allowed
    assert decision.notes == ("claims unknown to the github provider, ignored: extra",)


# ---------------------------------------------------------------- optional rules
REF_RULE = ('optional rule ref: publisher.ref_pattern == "" '
            'or glob(claims.ref, publisher.ref_pattern)\n')


def test_an_optional_rule_that_is_off_is_left_out() -> None:
    body = REF_RULE
    policy = _policy(body, "publishers:\n- {provider: p, projects: [x], repo: octo/repo}\n"
                           "- {provider: p, projects: [y], repo: octo/other, "
                           "ref_pattern: 'refs/tags/v*'}\n")
    off, on = policy.publishers
    assert [r.name for r in off.rules] == ["repository"]
    assert [r.name for r in on.rules] == ["repository", "ref"]
    assert not on.rules[1].optional  # a rule the publisher uses is one of its rules
    from tppolicy.language.printer import format_publisher

    first, second = (format_publisher(p) for p in policy.to_policy_file().publishers)
    assert "rule ref" not in first
    assert '  rule ref: glob(claims.ref, "refs/tags/v*")' in second


def test_an_optional_rule_must_be_off_by_default() -> None:
    message = _messages('optional rule ref: glob(claims.ref, "refs/tags/v*")\n')
    assert "optional rule 'ref' does not pass for a publisher that leaves its fields at " \
           "their defaults" in message


def test_optional_rules_round_trip() -> None:
    text = HEADER + 'optional rule ref {\n    require publisher.ref_pattern == "" or true\n' \
                    '    require true\n  }\n}\n'
    parsed = parse_policy(text)
    assert parsed.providers[0].rules[1].optional
    printed = format_policy(parsed)
    assert "  optional rule ref {\n" in printed
    assert parse_policy(printed) == parsed


# ------------------------------------------------------ field-valued glob patterns
def test_a_glob_pattern_may_be_a_publisher_field() -> None:
    _provider('rule ref: publisher.ref_pattern == "" or glob(claims.ref, publisher.ref_pattern)\n')
    _provider('rule ref: publisher.tag == "" or glob(claims.ref, "refs/tags/" + publisher.tag)\n')
    message = _messages('rule ref: glob(claims.ref, claims.workflow_ref)\n')
    assert "the pattern of glob() must be a string literal or an expression over publisher " \
           "fields" in message


def test_a_bound_pattern_of_only_stars_is_refused() -> None:
    body = REF_RULE
    with pytest.raises(ConfigError) as info:
        _policy(body, "publishers:\n- {provider: p, projects: [x], repo: a, ref_pattern: '**'}\n")
    assert "rule 'ref': the pattern '**' matches everything" in str(info.value)


def test_a_stream_refuses_a_pattern_of_only_stars_after_many_publishers() -> None:
    """Read as a stream (`tppolicy check`, `lint`), publishers whose optional fields share
    their values are checked once for them (`_shared_tail`): a publisher whose pattern
    binds to only stars, after 300 others and then after one more, is still refused."""
    entries = [f"- {{provider: p, projects: [x{i}], repo: a{i}}}" for i in range(300)]
    for extra in (1, 2):
        bad = [f"- {{provider: p, projects: [y{j}], repo: b{j}, ref_pattern: '**'}}"
               for j in range(extra)]
        text = "publishers:\n" + "\n".join([*entries, *bad]) + "\n"
        with pytest.raises(ConfigError) as info:
            _policy(REF_RULE, text)
        assert "rule 'ref': the pattern '**' matches everything" in str(info.value)
        with pytest.raises(ConfigError, match="matches everything"):
            lint_publishers_text(text, providers={"p": _provider(REF_RULE)})
    _policy(REF_RULE, "publishers:\n" + "\n".join(entries) + "\n")  # valid


@pytest.mark.parametrize("pattern", ["*", "**", "refs/*", "refs/**"])
def test_the_shipped_providers_refuse_patterns_that_match_everything(pattern: str) -> None:
    text = ("publishers:\n- {provider: github, projects: [x], repository_owner: o, "
            f"repository_name: r, repository_owner_id: '1', workflow_filename: r.yml, "
            f"ref_pattern: '{pattern}'}}\n")
    with pytest.raises(ConfigError) as info:
        tppolicy.compile_publishers_text(text)
    assert "publishers[0].ref_pattern" in str(info.value)


def test_a_computed_glob_pattern_of_only_stars_fails_closed() -> None:
    from tppolicy.language.ops import op_glob

    with pytest.raises(EvalError, match="matches everything"):
        op_glob("refs/heads/main", "**")
    assert op_glob("refs/tags/v1", "refs/tags/v*")


# ------------------------------------------------------------------------ learn
def test_learn_reports_what_a_first_use_teaches() -> None:
    body = ('optional rule pin: not publisher.pin or claims.workflow_ref == "x"\n'
            'learn tag: if publisher.tag == "" then claims.workflow_ref else null\n')
    policy = _policy(body, "publishers:\n- {provider: p, projects: [x], repo: octo/repo}\n"
                           "- {provider: p, projects: [y], repo: octo/other, tag: t}\n")
    first, other = policy.publishers
    assert [learn.name for learn in first.learns] == ["tag"]
    assert other.learns == ()  # it folds to null: nothing to learn
    decision = policy.evaluate(CLAIMS)
    assert decision.learned == {"tag": "octo/repo/.github/workflows/r.yml"}
    assert decision.to_json()["learned"] == {"tag": "octo/repo/.github/workflows/r.yml"}
    assert "learned" not in policy.evaluate({**CLAIMS, "repository": "octo/other"}).to_json()
    again = tppolicy.load_policy_text(tppolicy.format_policy(policy),
                                      providers={"p": _provider(body)})
    assert again.evaluate(CLAIMS, explain=True) == policy.evaluate(CLAIMS, explain=True)


def test_learn_is_checked() -> None:
    message = _messages('learn nope: claims.ref\nlearn pin: claims.ref\n'
                        'learn tag: request.version\nlearn tag: claims.ref\n')
    assert "'nope' is not a field" in message
    assert "the learned value of 'pin' is a string, the field is a bool" in message
    assert "a learned value comes from the token: it cannot read request values" in message
    assert "'tag' is learned twice" in message


def test_learn_round_trips_with_comments() -> None:
    from tppolicy.language.parse import parse_policy_outline
    from tppolicy.language.printer import format_policy_with_comments

    text = HEADER + '  # the tag, once\n  learn tag: claims.ref  # first use\n}\n'
    parsed, outline, comments = parse_policy_outline(text)
    printed = format_policy_with_comments(parsed, outline, comments)
    assert "  # the tag, once\n  learn tag: claims.ref  # first use\n" in printed
    assert parse_policy(printed) == parsed


# ---------------------------------------------- compiled code and the interpreter
def _required_and_rules(provider: Any, rules: Any, claims: dict[str, Any]) -> bool:
    interpreter = Interpreter(claims, provider.claim_types)
    try:
        for spec in (*provider.required_claims, *provider.optional_claims):
            value = interpreter.value(A.Claim(spec.name))
            if value is None and spec.category != "optional":
                return False
        return all(interpreter.boolean(req.condition) for rule in rules for req in rule.requires)
    except EvalError:
        return False


CONSTRAINED = {name: _table(name) for name in ("github_constraints", "gitlab_constraints",
                                                "buildkite", "circleci")}
POLICIES = {
    name: tppolicy.compile_publishers_text(
        yaml.safe_dump({"publishers": table["publishers"]}), issuers=table.get("issuers"))
    for name, table in CONSTRAINED.items()}


def test_a_constraint_that_is_off_reads_no_claim_in_the_prologue() -> None:
    """The GitHub template reads the claims of constraints lazily: a publisher that sets
    none pays for none of them (the hot path of PyPI-like publishers)."""
    import dis

    template = load_providers()["github"]
    from tppolicy.language.compile import compile_template

    code = compile_template(template).predicate.__code__
    loaded_first = []  # the prologue ends where the slots are unpacked
    for instruction in dis.get_instructions(code):
        if instruction.opname == "UNPACK_SEQUENCE":
            break
        if instruction.opname == "LOAD_CONST" and isinstance(instruction.argval, str):
            loaded_first.append(instruction.argval)
    for lazy in ("workflow_ref", "runner_environment", "repository_id", "ref_protected"):
        assert lazy not in loaded_first


# ---------------------------------------------------------------- the providers
def _provider_ast(name: str) -> A.Provider:
    """The provider as checked (`extends` resolved)."""
    return load_providers()[name].ast


def test_github_enterprise_keeps_the_github_rules() -> None:
    github, enterprise = _provider_ast("github"), _provider_ast("github_enterprise")
    assert enterprise.issuers == () and enterprise.custom_issuers
    assert enterprise.claims == github.claims
    assert enterprise.ignored_prefixes == github.ignored_prefixes
    assert [f for f in enterprise.fields if f.name != "issuer_url"] == list(github.fields)
    # github's PEP 740 attestation identity is not enterprise's (pypi-attestations'
    # GitHub identity names github.com's issuer): enterprise declares none
    assert [let for let in enterprise.lets if let.name != "attestation_kind"] == \
        [let for let in github.lets if let.name != "attestation_kind"]
    kinds = {let.name: let.value for let in enterprise.lets}
    assert kinds["attestation_kind"] == A.Literal(None)
    assert [i for i in enterprise.lookup
            if i.condition != A.Compare("==", A.FieldRef("issuer_url"), A.Claim("iss"))] \
        == list(github.lookup)
    assert [r for r in enterprise.rules if r.name != "issuer"] == list(github.rules)
    assert enterprise.learns == github.learns


def test_every_shipped_provider_has_a_case_table() -> None:
    tables = {path.name.removesuffix(".tptest.yaml") for path in CASES.glob("*.tptest.yaml")}
    assert {path.stem for path in (ROOT / "policies").glob("*.tpp")} <= tables


def test_enterprise_issuers_must_be_registered() -> None:
    text = ("publishers:\n- {provider: github_enterprise, projects: [x], repository_owner: o, "
            "repository_name: r, repository_owner_id: '1', workflow_filename: r.yml, "
            "issuer_url: 'https://ghe.example/_services/token'}\n")
    with pytest.raises(ConfigError) as info:
        tppolicy.compile_publishers_text(text)
    assert "--issuer https://ghe.example/_services/token=github_enterprise" in str(info.value)
    policy = tppolicy.compile_publishers_text(
        text, issuers={"https://ghe.example/_services/token": "github_enterprise"})
    assert policy.issuers["https://ghe.example/_services/token"] == "github_enterprise"


def test_a_same_repository_reusable_workflow_is_flagged() -> None:
    """reusable_workflow is for another repository's workflow; in the publisher's own, the
    rule folds to false with the fix (and lint reports it: TPP010)."""
    text = ("publishers:\n- {provider: github, projects: [x], repository_owner: octo-org, "
            "repository_name: r, repository_owner_id: '1', workflow_filename: caller.yml, "
            "reusable_workflow: 'octo-org/r/.github/workflows/p.yml@refs/heads/main'}\n")
    [publisher] = tppolicy.compile_publishers_text(text).publishers
    rule = next(r for r in publisher.rules if r.name == "job_workflow_ref")
    [never] = [req for req in rule.requires if req.condition == A.Literal(False)]
    assert never.message is not None and "own repository" in never.message


def test_the_shipped_provider_files_are_formatted_fixed_points() -> None:
    from tppolicy.language.parse import parse_policy_outline
    from tppolicy.language.printer import format_policy_with_comments

    for name in ("github_enterprise", "circleci", "buildkite"):
        path = Path(ROOT / "policies" / f"{name}.tpp")
        parsed, outline, comments = parse_policy_outline(path.read_text("utf-8"), str(path))
        once = format_policy_with_comments(parsed, outline, comments)
        again = format_policy_with_comments(*parse_policy_outline(once))
        assert again == once, name


# ----------------------------------------------------- tppolicy check --upload-version
VERSIONED = """publishers:
  - name: tagged
    provider: github
    projects: [sampleproject]
    repository_owner: octo-org
    repository_name: sampleproject
    repository_owner_id: "65"
    workflow_filename: release.yml
    environment: pypi
    version_tag: v{version}
    trust_on_first_use: true
"""


@pytest.fixture
def tagged_release(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(VERSIONED)
    claims = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    claims.update(ref="refs/tags/v1.2.3", repository_id="74",
                  job_workflow_ref="octo-org/sampleproject/.github/workflows/release.yml"
                                   "@refs/tags/v1.2.3")
    return publishers, claims


def test_check_version_supplies_the_version_uploaded(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        tagged_release: tuple[Path, dict[str, Any]]) -> None:
    publishers, claims = tagged_release
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(claims))
    base = ("check", "--publishers", str(publishers), "--claims", str(claims_file))
    code, out, _ = run_cli(capsys, *base, "--upload-version", "1.2.3")
    assert code == 0
    assert "  learned: repository_id = '74' (trust on first use: pin it in the publisher)" \
        in out.splitlines()
    code, out, _ = run_cli(capsys, *base, "--upload-version", "1.2.4", "--format", "json")
    assert code == 1
    payload = json.loads(out)
    assert [r["rule"] for r in payload["reasons"] if not r["passed"]] == ["version_tag"]
    assert "learned" not in payload
    code, out, _ = run_cli(capsys, *base)
    assert code == 1
    assert "FAIL  version_tag: the request gives no 'version' (the caller supplies it)" in out


def test_check_token_with_the_version(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      tagged_release: tuple[Path, dict[str, Any]]) -> None:
    from .tokens import fresh, jwks, rsa_key

    publishers, claims = tagged_release
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks(rsa_key())))
    token = tmp_path / "token.jwt"
    token.write_text(rsa_key().sign(fresh(claims)))
    base = ("check", "--publishers", str(publishers), "--token", str(token), "--jwks",
            str(keys), "--format", "json")
    code, out, _ = run_cli(capsys, *base, "--upload-version", "1.2.3")
    assert code == 0
    assert json.loads(out)["learned"] == {"repository_id": "74"}
    code, out, _ = run_cli(capsys, *base, "--upload-version", "2.0.0")
    assert code == 1
    first = json.loads(out)["reasons"][0]  # the failing reason comes first
    assert (first["rule"], first["passed"]) == ("version_tag", False)


def test_binding_leaves_out_exactly_the_rules_that_fold_to_true() -> None:
    """bind_rules decides an optional rule is off from its guards alone, and caches: the
    same rules as binding everything and dropping what folds to true."""
    from tests.test_bind import rules_by_requires
    from tppolicy.language.bind import bind_expr, bind_rules

    for policy in POLICIES.values():
        for publisher in policy.publishers:
            provider = publisher.provider
            values = dict(publisher.fields)
            # every require bound, no guard asked: what the guards decide must agree
            expected = rules_by_requires(provider.rules, values, bind_expr)
            assert bind_rules(provider.rules, values) == expected
            # cached rule by rule: bound again, the same rule objects (memos by identity
            # downstream, explanations' and the printer's, find them)
            again = bind_rules(provider.rules, values)
            assert all(a is b for a, b in zip(again, bind_rules(provider.rules, values),
                                              strict=True))


def test_a_pattern_of_only_stars_is_refused_after_many_publishers() -> None:
    """The check of bound glob patterns is kept per the values it reads: a publisher
    whose pattern is refused is found whatever the publishers before it."""
    good = "".join(f"- {{provider: p, projects: [x{i}], repo: octo/r{i}, "
                   f"ref_pattern: '{'refs/tags/v*' if i % 2 else ''}'}}\n" for i in range(6))
    text = "publishers:\n" + good + "- {provider: p, projects: [y], repo: o/y, " \
        "ref_pattern: '**'}\n"
    with pytest.raises(ConfigError) as info:
        _policy(REF_RULE, text)
    assert "rule 'ref': the pattern '**' matches everything" in str(info.value)
    assert ":8:" in str(info.value)  # the last publisher's line
    assert len(_policy(REF_RULE, "publishers:\n" + good + good.replace("x", "z").replace(
        "octo/", "other/")).publishers) == 12
