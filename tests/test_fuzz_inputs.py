"""Fuzzing what people hand the tools (issue 12): the policy parser, the publishers loader,
the workflow reader, the claims reader and the test-file reader, through the command line
in this process. Whatever the input, the answer is an exit code of 0, 1 or 3 with a
message: never 4 (a bug), never a traceback.

Inputs are real files of the repository mutated (bytes flipped, lines cut, duplicated or
swapped, YAML and policy syntax spliced in: anchors, aliases, tags, tabs, brackets,
long values, deep nesting, odd Unicode) and text generated from scratch. The default run
tries `TPPOLICY_FUZZ_EXAMPLES` inputs per target (default 20, the same ones every run); the
slow group runs 20x as many (400), new ones each run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tppolicy.cli import main

from .conftest import EXAMPLES, ROOT

BUDGET = int(os.environ.get("TPPOLICY_FUZZ_EXAMPLES", "20"))
TRIED: Counter[str] = Counter()  # inputs tried per target, for the report

SEEDS = {
    "policy": [*(ROOT / "policies").glob("*.tpp"), *(ROOT / "tests/fixtures/format").glob("*.tpp"),
               ROOT / "tests/fixtures/lint/edited.tpp"],
    "publishers": [EXAMPLES / "publishers.yaml", *(ROOT / "tests/fixtures/publishers").glob(
        "*.yaml"), ROOT / "tests/fixtures/lint/everything.yaml"],
    "workflow": [p for p in (ROOT / "tests/fixtures/workflows").rglob("*") if p.is_file()],
    "claims": sorted((EXAMPLES / "claims").glob("*.json")),
    "tptest": [EXAMPLES / "publishers.tptest.yaml"],
}

SPLICES = [
    "&a", "*a", "*nope", "<<: *a", "!!python/object:os.system", "!!binary", "!!set", "!!int",
    "!!omap", "!!pairs", "!!timestamp", "!!float", "!!map", "!!seq", "!!str", "!local", "!!set ",
    "\t", "{", "}", "[", "]", ":", "- ", "? ", "|", ">", "'", '"', "#", "%YAML 1.1\n", "---\n",
    "...\n", "\x00", "\ufeff", "\u200b", "\u202e", "\u0440", "\U0001f600", "\\", "\\u0000",
    "~", "null", "true", "1e999", "-0", "0x1F", "NaN", "Infinity", "9" * 40, "x" * 5000,
    "[" * 300 + "]" * 300, "{a: " * 200 + "1" + "}" * 200, "- " * 300 + "x",
    "not " * 500 + "true", "(" * 400 + ")" * 400, "publishers:", "provider: github",
    "rule r {", "require ", " == ", " matches ", "\"", "${{ x }}", "jobs:", "on: push",
    "id-token: write", "uses: ./.github/workflows/x.yml", "environment: ",
]


def _mutate(data: st.DataObject, text: str) -> str:
    lines = text.splitlines(keepends=True) or [""]
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        kind = data.draw(st.sampled_from(["splice", "cut", "dup", "swap", "flip", "truncate",
                                          "indent"]), label="kind")
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        if kind == "splice":
            line = lines[i]
            at = data.draw(st.integers(0, len(line)), label="at")
            piece = data.draw(st.sampled_from(SPLICES) | st.text(max_size=20), label="piece")
            lines[i] = line[:at] + piece + line[at:]
        elif kind == "cut" and len(lines) > 1:
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i] * data.draw(st.integers(1, 50), label="times"))
        elif kind == "swap":
            j = data.draw(st.integers(0, len(lines) - 1), label="other")
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "flip" and lines[i]:
            at = data.draw(st.integers(0, len(lines[i]) - 1), label="at")
            char = data.draw(st.characters(codec="utf-8"), label="char")
            lines[i] = lines[i][:at] + char + lines[i][at + 1:]
        elif kind == "truncate":
            lines = lines[:i + 1]
            lines[-1] = lines[-1][:data.draw(st.integers(0, len(lines[-1])), label="keep")]
        elif kind == "indent":
            lines[i] = data.draw(st.sampled_from(["  ", "\t", " ", "    "]), label="ws") + lines[i]
        lines = lines or [""]
    return "".join(lines)


def _input(data: st.DataObject, target: str) -> bytes:
    how = data.draw(st.sampled_from(["mutate", "mutate", "mutate", "text", "bytes"]),
                    label="how")
    if how == "text":
        return data.draw(st.text(max_size=400), label="text").encode("utf-8")
    if how == "bytes":
        return data.draw(st.binary(max_size=400), label="bytes")
    seed = data.draw(st.sampled_from(SEEDS[target]), label="seed")
    return _mutate(data, seed.read_text("utf-8", "replace")).encode("utf-8", "surrogatepass")


COMMANDS: dict[str, list[Callable[[str], list[str]]]] = {
    "policy": [lambda f: ["lint", f], lambda f: ["fmt", "--check", f],
               lambda f: ["check", "--policy", f, "--claims",
                          str(EXAMPLES / "claims" / "github-release.json")]],
    "publishers": [lambda f: ["compile", f], lambda f: ["lint", f],
                   lambda f: ["fmt", "--check", f],
                   lambda f: ["check", "--publishers", f, "--claims",
                              str(EXAMPLES / "claims" / "github-release.json")]],
    "workflow": [lambda f: ["check-workflow", "--publishers", str(EXAMPLES / "publishers.yaml"),
                            f]],
    "claims": [lambda f: ["check", "--publishers", str(EXAMPLES / "publishers.yaml"),
                          "--claims", f, "--format", "json"],
               lambda f: ["explain", "--publishers", str(EXAMPLES / "publishers.yaml"),
                          "--claims", f]],
    "tptest": [lambda f: ["test", "--root", "{root}", f]],
}
SUFFIX = {"policy": ".tpp", "publishers": ".yaml", "workflow": ".yml", "claims": ".json",
          "tptest": ".tptest.yaml"}


def _run(target: str, content: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        here = Path(folder) / "examples"
        if target == "tptest":  # the files a test file names, inside its tree
            shutil.copytree(EXAMPLES, here)
        else:
            here.mkdir()
        path = here / f"input{SUFFIX[target]}"
        path.write_bytes(content)
        for command in COMMANDS[target]:
            argv = [folder if word == "{root}" else word for word in command(str(path))]
            TRIED[target] += 1
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: usage errors only
                code = int(exc.code or 0)
            out, err = capsys.readouterr()
            assert code in (0, 1, 3), (argv, code, content[:2000], err[-3000:])
            assert "Traceback" not in err and "internal error" not in err, (argv, err[-3000:])
            assert len(out) + len(err) < 200_000 + 40 * len(content), argv


def _fuzz(target: str, examples: int, derandomize: bool) -> Callable[..., None]:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def run(capsys: pytest.CaptureFixture[str], data: st.DataObject) -> None:
        _run(target, _input(data, target), capsys)

    return run


TARGETS = list(SEEDS)


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_the_readers(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    _fuzz(target, BUDGET, derandomize=True)(capsys)  # the same inputs in every run
    print(f"fuzz {target}: {TRIED[target]} runs", file=sys.__stderr__)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_the_readers_longer(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    _fuzz(target, BUDGET * 20, derandomize=False)(capsys)  # new inputs each run
    print(f"fuzz {target}: {TRIED[target]} runs", file=sys.__stderr__)


# Inputs the fuzzing found that once gave a wrong answer, tried on every run.
REGRESSIONS = [
    # '? ' before the first comment: an empty key, which the formatter wrote back as
    # `null` (worded "found null", not "found nothing"): fmt --check exited 4
    ("publishers", b"? " + (EXAMPLES / "publishers.yaml").read_bytes()),
    ("publishers", b"publishers:\n  - provider: github\n    ? \n    : 3\n"),
    # A field's pattern that is not a valid regular expression (reported), in a policy
    # whose publisher binds the field: its value was then checked against the pattern,
    # compiled again (re.error): lint and check exited 4 (found by the slow policy fuzz)
    ("policy", b"""provider demo {
  issuer "https://ci.example"
  claims {
    required owner: string
  }
  fields {
    owner: string matches "^[{-z]$"
  }
  rule owner: claims.owner == publisher.owner
}

publisher "p" {
  provider demo
  projects ["sampleproject"]
  fields {
    owner = "octo"
  }
}
"""),
]


@pytest.mark.parametrize(("target", "content"), REGRESSIONS)
def test_fuzz_regressions(target: str, content: bytes,
                          capsys: pytest.CaptureFixture[str]) -> None:
    _run(target, content, capsys)


def test_a_file_of_many_problems_stops_at_the_limit(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    # Found by the slow publishers fuzz (seed 16): a line duplicated into 180 000 entries,
    # each missing its fields; every command took minutes and gigabytes to find and
    # print 900 000 problems. Reading stops at MAX_FILE_PROBLEMS.
    from tppolicy.limits import MAX_FILE_PROBLEMS

    path = tmp_path / "many.yaml"
    path.write_text("publishers:\n" + "  - provider: github\n" * 5000)
    assert main(["fmt", "--check", str(path)]) == 0  # laid out already; its errors kept
    capsys.readouterr()
    for argv in (["compile", str(path)], ["lint", str(path)],
                 ["check", "--publishers", str(path), "--claims",
                  str(EXAMPLES / "claims" / "github-release.json")]):
        assert main(argv) == 3, argv
        _, err = capsys.readouterr()
        assert f"stopped reading the file after {MAX_FILE_PROBLEMS} problems" in err, argv
        assert err.count("missing '") <= MAX_FILE_PROBLEMS, argv
