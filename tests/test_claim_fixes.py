"""The fix for a missing or mistyped claim says what the provider file declares of it: a
claim declared `required` or `present` is in every token of the provider, one declared
`optional` may be left out (only its type is checked). The words come from the file's
`claims` block, not from Python: a copy of github.tpp under another name, where
`environment` is declared `required`, says the opposite of the shipped file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
FORGE_ISSUER = "https://token.forge.example.org"


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(
        (EXAMPLES / "claims" / "github-release.json").read_text("utf-8"))
    for name, value in changes.items():
        if value is ...:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def _check(capsys: pytest.CaptureFixture[str], tmp_path: Path, claims: dict[str, Any],
           *options: str, publishers: Path = EXAMPLES / "publishers.yaml") -> list[Any]:
    """`tppolicy check --format json`: the failing reasons, each with its fix."""
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(claims), "utf-8")
    code, out, err = run_cli(capsys, "check", "--publishers", str(publishers), "--claims",
                             str(path), "--format", "json", *options)
    assert code == 1, (out, err)
    return [r for r in json.loads(out)["reasons"] if not r["passed"]]


def _forge(tmp_path: Path, environment: str) -> tuple[Path, Path]:
    """github.tpp copied as provider `forge` (its own issuer) with its `environment` claim
    declared `environment` (`required` or `optional`), and a forge publisher: (provider
    file, publishers file)."""
    text = (ROOT / "policies" / "github.tpp").read_text("utf-8")
    assert "    optional environment: string\n" in text  # the shipped declaration
    text = text.replace("provider github {", "provider forge {").replace(
        f'issuer "{GITHUB_ISSUER}"', f'issuer "{FORGE_ISSUER}"').replace(
        "    optional environment: string\n", f"    {environment} environment: string\n")
    provider = tmp_path / "forge.tpp"
    provider.write_text(text, "utf-8")
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text("""\
publishers:
  - name: forge-release
    provider: forge
    projects: [sampleproject]
    repository_owner: octo-org
    repository_name: sampleproject
    repository_owner_id: "65"
    workflow_filename: release.yml
    environment: pypi
""", "utf-8")
    return provider, publishers


def test_an_optional_claim_is_not_said_to_be_in_every_token(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # github.tpp declares `optional environment`: a token may leave it out
    (reason,) = _check(capsys, tmp_path, _claims(environment=5))
    assert reason["rule"] == "claims"
    text = reason["fix"]["text"]
    assert "every github token carries" not in text
    assert text.startswith(
        "claim 'environment' is an integer (5), expected a string: a github token may leave "
        "it out (its provider file declares it optional), but when it carries it, its type "
        "is string.")
    assert text.endswith("and check the value of 'environment'.")


def test_a_required_claim_is_said_to_be_in_every_token(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # `required event_name`, `present ref`: every token carries them
    for changes, claim in (({"event_name": 7}, "event_name"), ({"ref": ...}, "ref")):
        (reason,) = _check(capsys, tmp_path, _claims(**changes))
        text = reason["fix"]["text"]
        assert ": every github token carries it with type string. " in text
        assert text.endswith(f"and check that '{claim}' is there.")


def test_several_claims_say_which_are_in_every_token(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    reasons = _check(capsys, tmp_path, _claims(environment=5, ref=..., sha=...))
    assert {r["fix"]["text"] for r in reasons} == {
        "missing claim 'ref'; missing claim 'sha'; claim 'environment' is an integer (5), "
        "expected a string: every github token carries 'ref' and 'sha', and may leave out "
        "'environment' (its provider file declares it optional), but each claim it carries "
        "has the type its provider file declares. Pass the token's complete decoded claims "
        "(`python -m id -d pypi` prints them)."}
    # all of them declared required or present: as before
    reasons = _check(capsys, tmp_path, _claims(ref=..., sha=...))
    assert reasons[0]["fix"]["text"].endswith(
        ": every github token carries these claims with these types. Pass the token's "
        "complete decoded claims (`python -m id -d pypi` prints them).")


@pytest.mark.parametrize("declared", ["required", "optional"])
def test_the_words_follow_the_provider_file(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path, declared: str) -> None:
    provider, publishers = _forge(tmp_path, declared)
    claims = _claims(iss=FORGE_ISSUER, environment=5)
    (reason,) = _check(capsys, tmp_path, claims, "--providers", str(provider),
                       publishers=publishers)
    text = reason["fix"]["text"]
    always = "every forge token carries it with type string"
    sometimes = "a forge token may leave it out (its provider file declares it optional)"
    assert (always in text, sometimes in text) == (declared == "required",
                                                   declared == "optional"), text
    assert "github" not in text
    if declared == "required":  # and a token without it is refused: it is required
        (reason,) = _check(capsys, tmp_path, _claims(iss=FORGE_ISSUER, environment=...),
                           "--providers", str(provider), publishers=publishers)
        assert reason["message"] == "missing claim 'environment'"
        assert always in reason["fix"]["text"]
