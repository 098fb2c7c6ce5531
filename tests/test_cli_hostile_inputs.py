"""Hostile inputs to the commands (an attacker's sweep): links out of the tree, bytes a
report format cannot carry. Exit 3 with the file and the problem, never a traceback, and
nothing read from outside the tree echoed."""

from __future__ import annotations

import shutil
import xml.dom.minidom
from pathlib import Path

import pytest

from .conftest import EXAMPLES
from .conftest import run_cli as run


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the examples (publishers, claims, a test file), the current folder."""
    folder = tmp_path / "tree"
    shutil.copytree(EXAMPLES, folder)
    monkeypatch.chdir(folder)
    return folder


def test_a_test_file_linking_out_of_the_tree_is_not_read(
        tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tppolicy test DIR` (a pull request's tree, in CI) read a `*.tptest.yaml` link to
    a file elsewhere and echoed its first line in the report ("a test file is a mapping
    ...": `root:x:0:0:...` for a link to /etc/passwd). The files a test file names were
    kept in the tree; the test files themselves now are too."""
    secret = tmp_path / "secret.txt"
    secret.write_text("API_TOKEN=hunter2\n")
    (tree / "leak.tptest.yaml").symlink_to(secret)
    for output in ("human", "json", "junit", "github"):
        code, out, err = run(capsys, "test", "--format", output, ".")
        assert code == 3, (output, out, err)
        assert "hunter2" not in out + err
        assert "leak.tptest.yaml" in out + err and "outside the tree" in out + err
    # the examples' own test file still runs; a link inside the tree is fine
    (tree / "leak.tptest.yaml").unlink()
    (tree / "again.tptest.yaml").symlink_to(tree / "publishers.tptest.yaml")
    code, out, err = run(capsys, "test", ".")
    assert code == 0, out + err
    # a file given by name, with --root naming where it is, is read
    code, out, err = run(capsys, "test", "--root", str(tmp_path), str(tree / "again.tptest.yaml"))
    assert code == 0, out + err


def test_junit_xml_stays_xml_whatever_the_test_file_holds(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A NUL in a test file is refused with an excerpt of its line; the excerpt went into
    the JUnit report as it was, and the report was not XML at all (CI dropped it)."""
    path = tree / "publishers.tptest.yaml"
    text = path.read_bytes()
    path.write_bytes(text[:20] + b"\x00" + text[20:])
    code, out, _ = run(capsys, "test", "--format", "junit", ".")
    assert code == 3
    document = xml.dom.minidom.parseString(out)  # raised ExpatError before
    [error] = document.getElementsByTagName("error")
    assert "U+0000" in error.getAttribute("message")
    assert "\u2400" in error.firstChild.data  # type: ignore[union-attr]  # NUL's picture


def test_output_files_are_never_written_through_a_link(
        tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`compile -o FILE` overwrote, and `check --record FILE` appended the token's claims
    to, whatever a link planted at FILE named (~/.bashrc: a claim's `$(...)` then ran at
    the next shell). Refused now (exit 3, the link untouched); /dev/stdout still works."""
    victim = tmp_path / "bashrc"
    victim.write_text("export PATH\n")
    (tree / "compiled.tpp").symlink_to(victim)
    (tree / "decisions.jsonl").symlink_to(victim)
    code, _, err = run(capsys, "compile", "publishers.yaml", "-o", "compiled.tpp")
    assert code == 3 and "compiled.tpp" in err and "symbolic link" in err, err
    code, _, err = run(capsys, "check", "--publishers", "publishers.yaml", "--claims",
                       "claims/github-release.json", "--record", "decisions.jsonl")
    assert code == 3 and "decisions.jsonl" in err and "symbolic link" in err, err
    assert victim.read_text() == "export PATH\n"
    code, _, err = run(capsys, "compile", "publishers.yaml", "-o", "/dev/stdout")
    assert code == 0, err
    code, _, err = run(capsys, "compile", "publishers.yaml", "-o", "plain.tpp")
    assert code == 0 and "publisher \"sampleproject-github\"" in (tree / "plain.tpp").read_text()


def test_fmt_reads_a_publishers_file_with_old_mac_line_ends(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A publishers file whose lines end in a lone "\\r" (a line break to YAML) was an
    internal error of `fmt` (exit 4: "would lose or change a comment"); it is rewritten
    with "\\n" line ends, as a file with "\\r\\n" ones is."""
    canonical = (tree / "publishers.yaml").read_bytes()
    (tree / "publishers.yaml").write_bytes(canonical.replace(b"\n", b"\r"))
    code, _, err = run(capsys, "fmt", "--check", "publishers.yaml")
    assert code == 1, err
    code, _, err = run(capsys, "fmt", "publishers.yaml")
    assert code == 0, err
    assert (tree / "publishers.yaml").read_bytes() == canonical


def test_a_provider_folder_link_out_of_the_folder_is_not_read(
        tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--providers DIR` read a `*.tpp` link to a file elsewhere and echoed its first
    line in the syntax error (a pull request's tree checked in CI: a link to
    /proc/self/environ shows the job's secrets)."""
    secret = tmp_path / "secret.env"
    secret.write_text("API_TOKEN=hunter2\n")
    folder = tree / "providers"
    folder.mkdir()
    shutil.copy(EXAMPLES.parent / "policies" / "github.tpp", folder / "github.tpp")
    (folder / "evil.tpp").symlink_to(secret)
    code, out, err = run(capsys, "providers", "--providers", "providers")
    assert code == 3 and "hunter2" not in out + err, out + err
    assert "evil.tpp" in err and "outside the folder" in err
    (folder / "evil.tpp").unlink()
    (folder / "same.tpp").symlink_to(folder / "github.tpp")  # a link inside: read
    code, out, err = run(capsys, "providers", "--providers", "providers")
    assert code == 0 and "github" in out, err


@pytest.mark.parametrize(("name", "text", "command"), [
    ("bad.yaml", b'publishers:\n  - name: "a\x1b[2J\x1b]0;owned\x07" x\n',
     ["check", "--publishers", "bad.yaml", "--claims", "claims/github-release.json"]),
    ("bad.json", '{"iss": "\x1b[2J\x9b31m", }'.encode(),
     ["check", "--publishers", "publishers.yaml", "--claims", "bad.json"]),
    ("bad.tpp", "provider x {\n  \x1b[2J\x7f\u202e\n}\n".encode(),
     ["lint", "bad.tpp"]),
])
def test_an_error_never_writes_a_files_control_characters_to_the_terminal(
        tree: Path, capsys: pytest.CaptureFixture[str], name: str, text: bytes,
        command: list[str]) -> None:
    """The line shown under an error was written as the file had it: its escape
    sequences (clear the screen, set the window title, move the cursor) reached the
    terminal. Each control or invisible character is shown as one visible character
    (ESC as U+241B), so the caret stays under the column it names."""
    (tree / name).write_bytes(text)
    code, out, err = run(capsys, *command)
    assert code == 3, out + err
    shown = out + err
    assert not any(c in shown for c in "\x1b\x07\x7f\x9b\u202e"), repr(shown)
    assert "\u241b[2J" in shown
