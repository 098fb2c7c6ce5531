"""The `workflows KIND { NAME: EXPR }` block of a provider file: what `tppolicy
check-workflow` (and lint's TPP001) know of a publisher comes from it, never from field names
written in Python. Language (parse, check, print, fmt with comments), then the tools on a
provider file copied under another name with its fields renamed."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tppolicy.errors import PolicyCheckError
from tppolicy.language.check import CheckedProvider, check_policy, check_provider
from tppolicy.language.parse import parse_policy, parse_policy_outline
from tppolicy.language.printer import format_policy, format_policy_with_comments
from tppolicy.language.providers import load_providers

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "tests" / "fixtures" / "workflows"

PROVIDER = """
provider ci {
  issuer "https://ci.example.com"
  # what check-workflow reads
  workflows github_actions {
    repository: publisher.org + "/" + publisher.repo  # OWNER/REPO
    # the file
    file: publisher.pipeline
    environment: publisher.env
    refs: [publisher.tags, tag_refs]
    events: split(publisher.events, ",")
    ref_protected: publisher.protect
  }
  claims { required org, repo, env: string }
  fields {
    org: string
    repo: string
    pipeline: string
    env: string = ""
    tags: string = ""
    version: string = ""
    events: string = ""
    protect: bool = false
  }
  let tag_refs = if publisher.version == "" then "" else "refs/tags/" + publisher.version
  lookup {
    identity publisher.org == claims.org
    key publisher.repo == claims.repo
  }
  rule org: claims.org == publisher.org
  rule repo: claims.repo == publisher.repo
  rule env: publisher.env == "" or claims.env == publisher.env
}
"""


def _provider(text: str = PROVIDER) -> CheckedProvider:
    return check_provider(parse_policy(text, "ci.tpp").providers[0], text)


def _errors(text: str) -> list[str]:
    with pytest.raises(PolicyCheckError) as caught:
        _provider(text)
    return [f"{d.message} | {d.hint}" for d in caught.value.diagnostics]


# ------------------------------------------------------------------- language
def test_round_trip_and_comments_kept() -> None:
    parsed = parse_policy(PROVIDER)
    printed = format_policy(parsed)
    assert parse_policy(printed) == parsed
    assert "  workflows github_actions {\n    repository: " in printed
    assert "    file: publisher.pipeline\n" in printed
    policy, outline, comments = parse_policy_outline(PROVIDER)
    kept = format_policy_with_comments(policy, outline, comments)
    assert parse_policy(kept) == parsed
    assert "  # what check-workflow reads\n  workflows github_actions {" in kept
    assert '/" + publisher.repo  # OWNER/REPO\n    # the file\n    file:' in kept
    assert format_policy_with_comments(*parse_policy_outline(kept)) == kept


def test_a_kind_without_items_prints_as_before() -> None:
    text = 'provider ci { issuer "https://ci.example.com" workflows gitlab_ci {} }'
    printed = format_policy(parse_policy(text))
    assert "  workflows gitlab_ci\n" in printed and "{}" not in printed.split("workflows")[1]


def test_values_for_a_publisher() -> None:
    provider = _provider()
    fields = {"org": "o", "repo": "r", "pipeline": "release.yml", "env": "", "tags": "",
              "version": "v1", "events": "push,release", "protect": True}
    assert provider.workflow_values(fields) == {
        "repository": "o/r", "file": "release.yml", "caller": "", "reusable": "",
        "environment": "", "refs": ("refs/tags/v1",), "events": ("push", "release"),
        "ref_protected": True, "environment_protected": False}
    assert provider.workflow_field("file") == "pipeline"
    assert provider.workflow_field("repository") is None  # two fields


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("file: publisher.pipeline", "fiel: publisher.pipeline",
     "'fiel' is not something check-workflow asks about a github_actions publisher | "
     "did you mean 'file'?"),
    ("file: publisher.pipeline", "file: publisher.pipeline file: publisher.repo",
     "'file' is given twice in the workflows block"),
    ("file: publisher.pipeline", "file: publisher.protect",
     "'file' must be a string, found bool"),
    ("events: split(publisher.events, \",\")", "events: publisher.events",
     "'events' must be a list of strings, found string"),
    ("ref_protected: publisher.protect", "ref_protected: claims.org == \"x\"",
     "'ref_protected' is about the publisher, not a token"),
    ("file: publisher.pipeline", "file: publisher.pipelin",
     "unknown publisher field 'pipelin' | did you mean 'pipeline'?"),
    ("file: publisher.pipeline", "",
     "does not say 'file': check-workflow needs the publisher's workflow file and its "
     "repository | add `workflows github_actions { file: publisher.workflow_filename }`"),
])
def test_check_errors(old: str, new: str, expected: str) -> None:
    errors = _errors(PROVIDER.replace(old, new))
    assert any(expected in error for error in errors), errors


def test_a_gitlab_kind_does_not_take_github_items() -> None:
    errors = _errors(PROVIDER.replace("workflows github_actions", "workflows gitlab_ci"))
    assert any("'events' is not something check-workflow asks about a gitlab_ci publisher"
               in e for e in errors), errors


def test_extends_replaces_items_by_name() -> None:
    text = PROVIDER + """
provider ci2 extends ci {
  issuer "https://ci2.example.com"
  workflows github_actions { environment: "prod" }
}
"""
    policy = check_policy(parse_policy(text, "ci.tpp"), {}, text)
    child = policy.providers["ci2"]
    assert list(child.workflow) == ["repository", "file", "environment", "refs", "events",
                                    "ref_protected"]
    assert child.workflow_values({"org": "o", "repo": "r", "pipeline": "p.yml", "env": "",
                                  "tags": "", "version": "", "events": "",
                                  "protect": False})["environment"] == "prod"


def test_the_shipped_providers_declare_their_items() -> None:
    providers = load_providers()
    assert providers["github"].workflow_field("file") == "workflow_filename"
    assert providers["github_enterprise"].workflow_field("file") == "workflow_filename"
    assert providers["gitlab"].workflow_field("file") == "workflow_filepath"
    assert providers["github"].workflow_field("environment") == "environment"
    # The compiled policy's provider header keeps the block (lets filled in).
    header = format_policy(parse_policy(format_policy_header(providers["github"])))
    assert 'refs: [publisher.ref_pattern, if publisher.version_tag == ""' in header


def format_policy_header(provider: CheckedProvider) -> str:
    from tppolicy.language.printer import format_provider

    return format_provider(provider.header(), include_rules=False)


# ------------------------------------------- a copy with its fields renamed
# Field renames in the provider files (whole words: these names appear nowhere else) and
# in the publishers files.
FIELDS = (  # the same lengths: findings keep their columns
    ("workflow_filename", "zz_flow_file_name"), ("caller_workflow", "zz_calling_flow"),
    ("reusable_workflow", "zz_called_wf_path"), ("ref_pattern", "zz_ref_glob"),
    ("version_tag", "zz_rel_tags"), ("allowed_events", "zz_events_okay"),
    ("denied_events", "zz_events_bad"), ("repository_name", "zz_project_name"),
    ("workflow_filepath", "zz_pipeline_paths"), ("ref_path_pattern", "zz_ref_path_glob"),
)
# The environment field shares its name with a claim: renamed only as a field.
ENVIRONMENT = "zz_env_name"
PROVIDERS = (("provider github {", "provider zz_hub {"), ("provider gitlab {", "provider zz_lab {"))
NAMES = (("github", "zz_hub"), ("gitlab", "zz_lab"))

MORE_PUBLISHERS = """\
  - name: versioned
    provider: github
    projects: [sampleproject]
    repository_owner: octo-org
    repository_name: sampleproject
    repository_owner_id: "65"
    workflow_filename: versioned.yml
    environment: pypi
    version_tag: v{version}
    denied_events: workflow_run
    ref_protected: true
  - name: local-call
    provider: github
    projects: [sampleproject]
    repository_owner: octo-org
    repository_name: sampleproject
    repository_owner_id: "65"
    workflow_filename: other.yml
    caller_workflow: local-call.yml
    environment: pypi
  - name: windows-path
    provider: github
    projects: [sampleproject]
    repository_owner: octo-org
    repository_name: sampleproject
    repository_owner_id: "65"
    workflow_filename: '.github\\workflows\\win.yml'
    environment: pypi
  - name: gitlab-prefixed
    provider: gitlab
    projects: [widgets]
    namespace: acme
    project: widgets
    workflow_filepath: widgets/ci/release.yml
    environment: pypi
  - name: gitlab-open
    provider: gitlab
    projects: [widgets]
    namespace: acme
    project: widgets
    workflow_filepath: ci/release.yml
    ref_protected: true
    environment_protected: true
"""

MORE_WORKFLOWS = {
    "versioned.yml": """\
on:
  push:
    branches: [main]
  workflow_run:
    workflows: [CI]
    types: [completed]
jobs:
  publish:
    runs-on: ubuntu-latest
    environment: staging
    permissions:
      id-token: write
    steps:
      - run: python -m twine upload dist/*
""",
    "local-call.yml": """\
on:
  release:
    types: [published]
jobs:
  publish:
    permissions:
      id-token: write
    uses: ./.github/workflows/publish.yml
""",
    "reusable-elsewhere.yml": """\
on: release
jobs:
  publish:
    uses: someone/shared/.github/workflows/pypi.yml@v1
""",
}
GITLAB_PIPELINES = {
    "ci/release.yml": """\
release:
  id_tokens:
    PYPI_ID_TOKEN:
      aud: pypi
  script:
    - twine upload dist/*
""",
    "ci/other.yml": "job:\n  script: [echo]\n",
}


def _rename_provider(text: str) -> str:
    for old, new in FIELDS:
        text = re.sub(rf"\b{old}\b", new, text)
    text = re.sub(r"\bpublisher\.environment\b", f"publisher.{ENVIRONMENT}", text)
    text = re.sub(r"(?m)^    environment: string", f"    {ENVIRONMENT}: string", text)
    for old, new in PROVIDERS:
        text = text.replace(old, new)
    return text


def _rename_publishers(text: str) -> str:
    for old, new in FIELDS:
        text = re.sub(rf"(?m)^(\s+){old}:", rf"\g<1>{new}:", text)
    text = re.sub(r"(?m)^(\s+)environment:", rf"\g<1>{ENVIRONMENT}:", text)
    for old, new in NAMES:
        text = text.replace(f"provider: {old}\n", f"provider: {new}\n")
    return text


def _back(text: str) -> str:
    for old, new in (*FIELDS, ("environment", ENVIRONMENT), *NAMES):
        text = text.replace(new, old)
    return text


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("renamed")
    publishers = (WORKFLOWS / "publishers.yaml").read_text() + MORE_PUBLISHERS
    for side, rename in (("original", str), ("copy", _rename_publishers)):
        home = base / side
        (home / ".github" / "workflows").mkdir(parents=True)
        (home / "ci").mkdir()
        (home / ".git").mkdir()  # check-workflow takes paths from the checkout's root
        (home / "publishers.yaml").write_text(rename(publishers))
        for file in WORKFLOWS.glob("*.yml"):
            shutil.copy(file, home / ".github" / "workflows" / file.name)
        for name, text in MORE_WORKFLOWS.items():
            (home / ".github" / "workflows" / name).write_text(text)
        for name, text in GITLAB_PIPELINES.items():
            (home / name).write_text(text)
        shutil.copy(WORKFLOWS / "gitlab" / "broken.gitlab-ci.yml", home / ".gitlab-ci.yml")
    providers = base / "copy" / "providers"
    providers.mkdir()
    for name in ("github", "gitlab"):
        text = (ROOT / "policies" / f"{name}.tpp").read_text()
        (providers / f"zz{name}.tpp").write_text(_rename_provider(text))
    return base / "original", base / "copy"


def _run(capsys: pytest.CaptureFixture[str], home: Path, copy: bool,
         *argv: str) -> tuple[int, str, str]:
    extra = ["--providers", "providers"] if copy else []
    before = Path.cwd()
    os.chdir(home)
    try:
        return run_cli(capsys, argv[0], *extra, *argv[1:])
    finally:
        os.chdir(before)


def _same(capsys: pytest.CaptureFixture[str], homes: tuple[Path, Path], *argv: str) -> str:
    """Run in both homes: the copy's output, with the renames put back, is the original's;
    and it never names a field by its old name (nothing in Python named it)."""
    expected = _run(capsys, homes[0], False, *argv)
    found = _run(capsys, homes[1], True, *argv)
    for old, _ in FIELDS:
        assert not re.search(rf"\b{old}\b", found[1] + found[2]), (old, found)
    assert (found[0], _back(found[1]), _back(found[2])) == expected
    return expected[1]


def _workflows() -> list[str]:
    names = [f".github/workflows/{f.name}" for f in WORKFLOWS.glob("*.yml")]
    names += [f".github/workflows/{name}" for name in MORE_WORKFLOWS]
    return sorted(names) + sorted(GITLAB_PIPELINES) + [".gitlab-ci.yml"]


@pytest.mark.parametrize("workflow", _workflows())
@pytest.mark.parametrize("output", ["human", "json"])
def test_check_workflow_reads_the_renamed_fields(capsys: pytest.CaptureFixture[str],
                                                 homes: tuple[Path, Path], workflow: str,
                                                 output: str) -> None:
    _same(capsys, homes, "check-workflow", "--publishers", "publishers.yaml", "--format",
          output, workflow)


@pytest.mark.parametrize("repository", ["octo-org/sampleproject", "acme/widgets", "x/y"])
def test_check_workflow_repository_filter(capsys: pytest.CaptureFixture[str],
                                          homes: tuple[Path, Path], repository: str) -> None:
    out = _same(capsys, homes, "check-workflow", "--publishers", "publishers.yaml",
                "--format", "json", "--repository", repository,
                ".github/workflows/release.yml", "ci/release.yml")
    publishers = [w["publishers"] for w in json.loads(out)["workflows"]]
    assert publishers == {"octo-org/sampleproject": [["seed"], []],
                          "acme/widgets": [[], ["gitlab-open"]], "x/y": [[], []]}[repository]


def test_the_findings_use_what_the_block_says(capsys: pytest.CaptureFixture[str],
                                              homes: tuple[Path, Path]) -> None:
    """The copy's messages name its own fields (the renamed ones)."""
    code, out, _ = _run(capsys, homes[1], True, "check-workflow", "--publishers",
                        "publishers.yaml", "--format", "json", ".github/workflows/"
                        "local-call.yml", ".github/workflows/versioned.yml", "ci/other.yml")
    findings = [f for w in json.loads(out)["workflows"] for f in w["findings"]]
    text = json.dumps(findings)
    assert code == 1
    assert "zz_flow_file_name: publish.yml and zz_calling_flow: local-call.yml" in text
    assert "refs/tags/v*" in text  # TPW007, from zz_rel_tags v{version}
    assert "rule zz_events_bad" in text  # TPW006 (the rule has the field's name)
    assert "'staging'; the publisher expects 'pypi'" in text  # TPW004, from zz_env_name
    assert "add a GitLab publisher with zz_pipeline_paths: ci/other.yml" in text  # TPW001
    codes = {f["code"] for f in findings}
    assert {"TPW001", "TPW004", "TPW006", "TPW007", "TPW008", "TPW014"} <= codes


@pytest.mark.parametrize("output", ["human", "json"])
def test_lint_reads_the_renamed_fields(capsys: pytest.CaptureFixture[str],
                                       homes: tuple[Path, Path], output: str) -> None:
    out = _same(capsys, homes, "lint", "--format", output, "publishers.yaml")
    assert "TPP001" in out  # gitlab-open names no environment
    # TPP002 from the `file` item: a GitHub file name given as a Windows path, a GitLab
    # path that starts with the project's name (from the `repository` item)
    assert "Windows path" in out and "starts with the project's name 'widgets'" in out
