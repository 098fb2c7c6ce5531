"""The README's two set-up commands stay true: CI runs the test command verbatim, then the
slow group that the default run leaves out."""

from __future__ import annotations

import re
import tomllib

from .conftest import ROOT

SLOW_RUN = "python3 -m pytest -q -m slow"


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def _ci_lines() -> list[str]:
    return (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_has_the_two_commands() -> None:
    main_job, tests = _commands()
    assert "examples/run.sh" in main_job
    assert "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = _commands()
    assert tests in _ci_lines()


def test_ci_then_runs_the_slow_group() -> None:
    _, tests = _commands()
    lines = _ci_lines()
    assert SLOW_RUN in lines
    assert lines.index(SLOW_RUN) > lines.index(tests)
    readme = (ROOT / "README.md").read_text()
    assert f"`{SLOW_RUN}`" in readme


def test_the_default_run_leaves_out_the_slow_group() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    options = config["ini_options"]
    assert "-m 'not slow'" in options["addopts"]
    assert "--strict-config" in options["addopts"]
    assert options["filterwarnings"][0] == "error"
    assert any(marker.startswith("slow:") for marker in options["markers"])
