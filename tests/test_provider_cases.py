"""The per-provider case tables (tests/cases/*.tptest.yaml) run through the product's own
runner, `tppolicy test`, which also decides every case through both fronts (`Policy.evaluate`
and `Engine.check_claims`); and each table's publishers, compiled to policy text and read
back, decide every case identically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import tppolicy
from tppolicy.tools.testrunner import run_files

from .conftest import run_cli

CASES_DIR = Path(__file__).parent / "cases"
TABLES = sorted(CASES_DIR.glob("*.tptest.yaml"))


def _name(path: Path) -> str:
    return path.name.removesuffix(".tptest.yaml")


def test_every_provider_has_a_case_table() -> None:
    assert {_name(path) for path in TABLES} >= {
        path.stem for path in (CASES_DIR.parents[1] / "policies").glob("*.tpp")}


def test_tppolicy_test_passes_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "test", str(CASES_DIR), "--format", "json")
    report = json.loads(out)
    failures = [f"{c['file']}:{c['line']}: {c['name']}: {'; '.join(c['problems'])}"
                for c in report["cases"] if not c["passed"]]
    assert (code, report["errors"], failures) == (0, [], []), err
    assert report["files"] == [str(path) for path in TABLES]
    total = sum(len(yaml.safe_load(path.read_text("utf-8"))["cases"]) for path in TABLES)
    assert (report["passed"], report["failed"]) == (total, 0)
    assert total >= 245


def test_a_disagreement_between_the_fronts_fails_the_case(tmp_path: Path) -> None:
    # Registering an issuer for a provider that allows none: Policy ignored it while Engine
    # refused it (issue 11). Whatever the fronts settle on, such a case cannot pass silently.
    table = yaml.safe_load((CASES_DIR / "github.tptest.yaml").read_text("utf-8"))
    release = next(c for c in table["cases"] if c["allowed"] and "set" not in c)
    test = {"issuers": {"https://ghe.example.com": "github"},
            "publishers": table["publishers"], "claims": table["claims"], "cases": [release]}
    path = tmp_path / "fronts.tptest.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False), "utf-8")
    report = run_files([path])
    assert report.passed == 0
    assert report.errors or "Engine.check_claims" in " ".join(report.results[0].problems)
    assert run_files([path], fronts=False).passed == (0 if report.errors else 1)


def _claims(table: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    claims = dict(table["claims"][case["claims"]])
    claims.update(case.get("set") or {})
    for name in case.get("unset") or []:
        claims.pop(name, None)
    return claims


@pytest.mark.parametrize("path", TABLES, ids=_name)
def test_the_compiled_policy_decides_every_case_alike(path: Path) -> None:
    table = yaml.safe_load(path.read_text("utf-8"))
    issuers = table.get("issuers") or {}
    text = yaml.safe_dump({"publishers": table["publishers"]}, sort_keys=False)
    from_yaml = tppolicy.compile_publishers_text(text, f"{path.name}#publishers",
                                                 issuers=issuers)
    compiled = tppolicy.format_policy(from_yaml)
    from_text = tppolicy.load_policy_text(compiled, f"{path.name}#compiled", issuers=issuers)
    for case in table["cases"]:
        claims = _claims(table, case)
        audience, request = case.get("audience", "pypi"), case.get("request")
        decision = from_yaml.evaluate(claims, audience=audience, explain=True, request=request)
        again = from_text.evaluate(claims, audience=audience, explain=True, request=request)
        assert decision == again, f"{case['name']}: the compiled policy decides differently"
        quick = from_yaml.evaluate(claims, audience=audience, request=request)
        assert (quick.allowed, quick.publisher, quick.learned) == (
            decision.allowed, decision.publisher, decision.learned), case["name"]
