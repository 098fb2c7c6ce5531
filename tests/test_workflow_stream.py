"""`tppolicy check-workflow --publishers FILE` reads the file once as a stream, comparing
each publisher with every workflow as it goes by and holding none: its output and exit
code are those of the check against the whole file's policy, for the workflow fixtures
(findings of every kind, GitHub and GitLab, several workflows at once), with publishers of
many providers and repositories, and for files read whole (twins, errors)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tppolicy.cli import check_workflow
from tppolicy.decide.load import compile_publishers_file
from tppolicy.tools.workflow import WorkflowCheck, check_workflow_file, open_workflow_file

from .conftest import ROOT, run_cli

WORKFLOWS = ROOT / "tests" / "fixtures" / "workflows"
FIXTURES = (WORKFLOWS / "publishers.yaml").read_text()
STREAMED = check_workflow._streamed


def extra_publishers(count: int) -> str:
    """Publishers of other repositories, of the three kinds (GitHub naming the fixtures'
    workflow files, GitLab, one without workflows), some of them without a name."""
    files = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    lines = []
    for i in range(count):
        head = f"  - name: extra-{i}" if i % 5 else "  -"
        if i % 3 == 0:
            lines += [head, "    provider: gitlab", f"    projects: [gl-{i}]",
                      f"    namespace: group{i}", f"    project: proj{i}",
                      "    workflow_filepath: .gitlab-ci.yml",
                      f"    environment: \"{'pypi' if i % 2 else ''}\""]
        elif i % 3 == 1:
            lines += [head, "    provider: github", f"    projects: [gh-{i}]",
                      f"    repository_owner: org{i}", f"    repository_name: repo{i}",
                      f'    repository_owner_id: "{1000 + i}"',
                      f"    workflow_filename: {files[i % len(files)]}",
                      f"    environment: \"{'' if i % 4 == 0 else 'pypi'}\""]
            if i % 7 == 0:
                lines.append("    allowed_events: push")
        else:
            lines += [head, "    provider: google", f"    projects: [go-{i}]",
                      f"    email: sa{i}@p.iam.gserviceaccount.com", f'    sub: "{10 ** 20 + i}"']
    return "\n".join(lines) + "\n"


def outputs(publishers: Path, arguments: list[str], monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]
            ) -> tuple[tuple[int, str, str], tuple[int, str, str], list[bool]]:
    """(exit code, output, errors) streamed and against the whole file's policy; whether
    the file was streamed."""
    streamed: list[bool] = []

    def spy(args: Any) -> Any:
        result = STREAMED(args)
        streamed.append(result is not None)
        return result

    def run() -> tuple[int, str, str]:
        return run_cli(capsys, "check-workflow", "--publishers", str(publishers), *arguments)

    monkeypatch.setattr(check_workflow, "_streamed", spy)
    first = run()
    monkeypatch.setattr(check_workflow, "_streamed", lambda args: None)
    return first, run(), streamed


ARGUMENTS = [
    [*sorted(str(p) for p in WORKFLOWS.glob("*.yml")),
     str(WORKFLOWS / "gitlab" / "broken.gitlab-ci.yml")],
    [str(WORKFLOWS / "release.yml"), "--repository", "octo-org/sampleproject"],
    [str(WORKFLOWS / "release.yml"), "--repository", "org4/repo4", "--job", "publish"],
    [str(WORKFLOWS / "gitlab" / "broken.gitlab-ci.yml"), "--path", ".gitlab-ci.yml"],
    [str(WORKFLOWS / "gitlab" / "broken.gitlab-ci.yml"), "--path", "ci/.gitlab-ci.yml"],
    [str(WORKFLOWS / "release.yml"), "--path", ".github/workflows/relase.yml"],
    [str(WORKFLOWS / "release.yml"), str(WORKFLOWS / "missing.yml")],
]


@pytest.mark.parametrize("arguments", ARGUMENTS)
@pytest.mark.parametrize("extra", [0, 60])
@pytest.mark.parametrize("form", ["human", "json"])
def test_a_streamed_file_checks_as_the_whole_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        arguments: list[str], extra: int, form: str) -> None:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(FIXTURES + extra_publishers(extra))
    streamed, whole, taken = outputs(publishers, [*arguments, "--format", form], monkeypatch,
                                       capsys)
    assert taken == [True]
    assert streamed == whole
    if form == "json":
        assert json.loads(streamed[1])["workflows"]


def test_no_publisher_of_the_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    lines = extra_publishers(3).splitlines()  # GitLab, GitHub, Google: 7, 8 and 5 lines
    publishers = tmp_path / "publishers.yaml"
    for kept in (lines[:7], lines[15:]):  # a GitLab publisher only, a Google one only
        publishers.write_text("publishers:\n" + "\n".join(kept) + "\n")
        for workflow in (WORKFLOWS / "release.yml",
                         WORKFLOWS / "gitlab" / "broken.gitlab-ci.yml"):
            streamed, whole, taken = outputs(publishers, [str(workflow)], monkeypatch, capsys)
            assert taken == [True]
            assert streamed == whole
            assert "TPW001" in streamed[1]


@pytest.mark.parametrize("extra", [
    # a twin of `seed`: the whole file's policy refuses it
    "  - name: twin\n    provider: github\n    projects: [other]\n"
    "    repository_owner: octo-org\n    repository_name: sampleproject\n"
    '    repository_owner_id: "65"\n    workflow_filename: release.yml\n'
    "    environment: pypi\n",
    # a pending publisher that would become a twin of `seed` (another optional constraint)
    "  - name: future-twin\n    provider: github\n    pending_project: new\n"
    "    repository_owner: octo-org\n    repository_name: sampleproject\n"
    '    repository_owner_id: "65"\n    workflow_filename: release.yml\n'
    "    environment: pypi\n    ref_pattern: refs/tags/*\n",
    # an invalid field
    "  - name: bad\n    provider: github\n    projects: [bad]\n    repository_owner: 'a b'\n"
    "    repository_name: r\n    workflow_filename: release.yml\n",
    # not plain: an anchor (read whole, then checked as before)
    "  - &x\n    name: anchored\n    provider: google\n    projects: [anchored]\n"
    '    email: a@p.iam.gserviceaccount.com\n    sub: "12"\n',
])
def test_a_file_read_whole_checks_as_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        extra: str) -> None:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(FIXTURES + extra)
    streamed, whole, taken = outputs(publishers, [str(WORKFLOWS / "release.yml")], monkeypatch,
                                     capsys)
    assert taken == [False]
    assert streamed == whole


def test_a_workflow_check_offered_the_publishers_reports_as_check_workflow_file(
        tmp_path: Path) -> None:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(FIXTURES + extra_publishers(30))
    policy = compile_publishers_file(publishers)
    for workflow in [*sorted(WORKFLOWS.glob("*.yml")),
                     WORKFLOWS / "gitlab" / "broken.gitlab-ci.yml"]:
        check = open_workflow_file(workflow, policy.providers)
        assert isinstance(check, WorkflowCheck)
        for publisher in policy.publishers:
            check.offer(publisher)
        assert check.report() == check_workflow_file(workflow, policy)


def test_a_workflow_in_a_checkout_is_named_by_its_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(WORKFLOWS / "release.yml", checkout / ".github" / "workflows" / "release.yml")
    code, out, _ = run_cli(capsys, "check-workflow", "--publishers",
                           str(WORKFLOWS / "publishers.yaml"),
                           str(checkout / ".github" / "workflows" / "release.yml"))
    assert code == 0
    assert "'seed'" in out
