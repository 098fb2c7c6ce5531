"""`tppolicy fmt` as a user runs it, colour, and the pre-commit hooks."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tppolicy.cli import main
from tppolicy.cli._style import colour_enabled, style
from tppolicy.tools import fmt as _fmt

from .conftest import EXAMPLES, ROOT

MESSY = 'provider p {issuer "x"   # the issuer\n}\n'
TIDY = 'provider p {\n  issuer "x"  # the issuer\n}\n'
MESSY_YAML = "publishers:\n  - provider: google\n    email: 'a@b.example'\n    name: n\n"
TIDY_YAML = "publishers:\n  - name: n\n    provider: google\n    email: a@b.example\n"
ESCAPE = "\x1b["


class Terminal(io.StringIO):
    """Standard output as a terminal."""

    def isatty(self) -> bool:
        return True


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["fmt", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    messy = tmp_path / "messy.tpp"
    messy.write_text(MESSY)
    tidy = tmp_path / "tidy.tpp"
    tidy.write_text(TIDY)
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(MESSY_YAML)
    return messy, tidy, publishers


# -------------------------------------------------------------------- in place
def test_formats_in_place(capsys: pytest.CaptureFixture[str],
                          files: tuple[Path, Path, Path]) -> None:
    messy, tidy, publishers = files
    code, out, err = run(capsys, messy, tidy, publishers)
    assert code == 0
    assert out == ""
    assert messy.read_text() == TIDY
    assert tidy.read_text() == TIDY
    assert publishers.read_text() == TIDY_YAML
    assert f"reformatted {messy}" in err
    assert "2 files reformatted, 1 file already formatted" in err
    code, _, err = run(capsys, messy, tidy, publishers)
    assert code == 0
    assert "3 files already formatted" in err


def test_folder(capsys: pytest.CaptureFixture[str], files: tuple[Path, Path, Path]) -> None:
    messy, _, publishers = files
    (messy.parent / "workflow.yaml").write_text("on: push\n")  # not a publishers file
    code, _, _ = run(capsys, messy.parent)
    assert code == 0
    assert messy.read_text() == TIDY
    assert publishers.read_text() == TIDY_YAML
    assert (messy.parent / "workflow.yaml").read_text() == "on: push\n"


# ---------------------------------------------------------------- check and diff
def test_check_fails_and_shows_the_diff(capsys: pytest.CaptureFixture[str],
                                        files: tuple[Path, Path, Path]) -> None:
    messy, tidy, _ = files
    code, out, err = run(capsys, "--check", messy, tidy)
    assert code == 1
    assert messy.read_text() == MESSY
    assert out.startswith(f"--- {messy} (original)\n+++ {messy} (formatted)\n@@ ")
    assert '-provider p {issuer "x"   # the issuer\n' in out
    assert '+  issuer "x"  # the issuer\n' in out
    assert str(tidy) not in out
    assert ESCAPE not in out  # not a terminal
    assert "1 file would be reformatted, 1 file already formatted" in err


def test_check_passes_on_formatted_files(capsys: pytest.CaptureFixture[str],
                                         files: tuple[Path, Path, Path]) -> None:
    _, tidy, _ = files
    code, out, _ = run(capsys, "--check", tidy, EXAMPLES / "publishers.yaml")
    assert (code, out) == (0, "")


def test_diff_prints_and_exits_0(capsys: pytest.CaptureFixture[str],
                                 files: tuple[Path, Path, Path]) -> None:
    messy, _, publishers = files
    code, out, _ = run(capsys, "--diff", messy, publishers)
    assert code == 0
    assert f"+++ {messy} (formatted)" in out
    assert "+    email: a@b.example\n" in out
    assert messy.read_text() == MESSY
    assert publishers.read_text() == MESSY_YAML


# ------------------------------------------------------------------------ errors
def test_parse_error_exits_3_and_the_others_are_processed(
        capsys: pytest.CaptureFixture[str], files: tuple[Path, Path, Path]) -> None:
    messy, _, _ = files
    bad = messy.parent / "bad.tpp"
    bad.write_text("provider p {\n  issuer 42\n}\n")
    code, _, err = run(capsys, bad, messy)
    assert code == 3
    assert f"{bad}:2:10: syntax error: unexpected '42'" in err
    assert messy.read_text() == TIDY
    assert "1 file reformatted, 1 file could not be formatted" in err


def test_check_exits_with_the_worst_status(capsys: pytest.CaptureFixture[str],
                                           files: tuple[Path, Path, Path]) -> None:
    messy, _, _ = files
    bad = messy.parent / "publishers-bad.yaml"
    bad.write_text("publishers:\n  - name: [a\n")
    code, out, err = run(capsys, "--check", messy, bad)
    assert code == 3
    assert f"+++ {messy} (formatted)" in out
    assert f"{bad}:3:1: invalid YAML" in err


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.tpp", None, "cannot read"),
    ("notes.txt", "x", "not a policy or publishers file"),
    ("ci.yaml", "on: push\n", "not a publishers file"),
])
def test_bad_files_exit_3(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str,
                          content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    code, _, err = run(capsys, path)
    assert code == 3
    assert err.startswith(str(path))
    assert message in err
    assert "Traceback" not in err


def test_an_anchored_empty_list_item_exits_3_with_the_error_check_gives(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # It exited 4 ("internal error"): a flow list can only write the empty item as `null`,
    # which changes its error. The file is invalid, so it is refused as such.
    text = "publishers:\n  - provider: github\n    projects:\n      - &y\n      - a\n"
    path = tmp_path / "p.yaml"
    path.write_text(text)
    code, out, err = run(capsys, "--check", path)
    assert code == 3
    assert out == ""
    assert f"{path}:4:9: publishers[0].projects[0]: expected a string, found nothing" in err
    assert "internal error" not in err and "Traceback" not in err
    assert path.read_text() == text


EMPTY_FIRST = "publishers:  # c\n- {}\n- provider: github\n  name: pub-1\n"


def test_an_empty_first_entry_after_a_comment_is_formatted(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # It exited 4 ("not valid YAML"): ruamel.yaml wrote the entry after `- {}` on one line,
    # `- provider: github name: pub-1`. The file is invalid (an empty entry), and formatted.
    path = tmp_path / "p.yaml"
    path.write_text(EMPTY_FIRST)
    code, out, err = run(capsys, path)
    assert code == 0, err
    assert "internal error" not in err and "Traceback" not in err
    assert "not a valid publishers file" in err + out
    assert path.read_text() == (
        "publishers:  # c\n  - {}\n  - name: pub-1\n    provider: github\n")
    code, _, err = run(capsys, "--check", path)
    assert code == 0, err


def test_an_unwritable_layout_of_an_invalid_file_exits_3_with_check_errors(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # ruamel.yaml's own emitter writes this file as text that is not YAML: the file is
    # invalid, so it is refused with the errors check gives (exit 3), not as a bug (4).
    from ruamel.yaml.emitter import Emitter

    monkeypatch.setattr(_fmt, "_Emitter", Emitter)
    path = tmp_path / "p.yaml"
    path.write_text(EMPTY_FIRST)
    code, out, err = run(capsys, path)
    assert code == 3, err
    assert out == ""
    assert f"{path}:2:3: publishers[0]" in err, err
    assert "internal error" not in err and "Traceback" not in err
    assert path.read_text() == EMPTY_FIRST


def test_a_meaning_change_is_refused_with_exit_4(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        files: tuple[Path, Path, Path]) -> None:
    messy, _, _ = files
    monkeypatch.setattr(_fmt, "format_policy_with_comments", lambda *args: "provider q {}\n")
    code, _, err = run(capsys, messy)
    assert code == 4
    assert "internal error" in err and "left as it is" in err
    assert messy.read_text() == MESSY


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fmt"])
    assert exited.value.code == 2
    assert "FILE" in capsys.readouterr().err


# ------------------------------------------------------------------------ colour
def test_style() -> None:
    terminal = Terminal()
    assert style("x", "red", terminal) == "\x1b[31mx\x1b[0m"
    assert style("x", "green", terminal) == "\x1b[32mx\x1b[0m"
    assert style("", "red", terminal) == ""
    assert style("x", "red", io.StringIO()) == "x"
    with pytest.raises(ValueError, match="unknown colour"):
        style("x", "mauve", terminal)


def test_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_enabled(Terminal())
    assert style("x", "red", Terminal()) == "x"
    monkeypatch.setenv("NO_COLOR", "")  # https://no-color.org: an empty value does not count
    assert colour_enabled(Terminal())
    monkeypatch.delenv("NO_COLOR")
    assert colour_enabled(Terminal())


def test_check_diff_is_coloured_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                              files: tuple[Path, Path, Path]) -> None:
    messy, _, _ = files
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["fmt", "--check", str(messy)]) == 1
    out = terminal.getvalue()
    assert '\x1b[31m-provider p {issuer "x"   # the issuer\x1b[0m' in out
    assert '\x1b[32m+  issuer "x"  # the issuer\x1b[0m' in out

    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    monkeypatch.setattr(sys, "stdout", plain)
    assert main(["fmt", "--check", str(messy)]) == 1
    assert ESCAPE not in plain.getvalue()
    assert '-provider p {issuer "x"   # the issuer\n' in plain.getvalue()


def test_console_script(tmp_path: Path) -> None:
    script = shutil.which("tppolicy")
    if script is None:
        pytest.skip("the tppolicy console script is not installed (pip install -e .)")
    path = tmp_path / "messy.tpp"
    path.write_text(MESSY)
    done = subprocess.run([script, "fmt", "--check", str(path)], capture_output=True,
                          text=True, check=False, env={**os.environ, "NO_COLOR": ""})
    assert done.returncode == 1
    assert f"+++ {path} (formatted)" in done.stdout
    assert ESCAPE not in done.stdout  # a pipe, not a terminal


# ----------------------------------------------------------------- pre-commit hooks
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def hooks() -> dict[str, dict[str, object]]:
    loaded = yaml.safe_load(HOOKS.read_text("utf-8"))
    assert isinstance(loaded, list)
    return {hook["id"]: hook for hook in loaded}


def test_hooks_file() -> None:
    found = hooks()
    assert set(found) == {"tppolicy-fmt", "tppolicy-lint", "tppolicy-test"}
    for hook in found.values():
        assert set(hook) >= {"id", "name", "entry", "language"}
        assert hook["language"] == "python"
        assert str(hook["entry"]).split()[0] == "tppolicy"
    assert found["tppolicy-fmt"]["entry"] == "tppolicy fmt --check"
    assert found["tppolicy-lint"]["entry"] == "tppolicy lint"
    assert found["tppolicy-test"]["entry"] == "tppolicy test"
    assert found["tppolicy-fmt"].get("pass_filenames", True) is True
    assert found["tppolicy-lint"].get("pass_filenames", True) is True
    assert found["tppolicy-test"]["pass_filenames"] is False


@pytest.mark.parametrize(("path", "matched"), [
    ("policies/github.tpp", True),
    ("publishers.yaml", True),
    ("config/trusted-publishers.yml", True),
    ("examples/publishers.yaml", True),
    (".github/workflows/release.yml", False),
    ("publishers/README.md", False),
    ("policy.tpp.bak", False),
    ("examples/publishers.tptest.yaml", False),  # a policy test file, not a publishers file
    ("tests/publishers.tptest.yml", False),
])
def test_hook_file_patterns(path: str, matched: bool) -> None:
    for hook_id in ("tppolicy-fmt", "tppolicy-lint"):
        pattern = str(hooks()[hook_id]["files"])
        exclude = str(hooks()[hook_id].get("exclude", "^$"))
        assert (bool(re.search(pattern, path)) and not re.search(exclude, path)) is matched


def test_hook_entries_are_subcommands() -> None:
    from tppolicy.cli import COMMANDS

    names = {command.NAME for command in COMMANDS}
    assert "fmt" in names
    for hook in hooks().values():
        name = str(hook["entry"]).split()[1]
        if name not in names:
            pytest.skip(f"`tppolicy {name}` is not registered yet")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid"})


@pytest.mark.slow
def test_pre_commit_try_repo(tmp_path: Path) -> None:
    pre_commit = shutil.which("pre-commit")
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (pip install -e '.[dev]')")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    hooks_repo = _hooks_repo(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    (project / "policy.tpp").write_text(MESSY)
    (project / "publishers.yaml").write_text(TIDY_YAML)
    _git(project, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "NO_COLOR": "1"}
    done = subprocess.run(
        [pre_commit, "try-repo", str(hooks_repo), "tppolicy-fmt", "--all-files",
         "--color", "never"],
        cwd=project, capture_output=True, text=True, check=False, env=env, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "tppolicy fmt" in output and "Failed" in output, output
    assert "+++ policy.tpp (formatted)" in output, output
    assert "publishers.yaml (formatted)" not in output, output
    assert (project / "policy.tpp").read_text() == MESSY  # --check writes nothing


def _hooks_repo(tmp_path: Path) -> Path:
    """A committed copy of this tree: pre-commit installs the hooks from a git repository."""
    hooks_repo = tmp_path / "tppolicy"
    shutil.copytree(ROOT, hooks_repo, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", ".benchmarks",
        "build", "dist"))
    _git(hooks_repo, "init", "-q")
    _git(hooks_repo, "add", ".")
    _git(hooks_repo, "commit", "-q", "-m", "tppolicy")
    return hooks_repo


@pytest.mark.slow
def test_pre_commit_try_repo_on_the_examples(tmp_path: Path) -> None:
    """Issue 14: the hooks on the project's own example layout (publishers file, policy
    test file, claims): fmt and test pass, lint reports only the example's TPP001 and
    passes once a suppression comment silences it; nothing exits 3."""
    pre_commit = shutil.which("pre-commit")
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (pip install -e '.[dev]')")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    hooks_repo = _hooks_repo(tmp_path)
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples", project / "examples")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "NO_COLOR": "1"}

    def try_repo(hook: str) -> tuple[int, str]:
        done = subprocess.run(
            [pre_commit, "try-repo", str(hooks_repo), hook, "--all-files", "--color", "never"],
            cwd=project, capture_output=True, text=True, check=False, env=env, timeout=900)
        return done.returncode, done.stdout + done.stderr

    for hook in ("tppolicy-fmt", "tppolicy-test"):
        code, output = try_repo(hook)
        assert code == 0, output
        assert "Passed" in output, output
    code, output = try_repo("tppolicy-lint")
    assert code == 1, output
    assert "TPP001 warning" in output and "1 warning in 1 file" in output, output
    assert "could not be linted" not in output and "tptest" not in output, output
    publishers = project / "examples" / "publishers.yaml"
    lines = publishers.read_text().splitlines()
    assert lines[37] == "  - name: new-plugin-pending"
    lines[37] += "  # tppolicy: ignore[TPP001] a demo of a pending publisher"
    publishers.write_text("\n".join(lines) + "\n")
    _git(project, "add", ".")
    code, output = try_repo("tppolicy-lint")
    assert code == 0, output
    assert "tppolicy lint" in output and "Passed" in output, output


def test_the_shipped_policies_are_in_canonical_form(capsys: pytest.CaptureFixture[str]) -> None:
    from tppolicy.cli import main
    from tppolicy.language.providers import policies_dir

    assert main(["fmt", "--check", str(policies_dir())]) == 0, capsys.readouterr().out
