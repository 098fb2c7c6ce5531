"""Numeric options take finite values in a sensible range, refused as usage errors (exit
2) otherwise. `check --token --leeway inf` allowed a token expired years ago, `--leeway
nan` was an internal error (exit 4); `serve --credential-ttl inf` minted credentials that
never expire, `--jwks-cooldown nan` never refreshed the keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import EXAMPLES, load_claims, run_cli
from .tokens import jwks, rsa_key


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`tppolicy ARGV` refused by the option parser (exit 2): its message."""
    with pytest.raises(SystemExit) as info:
        run_cli(capsys, *argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert "ALLOWED" not in out
    return err

PUBLISHERS = str(EXAMPLES / "publishers.yaml")


@pytest.fixture
def expired(tmp_path: Path) -> tuple[str, str]:
    claims = {**load_claims("github-release"), "iat": 1_700_000_000, "nbf": 1_700_000_000,
              "exp": 1_700_000_300}
    token, keys = tmp_path / "expired.jwt", tmp_path / "jwks.json"
    token.write_text(rsa_key().sign(claims) + "\n")
    keys.write_text(json.dumps(jwks(rsa_key())))
    return str(token), str(keys)


@pytest.mark.parametrize("command", ["check", "explain"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "-1", "3601"])
def test_leeway_out_of_range_is_a_usage_error(command: str, value: str,
                                              expired: tuple[str, str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    token, keys = expired
    err = _usage_error(capsys, command, "--publishers", PUBLISHERS, "--token", token,
                       "--jwks", keys, f"--leeway={value}")
    assert f"argument --leeway: expected seconds from 0 to 3600, got '{value}'" in err


def test_a_leeway_in_range_still_works(expired: tuple[str, str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    token, keys = expired
    code, out, _ = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--token", token,
                           "--jwks", keys, "--leeway=3600")
    assert code == 1 and "[expired]" in out


def test_max_token_bytes_has_a_ceiling(expired: tuple[str, str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A token file is read up to the limit given: 10**12 read a terabyte of /dev/zero."""
    token, keys = expired
    err = _usage_error(capsys, "check", "--publishers", PUBLISHERS, "--token", token,
                       "--jwks", keys, "--max-token-bytes=1000000000000")
    assert "argument --max-token-bytes: expected at most 1048576 bytes" in err


@pytest.mark.parametrize("value", ["0", "-5"])
def test_max_token_bytes_must_be_positive(value: str, expired: tuple[str, str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    token, keys = expired
    err = _usage_error(capsys, "check", "--publishers", PUBLISHERS, "--token", token,
                       "--jwks", keys, f"--max-token-bytes={value}")
    assert "argument --max-token-bytes: expected a number of at least 1" in err


@pytest.mark.parametrize("option", [
    "--credential-ttl=nan", "--credential-ttl=inf", "--credential-ttl=1e300",
    "--jwks-cooldown=nan", "--jwks-cooldown=inf", "--fetch-timeout=nan",
    "--fetch-timeout=inf", "--reload-interval=nan", "--reload-interval=inf",
    "--max-upload-bytes=0", "--max-upload-bytes=-1",
])
def test_serve_refuses_an_option_out_of_range(option: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Refused by the parser: nothing is served (parsed only, so that a value accepted by
    mistake fails here instead of starting a server)."""
    from tppolicy.cli import build_parser

    argv = ["serve", "--db", str(tmp_path / "index.db"), "--port", "0", option]
    with pytest.raises(SystemExit) as info:
        build_parser(argv).parse_args(argv)
    assert info.value.code == 2
    assert f"argument {option.split('=')[0]}: expected" in capsys.readouterr().err


@pytest.mark.parametrize("leeway", [float("nan"), float("inf"), float("-inf"), -1.0])
def test_the_library_verifier_refuses_a_leeway_out_of_range(leeway: float) -> None:
    """The same for an embedder: `Verifier(leeway=inf)` accepted any expired token, `nan`
    failed each verification with an internal error."""
    import tppolicy
    from tppolicy.token.keys import KeyCache
    from tppolicy.token.verify import Verifier

    policy = tppolicy.compile_publishers_file(EXAMPLES / "publishers.yaml")
    with pytest.raises(ValueError, match="leeway"):
        Verifier.for_policy(policy, keys=KeyCache(), leeway=leeway)
