"""A provider file copied under another name and issuer behaves in every tool exactly as the
original, with no Python change (issue 11 item 2): `check`, `explain`, `lint` and
`check-workflow` print the same, once the copy's name and issuer are read back as the
original's."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WORKFLOWS = ROOT / "tests" / "fixtures" / "workflows"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# Names and issuers of the same lengths as the originals: tables keep their columns.
FORGE_ISSUER = "https://token.zz-hubs-ci.example-issuer.org"

GITLAB_PIPELINE = """\
release:
  stage: deploy
  image: python:3.12
  environment: production
  id_tokens:
    PYPI_ID_TOKEN:
      aud: pypi
  script:
    - python -m pip install twine
    - python -m twine upload dist/*
  rules:
    - if: $CI_COMMIT_TAG
"""

GITLAB_PUBLISHER = """\
  - name: gitlab-release
    provider: gitlab
    projects: [sampleproject]
    namespace: octo-group/python
    project: sampleproject
    workflow_filepath: workflows/ci/release.yml
    environment: production
"""

# (original, copy): the copy is the original with these replaced, in this order.
RENAMES = (
    (GITHUB_ISSUER, FORGE_ISSUER),
    ("gitlab.com", "zz-lab.org"),
    ("provider github\n", "provider zz_hub\n"),
    ("provider github {", "provider zz_hub {"),
    ("provider: github\n", "provider: zz_hub\n"),
    ("provider gitlab {", "provider zz_lab {"),
    ("provider: gitlab\n", "provider: zz_lab\n"),
)


def _copy(text: str) -> str:
    for original, copy in RENAMES:
        text = text.replace(original, copy)
    return text


def _back(text: str) -> str:
    """The copy's output read as the original's: its names and issuers put back."""
    for original, copy in (*RENAMES, ("github", "zz_hub"), ("gitlab", "zz_lab")):
        text = text.replace(copy, original)
    return _unhashed(text)


def _unhashed(text: str) -> str:
    """SARIF fingerprints hash what they identify, the provider's name included."""
    return re.sub(r'("tppolicyFinding/v1": )"[0-9a-f]+"', r'\1"..."', text)


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two directories with the same files, the second's renamed; the copied provider
    files in copy/providers/."""
    base = tmp_path_factory.mktemp("copied")
    for side, rename in (("original", lambda t: t), ("copy", _copy)):
        home = base / side
        (home / "claims").mkdir(parents=True)
        (home / "workflows" / "ci").mkdir(parents=True)
        (home / "publishers.yaml").write_text(rename((EXAMPLES / "publishers.yaml").read_text()))
        (home / "workflows" / "publishers.yaml").write_text(
            rename((WORKFLOWS / "publishers.yaml").read_text() + GITLAB_PUBLISHER))
        for file in WORKFLOWS.glob("*.yml"):
            shutil.copy(file, home / "workflows" / file.name)
        (home / "workflows" / "ci" / "release.yml").write_text(GITLAB_PIPELINE)
        for file in EXAMPLES.glob("claims/*.json"):
            if file.name.startswith(("github", "gitlab")):
                (home / "claims" / file.name).write_text(rename(file.read_text()))
        for name, claims in _variants():
            (home / "claims" / name).write_text(rename(json.dumps(claims)))
    providers = base / "copy" / "providers"
    providers.mkdir()
    for name in ("github", "gitlab"):
        text = (ROOT / "policies" / f"{name}.tpp").read_text()
        (providers / f"zz{name}.tpp").write_text(_copy(text))
    return base / "original", base / "copy"


def _variants() -> Iterator[tuple[str, dict[str, object]]]:
    """Denials of every kind the fixes cover, from the example claims."""
    github = json.loads((EXAMPLES / "claims" / "github-release.json").read_text())
    gitlab = json.loads((EXAMPLES / "claims" / "gitlab-release.json").read_text())
    yield "gh-owner-case.json", {**github, "repository_owner": "Octo-Org",
                                 "repository": "Octo-Org/sampleproject"}
    yield "gh-other-workflow.json", {**github, "job_workflow_ref": github["job_workflow_ref"]
                                     .replace("release.yml", "ci.yml")}
    yield "gh-no-environment.json", {k: v for k, v in github.items() if k != "environment"}
    yield "gh-resurrected.json", {**github, "repository_owner_id": "999"}
    yield "gh-empty-repository.json", {**github, "repository": ""}
    yield "gl-other-environment.json", {**gitlab, "environment": "Production"}
    yield "gl-other-project.json", {**gitlab, "project_path": "octo-group/python/other"}
    yield "gl-empty-ref-path.json", {**gitlab, "ref_path": ""}


def _run(capsys: pytest.CaptureFixture[str], home: Path, copy: bool,
         *argv: str) -> tuple[int, str, str]:
    extra = ["--providers", "providers"] if copy else []
    before = Path.cwd()
    os.chdir(home.parent / "copy" if copy else home)
    try:
        return run_cli(capsys, argv[0], *extra, *argv[1:])
    finally:
        os.chdir(before)


def _same(capsys: pytest.CaptureFixture[str], trees: tuple[Path, Path], *argv: str) -> None:
    original, copy = trees
    expected = _run(capsys, original, False, *argv)
    found = _run(capsys, copy, True, *argv)
    assert (found[0], _back(found[1]), _back(found[2])) == (
        expected[0], _unhashed(expected[1]), expected[2])


def _claims_files() -> list[str]:
    names = [f.name for f in EXAMPLES.glob("claims/*.json")
             if f.name.startswith(("github", "gitlab"))]
    return sorted(names) + [name for name, _ in _variants()]


@pytest.mark.parametrize("claims", _claims_files())
@pytest.mark.parametrize("output", ["human", pytest.param("json", marks=pytest.mark.slow)])
def test_check(capsys: pytest.CaptureFixture[str], trees: tuple[Path, Path], claims: str,
               output: str) -> None:
    _same(capsys, trees, "check", "--publishers", "publishers.yaml", "--claims",
          f"claims/{claims}", "--format", output)


@pytest.mark.parametrize("claims", _claims_files())
@pytest.mark.parametrize("output", ["human", pytest.param("json", marks=pytest.mark.slow)])
def test_explain(capsys: pytest.CaptureFixture[str], trees: tuple[Path, Path], claims: str,
                 output: str) -> None:
    _same(capsys, trees, "explain", "--publishers", "publishers.yaml", "--claims",
          f"claims/{claims}", "--format", output)


@pytest.mark.parametrize("output", ["human", "json", "sarif"])
def test_lint(capsys: pytest.CaptureFixture[str], trees: tuple[Path, Path],
              output: str) -> None:
    _same(capsys, trees, "lint", "--format", output, "publishers.yaml",
          "workflows/publishers.yaml")


_DEFAULT_WORKFLOWS = {"workflows/release.yml", "workflows/self-hosted.yml"}


@pytest.mark.parametrize("workflow", [  # two in the default run, all in the slow one
    pytest.param(name, marks=() if name in _DEFAULT_WORKFLOWS else pytest.mark.slow)
    for name in sorted([f"workflows/{f.name}" for f in WORKFLOWS.glob("*.yml")]
                       + ["workflows/ci/release.yml"])])
def test_check_workflow(capsys: pytest.CaptureFixture[str], trees: tuple[Path, Path],
                        workflow: str) -> None:
    _same(capsys, trees, "check-workflow", "--publishers", "workflows/publishers.yaml",
          "--format", "json", workflow)
    _same(capsys, trees, "check-workflow", "--publishers", "workflows/publishers.yaml",
          workflow)


def test_the_copies_are_really_used(capsys: pytest.CaptureFixture[str],
                                    trees: tuple[Path, Path]) -> None:
    code, out, _ = _run(capsys, trees[1], True, "check", "--publishers", "publishers.yaml",
                        "--claims", "claims/github-release.json", "--format", "json")
    assert code == 0 and json.loads(out)["provider"] == "zz_hub"
    code, out, _ = _run(capsys, trees[1], True, "explain", "--publishers", "publishers.yaml",
                        "--claims", "claims/gh-owner-case.json")
    assert "Fix the owner's case" in out and "zz_hub" in out
