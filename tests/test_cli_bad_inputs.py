"""Bad input on every subcommand: a missing file, a folder, a binary file, an empty file,
invalid UTF-8 and a huge line give exit 3 and a message that names the file (with the line
and column of a byte that is not UTF-8), never exit 4 or a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .conftest import EXAMPLES, ROOT, run_cli

PUBLISHERS = str(EXAMPLES / "publishers.yaml")
CLAIMS = str(EXAMPLES / "claims" / "github-release.json")

# Each subcommand with F where the bad file goes.
COMMANDS = {
    "check --publishers": ["check", "--publishers", "F", "--claims", CLAIMS],
    "check --policy": ["check", "--policy", "F", "--claims", CLAIMS],
    "check --claims": ["check", "--publishers", PUBLISHERS, "--claims", "F"],
    "check --providers": ["check", "--providers", "F", "--publishers", PUBLISHERS,
                          "--claims", CLAIMS],
    "compile": ["compile", "F"],
    "explain --publishers": ["explain", "--publishers", "F", "--claims", CLAIMS],
    "explain --claims": ["explain", "--publishers", PUBLISHERS, "--claims", "F"],
    "lint": ["lint", "F"],
    "fmt": ["fmt", "F"],
    "fmt --check": ["fmt", "--check", "F"],
    "test": ["test", "F"],
    "check-workflow": ["check-workflow", "F", "--publishers", PUBLISHERS],
    "check-workflow --publishers": ["check-workflow", "release.yml", "--publishers", "F"],
    "decode": ["decode", "F"],
    "providers --providers": ["providers", "--providers", "F"],
    "serve --publishers": ["serve", "--db", "DB", "--port", "0", "--publishers", "F"],
    "serve --jwks": ["serve", "--db", "DB", "--port", "0", "--jwks", "https://ci.example=F"],
}

# name: (content or None for no file, or "dir"; where the message points)
INPUTS: dict[str, tuple[bytes | str | None, str]] = {
    "missing": (None, "{path}: cannot read"),
    "folder": ("dir", "{path}: cannot read"),
    "binary": (b"\x00\x01\x02\xff\xfe\x00", "{path}:1:4: the file is not UTF-8"),
    "empty": (b"", "{path}"),
    "invalid-utf8": (b'publishers:\n  - name: "a\xff\xfe"\n', "{path}:2:13: the file is not UTF-8"),
    # An unclosed list on a 300 KB line: invalid YAML, JSON and policy text alike.
    "huge-line": (b"x: [" + b"a" * 300_000 + b"\n", "{path}:LINE:COLUMN: "),
}

# Where a subcommand reads the file as something other than YAML, JSON or policy text, its
# own words (the path is still named first).
OWN_WORDS = {
    ("decode", "empty"): "{path}: the file holds no decodable token",
    ("decode", "binary"): "{path}: the file holds no decodable token",
    ("decode", "invalid-utf8"): "{path}: the file holds no decodable token",
    # 300 KB: more than a token file holds (the token and room for whitespace)
    ("decode", "huge-line"): "{path}: the file holds more than 12288 bytes; a token is at "
                             "most 8192 bytes",
    ("check --providers", "folder"): "{path}: no provider files (*.tpp) in this folder",
    ("providers --providers", "folder"): "{path}: no provider files (*.tpp) in this folder",
    ("check --providers", "empty"): "{path}: no provider block in this file",
    ("providers --providers", "empty"): "{path}: no provider block in this file",
}


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """In this process; `serve` in a thread with a deadline: a server that starts on bad
    input would otherwise never return (`_child` runs a real `serve` process)."""
    if argv[0] != "serve":
        return run_cli(capsys, *argv)
    from tppolicy.cli import main

    codes: list[int] = []
    raised: list[BaseException] = []

    def serve() -> None:
        try:
            codes.append(main(argv))
        except BaseException as exc:  # handed to the test, below
            raised.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.join(timeout=60)
    out, err = capsys.readouterr()
    if raised:
        raise raised[0]
    if thread.is_alive():
        return -1, out, err + "the server started (and ran until the deadline) on bad input"
    return codes[0], out, err


def _child(argv: list[str]) -> tuple[int, str, str]:
    """`tppolicy ARGV...` in a child process with a deadline (a real `serve` process)."""
    try:
        done = subprocess.run([sys.executable, "-m", "tppolicy", *argv], capture_output=True,
                              text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return -1, "", "the server started (and ran until killed) on bad input"
    return done.returncode, done.stdout, done.stderr


def _bad_file(tmp_path: Path, kind: str) -> Path:
    content = INPUTS[kind][0]
    path = tmp_path / "bad" / "input.yml"
    if content is None:
        return path
    if content == "dir":
        path.mkdir(parents=True)
        return path
    path.parent.mkdir(parents=True)
    assert isinstance(content, bytes)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_is_exit_3_naming_the_file(
        command: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    if (command, kind) in {("fmt", "folder"), ("fmt --check", "folder"), ("test", "folder")}:
        pytest.skip("fmt and test take folders (an empty one: see the tests below)")
    monkeypatch.chdir(tmp_path)
    path = _bad_file(tmp_path, kind)
    argv = [a.replace("DB", str(tmp_path / "index.db")).replace("F", str(path))
            if a in {"F", "DB", "https://ci.example=F"} else a for a in COMMANDS[command]]
    code, out, err = _run(capsys, argv)
    assert "Traceback" not in out + err
    assert code == 3, f"{command} on a {kind} file: exit {code}\n{out}{err}"
    where = re.escape(OWN_WORDS.get((command, kind), INPUTS[kind][1]).format(path=path))
    where = where.replace("LINE", r"\d+").replace("COLUMN", r"\d+")
    assert re.search(where, err), f"{command} on a {kind} file:\n{err}"
    assert len(err) < 2_000, "the huge line is echoed in a bounded excerpt"


def test_a_name_that_is_no_file_and_no_token_says_both(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "decode", "token.jwt")
    assert code == 3
    assert "'token.jwt' is no file and not a decodable token" in err


@pytest.mark.parametrize("kind", ["binary", "empty", "invalid-utf8"])
def test_check_token_on_a_bad_token_file_is_a_denial(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """README: a token that fails verification is a denial (exit 1) with a stable code;
    only a file that cannot be read at all, or holds far more than a token (huge-line,
    below), is invalid input."""
    path = _bad_file(tmp_path, kind)
    code, out, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--token", str(path))
    assert "Traceback" not in out + err
    assert code == 1
    assert "[malformed]" in out or "[token-too-large]" in out


@pytest.mark.parametrize("kind", ["missing", "folder", "huge-line"])
def test_check_token_on_an_unreadable_file_is_invalid_input(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _bad_file(tmp_path, kind)
    code, _, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--token", str(path))
    assert code == 3
    expected = "the file holds more than 12288 bytes" if kind == "huge-line" else "cannot read"
    assert f"{path}: {expected}" in err


def test_fmt_and_test_on_an_empty_folder(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """docs/tools.md: fmt formats what it finds (nothing is success); test fails with no
    test file found (exit 1)."""
    code, out, err = run_cli(capsys, "fmt", "--check", str(tmp_path))
    assert code == 0 and "no policy or publishers files found" in out + err
    code, out, err = run_cli(capsys, "test", str(tmp_path))
    assert code == 1 and "no test files found" in out + err


def test_serve_refuses_a_jwks_file_without_a_usable_key_at_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/server.md: an invalid JWKS file is exit 3 at start (it used to start a server
    refusing every token of that issuer). In a child: the real process's exit code."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}')
    code, out, err = _child(["serve", "--db", str(tmp_path / "index.db"), "--port", "0",
                             "--jwks", f"https://ci.example={jwks}"])
    assert "Traceback" not in out + err
    assert code == 3
    assert f"{jwks}: not a usable JWKS file: no usable signing key" in err


def test_an_empty_policy_file_is_refused_as_an_empty_publishers_file_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "policy.tpp"
    empty.write_text("\n")
    code, _, err = run_cli(capsys, "check", "--policy", str(empty), "--claims", CLAIMS)
    assert code == 3
    assert f"{empty}: the file is empty" in err


SUBCOMMANDS = ("check", "check-workflow", "compile", "providers", "decode", "lint", "test",
               "explain", "fmt", "serve")


def _help_exit_codes(capsys: pytest.CaptureFixture[str], command: str) -> dict[int, str]:
    with pytest.raises(SystemExit) as info:
        run_cli(capsys, command, "--help")
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes" in text, f"`tppolicy {command} --help` does not say its exit codes"
    block = text[text.index("exit codes"):]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^  (\d)  (.*)$", block, re.M)}


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_says_the_exit_codes_the_docs_say(command: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Every subcommand's --help ends with its exit codes; 2, 3, 4 mean the same everywhere,
    and 1 is there exactly for the commands docs/tools.md's table names for exit 1."""
    codes = _help_exit_codes(capsys, command)
    assert {0, 2, 3, 4} <= set(codes), codes
    assert codes[2].startswith("usage error")
    assert codes[3].startswith("invalid input") or "cannot be read" in codes[3]
    assert codes[4].startswith("internal error")
    tools = (ROOT / "docs" / "tools.md").read_text("utf-8")
    row = re.search(r"^\| 1 \| (.*) \|$", tools, re.M)
    assert row is not None
    named = set(re.findall(r"`([a-z-]+)", row.group(1)))
    assert (1 in codes) == (command in named), (command, codes.get(1), named)
