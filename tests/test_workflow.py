"""`tppolicy check-workflow`: real release workflows (GitHub's starter workflow, the seed
workflow, a GitLab pipeline) and broken variants, in tests/fixtures/workflows/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tppolicy
from tppolicy.cli import main
from tppolicy.tools.workflow import CODES, WorkflowError, check_workflow_file, check_workflow_text

from .conftest import ROOT
from .conftest import run_cli as run

FIXTURES = ROOT / "tests" / "fixtures" / "workflows"
PUBLISHERS = FIXTURES / "publishers.yaml"


@pytest.fixture(scope="module")
def policy() -> tppolicy.Policy:
    return tppolicy.compile_publishers_file(PUBLISHERS)


def codes(policy: tppolicy.Policy, name: str, **options: str) -> list[tuple[str, str, int]]:
    report = check_workflow_file(FIXTURES / name, policy, **options)
    return [(f.code, f.level, f.span.line) for f in report.findings]


# ------------------------------------------------------------------- real ones
def test_the_starter_workflow_is_accepted(policy: tppolicy.Policy) -> None:
    """GitHub's starter workflow for PyPI: accepted; its action is not pinned (advice)."""
    report = check_workflow_file(FIXTURES / "python-publish.yml", policy)
    assert report.kind == "github"
    assert report.publishers == ("starter",)
    assert report.jobs == ("pypi-publish",)
    assert not report.errors
    [advice] = report.findings
    assert (advice.code, advice.level, advice.span.line, advice.span.column) == (
        "TPW010", "advice", 58, 15)
    assert "pypa/gh-action-pypi-publish is used at 'release/v1'" in advice.message


def test_the_seed_workflow_is_accepted_without_advice(policy: tppolicy.Policy) -> None:
    """The seed workflow pins its third-party action to a commit."""
    report = check_workflow_file(FIXTURES / "release.yml", policy)
    assert report.findings == ()
    assert report.publishers == ("seed",)


def test_the_gitlab_pipeline_is_accepted(policy: tppolicy.Policy) -> None:
    report = check_workflow_file(FIXTURES / "gitlab" / ".gitlab-ci.yml", policy,
                                 path=".gitlab-ci.yml")
    assert report.kind == "gitlab"
    assert (report.publishers, report.jobs) == (("gitlab-tags",), ("publish-pypi",))
    assert [(f.code, f.level) for f in report.findings] == [("TPW010", "advice")]


# ----------------------------------------------------------------------- broken
@pytest.mark.parametrize(("name", "expected"), [
    ("no-id-token.yml", [("TPW003", "error", 10)]),
    ("job-permissions.yml", [("TPW003", "error", 14)]),
    ("wrong-environment.yml", [("TPW010", "advice", 14), ("TPW004", "error", 9)]),
    ("pull-request-target.yml", [("TPW005", "error", 5)]),
    ("branch-push.yml", [("TPW007", "error", 5)]),
    ("tag-push.yml", [("TPW006", "advice", 9), ("TPW007", "advice", 9)]),
    ("self-hosted.yml", [("TPW009", "error", 9)]),
    ("reusable-caller.yml", [("TPW010", "advice", 12), ("TPW013", "advice", 8)]),
])
def test_broken_variants(policy: tppolicy.Policy, name: str,
                         expected: list[tuple[str, str, int]]) -> None:
    assert codes(policy, name) == expected


def test_the_job_permissions_message_says_why(policy: tppolicy.Policy) -> None:
    report = check_workflow_file(FIXTURES / "job-permissions.yml", policy)
    assert "the workflow's do, but a job's own permissions replace them" in \
        report.findings[0].message


def test_gitlab_broken_pipeline(policy: tppolicy.Policy) -> None:
    report = check_workflow_file(FIXTURES / "gitlab" / "broken.gitlab-ci.yml", policy,
                                 path=".gitlab-ci.yml")
    assert [(f.code, f.level) for f in report.findings] == [
        ("TPW003", "error"), ("TPW004", "error"), ("TPW007", "advice")]
    assert "(case matters)" in report.findings[1].message


def test_a_gitlab_path_must_be_the_publishers(policy: tppolicy.Policy) -> None:
    report = check_workflow_file(FIXTURES / "gitlab" / ".gitlab-ci.yml", policy)
    [missing] = report.errors
    assert missing.code == "TPW001"
    assert "a publisher names '.gitlab-ci.yml'" in missing.fix


# ---------------------------------------------------------- smaller workflows
WORKFLOW = """\
on:
  release:
    types: [published]
jobs:
  publish:
    runs-on: ubuntu-latest
    environment: pypi
    permissions:
      id-token: write
    steps:
      - uses: pypa/gh-action-pypi-publish@6f7e8d9c0b1a2c3d4e5f6a7b8c9d0e1f2a3b4c5d
"""


def _check(policy: tppolicy.Policy, text: str, path: str = ".github/workflows/release.yml",
           **options: str) -> list[tuple[str, str]]:
    report = check_workflow_text(text, path, policy, path=path, **options)
    return [(f.code, f.level) for f in report.findings]


def test_a_near_miss_file_name_is_named(policy: tppolicy.Policy) -> None:
    report = check_workflow_text(WORKFLOW, "release.yaml", policy,
                                 path=".github/workflows/release.yaml")
    [finding] = report.findings
    assert finding.code == "TPW001"
    assert "a publisher names 'release.yml'" in finding.fix


def test_no_publishing_job(policy: tppolicy.Policy) -> None:
    text = "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n" \
           "      - run: pytest\n"
    assert _check(policy, text) == [("TPW002", "error")]
    assert _check(policy, WORKFLOW, job="nope") == [("TPW002", "error")]


def test_the_repository_option_filters_publishers(policy: tppolicy.Policy) -> None:
    assert _check(policy, WORKFLOW, repository="octo-org/sampleproject") == []
    assert _check(policy, WORKFLOW, repository="octo-org/other") == [("TPW001", "error")]


def test_an_environment_given_by_an_expression_is_advice(policy: tppolicy.Policy) -> None:
    text = WORKFLOW.replace("environment: pypi", "environment: ${{ inputs.env }}")
    assert _check(policy, text) == [("TPW013", "advice")]
    mapping = WORKFLOW.replace("environment: pypi", "environment:\n      name: PyPI")
    assert _check(policy, mapping) == []  # GitHub environments ignore case


def test_write_all_grants_the_token(policy: tppolicy.Policy) -> None:
    text = WORKFLOW.replace("    permissions:\n      id-token: write\n", "") \
        .replace("jobs:", "permissions: write-all\njobs:")
    assert _check(policy, text) == []


def test_workflow_run_is_advice(policy: tppolicy.Policy) -> None:
    text = WORKFLOW.replace("  release:\n    types: [published]\n",
                            "  workflow_run:\n    workflows: [CI]\n")
    assert _check(policy, text) == [("TPW012", "advice")]


def test_a_reusable_workflow_of_another_repository_needs_the_constraint(
        policy: tppolicy.Policy) -> None:
    text = ("on: release\njobs:\n  publish:\n    permissions: {id-token: write}\n"
            "    uses: octo-org/shared-workflows/.github/workflows/pypi.yml@"
            "6f7e8d9c0b1a2c3d4e5f6a7b8c9d0e1f2a3b4c5d\n")
    report = check_workflow_text(text, "release.yml", policy,
                                 path=".github/workflows/release.yml")
    [finding] = report.errors
    assert finding.code == "TPW008"
    assert "reusable_workflow: octo-org/shared-workflows/.github/workflows/pypi.yml@" \
           "6f7e8d9c0b1a2c3d4e5f6a7b8c9d0e1f2a3b4c5d" in finding.fix


def test_the_reusable_workflow_must_be_the_publishers(policy: tppolicy.Policy) -> None:
    text = (FIXTURES / "reusable-caller.yml").read_text()
    path = ".github/workflows/reusable-caller.yml"
    branch = text.replace("pypi.yml@v2", "pypi.yml@main")
    assert ("TPW008", "error") in _check(policy, branch, path)
    other = text.replace("octo-org/shared-workflows", "octo-evil/shared-workflows")
    assert ("TPW008", "error") in _check(policy, other, path)
    own_steps = ("on: release\njobs:\n  publish:\n    environment: pypi\n"
                 "    permissions: {id-token: write}\n    runs-on: ubuntu-latest\n"
                 "    steps:\n      - run: twine upload dist/*\n")
    assert _check(policy, own_steps, path) == [("TPW008", "error")]


def test_a_local_reusable_workflow_names_the_called_file(policy: tppolicy.Policy) -> None:
    text = ("on: release\njobs:\n  publish:\n    permissions: {id-token: write}\n"
            "    uses: ./.github/workflows/publish.yml\n")
    report = check_workflow_text(text, "release.yml", policy,
                                 path=".github/workflows/release.yml")
    [finding] = report.errors
    assert finding.code == "TPW008"
    assert "workflow_filename: publish.yml and caller_workflow: release.yml" in finding.fix


def test_a_publisher_without_environment_gets_advice() -> None:
    policy = tppolicy.compile_publishers_text(
        "publishers:\n- {provider: github, projects: [x], repository_owner: o, "
        "repository_name: r, repository_owner_id: '1', workflow_filename: release.yml, "
        "ref_protected: true}\n")
    assert _check(policy, WORKFLOW) == [("TPW011", "advice"), ("TPW014", "advice")]


def test_workflow_call_only_skips_the_triggers(policy: tppolicy.Policy) -> None:
    text = WORKFLOW.replace("  release:\n    types: [published]\n", "  workflow_call:\n")
    assert _check(policy, text) == []


@pytest.mark.parametrize(("text", "message"), [
    ("on: [push\n", "invalid YAML"),
    ("- a\n- b\n", "a workflow is a YAML mapping"),
    ("on: push\non: release\njobs: {}\n", "invalid YAML"),
    # was "invalid YAML: maximum recursion depth exceeded"
    ("on: push\njobs: {a: {steps: " + "[" * 400 + "]" * 400 + "}}\n",
     "the YAML is nested too deeply"),
])
def test_invalid_workflows(policy: tppolicy.Policy, text: str, message: str) -> None:
    with pytest.raises(WorkflowError) as info:
        check_workflow_text(text, "w.yml", policy)
    assert message in str(info.value)


def test_unreadable_workflow_files(policy: tppolicy.Policy, tmp_path: Path) -> None:
    with pytest.raises(WorkflowError) as info:
        check_workflow_file(tmp_path / "missing.yml", policy)
    assert "missing.yml" in str(info.value) and "cannot read the file" in str(info.value)
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"on: push\nname: caf\xe9\n")
    with pytest.raises(WorkflowError) as info:
        check_workflow_file(latin, policy)
    diagnostic = info.value.diagnostics[0]
    assert "byte 0xe9 cannot be decoded" in diagnostic.message
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 10)


# -------------------------------------------------------------------------- CLI
def test_cli_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = ("check-workflow", "--publishers", str(PUBLISHERS))
    code, out, _ = run(capsys, *base, str(FIXTURES / "python-publish.yml"))
    assert code == 0
    assert out.splitlines()[-2:] == [
        f"{FIXTURES / 'python-publish.yml'}: ok: 'starter' would accept a token of job "
        "'pypi-publish'", "1 advice in 1 workflow"]
    code, out, _ = run(capsys, *base, str(FIXTURES / "no-id-token.yml"),
                       str(FIXTURES / "release.yml"))
    assert code == 1
    assert out.splitlines()[-1] == "1 error in 2 workflows"
    assert "    fix: add `id-token: write` to the permissions of job 'pypi-publish'" in out
    broken = tmp_path / "broken.yml"
    broken.write_text("on: [push\n")
    code, _, err = run(capsys, *base, str(broken), str(FIXTURES / "release.yml"))
    assert code == 3
    assert "invalid YAML" in err
    code, _, err = run(capsys, *base, "--path", "x.yml", str(broken), str(broken))
    assert code == 2
    assert "--path goes with one workflow" in err


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check-workflow", "--publishers", str(PUBLISHERS), "--format",
                       "json", str(FIXTURES / "wrong-environment.yml"))
    assert code == 1
    [workflow] = json.loads(out)["workflows"]
    assert workflow["publishers"] == ["wrong-environment"]
    error = next(f for f in workflow["findings"] if f["level"] == "error")
    assert error == {
        "code": "TPW004", "name": "environment", "level": "error",
        "file": str(FIXTURES / "wrong-environment.yml"), "line": 9, "column": 5,
        "end_line": 9, "end_column": 16, "publisher": "wrong-environment", "job": "upload",
        "message": "job 'upload' runs in environment 'release'; the publisher expects 'pypi'",
        "fix": "write `environment: pypi` in the job, or change the publisher's environment "
               "to 'release'"}


def test_cli_help_lists_every_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check-workflow", "--help"])
    out = capsys.readouterr().out
    assert all(code in out for code in CODES)


@pytest.mark.parametrize(("filters", "accepted"), [
    ({"tags": ["*"]}, True),
    ({"tags": ["**"]}, True),
    ({"tags": ["v*"]}, True),
    ({"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}, True),
    ({"tags": ["release-*"]}, False),
    ({"branches": ["main"]}, False),
    ({"branches": ["main"], "tags": ["v*"]}, True),
    ({"branches": ["releases/**"], "tags": ["!v*"]}, False),
])
def test_push_filters_against_a_tag_pattern(filters: dict[str, list[str]],
                                            accepted: bool) -> None:
    from tppolicy.language.ops import Glob
    from tppolicy.tools.workflow import _refs_accepted

    assert _refs_accepted("push", filters, [Glob("refs/tags/v*")]) is accepted


# ------------------------------------------- issue 12 item 18: each job on its own
TWO_JOBS = """\
on:
  release:
    types: [published]
jobs:
  publish-to-pypi:
    runs-on: ubuntu-latest
    environment: pypi
    permissions:
      id-token: write
    steps:
      - uses: pypa/gh-action-pypi-publish@6f7e8d9c0b1a2c3d4e5f6a7b8c9d0e1f2a3b4c5d
  publish-to-testpypi:
    runs-on: ubuntu-latest
    environment: testpypi
    permissions:
      id-token: write
    steps:
      - uses: pypa/gh-action-pypi-publish@6f7e8d9c0b1a2c3d4e5f6a7b8c9d0e1f2a3b4c5d
"""


def test_a_job_refused_is_an_error_whatever_the_other_jobs_do(
        policy: tppolicy.Policy) -> None:
    report = check_workflow_text(TWO_JOBS, ".github/workflows/release.yml", policy,
                                 path=".github/workflows/release.yml")
    errors = [(f.code, f.job) for f in report.errors]
    assert errors == [("TPW004", "publish-to-testpypi")]
    alone = check_workflow_text(TWO_JOBS, ".github/workflows/release.yml", policy,
                                path=".github/workflows/release.yml", job="publish-to-testpypi")
    assert [(f.code, f.job) for f in alone.errors] == errors


def test_two_jobs_for_two_publishers_are_both_accepted(tmp_path: Path) -> None:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text("publishers:\n" + "".join(
        f"  - {{name: {env}, provider: github, projects: [sampleproject], "
        "repository_owner: octo-org, repository_name: sampleproject, "
        f"repository_owner_id: '65', workflow_filename: release.yml, environment: {env}}}\n"
        for env in ("pypi", "testpypi")))
    both = tppolicy.compile_publishers_file(publishers)
    report = check_workflow_text(TWO_JOBS, ".github/workflows/release.yml", both,
                                 path=".github/workflows/release.yml")
    assert report.errors == ()
    assert report.jobs == ("publish-to-pypi", "publish-to-testpypi")


def test_the_provider_files_rules_judge_the_job(tmp_path: Path) -> None:
    """A provider extending github whose environment rule matches case exactly, and which
    refuses workflow_dispatch: check-workflow follows its rules, not github's."""
    (tmp_path / "strict.tpp").write_text("""
provider strict extends github {
  issuer "https://strict.example.com"
  rule environment {
    require publisher.environment == "" or claims.environment == publisher.environment
  }
  rule no_dispatch: claims.event_name != "workflow_dispatch"
}
""")
    providers = tppolicy.load_providers([tmp_path])
    text = ("publishers: [{provider: strict, projects: [sampleproject], repository_owner: o, "
            "repository_name: r, repository_owner_id: '1', workflow_filename: release.yml, "
            "environment: pypi}]")
    strict = tppolicy.compile_publishers_text(text, providers=providers)
    workflow = WORKFLOW.replace("environment: pypi", "environment: PyPI").replace(
        "  release:\n    types: [published]\n", "  workflow_dispatch:\n")
    report = check_workflow_text(workflow, "release.yml", strict, path="release.yml")
    found = {(f.code, f.level) for f in report.findings}
    assert ("TPW004", "error") in found and ("TPW006", "error") in found
    env = next(f for f in report.findings if f.code == "TPW004")
    assert "(case matters)" in env.message
    github = tppolicy.compile_publishers_text(text.replace("strict", "github"))
    assert [f.code for f in check_workflow_text(
        workflow, "release.yml", github, path="release.yml").errors] == []


def test_filters_beyond_the_glob_limits_are_not_a_crash(policy: tppolicy.Policy,
                                                        tmp_path: Path) -> None:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(
        "publishers: [{name: tags, provider: github, projects: [sampleproject], "
        "repository_owner: octo-org, repository_name: sampleproject, repository_owner_id: '65',"
        " workflow_filename: release.yml, environment: pypi, ref_pattern: 'refs/tags/v*'}]")
    tags = tppolicy.compile_publishers_file(publishers)
    text = WORKFLOW.replace("  release:\n    types: [published]\n",
                            f"  push:\n    tags: ['{'v' * 5000}*']\n")
    report = check_workflow_text(text, "release.yml", tags, path="release.yml")
    assert all(f.code != "TPW007" or f.level == "advice" for f in report.findings)
