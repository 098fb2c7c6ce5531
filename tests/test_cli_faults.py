"""Faults the security review and a new user's first hour found in the command line
(issue 12 items 16 and 17, issue 16's "first hour"), each as a user meets it."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLES, load_claims
from .conftest import run_cli as run
from .tokens import fresh, jwks, rsa_key

PUBLISHERS = str(EXAMPLES / "publishers.yaml")
CLAIMS = EXAMPLES / "claims"
MISSING_FOLDER = "/nonexistent-tppolicy-folder"


def _stdin_bytes(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# --------------------------------------------------- issue 12 item 16: stdin read once
def test_token_from_stdin_with_record_reads_stdin_once(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    key = rsa_key()
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks(key)))
    _stdin_bytes(monkeypatch, (key.sign(fresh(load_claims("github-release"))) + "\n").encode())
    record = tmp_path / "decisions.jsonl"
    code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--token", "-",
                         "--jwks", str(keys), "--record", str(record))
    assert code == 0, out + err
    [line] = record.read_text().splitlines()
    entry = json.loads(line)
    assert entry["allowed"] is True
    assert "repository" in json.dumps(entry)  # the verified claims were recorded


def test_claims_from_stdin_with_record(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((CLAIMS / "github-release.json").read_text()))
    record = tmp_path / "decisions.jsonl"
    code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims", "-",
                         "--record", str(record))
    assert code == 0, out + err
    assert json.loads(record.read_text())["allowed"] is True


# ----------------------------------------- issue 12 item 17: unwritable output, --debug
@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_compile_to_an_unwritable_path_is_invalid_input(
        capsys: pytest.CaptureFixture[str], debug: list[str]) -> None:
    target = f"{MISSING_FOLDER}/x.tpp"
    code, _out, err = run(capsys, *debug, "compile", PUBLISHERS, "-o", target)
    assert code == 3, err
    assert target in err and "cannot write the file" in err
    assert "internal error" not in err and "report" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_record_to_an_unwritable_path_is_invalid_input(
        capsys: pytest.CaptureFixture[str], debug: list[str]) -> None:
    target = f"{MISSING_FOLDER}/x.jsonl"
    code, _out, err = run(capsys, *debug, "check", "--publishers", PUBLISHERS, "--claims",
                         str(CLAIMS / "github-release.json"), "--record", target)
    assert code == 3, err
    assert target in err and "cannot write the file" in err
    assert "internal error" not in err


def test_debug_never_changes_the_exit_code_of_a_bug(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from tppolicy.cli import check

    def broken(*args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(check, "run", broken)
    argv = ("check", "--publishers", PUBLISHERS, "--claims", str(CLAIMS / "github-release.json"))
    code, _, err = run(capsys, *argv)
    assert code == 4 and "internal error" in err and "Traceback" not in err
    code, _, err = run(capsys, "--debug", *argv)
    assert code == 4 and "Traceback" in err and "ZeroDivisionError" in err


# ------------------------------------------------- issue 16: --debug, --version
def test_debug_is_accepted_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims",
                         str(CLAIMS / "github-release.json"), "--debug")
    assert code == 0, err
    code, _, err = run(capsys, "compile", PUBLISHERS, "--debug", "-o", f"{MISSING_FOLDER}/x")
    assert code == 3, err


def test_version_after_a_subcommand_is_the_programs(capsys: pytest.CaptureFixture[str]) -> None:
    from tppolicy.version import __version__

    for command in ("check", "lint", "fmt"):
        code, out, _ = run(capsys, command, "--version")
        assert (code, out) == (0, f"tppolicy {__version__}\n")


def test_check_version_with_other_arguments_is_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The old `check --version X` (the uploaded version) must not exit 0 ("allowed")."""
    code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims",
                         str(CLAIMS / "github-wrong-environment.json"), "--version", "1.2.3")
    assert code == 2
    assert "--upload-version" in err and out == ""


def test_upload_version_is_the_request_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims",
                         str(CLAIMS / "github-release.json"), "--upload-version", "1.2.3")
    assert code == 0, out + err


# ------------------------------------------- issue 12 item 12: one limit everywhere
def _alias_bomb(levels: int = 10) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\npublishers: [*a{levels - 1}]\n"


@pytest.mark.parametrize("command", [["fmt", "--check"], ["fmt"], ["lint"], ["compile"]])
def test_an_alias_bomb_is_refused_by_every_tool(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, command: list[str]) -> None:
    bomb = tmp_path / "publishers.yaml"
    bomb.write_text(_alias_bomb())
    assert len(bomb.read_bytes()) < 800
    code, _, err = run(capsys, *command, str(bomb))
    assert code == 3, err
    assert "expands to more than" in err
    assert bomb.read_text() == _alias_bomb()


def test_a_recursive_alias_is_refused_by_fmt(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    path = tmp_path / "publishers.yaml"
    path.write_text("publishers: &p [*p]\n")
    code, _, err = run(capsys, "fmt", "--check", str(path))
    assert code == 3, err


def test_check_workflow_refuses_a_huge_file_before_reading_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tppolicy.limits import MAX_WORKFLOW_BYTES

    workflow = tmp_path / "release.yml"
    workflow.write_text("on: push\njobs:\n" + "# padding\n" * (MAX_WORKFLOW_BYTES // 10 + 1))
    code, _, err = run(capsys, "check-workflow", "--publishers", PUBLISHERS, str(workflow))
    assert code == 3, err
    assert "larger than the limit" in err and str(workflow) in err


def test_every_reader_refuses_a_file_over_the_source_limit(tmp_path: Path) -> None:
    from tppolicy.errors import ConfigError
    from tppolicy.readers.source import read_source

    path = tmp_path / "big.yaml"
    path.write_text("x" * 101)
    with pytest.raises(ConfigError, match="larger than the limit of 100 bytes"):
        read_source(path, ConfigError, max_bytes=100)
    assert read_source(path, ConfigError, max_bytes=101) == "x" * 101


# --------------------------------------------- issue 12 item 13: files outside the tree
def _test_file(folder: Path, publishers: str) -> Path:
    path = folder / "outside.tptest.yaml"
    path.write_text(f"publishers: {publishers}\nclaims:\n  c: {{iss: x}}\n"
                    "cases:\n  - {claims: c, allowed: false}\n")
    return path


@pytest.mark.parametrize("target", ["/proc/self/environ", "../secret.yaml"])
def test_a_test_file_cannot_name_a_file_outside_its_tree(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        target: str) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("TPPOLICY_SECRET_VALUE=hunter2\n")
    monkeypatch.setenv("TPPOLICY_SECRET_VALUE", "hunter2")
    tree = tmp_path / "tree"
    tree.mkdir()
    monkeypatch.chdir(tree)
    path = _test_file(tree, target)
    code, out, err = run(capsys, "test", str(path))
    assert code == 3, out + err
    assert "outside the tree" in err
    assert "hunter2" not in out + err


def test_a_link_out_of_the_tree_is_refused_too(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("TPPOLICY_SECRET_VALUE", "hunter2")
    (tmp_path / "link.yaml").symlink_to("/proc/self/environ")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "test", str(_test_file(tmp_path, "link.yaml")))
    assert code == 3 and "outside the tree" in err
    assert "hunter2" not in out + err


def test_a_test_file_may_name_files_above_it_inside_the_tree(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    (tmp_path / "publishers.yaml").write_text((EXAMPLES / "publishers.yaml").read_text())
    sub = tmp_path / "tests"
    sub.mkdir()
    path = sub / "t.tptest.yaml"
    path.write_text("publishers: ../publishers.yaml\nclaims:\n  c: {iss: x}\n"
                    "cases:\n  - {claims: c, allowed: false}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "test", str(path))
    assert code == 0, out + err
    monkeypatch.chdir(sub)  # the tree is now tests/: the publishers file is outside
    code, _, err = run(capsys, "test", str(path))
    assert code == 3 and "outside the tree" in err
    code, out, err = run(capsys, "test", "--root", str(tmp_path), str(path))
    assert code == 0, out + err


def test_fmt_does_not_follow_links_out_of_the_folder(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "publishers.yaml"
    unformatted = "publishers:\n- {provider: github, projects: ['a'], repository_owner: o}\n"
    victim.write_text(unformatted)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link.yaml").symlink_to(victim)
    (tree / "environ.yaml").symlink_to("/proc/self/environ")
    (tree / "dir").symlink_to(outside, target_is_directory=True)
    code, out, err = run(capsys, "fmt", str(tree))
    assert code == 0, out + err
    assert victim.read_text() == unformatted
    assert "no policy or publishers files found" in err
    code, out, err = run(capsys, "fmt", "--check", str(tree))
    assert code == 0 and out == ""


@pytest.mark.slow
def test_an_error_echoes_a_bounded_excerpt_of_a_huge_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    value = "x" * 5_000_000
    path = tmp_path / "publishers.yaml"
    path.write_text(f"publishers:\n  - provider: github\n    projects: [p]\n"
                    f"    repository: {value}\n    environment: \"{value} \"\n")
    for command in (["lint"], ["compile"], ["check", "--claims",
                                            str(CLAIMS / "github-release.json"),
                                            "--publishers"]):
        code, out, err = run(capsys, *command, str(path))
        assert code == 3
        assert len(out) + len(err) < 5_000, command
        assert "characters" in err or "..." in err


def test_diagnostic_excerpt_keeps_the_caret_under_the_column() -> None:
    from tppolicy.errors import Diagnostic, Span

    line = "a" * 1000 + "BAD" + "b" * 1000
    text = Diagnostic("bad", Span("f", 1, 1001, 1, 1004)).render(line)
    _, excerpt, caret = text.splitlines()
    assert len(excerpt) < 200
    assert excerpt[caret.index("^"):caret.index("^") + 3] == "BAD"
    assert caret.endswith("^~~")


# ------------------------------------------------------------------ issue 16: first hour
def test_tppolicy_test_from_the_repository_root_passes(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The deliberately failing fixture is not named like a test file."""
    monkeypatch.chdir(EXAMPLES.parent)
    code, out, err = run(capsys, "test")
    assert code == 0, out + err


def test_lint_on_a_missing_file_does_not_claim_it_was_linted(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "lint", str(tmp_path / "nope.yaml"))
    assert code == 3
    assert "no problems found in 1 file" not in out
    assert "0 files; 1 file could not be linted" in out and "cannot read the file" in err


def test_check_workflow_on_a_missing_file_says_it_could_not_be_read(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "check-workflow", "--publishers", PUBLISHERS,
                         str(tmp_path / "x.yml"))
    assert code == 3
    assert "1 file could not be checked" in out and "cannot read the file" in err


def test_check_workflow_on_claims_says_what_the_file_is(
        capsys: pytest.CaptureFixture[str]) -> None:
    claims = str(CLAIMS / "github-release.json")
    code, out, err = run(capsys, "check-workflow", "--publishers", PUBLISHERS, claims)
    assert code == 3
    assert "GitLab" not in out + err
    assert "a token's claims" in err and f"--claims {claims}" in err


def test_fmt_does_not_call_an_invalid_file_just_formatted(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "publishers.yaml"
    path.write_text("publishers:\n  - provider: github\n    projects: [a]\n    bogus: 1\n")
    code, _, err = run(capsys, "fmt", "--check", str(path))
    assert code == 0  # formatted as it is; its problems are lint's to report
    assert "not a valid publishers file" in err and f"tppolicy lint {path}" in err
    assert "1 file with problems" in err


def _lint_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str) -> str:
    path = tmp_path / "publishers.yaml"
    path.write_text(text, "utf-8")
    code, _, err = run(capsys, "lint", str(path))
    assert code == 3
    return err


GITHUB_ENTRY = ("publishers:\n  - provider: github\n    projects: [{project}]\n"
                "    repository_owner: octo\n    repository_name: r\n{extra}")


def test_hint_for_a_tab_after_a_colon(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    from tppolicy.errors import ConfigError
    from tppolicy.readers.yaml import _compose_python

    # libyaml reads a tab after ':' as a separator; pure pyyaml refuses it: its hint must
    # not speak of indentation.
    err = _lint_errors(capsys, tmp_path, "publishers:\n  - provider:\tgithub\n")
    assert "tabs for indentation" not in err and "invalid YAML" not in err
    with pytest.raises(ConfigError) as caught:
        _compose_python("publishers:\n  - provider: github\n    projects:\t[a, b]\n",
                        "p.yaml", ConfigError)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.hint == "a tab after ':' or '-' is not allowed here: write a space"
    err = _lint_errors(capsys, tmp_path, "publishers:\n\t- provider: github\n")
    assert "tabs for indentation" in err


def test_hint_for_workflow_is_workflow_filename(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    err = _lint_errors(capsys, tmp_path, GITHUB_ENTRY.format(
        project="a", extra="    repository_owner_id: '1'\n    workflow: r.yml\n"))
    assert "unknown key 'workflow'" in err
    assert "did you mean 'workflow_filename'?" in err and "caller_workflow" not in err


def test_hint_for_a_missing_owner_id_says_where_to_find_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _lint_errors(capsys, tmp_path, GITHUB_ENTRY.format(
        project="a", extra="    workflow_filename: r.yml\n"))
    assert "missing 'repository_owner_id'" in err
    assert "https://api.github.com/users/OWNER" in err


@pytest.mark.parametrize(("project", "fixed", "why"), [
    ("my\u0440kg", "mypkg", "U+0440 CYRILLIC SMALL LETTER ER looks like 'p'"),
    ('"my\u200bpkg"', "mypkg", "U+200B ZERO WIDTH SPACE (invisible) removed"),
])
def test_hint_for_non_ascii_lookalikes_gives_the_fix(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, project: str, fixed: str,
        why: str) -> None:
    err = _lint_errors(capsys, tmp_path, GITHUB_ENTRY.format(
        project=project, extra="    repository_owner_id: '1'\n    workflow_filename: r.yml\n"))
    assert f"hint: retype it in ASCII: '{fixed}' ({why})" in err


def test_hint_for_a_lookalike_in_a_field(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    err = _lint_errors(capsys, tmp_path, GITHUB_ENTRY.format(
        project="a", extra="    repository_owner_id: '1'\n"
        "    workflow_filename: r\u0435lease.yml\n").replace("octo", "oct\u043e"))
    assert "retype it in ASCII: 'octo' (U+043E CYRILLIC SMALL LETTER O looks like 'o')" in err
    assert "retype it in ASCII: 'release.yml'" in err


def test_the_shipped_policies_are_formatted_as_docs_tools_says(
        capsys: pytest.CaptureFixture[str]) -> None:
    root = EXAMPLES.parent
    count = len(list((root / "policies").glob("*.tpp")))
    code, out, err = run(capsys, "fmt", "--check", str(root / "policies"))
    assert (code, out) == (0, "")
    assert err == f"{count} files already formatted\n"
    docs = (root / "docs" / "tools.md").read_text()
    assert f'`tppolicy fmt --check policies` prints "{count} files already formatted"' in docs


def test_the_readme_names_every_key_of_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    import re

    readme = (EXAMPLES.parent / "README.md").read_text()
    start = readme.index("`--format json` prints one object")
    paragraph = readme[start:readme.index("\n\n", start)]
    named = set(re.findall(r"`([a-z_]+)`", paragraph))
    keys: set[str] = set()
    for claims in ("github-release.json", "github-wrong-environment.json"):
        _, out, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--claims",
                        str(CLAIMS / claims), "--format", "json")
        payload = json.loads(out)
        keys |= set(payload)
        keys |= {k for reason in payload["reasons"] for k in reason}
    assert keys <= named, keys - named


@pytest.mark.parametrize(("seconds", "words"), [
    (0, "0 seconds"), (1, "1 second"), (41, "41 seconds"), (250, "4 minutes 10 seconds"),
    (3600, "1 hour"), (3605, "1 hour"), (90061, "1 day 1 hour"),
    (400 * 86400, "1 year 35 days")])
def test_decode_gives_times_in_words(seconds: int, words: str) -> None:
    from tppolicy.cli.decode import in_words

    assert in_words(seconds) == words


def test_decode_prints_relative_times_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    claims = load_claims("github-release")
    now = int(time.time())
    claims.update(iat=now - 7200, exp=now + 86400 * 3 + 60)
    token = rsa_key().sign(claims)
    code, out, _ = run(capsys, "decode", token)
    assert code == 0
    assert "hours ago)" in out and "(in 3 days" in out
    assert " s ago" not in out and not any(line.endswith(" s)") for line in out.splitlines())


# ------------------------------------------------- found by tests/test_fuzz_inputs.py
@pytest.mark.parametrize(("inside", "where"), [
    ("\x1f", "the control character U+001F"),
    ("\\ud800", "the escape \\ud800 (half of a surrogate pair)"),
])
@pytest.mark.parametrize("command", [["lint"], ["fmt", "--check"], ["check", "--claims",
                                     str(CLAIMS / "github-release.json"), "--policy"]])
def test_a_bad_character_in_a_policy_string_is_invalid_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, inside: str, where: str,
        command: list[str]) -> None:
    """A control character in a string literal made lint, fmt and check exit 4 (JSON
    refused what the grammar admitted)."""
    policies = EXAMPLES.parent / "policies"
    text = (policies / "gitlab.tpp").read_text()
    at = text.index('"The token comes from the GitLab instance') + 2
    path = tmp_path / "gitlab.tpp"
    path.write_text(text[:at] + inside + text[at:])
    code, _, err = run(capsys, *command, str(path))
    assert code == 3, err
    assert f"{where} is not allowed in a policy file" in err and "internal error" not in err


def test_a_tab_inside_a_policy_string_is_kept() -> None:
    from tppolicy.language.parse import parse_policy

    parsed = parse_policy('provider p {\n  issuer "https://a\tb"\n}\n', "t.tpp")
    assert parsed.providers[0].issuers == ("https://a\tb",)


def test_one_size_limit_for_files_and_text() -> None:
    from tppolicy.limits import MAX_SOURCE_BYTES
    from tppolicy.readers.yaml import MAX_CHARS

    assert MAX_CHARS == MAX_SOURCE_BYTES


def test_fmt_on_a_tag_pyyaml_cannot_construct_is_invalid_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Found by the fuzzer: `projects:` then `!!python/object:os.system- acme-tool` on the
    next line made fmt report an internal error (exit 4)."""
    path = tmp_path / "publishers.yaml"
    text = ("publishers:\n  - provider: gitlab\n    projects:\n"
            "      !!python/object:os.system- acme-tool\n    namespace: acme/tools\n")
    path.write_text(text)
    code, _, err = run(capsys, "fmt", "--check", str(path))
    assert code == 3, err
    assert "could not determine a constructor" in err and "internal error" not in err
    assert path.read_text() == text


def test_a_set_tag_on_a_scalar_is_invalid_input(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    """Found by the fuzzer: ruamel.yaml raises AttributeError on `!!set` before a scalar,
    which fmt and check-workflow reported as an internal error (exit 4)."""
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text("publishers:\n  - provider: github\n!!set    name: x\n")
    code, _, err = run(capsys, "fmt", "--check", str(publishers))
    assert code == 3 and "invalid YAML" in err and "internal error" not in err, err
    workflow = tmp_path / "release.yml"
    workflow.write_text("on: push\njobs:\n  a: !!set x\n")
    code, _, err = run(capsys, "check-workflow", "--publishers", PUBLISHERS, str(workflow))
    assert code == 3 and "invalid YAML" in err and "internal error" not in err, err
