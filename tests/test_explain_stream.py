"""`explain` on a publishers file read as a stream (`advise_publishers`): the same Advice as
`advise` on the file's whole policy, and the same output and errors from the command."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tppolicy.cli.explain import render, render_lines
from tppolicy.decide.load import stream_publishers_for_claims
from tppolicy.errors import ConfigError
from tppolicy.tools.explain import advise, advise_publishers

from .conftest import run_cli
from .test_publishers_stream import (
    CASE_IDS,
    CLAIMS_CASES,
    PROVIDERS,
    file_text,
    github_claims,
    whole,
)

CLAIMS = [
    *CLAIMS_CASES[:9],
    github_claims(5, iss="https://unknown.example.com", repository_owner=None),
    CLAIMS_CASES[9],  # a claim of the wrong type
    github_claims(5, aud="testpypi"),
    github_claims(26, event_name="pull_request_target"),
]
IDS = [*CASE_IDS[:9], "unknown-issuer-no-guess", CASE_IDS[9], "audience", "excluded"]


def _claims(claims: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize("count", [  # 330: more than an explainer is kept for
    40, pytest.param(330, marks=pytest.mark.slow)])
@pytest.mark.parametrize("claims", [  # five kinds in the default run, all in the slow one
    pytest.param(claims, id=name, marks=() if position < 5 else pytest.mark.slow)
    for position, (claims, name) in enumerate(zip(CLAIMS, IDS, strict=True))])
def test_streamed_advice_is_the_whole_files(count: int, claims: dict[str, Any]) -> None:
    text = file_text(count)
    reference = whole(text)
    claims = _claims(claims)
    for fixes_for in (0, 3, 40):
        expected = advise(reference, claims, fixes_for=fixes_for)
        streamed = advise_publishers(text, "p.yaml", claims, providers=PROVIDERS,
                                     fixes_for=fixes_for)
        assert streamed == expected
        assert streamed.to_json() == expected.to_json()


def test_streamed_advice_with_a_request_and_another_audience() -> None:
    text = file_text(60)
    reference = whole(text)
    claims = github_claims(27, environment="release", aud="testpypi")
    for request in (None, {"version": "1.0"}):
        expected = advise(reference, claims, audience="testpypi", request=request)
        assert advise_publishers(text, "p.yaml", claims, providers=PROVIDERS,
                                 audience="testpypi", request=request) == expected


def test_a_file_without_the_tokens_provider() -> None:
    text = file_text(0)  # the GitLab publisher only
    claims = github_claims(1, environment="release")
    expected = advise(whole(text), claims)
    assert not expected.candidates and expected.token_fixes  # "no github publisher"
    assert advise_publishers(text, "p.yaml", claims, providers=PROVIDERS) == expected


def test_a_file_that_is_not_plain_is_read_whole() -> None:
    text = file_text(30).replace("environment: pypi", "environment: &env pypi", 1)
    text = text.replace("environment: pypi", "environment: *env")
    assert stream_publishers_for_claims(text, "p.yaml", github_claims(25), lambda p: None,
                                        providers=PROVIDERS) is None
    claims = github_claims(25, environment="release")
    assert advise_publishers(text, "p.yaml", claims, providers=PROVIDERS) == \
        advise(whole(text), claims)


@pytest.mark.parametrize("change", [
    ("name: pub-4\n", "name: pub-2\n"),  # a duplicate name
    ("repository_name: repo3\n", "repository_name: [repo3\n"),  # invalid YAML
    ("environment: pypi\n", "environmnt: pypi\n"),  # an unknown field
], ids=["duplicate-name", "yaml", "field"])
def test_a_file_with_problems_is_reported_as_read_whole(change: tuple[str, str]) -> None:
    text = file_text(30).replace(*change, 1)
    with pytest.raises(ConfigError) as whole_error:
        whole(text)
    with pytest.raises(ConfigError) as streamed_error:
        advise_publishers(text, "p.yaml", github_claims(25), providers=PROVIDERS)
    assert str(streamed_error.value) == str(whole_error.value)


def test_duplicate_identities_are_reported_as_read_whole() -> None:
    text = file_text(6) + file_text(0).split("\n", 2)[2].replace("name: lab", "name: lab2")
    text = text.replace("lab-project", "lab-project-2", 2).replace(
        "lab-project-2", "lab-project", 1)
    with pytest.raises(ConfigError, match="same identity") as whole_error:
        whole(text)
    with pytest.raises(ConfigError) as streamed_error:
        advise_publishers(text, "p.yaml", github_claims(1), providers=PROVIDERS)
    assert str(streamed_error.value) == str(whole_error.value)


def test_render_lines_are_the_rendered_text() -> None:
    text = file_text(40)
    out = io.StringIO()
    for claims in CLAIMS:
        advice = advise(whole(text), _claims(claims))
        for top in (None, 1, 3):
            assert "\n".join(render_lines(advice, out, top=top)) + "\n" == \
                render(advice, out, top=top)


@pytest.mark.parametrize("fmt", ["human", pytest.param("json", marks=pytest.mark.slow)])
def test_explain_command_prints_the_whole_files_advice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    text = file_text(300)
    publishers = tmp_path / "p.yaml"
    publishers.write_text(text)
    claims = github_claims(29, job_workflow_ref="org1/repo9/.github/workflows/x.yml@refs/x")
    (tmp_path / "c.json").write_text(json.dumps(claims))
    code, out, _ = run_cli(capsys, "explain", "--publishers", str(publishers), "--claims",
                           str(tmp_path / "c.json"), "--format", fmt)
    assert code == 1
    advice = advise(whole(text), claims)
    if fmt == "json":
        assert json.loads(out) == json.loads(json.dumps(advice.to_json()))
    else:
        assert out == render(advice, io.StringIO())
        assert out.count("\n") > 3000  # every GitHub publisher, written in batches


def test_explain_command_reports_the_publishers_file_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--jwks with --claims and a bad publishers file: the publishers file's problem is
    reported, as when its policy was read before the options were checked (both files
    bad: tests/test_publishers_stream.py)."""
    publishers = tmp_path / "p.yaml"
    publishers.write_text("publishers:\n- provider: nope\n")
    claims = tmp_path / "c.json"
    claims.write_text("{not json")
    code, _, err = run_cli(capsys, "explain", "--publishers", str(publishers),
                           "--claims", str(claims), "--jwks", "x")
    assert code == 3
    assert "unknown provider 'nope'" in err
    publishers.write_text(file_text(3))
    claims.write_text(json.dumps(github_claims(1)))
    code, _, err = run_cli(capsys, "explain", "--publishers", str(publishers),
                           "--claims", str(claims), "--jwks", "x")
    assert code == 2
    assert "--jwks goes with --token" in err


@pytest.mark.parametrize("top", [None, 1, 2, 1000])
@pytest.mark.parametrize("claims", [
    github_claims(29, job_workflow_ref="org1/repo9/.github/workflows/x.yml@refs/x"),
    github_claims(29, environment='\n  "candidates": [],'),  # the key's line, as a value
    github_claims(5, iss="https://gitlab.com", namespace_path="group"),  # one candidate
    github_claims(5, iss="https://accounts.google.com", email="x@y.z"),  # no candidates
    github_claims(5, iss="https://unknown.example.com", environment="é ✓"),
], ids=["denied", "marker", "gitlab", "none", "unknown-issuer"])
def test_explain_json_is_written_as_json_dumps_writes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], claims: dict[str, Any],
        top: int | None) -> None:
    """Each candidate dumped in turn: the same bytes as the whole payload dumped at once."""
    text = file_text(40)
    publishers = tmp_path / "p.yaml"
    publishers.write_text(text)
    (tmp_path / "c.json").write_text(json.dumps(claims))
    extra = ("--top", str(top)) if top is not None else ()
    _, out, _ = run_cli(capsys, "explain", "--publishers", str(publishers), "--claims",
                        str(tmp_path / "c.json"), "--format", "json", *extra)
    payload = advise(whole(text), claims).to_json()
    payload["candidates"] = payload["candidates"][:top]
    assert out == json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_paints_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colour asked once per report: failed marks red, the chosen green, fixes yellow; none
    with NO_COLOR or off a terminal."""
    text = file_text(40)
    denied = advise(whole(text), github_claims(27, environment="release"))
    allowed = advise(whole(text), github_claims(25))
    monkeypatch.delenv("NO_COLOR", raising=False)
    painted = render(denied, _Terminal()) + render(allowed, _Terminal())
    assert "\x1b[31mFAIL\x1b[0m  environment" in painted
    assert "\x1b[33mfix\x1b[0m (" in painted and "\x1b[32m (chosen)\x1b[0m" in painted
    plain = render(denied, io.StringIO()) + render(allowed, io.StringIO())
    assert "\x1b[" not in plain
    assert painted.replace("\x1b[31m", "").replace("\x1b[32m", "").replace(
        "\x1b[33m", "").replace("\x1b[0m", "") == plain
    monkeypatch.setenv("NO_COLOR", "1")
    assert render(denied, _Terminal()) + render(allowed, _Terminal()) == plain


@pytest.mark.parametrize("claims", [
    pytest.param(claims, id=name, marks=() if position < 2 else pytest.mark.slow)
    for position, (claims, name) in enumerate(zip(CLAIMS[:5], IDS[:5], strict=True))])
def test_what_ranking_keeps_for_a_while_changes_nothing(
        monkeypatch: pytest.MonkeyPatch, claims: dict[str, Any]) -> None:
    """The explainer made anew every few publishers, and the rows kept to be shared, are
    memory bounds only: the Advice is the one made with neither renewed nor forgotten."""
    from tppolicy.tools.explain import _Ranking

    text = file_text(120)
    policy = whole(text)
    monkeypatch.setattr(_Ranking, "_RENEW", 10**9)
    monkeypatch.setattr(_Ranking, "_ROWS", 10**9)
    reference = advise(policy, claims, fixes_for=5)
    monkeypatch.setattr(_Ranking, "_RENEW", 1)
    monkeypatch.setattr(_Ranking, "_ROWS", 1)
    assert advise(policy, claims, fixes_for=5) == reference
    assert advise_publishers(text, "p.yaml", claims, providers=PROVIDERS,
                             fixes_for=5) == reference


@pytest.mark.parametrize("claims", [  # two kinds in the default run, five in the slow one
    pytest.param(claims, id=name, marks=() if position < 2 else pytest.mark.slow)
    for position, (claims, name) in enumerate(zip(CLAIMS[:5], IDS[:5], strict=True))])
def test_ranked_candidates_are_those_made_one_by_one(claims: dict[str, Any]) -> None:
    """The ranking holds its candidates compact (a failed row's message as a shared head
    and its expectation, the expectation as the expected value when it is its `show`):
    each made whole is the candidate `_candidate` makes of its publisher alone."""
    from tppolicy.tools.explain import _candidate

    text = file_text(120)
    policy = whole(text)
    claims = _claims(claims)
    decision = policy.evaluate(claims, explain=True)
    by_label = {p.label: p for p in policy.publishers}
    for advice in (advise(policy, claims, fixes_for=0),
                   advise_publishers(text, "p.yaml", claims, providers=PROVIDERS,
                                     fixes_for=0)):
        assert advice.candidates
        split = 0
        for candidate in advice.candidates:
            alone = _candidate(by_label[candidate.publisher], claims, decision)
            assert candidate == alone
            assert [c.message for c in candidate.checks] == [c.message for c in alone.checks]
            split += sum(", publisher expects " in c.message for c in candidate.checks)
        if not advice.allowed or len(advice.candidates) > 1:
            assert split  # some rows were held split


def test_ranked_candidates_as_a_sequence() -> None:
    """`Advice.candidates` of a ranking: made when read, equal to the tuple of them,
    sliced lazily (`--top`), fixes on the first ones."""
    text = file_text(60)
    claims = github_claims(27, environment="release")
    advice = advise_publishers(text, "p.yaml", claims, providers=PROVIDERS, fixes_for=2)
    candidates = advice.candidates
    made = tuple(candidates)
    assert len(candidates) == len(made) > 3
    assert candidates == made and made == candidates and candidates != made[1:]
    assert candidates[:3] == made[:3] and candidates[-1] == made[-1]
    assert list(candidates[1:4]) == list(made[1:4]) and candidates[5:2] == ()
    assert repr(candidates) == repr(made)
    assert [bool(c.fixes) for c in made[:3]] == [True, True, False]
    assert advice == advise(whole(text), claims, fixes_for=2)


@pytest.mark.parametrize("limit", [1, 1024])
@pytest.mark.parametrize("claims", CLAIMS[:3], ids=IDS[:3])
def test_rows_of_rules_seen_before_are_those_worked_out(
        monkeypatch: pytest.MonkeyPatch, claims: dict[str, Any], limit: int) -> None:
    """A rule's row kept by `_rows` (`rules_seen`: the rules shared by the publishers of
    the same owner, bound once) gives each later publisher the fields it would work out
    itself, whether kept or forgotten at once."""
    from tppolicy.decide.reasons import Explainer
    from tppolicy.tools import explain as E

    monkeypatch.setattr(E, "_RULES_SEEN", limit)
    policy = whole(file_text(120))
    seen: dict[int, Any] = {}
    held: dict[str, tuple[Explainer, frozenset[str], list[Any]]] = {}
    hits = 0
    for publisher in policy.publishers:
        provider = publisher.provider
        if provider.name not in held:
            explainer = Explainer(claims, provider.claim_types, bound_only=True)
            held[provider.name] = (explainer, E.identity_checks(provider),
                                   E._lookups(provider, explainer))
        hits += sum(id(rule) in seen for rule in publisher.rules)
        assert E._rows(publisher, claims, *held[provider.name], seen) == \
            E._rows(publisher, claims)
    assert limit == 1 or hits > 0
