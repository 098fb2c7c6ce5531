"""One rule for files that are links out of the tree (`tppolicy.readers.source`).

CI runs tppolicy on a pull request's tree: a file it reads there (publishers.yaml, a
claims or token file, a policy) that is a link to a secret (/proc/self/environ,
~/.ssh/id_rsa) had the secret's first line echoed in the error, in a public log. Every
command refuses such a link before reading it (exit 3), naming the link and its target;
a link inside the tree, a path typed that is no link, /dev/stdin and `<(...)` are read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tppolicy.errors import ConfigError
from tppolicy.readers.source import LinkTree, outside_link, read_source

from .conftest import EXAMPLES, ROOT
from .conftest import run_cli as run
from .tokens import fresh, jwks, rsa_key

SECRET = "API_TOKEN=hunter2"
CLAIMS = "claims/github-release.json"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the examples, the current folder; beside it `outside/` holds a secret
    and a valid publishers file."""
    folder = tmp_path / "tree"
    shutil.copytree(EXAMPLES, folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.env").write_text(SECRET + "\n")
    shutil.copy(EXAMPLES / "publishers.yaml", outside / "publishers.yaml")
    (folder / "leak").symlink_to(outside / "secret.env")
    monkeypatch.chdir(folder)
    return folder


def _refused(code: int, out: str, err: str, link: str = "leak") -> None:
    assert code == 3, (code, out, err)
    assert SECRET not in out + err and "hunter2" not in out + err, out + err
    assert link in err and "secret.env" in err and "link" in err, err
    assert "pass the target's own path" in err, err


COMMANDS = {
    "check --publishers": ["check", "--publishers", "leak", "--claims", CLAIMS],
    "check --claims": ["check", "--publishers", "publishers.yaml", "--claims", "leak"],
    "check --token": ["check", "--publishers", "publishers.yaml", "--token", "leak"],
    "check --jwks": ["check", "--publishers", "publishers.yaml", "--token", "release.jwt",
                     "--jwks", "leak"],
    "check --providers": ["check", "--providers", "leak", "--publishers", "publishers.yaml",
                          "--claims", CLAIMS],
    "lint": ["lint", "leak"],
    "compile": ["compile", "leak"],
    "fmt": ["fmt", "leak"],
    "fmt --check": ["fmt", "--check", "leak"],
    "explain --publishers": ["explain", "--publishers", "leak", "--claims", CLAIMS],
    "explain --claims": ["explain", "--publishers", "publishers.yaml", "--claims", "leak"],
    "explain --token": ["explain", "--publishers", "publishers.yaml", "--token", "leak"],
    "decode": ["decode", "leak"],
    "providers --providers": ["providers", "--providers", "leak"],
}


def _token(folder: Path) -> None:
    from .conftest import load_claims

    (folder / "release.jwt").write_text(rsa_key().sign(fresh(load_claims("github-release"))))
    (folder / "jwks.json").write_text(json.dumps(jwks(rsa_key())))


@pytest.mark.parametrize("argv", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_link_out_of_the_tree_is_refused_by_every_command(
        tree: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    _token(tree)
    _refused(*run(capsys, *argv))


@pytest.mark.parametrize(("option", "what"), [("--claims", "claims file"),
                                               ("--token", "token file")])
def test_the_error_says_which_file_is_the_link(
        tree: Path, capsys: pytest.CaptureFixture[str], option: str, what: str) -> None:
    code, _, err = run(capsys, "check", "--publishers", "publishers.yaml", option, "leak")
    assert code == 3 and f"the {what} is a link to a file outside" in err, err
    assert str(tree.parent / "outside" / "secret.env") in err  # where it points


def test_serve_publishers_load_refuses_a_link_out_of_the_tree(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(*run(capsys, "serve", "--db", str(tree / "index.db"), "publishers", "load",
                  "leak"))


def test_a_link_inside_the_tree_is_read(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "alias.yaml").symlink_to(tree / "publishers.yaml")
    (tree / "claims.json").symlink_to(CLAIMS)  # relative target, inside
    code, out, err = run(capsys, "check", "--publishers", "alias.yaml", "--claims", "claims.json")
    assert code == 0, out + err
    code, out, err = run(capsys, "compile", "alias.yaml")
    assert code == 0, out + err
    _token(tree)
    (tree / "token").symlink_to("release.jwt")
    (tree / "keys").symlink_to(tree / "jwks.json")
    code, out, err = run(capsys, "check", "--publishers", "alias.yaml", "--token", "token",
                         "--jwks", "keys")
    assert code == 0, out + err


def test_a_path_typed_that_is_no_link_is_read(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As `cat` would: the user named the file itself, outside the tree or not."""
    code, out, err = run(capsys, "compile", "../outside/publishers.yaml")
    assert code == 0, out + err
    code, out, err = run(capsys, "compile", str(tree.parent / "outside" / "publishers.yaml"))
    assert code == 0, out + err
    (tree / "via").symlink_to(tree.parent / "outside" / "publishers.yaml")
    code, out, err = run(capsys, "compile", "via")  # the same file through a link: refused
    assert code == 3 and "via" in err, out + err


def test_a_link_beside_its_target_outside_the_tree_is_read(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A link whose target lies in the link's own folder is no way out of anything."""
    outside = tree.parent / "outside"
    (outside / "alias.yaml").symlink_to("publishers.yaml")
    code, out, err = run(capsys, "compile", "../outside/alias.yaml")
    assert code == 0, out + err


def test_a_folder_link_on_the_path_is_refused(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`config -> ~/.ssh` in the tree, and a command naming `config/id_rsa`."""
    (tree / "config").symlink_to(tree.parent / "outside", target_is_directory=True)
    code, out, err = run(capsys, "lint", "config/secret.env")
    assert code == 3 and "hunter2" not in out + err, out + err
    assert "config" in err and "goes through" in err, err
    code, out, err = run(capsys, "lint", str(tree / "config" / "publishers.yaml"))
    assert code == 3 and "goes through" in err, out + err


def test_a_link_to_proc_self_environ_is_refused(
        tree: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TPPOLICY_SECRET_VALUE", "hunter2")
    (tree / "environ.yaml").symlink_to("/proc/self/environ")
    code, out, err = run(capsys, "check", "--publishers", "environ.yaml", "--claims", CLAIMS)
    assert code == 3 and "hunter2" not in out + err and "/proc/" in err, out + err


def test_a_link_loop_is_a_read_error_not_a_refusal(tree: Path) -> None:
    (tree / "a").symlink_to("b")
    (tree / "b").symlink_to("a")
    assert outside_link(Path("a")) is None
    with pytest.raises(ConfigError) as caught:
        read_source(Path("a"), ConfigError)
    assert "cannot read" in str(caught.value.diagnostics[0].message)


def test_a_caller_names_its_own_tree(tree: Path) -> None:
    """The test runner's tree, a checkout, a folder of provider files: the link may point
    only inside it, and the error says which it is."""
    sub = tree / "sub"
    sub.mkdir()
    (sub / "up.yaml").symlink_to(tree / "publishers.yaml")
    assert outside_link(Path("sub/up.yaml")) is None  # inside the current folder's tree
    rule = LinkTree((sub,), "the folder of provider files", "copy it in")
    assert outside_link(Path("sub/up.yaml"), rule) == (Path(tree / "sub/up.yaml"),
                                                        tree / "publishers.yaml")
    with pytest.raises(ConfigError) as caught:
        read_source(Path("sub/up.yaml"), ConfigError, what="provider file", tree=rule)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.message.startswith("the provider file is a link to a file outside the "
                                         f"folder of provider files ({sub})")
    assert diagnostic.hint == "copy it in"


def _cli(tree: Path, script: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(["bash", "-c", script], cwd=tree, env=env, capture_output=True,
                          text=True, input=None if stdin is None else stdin.decode(),
                          timeout=120, check=False)


def test_process_substitution_and_dev_stdin_are_read(tree: Path) -> None:
    """`<(cat file)` is /dev/fd/N, a link to a pipe; /dev/stdin a link to the terminal or
    a pipe: both the user's own streams, not files of any tree."""
    python = sys.executable
    done = _cli(tree, f"'{python}' -m tppolicy compile <(cat publishers.yaml)")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _cli(tree, f"'{python}' -m tppolicy check --publishers <(cat publishers.yaml) "
                f"--claims /dev/stdin", (tree / CLAIMS).read_bytes())
    assert done.returncode == 0, done.stdout + done.stderr
    done = _cli(tree, f"'{python}' -m tppolicy lint leak")
    assert done.returncode == 3 and "hunter2" not in done.stdout + done.stderr


def test_a_servers_jwks_file_that_became_a_link_out_is_not_read_on_refresh(
        tree: Path) -> None:
    """`serve --jwks ISSUER=FILE` reads the file again on each refresh: the rule holds
    then too (the start refuses it as every reader does)."""
    from tppolicy.server.auth import ServerKeyCache
    from tppolicy.token.keys import FetchError

    keys = ServerKeyCache(sources={"https://ci.example": "leak"})
    with pytest.raises(FetchError, match="outside the current folder's tree") as caught:
        keys.refresh_keys("https://ci.example")
    assert "hunter2" not in str(caught.value)


def test_lint_does_not_read_a_pyproject_that_is_a_link_out(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """lint looks for `[tool.tppolicy]` in the nearest pyproject.toml: a link out of the
    tree there is refused (exit 3), not read."""
    (tree / "pyproject.toml").symlink_to(tree.parent / "outside" / "secret.env")
    code, out, err = run(capsys, "lint", "publishers.yaml")
    assert code == 3 and "hunter2" not in out + err and "pyproject.toml" in err, out + err
    code, out, err = run(capsys, "lint", "--no-config", "publishers.yaml")
    assert code == 1 and "TPP001" in out, out + err


def test_check_workflow_refuses_a_folder_link_out_of_the_checkout(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`.github` made a link to a folder elsewhere: the workflow file's path goes through
    it, out of the checkout (the file itself is no link)."""
    (tree / ".git").mkdir()
    elsewhere = tree.parent / "outside" / "workflows"
    elsewhere.mkdir()
    (elsewhere / "release.yml").write_text(SECRET + "\n")
    (tree / ".github").symlink_to(tree.parent / "outside", target_is_directory=True)
    code, out, err = run(capsys, "check-workflow", "--publishers", "publishers.yaml",
                         ".github/workflows/release.yml")
    assert code == 3 and "hunter2" not in out + err, out + err
    assert "goes through" in err and "outside the checkout" in err, err


@pytest.mark.parametrize("named", ["sub/x.tptest.yaml", "sub"])
def test_a_test_file_through_a_folder_link_out_of_the_tree_is_refused(
        tree: Path, capsys: pytest.CaptureFixture[str], named: str) -> None:
    # `tppolicy test sub/x.tptest.yaml`, `sub` a link to a folder elsewhere: the runner took
    # the target folder as the test files' tree, so the file was read and its first line
    # echoed ("unknown key 'API_TOKEN=hunter2'...").
    outside = tree.parent / "outside"
    (outside / "x.tptest.yaml").write_text(SECRET + ": 1\n")
    (tree / "sub").symlink_to(outside)
    code, out, err = run(capsys, "test", named)
    assert code == 3, (code, out, err)
    assert "hunter2" not in out + err, out + err
    assert "link" in err and str(outside) in err, err
