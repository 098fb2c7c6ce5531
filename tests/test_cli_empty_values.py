"""An option or argument given as an empty string is a usage error naming it (exit 2):
`check-workflow --job ''` and `--path ''` acted as if not given (every job checked, the
path guessed), `check --upload-version ''` and `--record ''` likewise, `compile -o ''`
printed to standard output, `test --pattern ''` was an internal error (exit 4)."""

from __future__ import annotations

import pytest

from .conftest import EXAMPLES, ROOT, run_cli

PUBLISHERS = str(EXAMPLES / "publishers.yaml")
CLAIMS = str(EXAMPLES / "claims" / "github-release.json")
WORKFLOW = str(ROOT / "tests" / "fixtures" / "workflows" / "branch-push.yml")

CASES = {
    "check-workflow --job": (["check-workflow", WORKFLOW, "--publishers", PUBLISHERS,
                              "--job", ""], "--job"),
    "check-workflow --path": (["check-workflow", WORKFLOW, "--publishers", PUBLISHERS,
                               "--path", ""], "--path"),
    "check-workflow --repository": (["check-workflow", WORKFLOW, "--publishers", PUBLISHERS,
                                     "--repository", ""], "--repository"),
    "check-workflow WORKFLOW": (["check-workflow", "", "--publishers", PUBLISHERS],
                                "WORKFLOW"),
    "check --audience": (["check", "--publishers", PUBLISHERS, "--claims", CLAIMS,
                          "--audience", ""], "--audience"),
    "check --upload-version": (["check", "--publishers", PUBLISHERS, "--claims", CLAIMS,
                                "--upload-version", ""], "--upload-version"),
    "check --record": (["check", "--publishers", PUBLISHERS, "--claims", CLAIMS,
                        "--record", ""], "--record"),
    "check --publishers": (["check", "--publishers", "", "--claims", CLAIMS], "--publishers"),
    "explain --claims": (["explain", "--publishers", PUBLISHERS, "--claims", ""], "--claims"),
    "compile -o": (["compile", PUBLISHERS, "-o", ""], "-o/--output"),
    "lint --config": (["lint", PUBLISHERS, "--config", ""], "--config"),
    "test --pattern": (["test", str(EXAMPLES), "--pattern", ""], "--pattern"),
    "test --root": (["test", str(EXAMPLES), "--root", ""], "--root"),
    "decode TOKEN": (["decode", ""], "TOKEN"),
    "serve issuers add": (["serve", "--db", "unused.db", "issuers", "add", "", "gitlab"],
                          "ISSUER"),
    "serve publishers add --name": (["serve", "--db", "unused.db", "publishers", "add", "github",
                                     "--project", "p", "--name", ""], "--name"),
}


@pytest.mark.parametrize("case", CASES)
def test_an_empty_value_is_a_usage_error(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv, name = CASES[case]
    with pytest.raises(SystemExit) as exited:
        run_cli(capsys, *argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {name}: expected a value, got an empty string" in err
