"""The README's two set-up commands stay true: CI runs the test command verbatim, then the
slow group that the default run leaves out. The walk through the examples and the publishers
fields table say what the files hold."""

from __future__ import annotations

import re
import tomllib

import pytest

from .conftest import ROOT, run_cli

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


def test_the_walk_names_the_providers_of_the_example_file() -> None:
    readme = (ROOT / "README.md").read_text()
    sentence = readme.split("`examples/publishers.yaml` holds one publisher for each", 1)[1]
    named = set(re.findall(r"`([a-z_]+)`", sentence.split(", a project", 1)[0]))
    example = (ROOT / "examples" / "publishers.yaml").read_text()
    assert named == set(re.findall(r"^\s+provider: (\S+)$", example, re.M))


def test_the_fields_table_is_each_providers_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """README's "Publishers files" table lists every field of every shipped provider file
    (as `tppolicy providers` prints them), no more."""
    code, out, _ = run_cli(capsys, "providers")
    assert code == 0
    declared = dict(re.findall(r"^(\S+):.*\n  fields: (.*)$", out, re.M))
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| provider | fields", 1)[1].split("\n\n", 1)[0]
    shown = {}
    for row in table.splitlines()[2:]:
        name, fields = re.match(r"\| `(\w+)` \| (.*) \|$", row).groups()  # type: ignore[union-attr]
        shown[name] = set(re.findall(r"`(\w+)`", fields))
        if "the `github` fields" in fields:
            shown[name] = (shown[name] - {"github"}) | set(declared["github"].split(", "))
    assert {name: set(fields.split(", ")) for name, fields in declared.items()} == shown
