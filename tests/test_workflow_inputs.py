"""`tppolicy check-workflow` on workflows written with YAML's less common features (merge
keys) and on hostile files: each finding once, at the text it is about; bad files exit 3."""

from __future__ import annotations

from pathlib import Path

import pytest

import tppolicy
from tppolicy.tools.workflow import check_workflow_text

from .conftest import ROOT
from .conftest import run_cli as run

PUBLISHERS = ROOT / "tests" / "fixtures" / "workflows" / "publishers.yaml"

MERGED = """\
on:
  push:
    tags: ["v*"]
x-defaults: &defaults
  runs-on: ubuntu-latest
  steps:
    - uses: someone/action@v1
x-called: &called
  uses: someone/wf/.github/workflows/x.yml@v2
jobs:
  build:
    <<: *defaults
  lint:
    <<: *called
  docs:
    <<: *called
  publish:
    <<: *defaults
    environment: pypi
    permissions:
      id-token: write
"""


@pytest.fixture(scope="module")
def policy() -> tppolicy.Policy:
    return tppolicy.compile_publishers_file(PUBLISHERS)


def test_a_merge_key_finding_is_reported_once_where_its_text_is(
        policy: tppolicy.Policy) -> None:
    """Jobs sharing steps through `<<: *defaults` gave the same TPW010 advice once per
    job; a key a job has from a merge was placed at the `<<` (column 5, one character)."""
    report = check_workflow_text(MERGED, "release.yml", policy,
                                 path=".github/workflows/release.yml")
    unpinned = [(f.span.line, f.span.column, f.span.end_column, f.job)
                for f in report.findings if f.code == "TPW010"]
    assert unpinned == [(7, 13, 30, "build"), (9, 9, 46, "lint")]
    # a finding naming its job stays one per job, each at the merged key's line
    called = [(f.span.line, f.job) for f in report.findings if f.code == "TPW008"]
    assert called == [(9, "lint"), (9, "docs")]


def test_the_cli_prints_a_merged_step_once(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    workflow = tmp_path / ".github" / "workflows" / "release.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(MERGED.replace("  lint:\n    <<: *called\n  docs:\n    <<: *called\n",
                                       ""))
    code, out, _ = run(capsys, "check-workflow", "--publishers", str(PUBLISHERS),
                       str(workflow))
    assert code == 0
    assert out.count("TPW010") == 1 and ":7:13: TPW010" in out


DEEP = 2_000


@pytest.mark.parametrize(("text", "where", "message"), [
    ("on: push\njobs: " + "[" * DEEP + "]" * DEEP + "\n", (2, 206), "nested too deeply"),
    ("on: push\njobs: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n", (2, 803),
     "nested too deeply"),
    ("on: push\njobs:\n  a:\n    steps:\n      " + "- " * DEEP + "x\n", (5, 401),
     "nested too deeply"),
    ("on: push\njobs: &a\n  x: *a\n", (3, 6), "an anchor is used inside itself"),
    ("on: push\nx0: &a0 [1,1,1,1,1,1,1,1,1,1]\n"
     + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
     + "jobs:\n  a:\n    steps: *a8\n", (7, 55), "expands to more than"),
], ids=["flow-lists", "flow-mappings", "block-lists", "recursive-alias", "alias-bomb"])
def test_an_unbounded_workflow_is_refused_where_it_goes_wrong(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
        where: tuple[int, int], message: str) -> None:
    """2 000 nested levels went to ruamel.yaml's recursive composer, which took seconds to
    hit Python's recursion limit and was then reported at 1:1; recursive aliases and
    alias bombs were not refused at all (the other YAML readers refuse them)."""
    workflow = tmp_path / "release.yml"
    workflow.write_text(text)
    code, out, err = run(capsys, "check-workflow", "--publishers", str(PUBLISHERS),
                         str(workflow))
    assert code == 3, out + err
    assert f"release.yml:{where[0]}:{where[1]}: " in err and message in err
    assert "Traceback" not in err


def test_a_gitlab_script_of_nested_lists_is_read_as_gitlab_flattens_it(
        policy: tppolicy.Policy) -> None:
    """GitLab flattens nested lists in `script` (a list from an anchor): the job that
    uploads there was not found (TPW002: no publishing job)."""
    text = ("publish-pypi:\n  environment: pypi\n  script:\n    - [echo build]\n"
            "    - [[twine upload dist/*]]\n")
    report = check_workflow_text(text, ".gitlab-ci.yml", policy, path=".gitlab-ci.yml")
    assert report.jobs == ("publish-pypi",)
    assert "TPW002" not in [f.code for f in report.findings]


def test_a_workflow_link_out_of_the_checkout_is_not_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`check-workflow .github/workflows/release.yml` in CI, on a pull request's tree
    where it is a link to a secret: the secret's first line was echoed in the error."""
    secret = tmp_path / "secret.env"
    secret.write_text("API_TOKEN=hunter2\n")
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    folder = checkout / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "release.yml").symlink_to(secret)
    monkeypatch.chdir(checkout)
    code, out, err = run(capsys, "check-workflow", "--publishers", str(PUBLISHERS),
                         ".github/workflows/release.yml")
    assert code == 3 and "hunter2" not in out + err, out + err
    assert "link to a file outside the checkout" in err
    (folder / "release.yml").unlink()
    (checkout / "real.yml").write_text(MERGED)
    (folder / "release.yml").symlink_to(checkout / "real.yml")  # inside: read
    code, out, err = run(capsys, "check-workflow", "--publishers", str(PUBLISHERS),
                         ".github/workflows/release.yml")
    assert code in (0, 1) and "TPW010" in out, out + err  # checked
