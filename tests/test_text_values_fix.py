"""How a provider file's fix texts show values. Before: a missing claim read "the tag
'nothing'", a list-like field "accepts only webhook,ui" (the raw string) and a list
"[a, b]", a mapping its Python repr, and a claim holding a newline printed a line of its
own in `tppolicy check`'s output (where a fake "pass" line could be written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tppolicy.language.check import CheckedProvider, check_provider
from tppolicy.language.parse import parse_policy
from tppolicy.language.texts import MAX_SHOWN, MissingValue, fix_for, render_value

from .conftest import ROOT
from .conftest import run_cli as run

PROVIDER = """
provider ci {
  issuer "https://ci.example.com"
  claims {
    required repo: string
    optional tag, source: string
    unchecked extra: string
  }
  fields {
    repo: string
    tag_pattern: string = ""
    sources: string = ""
  }
  let source_list = split(publisher.sources, ",")
  lookup {
    key publisher.repo == claims.repo
  }
  rule tag {
    require publisher.tag_pattern == "" or glob(claims.tag, publisher.tag_pattern)
    fix workflow when not has(claims.tag) "the run is for no tag, {publisher.tag_pattern} wanted"
    fix workflow "the run is for the tag '{claims.tag}', {publisher.tag_pattern} wanted"
  }
  rule source {
    require publisher.sources == "" or claims.source in split(publisher.sources, ",")
    fix workflow "started by '{claims.source}', only {source_list} accepted"
  }
  rule repo: claims.repo == publisher.repo
}
"""


def _provider() -> CheckedProvider:
    return check_provider(parse_policy(PROVIDER, "ci.tpp").providers[0], PROVIDER)


FIELDS = {"repo": "r", "tag_pattern": "v*", "sources": "webhook,ui,api"}


def test_a_missing_value_is_never_shown_as_a_value() -> None:
    with pytest.raises(MissingValue):
        render_value(None)
    provider = _provider()
    # The file words the missing case: its fix is the one given.
    assert fix_for(provider.fixes["tag"], {"repo": "r"}, provider.claim_types, FIELDS) == (
        "workflow", "the run is for no tag, v* wanted")
    assert fix_for(provider.fixes["tag"], {"repo": "r", "tag": "x"}, provider.claim_types,
                   FIELDS) == ("workflow", "the run is for the tag 'x', v* wanted")
    # A file that does not: the text is skipped, nothing reads "'nothing'".
    assert fix_for(provider.fixes["source"], {"repo": "r"}, provider.claim_types,
                   FIELDS) is None


def test_lists_read_as_words() -> None:
    provider = _provider()
    assert fix_for(provider.fixes["source"], {"repo": "r", "source": "cron"},
                   provider.claim_types, FIELDS) == (
        "workflow", "started by 'cron', only webhook, ui or api accepted")
    assert render_value(["webhook", "ui"]) == "webhook or ui"
    assert render_value(["webhook"]) == "webhook"
    assert render_value([]) == "none"
    assert render_value([1, True, None]) == "1, true or nothing"


def test_mappings_read_as_json_and_other_values_as_themselves() -> None:
    assert render_value({"b": 1, "a": [True, None]}) == '{"a": [true, null], "b": 1}'
    assert render_value(False) == "false" and render_value(7) == "7"
    assert render_value("") == ""


def test_control_characters_are_escaped() -> None:
    assert render_value("v1\n  pass  fake") == "v1\\n  pass  fake"
    assert render_value("a\rb\tc\x1b[31md\x7f\u2028") == "a\\rb\\tc\\x1b[31md\\x7f\\u2028"
    assert render_value(["x\ny", "z"]) == "x\\ny or z"


def test_long_values_of_any_kind_are_cut() -> None:
    long_list = [f"event{i}" for i in range(10_000)]
    shown = render_value(long_list)
    assert len(shown) == MAX_SHOWN + 3
    assert shown.startswith("event0, event1") and shown.endswith("event9998 or event9999")
    escaped = render_value("\n" * 1_000)
    assert len(escaped) == MAX_SHOWN + 3 and set(escaped) == {"\\", "n", "."}


def test_check_prints_no_line_a_claim_wrote(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    import yaml

    table = yaml.safe_load((ROOT / "tests" / "cases" / "buildkite.tptest.yaml").read_text())
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(yaml.safe_dump({"publishers": table["publishers"]}))
    claims = {**table["claims"]["tag-build"], "build_source": "api\n  pass  build_source"}
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(claims))
    code, out, _ = run(capsys, "check", "--publishers", str(publishers), "--claims", str(path),
                       "--upload-version", "1.2.3")
    assert code == 1
    assert not any(line.strip() == "pass  build_source" for line in out.splitlines())
    assert ("fix: The build was started by 'api\\n  pass  build_source', the publisher "
            "accepts only webhook or ui.") in out


def _case_claims(table: dict[str, Any], case: dict[str, Any]) -> dict[str, Any] | None:
    base = case.get("claims")
    if isinstance(base, str):
        base = (table.get("claims") or {}).get(base)
    if not isinstance(base, dict):
        return None
    claims = {**base, **(case.get("set") or {})}
    for name in case.get("unset") or []:
        claims.pop(name, None)
    return claims


@pytest.mark.slow
def test_a_missing_claim_never_costs_a_rule_its_fix() -> None:
    """Every case of the provider case tables, then with each claim its provider declares
    left out: a failed rule that has fixes in its file gets one whenever it got one with
    the claim there (the file words the missing case), and no fix shows 'nothing' or a raw
    control character."""
    import yaml

    import tppolicy
    from tppolicy.tools.explain import decision_fixes

    lost: list[str] = []
    for path in sorted((ROOT / "tests" / "cases").glob("*.tptest.yaml")):
        table = yaml.safe_load(path.read_text("utf-8"))
        if not isinstance(table.get("publishers"), list):
            continue
        policy = tppolicy.compile_publishers_text(
            yaml.safe_dump({"publishers": table["publishers"]}), path.name,
            issuers=table.get("issuers"))
        declared = {name for p in policy.publishers for name in p.provider.claims}
        for case in table.get("cases") or []:
            claims = _case_claims(table, case)
            if claims is None:
                continue
            for request in (case.get("request"), None):
                baseline: set[str] | None = None
                for left_out in (None, *sorted(declared & set(claims))):
                    given = {k: v for k, v in claims.items() if k != left_out}
                    decision = policy.evaluate(given, explain=True, request=request)
                    if decision.allowed or decision.closest is None:
                        baseline = set() if baseline is None else baseline
                        continue
                    fixes = decision_fixes(policy, decision, given, request=request)
                    for fix in fixes.values():
                        assert "'nothing'" not in fix.text and "\n" not in fix.text, fix.text
                    publisher = next(p for p in policy.publishers
                                     if p.label == decision.closest)
                    unfixed = {r.rule for r in decision.failed
                               if r.rule in publisher.provider.fixes and r.rule not in fixes}
                    if baseline is None:
                        baseline = unfixed
                    lost += [f"{path.name}: {case['name']!r} without {left_out}: {rule}"
                             for rule in sorted(unfixed - baseline)]
    assert not lost, "\n".join(lost)
