"""The docs' library examples and compiled-policy excerpts stay true: every ```python block of
README.md and docs/*.md runs as written against the public API, and the excerpt of
`tppolicy compile examples/publishers.yaml` the README shows is what it prints.

The examples name things a reader has (a token, a project catalog, an issuer's JWKS file):
the test provides them, made here (a real RSA key, a real signed token). The one change made
to a block's text: `tppolicy.KeyCache()` (OIDC discovery over the network) becomes a real
`KeyCache` given the test issuer's keys, since no test reaches the internet."""

from __future__ import annotations

import inspect
import json
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

import tppolicy

from .conftest import ROOT, run_cli
from .tokens import GITHUB, fresh, jwks, rsa_key

DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def _blocks(language: str) -> list[tuple[str, int, str]]:
    found = []
    for name in DOCS:
        text = (ROOT / name).read_text("utf-8")
        for block in re.finditer(rf"```{language}\n(.*?)```", text, re.S):
            found.append((name, text.count("\n", 0, block.start()) + 1, block.group(1)))
    return found


PYTHON = _blocks("python")


class Catalog:
    """The index's projects: none exists yet."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def exists(self, name: str) -> bool:
        return name in self.created


def test_there_are_library_examples() -> None:
    assert {doc for doc, _, _ in PYTHON} >= {"README.md", "docs/server.md"}
    assert len(PYTHON) >= 3


@pytest.mark.parametrize(("doc", "line", "code"), PYTHON, ids=[f"{d}:{n}" for d, n, _ in PYTHON])
def test_the_python_examples_run(doc: str, line: int, code: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "publishers.yaml").write_bytes((ROOT / "examples" / "publishers.yaml").read_bytes())
    key = rsa_key()
    (tmp_path / "jwks.json").write_text(json.dumps(jwks(key)))
    claims = json.loads((ROOT / "examples" / "claims" / "github-release.json").read_text())
    claims = fresh({**claims, "jti": f"docs-{time.time_ns()}"})
    keys = tppolicy.KeyCache()
    keys.add_static(GITHUB, jwks(key))
    catalog = Catalog()
    outcome: dict[str, Any] = {}
    namespace: dict[str, Any] = {
        "token": key.sign(claims), "claims": claims, "catalog": catalog, "ISSUER": GITHUB,
        "create_project": catalog.created.append,
        "mint_upload_token": lambda projects: outcome.setdefault("minted", projects),
        "refuse": lambda error, reasons: outcome.setdefault("refused", (error, reasons)),
    }
    code = code.replace("tppolicy.KeyCache()", "_offline_keys")
    namespace["_offline_keys"] = keys
    try:
        exec(compile(code, f"{doc}:{line}", "exec"), namespace)
    finally:
        engine = namespace.get("engine")
        if engine is not None:  # the files the example opened
            engine.records.close()
            engine.replay.close()
        index = namespace.get("index")
        if index is not None:  # docs/server.md: the index's database
            index.storage.close()
    if "engine" in namespace:  # README, Embedding: the token is allowed and a credential minted
        assert outcome == {"minted": ("sampleproject", "sampleproject-extras")}
    if "decision" in namespace:  # README, Library
        assert namespace["decision"].allowed


def _excerpt(text: str, after: str) -> list[str]:
    block = text.split(after, 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    return [row for row in block.splitlines() if row.strip()]


def _matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return True  # an excerpt: what follows its last line is left out
    if expected[0].strip() == "...":
        return any(_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and _matches(expected[1:], actual[1:])


def test_the_readme_shows_what_compile_prints(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    command = re.search(r"`(tppolicy compile [^`]+)` prints the policy", readme)
    assert command is not None
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(capsys, *shlex.split(command.group(1))[1:])
    assert code == 0
    expected = _excerpt(readme, command.group(0))
    actual = [row for row in out.splitlines() if row.strip()]
    start = actual.index(expected[0])
    assert _matches(expected, actual[start:]), "\n".join(actual[start:start + 40])


def test_every_public_name_of_the_server_has_its_own_docstring() -> None:
    server = pytest.importorskip("tppolicy.server")
    missing = []
    for name in server.__all__:
        value = getattr(server, name)
        doc = inspect.getdoc(value) or ""
        if not doc.strip() or doc.startswith(f"{name}("):  # none, or a dataclass's signature
            missing.append(name)
    assert missing == []


def test_the_readme_lists_every_token_error_code() -> None:
    """README's table of refusal codes is `tppolicy.TOKEN_ERROR_CODES`, in its order (it
    lacked `lifetime`)."""
    readme = (ROOT / "README.md").read_text("utf-8")
    table = readme.split("| code | meaning |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    codes = [re.match(r"\| `([a-z-]+)` \|", row).group(1)  # type: ignore[union-attr]
             for row in table.splitlines()]
    assert codes == list(tppolicy.TOKEN_ERROR_CODES)


def test_every_method_the_examples_call_is_documented() -> None:
    """A method or property a python block uses (`engine.convert_pending`, `Verifier.for_policy`,
    `decision.disclosed`...) has a docstring on every public class that has it. The prose
    around the blocks names more (`engine.add_publisher`, `project_created`...): those too."""
    import ast

    used = set()
    for _, _, code in PYTHON:
        used |= {node.attr for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Attribute)}
    readme = (ROOT / "README.md").read_text("utf-8")
    used |= set(re.findall(r"`(?:engine|decision|result|Engine|Policy)\.([a-z_]+)\(", readme))
    missing = []
    for name in tppolicy.__all__:
        value = getattr(tppolicy, name)
        if not inspect.isclass(value):
            continue
        for attribute in sorted(used):
            member = inspect.getattr_static(value, attribute, None)
            method = callable(member) or isinstance(member, (property, classmethod, staticmethod))
            if method and not (inspect.getdoc(getattr(value, attribute)) or "").strip():
                missing.append(f"{name}.{attribute}")
    assert missing == []


REPOSITORY_PATH = (r"(?<![\w/.])((?:docs|tests|benchmarks|examples|policies|schemas|src)"
                   r"/[\w./-]*\w)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_and_paths_in_the_docs_exist() -> None:
    """Every `(#anchor)` link names a heading of its file, every `(file.md#anchor)` a file and
    heading, and every repository path the docs name (docs/, tests/, benchmarks/, examples/,
    policies/, schemas/, src/) exists. `policies/acme.tpp` is a reader's own file."""
    wrong = []
    for name in DOCS:
        text = (ROOT / name).read_text("utf-8")
        anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            other = (ROOT / name).parent / path if path else ROOT / name
            if not other.exists():
                wrong.append(f"{name}: link to {target}: no such file")
            elif anchor and anchor not in (anchors if not path else {
                    _anchor(h) for h in re.findall(r"^#+ (.+)$", other.read_text("utf-8"), re.M)}):
                wrong.append(f"{name}: link to {target}: no such heading")
        for path in re.findall(REPOSITORY_PATH, text):
            if path != "policies/acme.tpp" and not (ROOT / path).exists():
                wrong.append(f"{name}: {path}: no such file or folder")
    assert wrong == []
