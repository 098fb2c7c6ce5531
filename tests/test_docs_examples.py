"""The docs' example sessions stay true: every ```console block of README.md, docs/tools.md and
docs/server.md whose inputs are in the repository is run (in-process, from the repository's
root) and must print what the block shows. A line `...` in a block stands for any lines. When
the paragraph just before a block says "(exit N)", its first command must exit with N."""

from __future__ import annotations

import re
import shlex

import pytest

from .conftest import ROOT, run_cli

DOCS = ("README.md", "docs/tools.md", "docs/server.md")
# Sessions on files a reader brings (their own token, workflow, provider file): shown, not run.
ILLUSTRATIONS = {
    "tppolicy check --publishers examples/publishers.yaml --token token.jwt",
    "tppolicy fmt --check policies/acme.tpp publishers.yaml",
    "tppolicy check-workflow .github/workflows/release.yml --publishers publishers.yaml",
}


def _sessions() -> list[tuple[str, int, str, list[str]]]:
    found = []
    for name in DOCS:
        text = (ROOT / name).read_text("utf-8")
        for block in re.finditer(r"```console\n(.*?)```", text, re.S):
            line = text.count("\n", 0, block.start()) + 2
            said = re.search(r"\(exit (\d)\)", text[:block.start()].rstrip().rsplit("\n\n", 1)[-1])
            if said:
                EXIT_CODES[name, line] = int(said.group(1))
            command: str | None = None
            output: list[str] = []
            for row in block.group(1).splitlines():
                if row.startswith("$ "):
                    if command is not None:
                        found.append((name, line, command, output))
                    command, output = row[2:], []
                else:
                    output.append(row)
            if command is not None:
                found.append((name, line, command, output))
    return found


EXIT_CODES: dict[tuple[str, int], int] = {}  # (doc, line of the block's first command): code
SESSIONS = _sessions()
RUN = [s for s in SESSIONS if s[2] not in ILLUSTRATIONS]


def _matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    if expected[0].strip() == "...":
        return any(_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and _matches(expected[1:], actual[1:])


def test_every_session_is_run_or_an_illustration() -> None:
    shown = {command for _, _, command, _ in SESSIONS}
    assert shown >= ILLUSTRATIONS, "an illustration is no longer in the docs"
    assert len(RUN) >= 5
    assert len(EXIT_CODES) >= 2


@pytest.mark.parametrize(("doc", "line", "command", "expected"), RUN,
                         ids=[f"{d}:{n}" for d, n, _, _ in RUN])
def test_the_docs_show_what_the_command_prints(
        doc: str, line: int, command: str, expected: list[str],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    argv = shlex.split(command)
    assert argv[0] == "tppolicy", f"{doc}:{line}: not a tppolicy command"
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, err = run_cli(capsys, *argv[1:])
    actual = (out + err).splitlines()
    if (doc, line) in EXIT_CODES:
        assert code == EXIT_CODES[doc, line], f"{doc}:{line}: `{command}` exits with {code}"
    assert _matches(expected, actual), (
        f"{doc}:{line}: `{command}` prints\n" + "\n".join(actual)
        + "\n\nbut the docs show\n" + "\n".join(expected))
