"""lint's findings on a generated 2 000 publisher file with planted problems stay the
same as they were before lint's per-publisher work was cut (issue 13): the expected
findings were written once by the code before the change
(tests/fixtures/lint/planted_2000.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tppolicy.tools.lint import lint_publishers_text

EXPECTED = Path(__file__).parent / "fixtures" / "lint" / "planted_2000.json"


def planted_text(count: int = 2000) -> str:
    """Publishers as an organisation's file, with a problem planted every few entries."""
    out = ["publishers:"]
    for i in range(count):
        kind = i % 4
        owner = f"org{i // 50}"
        workflow = "release.yml"
        environment = "pypi"
        extra: list[str] = []
        if i % 89 == 7:
            owner = f"Org{i // 50}"  # capitals (TPP008, TPP007 with its lower-case twin)
        if i % 79 == 13:
            extra.append('    reusable_workflow: "other/repo/.github/workflows/b.yml@main"')
        if i % 71 == 17:
            extra.append('    ref_pattern: "refs/tags/v*"')
        if kind in (0, 1):
            repo = f"repo{i}"
            projects = f"[project-{i}, project-{i}-extras]" if i % 67 != 23 \
                else f"[project-{i}, project_{i - 1}-extras]"  # another's project
            lines = [f"  - name: pub-{i}", "    provider: github",
                     f"    projects: {projects}",
                     f"    repository_owner: {owner}", f"    repository_name: {repo}",
                     f'    repository_owner_id: "{100000 + i // 50}"',
                     f"    workflow_filename: {workflow}"]
            if i % 53 != 29:
                lines.append(f"    environment: {environment}")  # else TPP001
            out += lines + extra
            if i % 101 == 31:  # the same publisher but for .yaml (TPP003)
                out += [f"  - name: pub-{i}-yaml", "    provider: github",
                        f"    projects: [project-{i}-y]",
                        f"    repository_owner: {owner}", f"    repository_name: {repo}",
                        f'    repository_owner_id: "{100000 + i // 50}"',
                        f"    workflow_filename: {workflow.removesuffix('.yml')}.yaml",
                        f"    environment: {environment}"]
        elif kind == 2:
            out += [f"  - name: pub-{i}", "    provider: gitlab", f"    projects: [project-{i}]",
                    f"    namespace: group{i // 50}/python", f"    project: proj{i}",
                    "    workflow_filepath: ci/release.yml"]
            if i % 59 != 2:
                out.append("    environment: production")
        else:
            if i % 43 == 3:  # a pending publisher for a project a normal one has
                out += [f"  - name: pub-{i}", "    provider: google",
                        f"    pending_project: Project.{i - 3}",
                        f"    email: pub{i}@octo.iam.gserviceaccount.com",
                        f'    sub: "{10 ** 20 + i}"']
                continue
            out += [f"  - name: pub-{i}", "    provider: google", f"    projects: [project-{i}]",
                    f"    email: pub{i}@octo.iam.gserviceaccount.com"]
            if i % 47 != 3:
                out.append(f'    sub: "{10 ** 20 + i}"')
    return "\n".join(out) + "\n"


def findings_json(text: str) -> list[dict[str, Any]]:
    return [{"code": f.code, "line": f.span.line, "column": f.span.column,
             "publisher": f.publisher, "message": f.message, "fix": f.fix}
            for f in lint_publishers_text(text, "planted.yml")]


def test_findings_on_a_planted_2000_publisher_file_are_unchanged() -> None:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    found = findings_json(planted_text())
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert got == want


if __name__ == "__main__":  # regenerate (only with the code before a change)
    EXPECTED.write_text(json.dumps(findings_json(planted_text()), indent=1,
                                   ensure_ascii=False) + "\n", encoding="utf-8")
