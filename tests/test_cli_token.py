"""`tppolicy check --token` and `tppolicy decode` as a user runs them."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLES, load_claims
from .conftest import run_cli as run
from .tokens import GITHUB, fresh, jwks, rsa_key

PUBLISHERS = str(EXAMPLES / "publishers.yaml")


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(rsa_key())))
    return path


def token_file(tmp_path: Path, name: str = "release", **changes: object) -> Path:
    claims = fresh(load_claims("github-release"))
    claims.update(changes)
    path = tmp_path / f"{name}.jwt"
    path.write_text(rsa_key().sign(claims) + "\n")
    return path


def test_a_verified_token_is_allowed(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     keys_file: Path) -> None:
    code, out, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--token",
                       str(token_file(tmp_path)), "--jwks", str(keys_file))
    assert code == 0, out
    assert out.startswith("ALLOWED: publisher 'sampleproject-github'")


def test_jwks_for_a_named_issuer(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 keys_file: Path) -> None:
    code, _, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--token",
                     str(token_file(tmp_path)), "--jwks", f"{GITHUB}={keys_file}")
    assert code == 0


def test_a_refused_token_is_a_denial_with_its_code(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path, keys_file: Path) -> None:
    expired = token_file(tmp_path, "expired", exp=1_700_000_000, iat=1_699_999_700,
                         nbf=1_699_999_700)
    code, out, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--token", str(expired),
                       "--jwks", str(keys_file), "--format", "json")
    assert code == 1
    payload = json.loads(out)
    assert payload["allowed"] is False
    [reason] = payload["reasons"]
    assert reason["code"] == "expired"
    assert reason["message"].startswith("the token expired ")


def test_a_valid_token_of_no_publisher(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       keys_file: Path) -> None:
    code, out, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--token",
                       str(token_file(tmp_path, environment="release")), "--jwks",
                       str(keys_file))
    assert code == 1
    assert "FAIL  environment: token has 'release', publisher expects 'pypi'" in out


def test_replay_db(capsys: pytest.CaptureFixture[str], tmp_path: Path, keys_file: Path) -> None:
    token, db = str(token_file(tmp_path)), str(tmp_path / "replay.db")
    argv = ["check", "--publishers", PUBLISHERS, "--token", token, "--jwks", str(keys_file),
            "--replay-db", db]
    assert run(capsys, *argv)[0] == 0
    code, out, _ = run(capsys, *argv)
    assert code == 1
    assert "[replayed]" in out


def test_a_replay_db_that_cannot_be_opened_is_invalid_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, keys_file: Path) -> None:
    db = tmp_path / "no-such-folder" / "replay.db"
    code, _, err = run(capsys, "check", "--publishers", PUBLISHERS, "--token",
                       str(token_file(tmp_path)), "--jwks", str(keys_file), "--replay-db", str(db))
    assert code == 3, err  # was exit 4, an internal error, with sqlite3's bare message
    assert err.startswith(f"replay store {db}: cannot use the file: unable to open database")
    assert "hint: give a SQLite file this process may read and write" in err


def test_token_from_stdin(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                          keys_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = token_file(tmp_path).read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, _, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--token", "-", "--jwks",
                     str(keys_file))
    assert code == 0


def test_a_huge_token_file_is_refused_without_reading_it_whole(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, keys_file: Path) -> None:
    path = tmp_path / "huge.jwt"
    path.write_bytes(b"A" * 20_000_000)
    code, _, err = run(capsys, "check", "--publishers", PUBLISHERS, "--token", str(path),
                       "--jwks", str(keys_file))
    assert code == 3  # no token file holds that much: invalid input, as the file is named
    assert f"{path}: the file holds more than 12288 bytes; a token is at most 8192" in err


def test_a_bad_jwks_file_is_invalid_input(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}')
    code, _, err = run(capsys, "check", "--publishers", PUBLISHERS, "--token",
                       str(token_file(tmp_path)), "--jwks", str(bad))
    assert code == 3
    assert "not a usable JWKS file" in err and "no usable signing key" in err


def test_jwks_with_claims_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                           keys_file: Path) -> None:
    code, _, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims",
                       str(EXAMPLES / "claims/github-release.json"), "--jwks", str(keys_file))
    assert code == 2
    assert "--jwks and --replay-db go with --token" in err


def test_decode_marks_everything_unverified(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    path = token_file(tmp_path)
    code, out, _ = run(capsys, "decode", str(path))
    assert code == 0
    assert out.startswith("UNVERIFIED: nothing here has been checked")
    assert '"repository": "octo-org/sampleproject"' in out
    assert "expires:" in out
    code, out, _ = run(capsys, "decode", path.read_text().strip(), "--format", "json")
    payload = json.loads(out)
    assert payload["verified"] is False
    assert payload["header"]["kid"] == "rsa-1"


def test_decode_of_garbage_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "decode", "not-a-token")
    assert code == 3
    assert out == ""
    assert "not a decodable token" in err and "[malformed]" in err


def test_record_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                     keys_file: Path) -> None:
    record = tmp_path / "decisions.jsonl"
    token = token_file(tmp_path)
    assert run(capsys, "check", "--publishers", PUBLISHERS, "--token", str(token), "--jwks",
               str(keys_file), "--record", str(record))[0] == 0
    assert run(capsys, "check", "--publishers", PUBLISHERS, "--claims",
               str(EXAMPLES / "claims/github-wrong-environment.json"), "--record",
               str(record))[0] == 1
    allowed, denied = (json.loads(line) for line in record.read_text().splitlines())
    assert allowed["allowed"] is True
    assert allowed["publisher"] == "sampleproject-github"
    assert allowed["run"]["sha"] == load_claims("github-release")["sha"]
    assert token.read_text().strip() not in record.read_text()
    assert denied["allowed"] is False
    assert denied["reasons"][0]["rule"] == "environment"
