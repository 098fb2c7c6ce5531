"""lint's reporting conventions (issue 14): suppression comments, --select / --ignore,
[tool.tppolicy.lint] in pyproject.toml, SARIF partialFingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tppolicy.tools.lint import (
    lint_publishers_text,
    select_findings,
    suppressions,
    to_sarif,
    unknown_selectors,
)

from .conftest import EXAMPLES
from .conftest import run_cli as run

NO_ENVIRONMENT = """\
publishers:
  - name: release{comment}
    provider: github
    projects: [sampleproject]
    repository_owner: Octo-org{owner_comment}
    repository_name: sampleproject
    repository_owner_id: "65"
    workflow_filename: release.yml
"""


def codes(text: str) -> list[str]:
    return [f.code for f in lint_publishers_text(text, "publishers.yaml")]


def test_without_a_comment_both_findings_are_reported() -> None:
    assert codes(NO_ENVIRONMENT.format(comment="", owner_comment="")) == ["TPP001", "TPP008"]


@pytest.mark.parametrize(("comment", "owner_comment", "left"), [
    ("  # tppolicy: ignore[TPP001]", "", ["TPP008"]),
    ("  # tppolicy: ignore[TPP004, TPP001]", "", ["TPP008"]),
    ("  # tppolicy: ignore[tpp001] because: a reason", "", ["TPP008"]),
    ("  # tppolicy: ignore", "", ["TPP008"]),
    ("  # tppolicy: ignore[TPP004]", "", ["TPP001", "TPP008"]),
    ("  # tppolicy:ignore[TPP001]", "  # tppolicy: ignore[TPP008]", []),
    ("", "  # tppolicy: ignore[TPP001]", ["TPP001", "TPP008"]),  # another line's code
])
def test_a_comment_on_the_line_suppresses_its_codes(comment: str, owner_comment: str,
                                                     left: list[str]) -> None:
    assert codes(NO_ENVIRONMENT.format(comment=comment, owner_comment=owner_comment)) == left


def test_a_comment_alone_on_a_line_applies_to_the_next_line() -> None:
    text = NO_ENVIRONMENT.replace("  - name: release{comment}",
                                  "  # tppolicy: ignore[TPP001]\n\n  - name: release")
    assert codes(text.format(owner_comment="")) == ["TPP008"]


def test_a_marker_inside_a_value_is_not_a_comment() -> None:
    assert suppressions(['  - name: "release#tppolicy: ignore"']) == {}
    assert suppressions(["a: b # tppolicy: ignore[TPP001]"]) == {1: frozenset({"TPP001"})}


def test_suppression_in_a_policy_file(tmp_path: Path) -> None:
    from tppolicy.tools.lint import lint_policy_text

    text = (EXAMPLES.parent / "tests" / "fixtures" / "lint" / "edited.tpp").read_text()
    found = lint_policy_text(text, "edited.tpp")
    assert found
    first = found[0]
    lines = text.splitlines()
    lines[first.span.line - 1] += f"  # tppolicy: ignore[{first.code}]"
    again = lint_policy_text("\n".join(lines) + "\n", "edited.tpp")
    assert first not in again
    assert len(again) < len(found)


def test_select_and_ignore() -> None:
    found = lint_publishers_text(NO_ENVIRONMENT.format(comment="", owner_comment=""), "p.yaml")
    assert [f.code for f in select_findings(found, select=["TPP001"])] == ["TPP001"]
    assert [f.code for f in select_findings(found, select=["TPP00"])] == ["TPP001", "TPP008"]
    assert [f.code for f in select_findings(found, ignore=["mixed-case-identity"])] == [
        "TPP001"]
    assert [f.code for f in select_findings(found, select=["TPP"], ignore=["TPP001"])] == [
        "TPP008"]
    assert unknown_selectors(["TPP001", "TPP9", "no-environment", "nope"]) == ["TPP9", "nope"]


@pytest.fixture
def publishers(tmp_path: Path) -> Path:
    path = tmp_path / "publishers.yaml"
    path.write_text(NO_ENVIRONMENT.format(comment="", owner_comment=""))
    return path


def test_cli_select_and_ignore(capsys: pytest.CaptureFixture[str], publishers: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(publishers.parent)
    code, out, _ = run(capsys, "lint", "--ignore", "TPP001", str(publishers))
    assert code == 0 and "TPP001" not in out and "TPP008 note" in out, out
    code, out, _ = run(capsys, "lint", "--select", "TPP008,TPP004", str(publishers))
    assert code == 0 and "TPP001" not in out
    with pytest.raises(SystemExit) as exited:
        run(capsys, "lint", "--select", "TPP999", str(publishers))
    assert exited.value.code == 2
    assert "'TPP999' matches no lint code" in capsys.readouterr().err


def test_config_in_pyproject(capsys: pytest.CaptureFixture[str], publishers: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = publishers.parent
    (root / ".git").mkdir()  # the search stops at the checkout's root
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.tppolicy.lint]\n'
                                         'ignore = ["no-environment"]\n')
    sub = root / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    code, out, _ = run(capsys, "lint", str(publishers))
    assert code == 0 and "TPP001" not in out
    code, out, _ = run(capsys, "lint", "--ignore", "TPP008", str(publishers))
    assert code == 1 and "TPP001" in out  # the command line replaces the config's ignore
    code, out, _ = run(capsys, "lint", "--no-config", str(publishers))
    assert code == 1 and "TPP001" in out


@pytest.mark.parametrize(("table", "message"), [
    ('ignore = "TPP001"', "'ignore' must be a list of codes"),
    ('ignore = ["TPP1000"]', "'TPP1000' matches no code"),
    ('colour = ["red"]', "unknown key 'colour'"),
    ("ignore = [", "invalid TOML"),
])
def test_a_bad_config_is_invalid_input(capsys: pytest.CaptureFixture[str], publishers: Path,
                                       table: str, message: str) -> None:
    config = publishers.parent / "pyproject.toml"
    config.write_text(f"[tool.tppolicy.lint]\n{table}\n")
    code, _, err = run(capsys, "lint", "--config", str(config), str(publishers))
    assert code == 3
    assert message in err and str(config) in err


def test_sarif_partial_fingerprints_survive_moved_lines() -> None:
    text = NO_ENVIRONMENT.format(comment="", owner_comment="")
    moved = "# a comment added above\n\n" + text
    first = to_sarif(lint_publishers_text(text, "p.yaml"), version="0")
    second = to_sarif(lint_publishers_text(moved, "p.yaml"), version="0")

    def prints(log: dict[str, object]) -> list[tuple[str, str, int]]:
        results = log["runs"][0]["results"]  # type: ignore[index]
        return [(r["ruleId"], r["partialFingerprints"]["tppolicyFinding/v1"],
                 r["locations"][0]["physicalLocation"]["region"]["startLine"])
                for r in results]

    a, b = prints(first), prints(second)
    assert [(rule, fp) for rule, fp, _ in a] == [(rule, fp) for rule, fp, _ in b]
    assert [line + 2 for _, _, line in a] == [line for _, _, line in b]
    assert len({fp for _, fp, _ in a}) == len(a)
    json.dumps(first)
