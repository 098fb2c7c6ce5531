"""Every input the CLI reads is read up to a cap, and a refusal says what is true: the
file (or standard input) holds more than the cap, not a count of what was read."""

from __future__ import annotations

import io
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tppolicy.limits import MAX_SOURCE_BYTES, MAX_TOKEN_BYTES

from .conftest import EXAMPLES, ROOT, run_cli

PUBLISHERS = str(EXAMPLES / "publishers.yaml")
READ_CAP = MAX_TOKEN_BYTES + 4096  # a token file: the token and room for whitespace


@pytest.fixture
def big_token(tmp_path: Path) -> Path:
    """A 5 MB 'token' file, as a user might pass a wrong file."""
    path = tmp_path / "big.jwt"
    path.write_bytes(b"a" * 5_000_000 + b"\n")
    return path


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), "utf-8"))


def _says_the_truth(err: str, where: str, what: str = "file") -> None:
    assert "Traceback" not in err
    assert "12289" not in err, err  # what was read, not what the file holds
    assert (f"{where}: the {what} holds more than {READ_CAP} bytes; a token is at most "
            f"{MAX_TOKEN_BYTES} bytes") in err, err


def test_check_token_on_a_huge_file(big_token: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--token",
                             str(big_token))
    assert code == 3, out
    _says_the_truth(err, str(big_token))


def test_check_token_says_the_limit_it_was_given(big_token: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--token",
                           str(big_token), "--max-token-bytes", "100")
    assert code == 3
    assert (f"{big_token}: the file holds more than {100 + 4096} bytes; a token is at most "
            "100 bytes") in err
    assert "--max-token-bytes" in err


def test_decode_on_a_huge_file(big_token: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "decode", str(big_token))
    assert code == 3
    _says_the_truth(err, str(big_token))


@pytest.mark.parametrize("command", ["decode", "check"])
def test_a_huge_token_on_standard_input(command: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(monkeypatch, b"a" * 5_000_000)
    argv = ["decode", "-"] if command == "decode" else [
        "check", "--publishers", PUBLISHERS, "--token", "-"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 3
    _says_the_truth(err, "<stdin>", "input")


def test_a_token_file_just_over_the_limit_is_still_a_denial(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Within the read cap the verifier decides, and its count is true (README: a token
    over --max-token-bytes is a denial `token-too-large`)."""
    path = tmp_path / "long.jwt"
    path.write_bytes(b"a" * (MAX_TOKEN_BYTES + 10) + b"\n\n")
    code, out, _ = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--token", str(path))
    assert code == 1
    assert f"the token has {MAX_TOKEN_BYTES + 10} characters" in out


def test_claims_on_standard_input_are_capped_as_a_file_is(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(monkeypatch, b" " * (MAX_SOURCE_BYTES + 10))
    code, _, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--claims", "-")
    assert code == 3
    assert f"<stdin>: the input is larger than the limit of {MAX_SOURCE_BYTES} bytes" in err


def test_claims_on_standard_input_not_utf8_say_where(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(monkeypatch, b'{\n  "sub": "a\xff"\n}\n')
    code, _, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--claims", "-")
    assert code == 3
    assert "<stdin>:2:12: the input is not UTF-8: byte 0xff" in err


def _limited(argv: list[str], stdin: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`tppolicy ARGV` in a child with 1 GiB of address space and a deadline: an input
    read whole from an endless source fails (MemoryError, or the deadline) instead of
    taking the machine."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    with open(stdin or "/dev/null", "rb") as source:
        return subprocess.run([sys.executable, "-m", "tppolicy", *argv], stdin=source,
                              capture_output=True, text=True, timeout=120, check=False,
                              cwd=ROOT, preexec_fn=limit)


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    ["check", "--publishers", PUBLISHERS, "--claims", "-"],
    ["decode", "-"],
    ["check", "--publishers", PUBLISHERS, "--token", "-"],
], ids=["claims", "decode", "token"])
def test_an_endless_standard_input_is_refused(argv: list[str]) -> None:
    done = _limited(argv, Path("/dev/zero"))
    assert done.returncode == 3, done.stderr
    assert "<stdin>: " in done.stderr and "Traceback" not in done.stderr


def test_a_jwks_file_over_the_document_cap(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """--jwks reads at most what a fetched JWKS document may hold (256 KiB)."""
    from tppolicy.token.keys import DEFAULT_MAX_DOCUMENT

    token = tmp_path / "t.jwt"
    token.write_text("e30.e30.e30\n")
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(b'{"keys": [' + b" " * DEFAULT_MAX_DOCUMENT + b"]}")
    code, _, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--token", str(token),
                           "--jwks", f"https://token.actions.githubusercontent.com={jwks}")
    assert code == 3
    assert f"{jwks}: the file is larger than the limit of {DEFAULT_MAX_DOCUMENT} bytes" in err


@pytest.mark.slow
def test_an_endless_jwks_file_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "t.jwt"
    token.write_text("e30.e30.e30\n")
    done = _limited(["check", "--publishers", PUBLISHERS, "--token", str(token), "--jwks",
                     "https://token.actions.githubusercontent.com=/dev/zero"])
    assert done.returncode == 3, done.stderr
    assert "/dev/zero: the file is larger than the limit" in done.stderr


def test_a_servers_jwks_file_read_again_on_refresh_is_capped(tmp_path: Path) -> None:
    """`serve --jwks ISSUER=FILE` reads the file again on each refresh (rewriting it
    rotates the keys): at most a JWKS document's cap, as a fetched one (it was read whole:
    a file replaced by a huge one, or a device, filled the memory)."""
    from tppolicy.server.auth import ServerKeyCache
    from tppolicy.token.keys import DEFAULT_MAX_DOCUMENT, FetchError

    source = tmp_path / "jwks.json"
    source.write_bytes(b'{"keys": [' + b" " * DEFAULT_MAX_DOCUMENT + b"]}")
    keys = ServerKeyCache(sources={"https://ci.example": str(source)})
    with pytest.raises(FetchError, match=f"larger than {DEFAULT_MAX_DOCUMENT} bytes"):
        keys.refresh_keys("https://ci.example")
