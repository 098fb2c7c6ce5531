"""The docs and `--help` name the same options: every option a synopsis in README.md or
docs/*.md shows for a command is one that command accepts, and every option a command's
`--help` offers is named in the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import ROOT, run_cli

COMMANDS = ["check", "compile", "explain", "lint", "fmt", "test", "check-workflow", "decode",
            "providers", "serve"]
SERVE_ACTIONS = [["publishers", "list"], ["publishers", "add"], ["publishers", "remove"],
                 ["publishers", "load"], ["issuers", "list"], ["issuers", "add"], ["schema"]]
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")
# A synopsis: a line starting with `tppolicy COMMAND` (or `$ tppolicy`), with the lines that
# continue it (a trailing backslash, or an indented line starting with "[").
SYNOPSIS = re.compile(r"^[ \t]*(?:\$ )?tppolicy ([a-z-]+)((?:.*\\\n|.*\n(?=[ \t]{10,}\[))*.*)$",
                      re.M)


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> set[str]:
    with pytest.raises(SystemExit) as exited:
        run_cli(capsys, *argv, "--help")
    assert exited.value.code == 0
    return set(OPTION.findall(capsys.readouterr().out)) - {"--help"}


def _docs() -> str:
    return "\n".join((ROOT / name).read_text("utf-8") for name in DOCS)


def test_every_option_a_synopsis_shows_exists(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tppolicy.server")
    accepted = {command: _help(capsys, command) for command in COMMANDS}
    for action in SERVE_ACTIONS:
        accepted["serve"] |= _help(capsys, "serve", "--db", "x.db", *action)
    wrong = []
    for name in DOCS:
        text = (ROOT / name).read_text("utf-8")
        for synopsis in SYNOPSIS.finditer(text):
            command, rest = synopsis.groups()
            line = text.count("\n", 0, synopsis.start()) + 1
            if command not in accepted:
                wrong.append(f"{name}:{line}: no command {command!r}")
                continue
            wrong += [f"{name}:{line}: tppolicy {command} has no {option}"
                      for option in sorted(set(OPTION.findall(rest)) - accepted[command])]
    assert wrong == []


def test_every_option_of_help_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tppolicy.server")
    docs = _docs()
    named = set(OPTION.findall(docs))
    offered = {option for command in COMMANDS for option in _help(capsys, command)}
    for action in SERVE_ACTIONS:
        offered |= _help(capsys, "serve", "--db", "x.db", *action)
    offered -= {"--output"}  # compile's long name of `-o FILE`, which the README shows
    assert "[-o FILE]" in docs
    assert sorted(offered - named) == []


def test_explain_does_not_offer_a_replay_store(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    """explain never uses a token up: its --help does not offer --replay-db (it said "a token
    allowed once is refused the next time"), and giving it is a usage error."""
    assert "--replay-db" not in _help(capsys, "explain")
    examples = ROOT / "examples"
    code, _, err = run_cli(capsys, "explain", "--publishers", str(examples / "publishers.yaml"),
                           "--claims", str(examples / "claims" / "github-release.json"),
                           "--replay-db", str(tmp_path / "used.db"))
    assert code == 2
    assert "--replay-db goes with check" in err
