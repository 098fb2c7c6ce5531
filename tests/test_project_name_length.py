"""A project name is PyPI's rule (ASCII letters, digits, '.', '_', '-', a letter or digit
at each end) and at most `MAX_PROJECT_NAME` characters, checked by one function
(`tppolicy.text.project_name_problem`) on every front: the publishers file, a compiled
policy, `Engine.add_publisher`, `serve publishers add` and an upload's `name`. A
300-character name was accepted by all of them, and could never upload a file (a file
name is at most 255 bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tppolicy
from tppolicy.decide.load import load_policy_file
from tppolicy.errors import ConfigError, TppolicyError
from tppolicy.limits import MAX_PROJECT_NAME
from tppolicy.text import project_name_problem

from .conftest import run_cli

LONG = "a" * 300
LONGEST = "b" * MAX_PROJECT_NAME
PUBLISHER = """publishers:
  - provider: github
    projects: [{project}]
    repository_owner: octo-org
    repository_name: sampleproject
    repository_owner_id: "65"
    workflow_filename: release.yml
"""


def test_the_rule() -> None:
    assert project_name_problem("sampleproject") is None
    assert project_name_problem(LONGEST) is None
    assert "at most" in (project_name_problem(LONG) or "")
    assert project_name_problem("-a") is not None and project_name_problem("") is not None
    assert project_name_problem("a\n") is not None  # no `$` accepting a trailing newline
    assert project_name_problem("\u212aelvin") is not None  # no case folding: Kelvin sign
    assert project_name_problem(12) is not None


@pytest.mark.parametrize("name", [LONG, LONGEST])
def test_a_publishers_file(name: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "publishers.yaml"
    path.write_text(PUBLISHER.format(project=name))
    code, _, err = run_cli(capsys, "compile", str(path))
    assert code == (3 if name == LONG else 0), err
    if name == LONG:
        assert f"at most {MAX_PROJECT_NAME} characters" in err


def test_a_compiled_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "publishers.yaml"
    path.write_text(PUBLISHER.format(project=LONGEST))
    code, policy, err = run_cli(capsys, "compile", str(path))
    assert code == 0, err
    compiled = tmp_path / "policy.tpp"
    compiled.write_text(policy.replace(LONGEST, LONG))
    with pytest.raises(TppolicyError, match="at most"):
        load_policy_file(compiled)


def test_engine_add_publisher() -> None:
    engine = tppolicy.Engine()
    row = {"provider": "github", "repository_owner": "octo-org",
           "repository_name": "sampleproject", "repository_owner_id": "65",
           "workflow_filename": "release.yml"}
    with pytest.raises(ConfigError, match="at most"):
        engine.add_publisher({**row, "projects": [LONG]})
    with pytest.raises(ConfigError, match="at most"):
        engine.add_publisher({**row, "pending_project": LONG})
    engine.add_publisher({**row, "projects": [LONGEST]})


def test_serve_publishers_add(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("starlette")
    db = str(tmp_path / "index.db")
    code, _, err = run_cli(capsys, "serve", "--db", db, "publishers", "add", "github",
                           "repository_owner=octo-org", "repository_name=sampleproject",
                           "repository_owner_id=65", "workflow_filename=release.yml",
                           "--project", LONG)
    assert code == 3, err
    assert "at most" in err
    code, out, _ = run_cli(capsys, "serve", "--db", db, "publishers", "list")
    assert code == 0 and LONG not in out


@pytest.mark.parametrize("projects", [["p", "p"], ["Sample_Project", "sample-project"]])
def test_a_project_given_twice(projects: list[str], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """`serve publishers add --project Sample_Project --project sample-project` (and
    `Engine.add_publisher`) stored both, one project under two spellings; a publishers
    file already refused it."""
    pytest.importorskip("starlette")
    db = str(tmp_path / "index.db")
    argv = ["serve", "--db", db, "publishers", "add", "github", "repository_owner=octo-org",
            "repository_name=sampleproject", "repository_owner_id=65",
            "workflow_filename=release.yml"]
    for project in projects:
        argv += ["--project", project]
    code, _, err = run_cli(capsys, *argv)
    assert code == 3, err
    assert "duplicate project" in err
    code, out, _ = run_cli(capsys, "serve", "--db", db, "publishers", "list")
    assert code == 0 and out == ""
