"""Values shown in messages are bounded: a claim as long as the token allows (megabytes in
a `--claims` file) is shown cut in its middle with its length said, in `check`, `explain`,
their JSON messages and `--record` files; never as a line as long as the claim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tppolicy.text import MAX_SHOWN, show

from .conftest import EXAMPLES, run_cli

PUBLISHERS = str(EXAMPLES / "publishers.yaml")
HUGE = 2_000_000
# a line of output: its words and at most a few values shown in full
LONGEST_LINE = 20 * MAX_SHOWN


def _claims(tmp_path: Path, **changes: Any) -> str:
    claims = json.loads((EXAMPLES / "claims" / "github-release.json").read_text())
    claims.update(changes)
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(claims))
    return str(path)


def test_show_cuts_a_long_string_and_says_its_length() -> None:
    shown = show("a" * HUGE + "z")
    assert len(shown) < 3 * MAX_SHOWN
    assert shown.startswith("'aaa") and "z'" in shown and "…" in shown
    assert shown.endswith("(2 000 001 characters)")
    assert show("short") == "'short'"  # short values as before


def test_show_bounds_long_lists_and_mappings() -> None:
    shown = show(["x" * 50] * 100_000)
    assert len(shown) < 20 * MAX_SHOWN and "100 000 items" in shown
    assert len(show({"k": "v" * HUGE})) < 3 * MAX_SHOWN
    assert len(show([[["y" * 1000] * 100] * 100] * 100)) < 20 * MAX_SHOWN


def test_show_escapes_what_would_break_a_line() -> None:
    assert "\n" not in show("a\nPASS b") and "\u202e" not in show("a\u202eb")


@pytest.mark.parametrize("claim", [
    "job_workflow_ref", pytest.param("ref", marks=pytest.mark.slow),
    pytest.param("repository", marks=pytest.mark.slow), "environment"])
def test_check_shows_a_huge_claim_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      claim: str) -> None:
    """`check` printed a line of 10 MB for a 5 MB claim (the value, twice)."""
    claims = _claims(tmp_path, **{claim: "a" * HUGE})
    record = tmp_path / "record.jsonl"
    code, out, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--claims", claims,
                             "--record", str(record))
    assert code == 1, err
    assert max(map(len, out.splitlines())) < LONGEST_LINE
    assert "characters)" in out
    code, out, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--claims", claims,
                             "--format", "json")
    assert code == 1, err
    for reason in json.loads(out)["reasons"]:
        assert len(reason["message"]) < LONGEST_LINE
    assert len(record.read_text()) < 2 * LONGEST_LINE


@pytest.mark.parametrize("claim", [
    "job_workflow_ref", pytest.param("ref", marks=pytest.mark.slow),
    pytest.param("repository_owner", marks=pytest.mark.slow)])
def test_explain_shows_a_huge_claim_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        claim: str) -> None:
    claims = _claims(tmp_path, **{claim: "b" * HUGE})
    code, out, err = run_cli(capsys, "explain", "--publishers", PUBLISHERS, "--claims", claims)
    assert code == 1, err
    assert max(map(len, out.splitlines())) < LONGEST_LINE
    code, out, err = run_cli(capsys, "explain", "--publishers", PUBLISHERS, "--claims", claims,
                             "--format", "json")
    assert code == 1, err
    assert "b" * (2 * MAX_SHOWN) not in json.dumps(_messages(json.loads(out)))


def _messages(value: Any) -> list[str]:
    """Every `message`/`fix`/`text` string anywhere in a JSON document."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("message", "fix", "text", "words") and isinstance(item, str):
                found.append(item)
            else:
                found.extend(_messages(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_messages(item))
    return found


def test_an_undisclosed_identity_rule_shows_the_claim_cut() -> None:
    """The message of a failed identity rule (the publisher's value not disclosed) wrote
    the token's value with `repr`, whole."""
    from tppolicy.decide.decision import RuleResult, _undisclosed

    reason = RuleResult("repository_owner_id", False, "65", "9" * HUGE, "x", identity=True)
    assert len(_undisclosed(reason).message) < 3 * MAX_SHOWN


def test_a_record_keeps_short_claims_whole_and_cuts_huge_ones() -> None:
    from tppolicy.text import MAX_RECORDED, recorded

    ref = "octo-org/sampleproject/.github/workflows/release.yml@refs/tags/v1.2.0"
    assert recorded(ref) == ref and recorded(12) == 12 and recorded(["a", "b"]) == ["a", "b"]
    assert len(recorded("r" * HUGE)) < 2 * MAX_RECORDED
    assert len(json.dumps(recorded(["r" * 100] * HUGE))) < 20 * MAX_SHOWN


@pytest.mark.parametrize("issuer", [
    "https://token.actions.githubusercontent.com/" + "x" * HUGE,  # a GitHub enterprise slug
    "https://gitlab.example.com/" + "y" * HUGE,
    "https://" + "z" * HUGE,
], ids=["github-slug", "gitlab-like", "unknown"])
def test_a_huge_unknown_issuer_is_shown_cut(issuer: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown issuer's message and fix quoted the token's `iss` whole."""
    claims = _claims(tmp_path, iss=issuer)
    for command in ("check", "explain"):
        code, out, err = run_cli(capsys, command, "--publishers", PUBLISHERS, "--claims",
                                 claims)
        assert code == 1, err
        assert max(map(len, out.splitlines())) < LONGEST_LINE, command
