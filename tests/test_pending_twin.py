"""A pending publisher that differs from a normal one only in constraints the lookup does
not read would become its twin once its project is created: the lookup would always
choose the normal one, and the new project could not be published after its first
upload. Both fronts refuse it when it is added; the Engine refuses to create its project
(and to convert it) when the normal one came after it. PyPI's reify would attach the new
project to the normal publisher, with that publisher's constraints: not done here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import tppolicy
from tppolicy.cli import main
from tppolicy.decide.engine import INVALID_PUBLISHER, CreateProject, Engine
from tppolicy.errors import ConfigError

from .conftest import load_claims

NORMAL = {"name": "release", "provider": "github", "repository_owner": "octo-org",
          "repository_name": "sampleproject", "repository_owner_id": "65",
          "workflow_filename": "release.yml", "environment": "pypi",
          "projects": ["sampleproject"]}
# the same lookup key and environment, one more constraint (tags only)
PENDING = {**{k: v for k, v in NORMAL.items() if k != "projects"}, "name": "new-plugin",
           "pending_project": "sampleproject-plugin", "ref_pattern": "refs/tags/*"}
TWIN = "new-plugin (pending, for project 'sampleproject-plugin') would become a twin of release"


class Catalog:
    def __init__(self) -> None:
        self.names: set[str] = set()

    def exists(self, name: str) -> bool:
        return name in self.names


def test_the_engine_refuses_a_pending_publisher_added_after_its_twin_to_be() -> None:
    engine = Engine(publishers=[NORMAL])
    with pytest.raises(ConfigError) as info:
        engine.add_publisher(PENDING)
    [problem] = info.value.diagnostics
    assert TWIN in problem.message
    assert "(for 'sampleproject')" in problem.message
    assert "the lookup reads" in (problem.hint or "")
    assert "PyPI would attach the new project to release" in (problem.hint or "")
    assert len(engine) == 1


@pytest.mark.parametrize("rows", [[NORMAL, PENDING], [PENDING, NORMAL]],
                         ids=["normal first", "pending first"])
def test_both_fronts_refuse_such_a_pair_added_together(rows: list[dict[str, Any]]) -> None:
    where = f"publishers[{rows.index(PENDING)}]"
    with pytest.raises(ConfigError) as info:
        Engine(publishers=rows)
    [problem] = info.value.diagnostics
    assert TWIN in problem.message and problem.path == where
    text = yaml.safe_dump({"publishers": rows}, sort_keys=False)
    with pytest.raises(ConfigError) as checked:
        tppolicy.compile_publishers_text(text, "p.yaml")
    [problem] = checked.value.diagnostics
    assert TWIN in problem.message
    line = text.splitlines().index("- name: new-plugin") + 1
    assert problem.span is not None and problem.span.line == line  # the pending one


def test_equal_fields_are_no_twin_conversion_merges() -> None:
    same = {**{k: v for k, v in NORMAL.items() if k != "projects"}, "name": "again",
            "pending_project": "sampleproject-plugin"}
    engine = Engine(publishers=[NORMAL, same])  # added: conversion adds the project
    text = yaml.safe_dump({"publishers": [NORMAL, same]}, sort_keys=False)
    tppolicy.compile_publishers_text(text, "p.yaml")
    result = engine.check_claims(load_claims("github-release"))
    assert result.allowed and result.action is None  # the normal one is chosen


def test_a_normal_publisher_added_after_the_pending_one_fails_closed() -> None:
    catalog = Catalog()
    engine = Engine(publishers=[PENDING], projects=catalog)
    claims = load_claims("github-release")  # a tag: the pending publisher allows it
    first = engine.check_claims(claims)
    assert first.allowed and isinstance(first.action, CreateProject)
    # its owner is not blocked by someone's pending one; it refuses this token (v1.2.0)
    engine.add_publisher({**NORMAL, "ref_pattern": "refs/tags/v9*"})
    result = engine.check_claims(claims)
    assert not result.allowed and result.action is None
    assert result.error == INVALID_PUBLISHER
    [reason] = result.reasons
    assert reason.rule == "pending_project" and "would become a twin of publisher" \
        in reason.message and "release" in reason.message
    # an action handed out before the normal one came: the conversion refuses
    with pytest.raises(ConfigError, match="would become a twin of release"):
        engine.convert_pending(first.action)
    assert engine.get(first.action.pending_id) is not None  # nothing changed
    assert [r.label for r in engine.publishers() if r.pending_project is None] == ["release"]


def _fields(row: dict[str, Any]) -> list[str]:
    return [f"{k}={v}" for k, v in row.items()
            if k not in ("name", "provider", "projects", "pending_project")]


def test_serve_publishers_add_and_load_refuse_it(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "index.db")
    assert main(["serve", "--db", db, "publishers", "add", "github", *_fields(NORMAL),
                 "--project", "sampleproject", "--name", "release"]) == 0
    capsys.readouterr()
    assert main(["serve", "--db", db, "publishers", "add", "github", *_fields(PENDING),
                 "--pending-project", "sampleproject-plugin", "--name", "new-plugin"]) == 3
    assert TWIN in capsys.readouterr().err
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump({"publishers": [PENDING, {**NORMAL, "name": "other",
                                                             "projects": ["other"]}]}))
    fresh = str(tmp_path / "fresh.db")
    assert main(["serve", "--db", fresh, "publishers", "load", str(both)]) == 3
    assert "would become a twin of other" in capsys.readouterr().err
