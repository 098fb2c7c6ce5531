"""Characters that make an editor or a review show other text than the parser reads are
refused in policy files wherever they are (comments and strings too): bidirectional
controls ("Trojan Source", CVE-2021-42574: U+202E reorders what a reviewer sees), line
separators shown as line breaks but not counted as lines, C1 controls. They were read
silently: a fix text or a comment could hide what the file says."""

from __future__ import annotations

from pathlib import Path

import pytest

from tppolicy.errors import PolicySyntaxError
from tppolicy.language.parse import parse_policy_fresh, parse_policy_with_comments

from .conftest import ROOT, run_on_provider

GITHUB = (ROOT / "policies/github.tpp").read_text(encoding="utf-8")
# a comment on the line after the provider's opening, then the rest of the file
MARK = "provider github {\n"

CASES = {
    "RLO in a comment": ("  # check the owner \u202e} ;owner\n", "bidirectional control"),
    "RLI in a comment": ("  # \u2067abc\u2069\n", "bidirectional control"),
    "RLM in a comment": ("  # \u200f\n", "bidirectional control"),
    "LINE SEPARATOR": ("  # one\u2028  two\n", "shown as a line break"),
    "NEXT LINE": ("  # one\x85two\n", "shown as a line break"),
    "a C1 control": ("  # \x9b31m\n", "the control character U+009B"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_character_hiding_text_is_refused_where_it_is(case: str) -> None:
    inserted, words = CASES[case]
    assert MARK in GITHUB
    text = GITHUB.replace(MARK, MARK + inserted, 1)
    line = GITHUB[:GITHUB.index(MARK)].count("\n") + 2
    for parse in (parse_policy_fresh, parse_policy_with_comments):
        with pytest.raises(PolicySyntaxError) as caught:
            parse(text, "p.tpp")
        diagnostic = caught.value.diagnostics[0]
        assert words in diagnostic.message, diagnostic.message
        assert diagnostic.span is not None and diagnostic.span.line == line


def test_in_a_string_too() -> None:
    text = GITHUB.replace("GitHub user or organization", "GitHub user\u202e or organization", 1)
    assert text != GITHUB
    with pytest.raises(PolicySyntaxError, match="bidirectional control"):
        parse_policy_fresh(text, "p.tpp")


def test_an_escape_of_one_in_a_string_is_read(tmp_path: Path) -> None:
    text = GITHUB.replace("GitHub user or organization", "GitHub user\\u202e or organization", 1)
    assert [p.name for p in parse_policy_fresh(text, "p.tpp").providers] == ["github"]


@pytest.mark.parametrize("command", ["lint", "fmt", "compile"])
def test_every_tool_exits_3(command: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_on_provider(
        capsys, command, tmp_path, GITHUB.replace(MARK, MARK + CASES["RLO in a comment"][0], 1))
    assert code == 3, (out, err)
    assert "bidirectional control" in err and "internal error" not in err
