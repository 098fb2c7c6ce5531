"""`tppolicy test` on a publishers file reads it once as a stream, holding only the
publishers its cases' decisions read (`claims_selection`) and each publisher's rule
outcomes (the coverage): its report is the one the whole file's policy gives, for files
with many publishers of several providers, unnamed and pending publishers, twins and
errors (which read the file whole)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tppolicy.decide.load import (
    claims_selection,
    compile_publishers_text,
    stream_publishers,
)
from tppolicy.language.providers import load_providers
from tppolicy.limits import NEAR_MISS_SCAN
from tppolicy.tools import testrunner
from tppolicy.tools.testrunner import Report, run_files

from .conftest import EXAMPLES

GITHUB = json.loads((EXAMPLES / "claims" / "github-release.json").read_text())
GITLAB = json.loads((EXAMPLES / "claims" / "gitlab-release.json").read_text())
MANY = 32  # publishers of a provider, past the near-miss scan
assert MANY > NEAR_MISS_SCAN + 1


def github(i: int, *, name: bool = True, pending: bool = False, env: str = "pypi") -> str:
    head = f"  - name: gh-{i}\n" if name else "  -\n"
    project = f"    pending_project: new-{i}\n" if pending else f"    projects: [project-{i}]\n"
    return (head + "    provider: github\n" + project
            + f"    repository_owner: org{i // 5}\n    repository_name: repo{i}\n"
            + f'    repository_owner_id: "{1000 + i // 5}"\n'
            + f"    workflow_filename: release.yml\n    environment: \"{env}\"\n")


def gitlab(i: int) -> str:
    return (f"  - name: gl-{i}\n    provider: gitlab\n    projects: [gl-project-{i}]\n"
            f"    namespace: group{i}\n    project: proj{i}\n"
            "    workflow_filepath: .gitlab-ci.yml\n    environment: pypi\n")


def publishers_text(extra: str = "") -> str:
    parts = ["publishers:\n"]
    for i in range(MANY):
        parts.append(github(i, name=i % 7 != 3, pending=i % 9 == 8, env="" if i % 11 == 5
                            else "pypi"))
        if i < MANY - 5:
            parts.append(gitlab(i))
    return "".join(parts) + extra


def github_claims(i: int, **changes: Any) -> dict[str, Any]:
    owner, repository = f"org{i // 5}", f"org{i // 5}/repo{i}"
    claims = {**GITHUB, "repository": repository, "repository_owner": owner,
              "repository_owner_id": str(1000 + i // 5),
              "sub": f"repo:{repository}:environment:pypi",
              "workflow_ref": f"{repository}/.github/workflows/release.yml@refs/tags/v1.2.0",
              "job_workflow_ref": f"{repository}/.github/workflows/release.yml@refs/tags/v1.2.0"}
    claims.update(changes)
    return claims


def gitlab_claims(i: int) -> dict[str, Any]:
    path = f"group{i}/proj{i}"
    return {**GITLAB, "namespace_path": f"group{i}", "project_path": path, "environment": "pypi",
            "sub": f"project_path:{path}:ref_type:tag:ref:v1.2.0",
            "ci_config_ref_uri": f"gitlab.com/{path}//.gitlab-ci.yml@refs/tags/v1.2.0"}


CLAIMS: dict[str, dict[str, Any]] = {
    "named": github_claims(30),
    "unnamed": github_claims(31),  # i % 7 == 3: no name
    "pending": github_claims(26),  # i % 9 == 8: pending
    "any-environment": github_claims(27, environment="anything"),  # i % 11 == 5
    "other-environment": github_claims(30, environment="staging"),
    "other-workflow": github_claims(
        29, workflow_ref="org5/repo29/.github/workflows/other.yml@refs/tags/v1.2.0",
        job_workflow_ref="org5/repo29/.github/workflows/other.yml@refs/tags/v1.2.0"),
    "unknown-repository": github_claims(10_000),
    "wrong-type": github_claims(30, repository=5, repository_owner=["x"]),
    "gitlab": gitlab_claims(MANY - 6),
    "unknown-issuer": {**GITHUB, "iss": "https://issuer.example"},
}


def table(publishers: str) -> str:
    lines = [f"publishers: {publishers}", "claims:"]
    lines += [f"  {name}: {json.dumps(claims)}" for name, claims in CLAIMS.items()]
    lines.append("cases:")
    for name in CLAIMS:
        lines += [f"  - name: {name}", f"    claims: {name}", "    allowed: true"]
        lines += [f"  - name: {name} with a request", f"    claims: {name}",
                  "    request: {version: 1.0.0}", "    allowed: false", "    fix: x"]
    return "\n".join(lines) + "\n"


def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            publishers: str) -> tuple[Report, Report, list[bool]]:
    """The report streamed, the report of the whole file's policy, and whether each
    publishers file was streamed."""
    (tmp_path / "publishers.yaml").write_text(publishers)
    (tmp_path / "file.tptest.yaml").write_text(table("publishers.yaml"))
    (tmp_path / "again.tptest.yaml").write_text(table("publishers.yaml"))
    inline = "publishers:\n" + publishers.removeprefix("publishers:\n")
    (tmp_path / "inline.tptest.yaml").write_text(table("x").replace(
        "publishers: x\n", inline))
    files = sorted(tmp_path.glob("*.tptest.yaml"))
    return _streamed_and_whole(files, tmp_path, monkeypatch)


def _streamed_and_whole(files: list[Path], root: Path, monkeypatch: pytest.MonkeyPatch
                        ) -> tuple[Report, Report, list[bool]]:
    """`run_files` streaming the publishers files (whether each was: the list), and
    reading them whole."""
    streamed: list[bool] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        policy = stream_publishers(*args, **kwargs)
        streamed.append(policy is not None)
        return policy

    monkeypatch.setattr(testrunner, "stream_publishers", spy)
    report = run_files(files, root=root)
    monkeypatch.setattr(testrunner, "stream_publishers", lambda *a, **k: None)
    whole = run_files(files, root=root)
    return report, whole, streamed


def test_a_streamed_file_reports_as_the_whole_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report, whole, streamed = reports(tmp_path, monkeypatch, publishers_text())
    assert streamed == [True, True, True]
    assert not report.errors
    assert report.to_json() == whole.to_json()
    assert [r.passed for r in report.results] == [r.passed for r in whole.results]
    assert len(report.coverage) > 10 * MANY  # every publisher's rules, not the kept ones'
    assert any(c.passed for c in report.coverage) and any(c.failed for c in report.coverage)
    assert any(c.passed is None or c.failed is None for c in report.coverage)


@pytest.mark.parametrize("extra", [
    # the same identity as gh-2: Policy and Engine refuse it
    github(2).replace("gh-2", "twin"),
    # a pending publisher that would become a twin of gh-1 (another optional constraint)
    github(1, pending=True).replace("gh-1", "future-twin") + "    ref_pattern: refs/tags/*\n",
    # the same lookup key and prefer values, same fields: no twin, the whole file says so
    pytest.param(github(1, pending=True).replace("gh-1", "pending-one"),
                 marks=pytest.mark.slow),
    # an invalid field
    pytest.param("  - name: bad\n    provider: github\n    projects: [bad]\n"
                 "    repository_owner: 'a b'\n"
                 "    repository_name: r\n    workflow_filename: release.yml\n",
                 marks=pytest.mark.slow),
    # not plain: an anchor
    pytest.param("  - &x\n    name: anchored\n    provider: gitlab\n    projects: [anchored]\n"
                 "    namespace: n\n    project: p\n    workflow_filepath: .gitlab-ci.yml\n",
                 marks=pytest.mark.slow),
])
def test_a_file_read_whole_reports_as_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    report, whole, streamed = reports(tmp_path, monkeypatch, publishers_text(extra))
    assert streamed == [False] * len(streamed)
    assert report.to_json() == whole.to_json()
    assert [e.render() for e in report.errors] == [e.render() for e in whole.errors]


def test_token_cases_keep_the_publishers_their_tokens_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from .tokens import GITHUB as ISSUER
    from .tokens import jwks, rsa_key

    key = rsa_key("stream")
    (tmp_path / "keys.json").write_text(json.dumps(jwks(key)))
    (tmp_path / "named.jwt").write_text(key.sign(CLAIMS["named"]))
    (tmp_path / "other.jwt").write_text(key.sign(CLAIMS["other-environment"]))
    (tmp_path / "garbage.jwt").write_text("not a token")
    (tmp_path / "publishers.yaml").write_text(publishers_text())
    (tmp_path / "t.tptest.yaml").write_text(
        f'publishers: publishers.yaml\njwks:\n  "{ISSUER}": keys.json\ncases:\n'
        "  - {token: named.jwt, allowed: true, publisher: gh-30}\n"
        "  - {token: other.jwt, allowed: false, failing: [environment], fix: environment}\n"
        "  - {token: garbage.jwt, allowed: false, failing: [token]}\n")
    report, whole, streamed = _streamed_and_whole([tmp_path / "t.tptest.yaml"], tmp_path,
                                                  monkeypatch)
    assert streamed == [True]
    assert [r.passed for r in report.results] == [True, True, True], report.results
    assert report.to_json() == whole.to_json()


def test_the_kept_publishers_decide_as_the_whole_file() -> None:
    providers = load_providers()
    text = publishers_text()
    whole = compile_publishers_text(text, "p.yaml", providers=providers)
    keep = claims_selection(CLAIMS.values(), providers=providers)
    seen: list[str] = []

    def consume(entry: Any, publisher: Any, publisher_id: str) -> bool:
        seen.append(publisher_id)
        return keep(publisher)

    kept = stream_publishers(text, "p.yaml", consume, providers=providers)
    assert kept is not None
    assert len(seen) == len(whole.publishers) > len(kept.publishers)
    for claims in CLAIMS.values():
        for request in (None, {"version": "1.0.0"}):
            assert kept.evaluate(claims, explain=True, request=request).to_json() == \
                whole.evaluate(claims, explain=True, request=request).to_json()
    # the ids are the whole file's (an unnamed publisher's too)
    ids = {r.id for r in whole.decider.indexes["github"].records()}
    assert {r.id for r in kept.decider.indexes["github"].records()} <= ids


def test_stream_publishers_gives_none_for_a_file_to_read_whole() -> None:
    providers = load_providers()
    twin = publishers_text(github(2).replace("gh-2", "twin"))
    assert stream_publishers(twin, "p.yaml", lambda *a: True, providers=providers) is None
    assert stream_publishers("publishers: [1]\n", "p.yaml", lambda *a: True,
                             providers=providers) is None
    assert stream_publishers(publishers_text(), "p.yaml", lambda *a: True,
                             providers=providers, issuers={"http://x": "github"}) is None


def test_compile_and_check_refuse_a_future_twin_as_the_whole_read_does() -> None:
    """A pending publisher that would become a twin of a normal one: the whole read
    refuses the file; `compile` and `check --publishers` read it as a stream, and exited
    0 (found by the streamed test runner's review). They read it whole now."""
    from tppolicy.decide.load import compile_publishers_blocks, compile_publishers_for_claims
    from tppolicy.errors import TppolicyError

    text = publishers_text(github(1, pending=True).replace("gh-1", "future-twin")
                           + "    ref_pattern: refs/tags/*\n")
    with pytest.raises(TppolicyError) as whole:
        compile_publishers_text(text, "p.yaml")
    with pytest.raises(TppolicyError) as blocks:
        compile_publishers_blocks(text, "p.yaml")
    with pytest.raises(TppolicyError) as for_claims:
        compile_publishers_for_claims(text, "p.yaml", next(iter(CLAIMS.values())))
    assert str(blocks.value) == str(whole.value) == str(for_claims.value)
