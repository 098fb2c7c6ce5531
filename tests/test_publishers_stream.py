"""Publishers files read as a stream (`iter_plain_publishers`) and `check`'s policy of only
the publishers a decision reads (`compile_publishers_for_claims`): the same entries,
positions, errors and decisions as the file read whole."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from tppolicy.decide.load import compile_publishers_for_claims, compile_publishers_text
from tppolicy.decide.policy import Policy
from tppolicy.decide.publishers import (
    NotPlain,
    iter_plain_publishers,
    load_publishers_text,
)
from tppolicy.errors import ConfigError
from tppolicy.language.providers import load_providers
from tppolicy.readers.yaml import compose_yaml
from tppolicy.tools.explain import advise, decision_fixes
from tppolicy.tools.lint import _yaml_spans

from .conftest import EXAMPLES, run_cli

PROVIDERS = load_providers()
ASTS = {name: provider.ast for name, provider in PROVIDERS.items()}
GITHUB = "https://token.actions.githubusercontent.com"


def github_entry(i: int, *, named: bool = True) -> dict[str, Any]:
    """Three workflows per repository (one identity, three keys), five repositories
    per owner; every seventh unnamed, every eleventh pending."""
    entry: dict[str, Any] = {"name": f"pub-{i}"} if named else {}
    entry["provider"] = "github"
    if i % 11 == 5:
        entry["pending_project"] = f"pending-{i}"
    else:
        entry["projects"] = [f"project-{i}"]
    entry.update({
        "repository_owner": f"org{i // 15}", "repository_name": f"repo{i // 3}",
        "repository_owner_id": str(1000 + i // 15),
        "workflow_filename": f"release{i % 3}.yml", "environment": "pypi"})
    return entry


def file_text(count: int, *, gitlab: bool = True) -> str:
    entries = [github_entry(i, named=i % 7 != 3) for i in range(count)]
    if gitlab:
        entries.append({"name": "lab", "provider": "gitlab", "projects": ["lab-project"],
                        "namespace": "group", "project": "proj",
                        "workflow_filepath": ".gitlab-ci.yml"})
    text = yaml.safe_dump({"publishers": entries}, sort_keys=False)
    return "# generated\n" + text.replace("\n- ", "\n# an entry\n- ")


def github_claims(i: int, **changes: Any) -> dict[str, Any]:
    owner, repository = f"org{i // 15}", f"org{i // 15}/repo{i // 3}"
    ref = "refs/tags/v1"
    claims: dict[str, Any] = {
        "iss": GITHUB, "aud": "pypi", "sub": f"repo:{repository}:environment:pypi",
        "jti": "j", "iat": 1, "nbf": 1, "exp": 4_000_000_000, "repository": repository,
        "repository_owner": owner, "repository_owner_id": str(1000 + i // 15),
        "repository_id": "1", "job_workflow_ref":
            f"{repository}/.github/workflows/release{i % 3}.yml@{ref}",
        "workflow_ref": f"{repository}/.github/workflows/release{i % 3}.yml@{ref}",
        "ref": ref, "sha": "0" * 40, "event_name": "push", "environment": "pypi",
        "ref_type": "tag", "runner_environment": "github-hosted"}
    claims.update(changes)
    return claims


def whole(text: str) -> Policy:
    """The file read whole (the reference)."""
    return compile_publishers_text(text, "p.yaml", providers=PROVIDERS,
                                   document=compose_yaml(text, "p.yaml", ConfigError))


def outcome(policy: Policy, claims: dict[str, Any]) -> tuple[Any, ...]:
    """Everything `tppolicy check` prints from a policy and claims."""
    decision = policy.evaluate(claims, explain=True)
    fixes = {name: fix.text for name, fix in decision_fixes(policy, decision, claims).items()}
    same = []
    if not decision.allowed and decision.closest is not None:
        same = [(c.publisher, [(x.name, x.passed, x.message) for x in c.checks])
                for c in advise(policy, claims, fixes_for=0).candidates  # as check's
                if c.publisher != decision.closest and not c.chosen
                and any(x.identity for x in c.checks)
                and all(x.passed for x in c.checks if x.identity)
                and any(not x.passed for x in c.checks)]
    return decision.to_json(), fixes, same


# --------------------------------------------------------------------- the stream
def test_stream_reads_what_the_whole_reader_reads() -> None:
    text = file_text(60)
    streamed = list(iter_plain_publishers(text, "p.yaml", ASTS, positions=True))
    read = load_publishers_text(text, "p.yaml", ASTS)
    assert streamed == list(read)
    assert [e.span for e in streamed] == [e.span for e in read]
    spans = _yaml_spans(compose_yaml(text, "p.yaml", ConfigError))
    for entry in streamed:
        assert entry.positions is not None
        mine = {(entry.index, *((k,) if isinstance(k, str) else k)): span
                for k, span in entry.positions.items()}
        assert mine == {k: v for k, v in spans.items() if k[0] == entry.index}


def test_stream_reads_the_examples() -> None:
    text = (EXAMPLES / "publishers.yaml").read_text()
    streamed = list(iter_plain_publishers(text, "p.yaml", ASTS))
    assert streamed == list(load_publishers_text(text, "p.yaml", ASTS))


@pytest.mark.parametrize("text", [
    "base: &b {provider: github}\npublishers: []\n",  # another key
    "publishers:\n- &a {name: x, provider: google, projects: [p], email: a@b.c}\n",
    "publishers:\n- !!map {name: x, provider: google, projects: [p], email: a@b.c}\n",
    "publishers:\n- {name: x, provider: google, projects: [p], email: a@b.c, sub: 5}\n",
    "publishers:\n- {name: x, provider: google, projects: [p, P], email: a@b.c}\n",
    "publishers:\n- {name: x, provider: google, projects: [p], email: a@b.c}\n"
    "- {name: x, provider: google, projects: [q], email: d@b.c}\n",
    "publishers:\r\n- {name: x, provider: google, projects: [p], email: a@b.c}\r\n",
    "publishers:\n- {provider: google, projects: [p], email: a@b.c, <<: {name: x}}\n",
    "publishers: [\n",
    "publishers: []\n---\npublishers: []\n",
    "",
])
def test_stream_leaves_the_rest_to_the_whole_reader(text: str) -> None:
    with pytest.raises(NotPlain):
        list(iter_plain_publishers(text, "p.yaml", ASTS))
    try:  # the policy (or the error) is the whole reader's
        expected: Any = whole(text).publishers
    except ConfigError as exc:
        with pytest.raises(ConfigError) as caught:
            compile_publishers_text(text, "p.yaml", providers=PROVIDERS)
        assert caught.value.diagnostics == exc.diagnostics
    else:
        assert compile_publishers_text(text, "p.yaml", providers=PROVIDERS).publishers \
            == expected


def test_duplicate_identities_are_reported_as_when_read_whole() -> None:
    entry = github_entry(1)
    text = yaml.safe_dump({"publishers": [entry, {**entry, "name": "other"}]})
    with pytest.raises(ConfigError) as exc:
        whole(text)
    with pytest.raises(ConfigError) as streamed:
        compile_publishers_for_claims(text, "p.yaml", github_claims(1), providers=PROVIDERS)
    assert streamed.value.diagnostics == exc.value.diagnostics
    assert "same identity" in str(streamed.value)


# ------------------------------------------------ check: the publishers it reads
@functools.cache
def _file_and_reference(count: int) -> tuple[str, Policy]:
    """A file of COUNT publishers and its policy read whole: made once for every claims."""
    text = file_text(count)
    return text, whole(text)


# Claims of every kind of decision on `file_text`'s publishers (explain's tests add more).
CLAIMS_CASES = [
    github_claims(25),  # allowed
    github_claims(28),  # an unnamed publisher
    github_claims(27, environment="release"),  # refused by the publisher the key chose
    github_claims(29, job_workflow_ref="org1/repo9/.github/workflows/other.yml@refs/tags/v1"),
    github_claims(29, repository="org1/nothing", repository_owner_id="9"),  # no identity
    github_claims(5),  # a pending publisher
    github_claims(5, iss="https://gitlab.com", namespace_path="group"),  # few of a provider
    github_claims(5, iss="https://accounts.google.com", email="x@y.z", email_verified=True),
    github_claims(5, iss="https://unknown.example.com"),  # guessed: github's claims
    github_claims(5, repository=5),  # a claim of the wrong type
]
CASE_IDS = ["allowed", "unnamed", "refused", "same-identity", "no-identity", "pending",
            "gitlab", "no-google", "unknown-issuer", "mistyped"]


@pytest.mark.parametrize("count", [40, 330])
@pytest.mark.parametrize("claims", CLAIMS_CASES, ids=CASE_IDS)
def test_check_holds_the_publishers_its_decision_reads(count: int,
                                                      claims: dict[str, Any]) -> None:
    text, reference = _file_and_reference(count)
    policy = compile_publishers_for_claims(text, "p.yaml", claims, providers=PROVIDERS)
    assert outcome(policy, claims) == outcome(reference, claims)
    if count > 300:  # held: the first 201 GitHub publishers, the matches, one GitLab
        assert len(policy.publishers) < 215 < len(reference.publishers)


@pytest.mark.parametrize("command", ["check", "explain"])
def test_the_command_reads_claims_after_the_publishers_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    """Both bad: the publishers file's problem is reported (as before claims were read
    first to choose the publishers; explain streams the file too)."""
    publishers = tmp_path / "p.yaml"
    publishers.write_text("publishers:\n- provider: nope\n")
    claims = tmp_path / "c.json"
    claims.write_text("{not json")
    code, _, err = run_cli(capsys, command, "--publishers", str(publishers),
                           "--claims", str(claims))
    assert code == 3
    assert "unknown provider 'nope'" in err
    publishers.write_text(file_text(3))
    code, _, err = run_cli(capsys, command, "--publishers", str(publishers),
                           "--claims", str(claims))
    assert code == 3
    assert "c.json" in err


def test_check_fields_checks_values_as_bindings_are_checked() -> None:
    """`PublisherStream.check_fields` (lint's stream) checks each value against its
    declaration as `check` checks a binding: once per distinct value, and a value of
    another type, not matching its pattern, too long, or fields not the provider's in
    its order are problems or checked with bindings."""
    from tppolicy.errors import PolicyCheckError
    from tppolicy.language import ast as A
    from tppolicy.language.check import PublisherStream

    stream = PublisherStream("p.yaml", PROVIDERS)
    base = {d.name: (d.default.value if d.default is not None else "")
            for d in PROVIDERS["github"].fields.values()}

    def fields(i: int, **changes: Any) -> dict[str, Any]:
        return {**base, "repository_owner": "octo", "repository_name": f"repo{i}",
                "repository_owner_id": "1", "workflow_filename": "release.yml",
                "environment": "pypi", **changes}

    def check(i: int, values: dict[str, Any]) -> Any:
        return stream.check_fields(A.Publisher(f"p{i}", "github", (f"proj{i}",)), values, i)

    def bound(i: int, values: dict[str, Any]) -> Any:
        return PublisherStream("p.yaml", PROVIDERS).check(A.Publisher(
            f"p{i}", "github", (f"proj{i}",),
            bindings=tuple(A.Binding(k, A.Literal(v)) for k, v in values.items())), i)

    for i in range(3):
        checked = check(i, fields(i))
        reference = bound(i, fields(i))
        assert checked.fields == reference.fields
        assert list(checked.fields) == list(reference.fields)
        assert (checked.key_values, checked.prefer_values, checked.learns) == \
            (reference.key_values, reference.prefer_values, reference.learns)
    wrongs: list[dict[str, Any]] = [{"workflow_filename": "ci/release.yml"},  # pattern
                                    {"repository_owner_id": 1},  # type
                                    {"ref_protected": "yes"},  # type
                                    {"environment": "p" * 2000},  # too long for its pattern
                                    {"repository_owner": "octo org"}]
    for n, wrong in enumerate(wrongs):
        with pytest.raises(PolicyCheckError):
            check(10 + n, fields(10 + n, **wrong))
    reordered = dict(reversed(list(fields(20).items())))
    assert check(20, reordered).fields == fields(20)  # checked with bindings
    with pytest.raises(PolicyCheckError):
        check(21, {**fields(21), "nope": "x"})


def test_check_fields_quick_way_gives_what_the_bindings_give() -> None:
    """`check_fields` of the usual publisher (valid projects, its provider's rules) is
    made without a checker (`PublisherStream._quick`): the same checked publisher as
    `check` with a binding per field, for lookup keys computed from fields (gitlab's
    `lower(...)`), pending publishers, and past the publishers whose learn items and
    prefer values are kept (more than 256 distinct google subs); a bad project name
    or a twin is still a problem."""
    from tppolicy.errors import PolicyCheckError
    from tppolicy.language import ast as A
    from tppolicy.language.check import PublisherStream

    def values(provider: str, **given: Any) -> dict[str, Any]:
        return {name: given.get(name, d.default.value if d.default is not None else "")
                for name, d in PROVIDERS[provider].fields.items()}

    cases: list[tuple[A.Publisher, dict[str, Any]]] = []
    for i in range(300):
        cases.append((A.Publisher(f"g{i}", "google", (f"proj-g{i}",)),
                      values("google", email=f"g{i}@x.iam.gserviceaccount.com",
                             sub=str(10 ** 20 + i))))
    for i in range(3):
        cases.append((A.Publisher(f"l{i}", "gitlab", (f"proj-l{i}",)),
                      values("gitlab", namespace=f"Group{i}/Sub", project=f"Proj{i}",
                             workflow_filepath="ci/release.yml", environment="pypi")))
        cases.append((A.Publisher(f"p{i}", "github", (), f"pending-{i}"),
                      values("github", repository_owner="octo", repository_name=f"r{i}",
                             repository_owner_id="1", workflow_filename="release.yml")))
    stream = PublisherStream("p.yaml", PROVIDERS)
    whole = PublisherStream("p.yaml", PROVIDERS)
    for index, (ast, fields) in enumerate(cases):
        quick = stream.check_fields(ast, fields, index)
        bound = whole.check(A.Publisher(
            ast.name, ast.provider, ast.projects, ast.pending_project,
            tuple(A.Binding(k, A.Literal(v)) for k, v in fields.items())), index)
        assert quick.own_rules is None and bound.own_rules is None
        assert (dict(quick.fields), quick.key_values, quick.prefer_values, quick.learns,
                quick.pending, quick.projects, quick.rules) == \
            (dict(bound.fields), bound.key_values, bound.prefer_values, bound.learns,
             bound.pending, bound.projects, bound.rules)
    github = values("github", repository_owner="octo", repository_name="x",
                    repository_owner_id="1", workflow_filename="release.yml")
    with pytest.raises(PolicyCheckError):
        stream.check_fields(A.Publisher("bad", "github", ("not a name!",)), github, 400)
    with pytest.raises(PolicyCheckError):  # the twin of g0
        stream.check_fields(*cases[0], 401)
