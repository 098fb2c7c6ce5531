"""The README's two set-up commands stay true: CI runs the test command verbatim."""

from __future__ import annotations

import re

from .conftest import ROOT


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_the_two_commands() -> None:
    main_job, tests = _commands()
    assert "examples/run.sh" in main_job
    assert "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = _commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci
