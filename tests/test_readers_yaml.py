"""The one YAML-with-positions reader: positions, limits, and errors with file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tppolicy.errors import ConfigError
from tppolicy.readers.yaml import (
    MAX_ALIASES,
    MAX_CHARS,
    MAX_DEPTH,
    MAX_VALUES,
    compose_yaml,
    construct_scalar,
)

BOMB = "".join(
    [f"{a}: &{a} [{', '.join([f'*{p}'] * 9)}]\n"
     for p, a in zip("abcdefgh", "bcdefghi", strict=True)])
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + BOMB


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        compose_yaml(text, "f.yaml", ConfigError)
    return str(info.value)


def test_positions_are_lines_and_columns_in_characters() -> None:
    document = compose_yaml("a:\n  - é: [x, 'ü']\n", "f.yaml", ConfigError)
    assert isinstance(document.root, yaml.MappingNode)
    entry = document.root.value[0][1].value[0]
    key, value = entry.value[0]
    assert construct_scalar(key) == "é"
    span = document.span(value.value[1])
    assert (span.source, span.line, span.column, span.end_line, span.end_column) == (
        "f.yaml", 2, 12, 2, 15)
    assert str(document.span(entry)) == "f.yaml:2:5"


def test_an_empty_file_has_no_root() -> None:
    assert compose_yaml("# nothing\n", "f.yaml", ConfigError).root is None


def test_invalid_yaml_names_file_line_and_column() -> None:
    assert _error("a: [b\nc: d\n").startswith("f.yaml:2:2: invalid YAML: expected ',' or ']'")
    assert "tabs" in _error("a:\n\tb: c\n")
    assert _error("a: *nowhere\n").startswith("f.yaml:1:4: invalid YAML: found undefined alias")


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,  # libyaml's composer would crash the process
    "a:\n" + "".join(" " * i + "- \n" for i in range(1, 2 * MAX_DEPTH, 2)),
    "- " * (MAX_DEPTH + 1) + "x\n",
])
def test_deep_nesting_is_refused(text: str) -> None:
    assert f"nested too deeply (more than {MAX_DEPTH} levels)" in _error(text)


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = MAX_DEPTH - 1
    assert compose_yaml("[" * depth + "]" * depth, "f.yaml", ConfigError).root is not None


def test_an_alias_bomb_is_refused() -> None:
    assert len(BOMB.encode()) < 800
    assert f"expands to more than {MAX_VALUES} values" in _error(BOMB)


def test_a_recursive_alias_is_refused() -> None:
    assert "recursive alias" in _error("a: &x [1, *x]\n")


def test_too_many_aliases_are_refused() -> None:
    text = "a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    assert f"more than {MAX_ALIASES} aliases" in _error(text)
    ok = "a: &a x\nb: [" + ", ".join(["*a"] * 10) + "]\n"
    assert compose_yaml(ok, "f.yaml", ConfigError).root is not None


def test_a_star_in_a_string_is_not_an_alias() -> None:
    assert compose_yaml("a: 'v*'\nb: refs/tags/*\n", "f.yaml", ConfigError).root is not None


def test_a_file_too_large_is_refused_before_parsing() -> None:
    assert "the file is too large" in _error("#" * (MAX_CHARS + 1))


@pytest.mark.parametrize("command", [
    ["check", "--claims", "CLAIMS", "--publishers"], ["lint"], ["test"], ["fmt", "--check"]])
@pytest.mark.parametrize("text", [BOMB, "[" * 100_000 + "]" * 100_000])
def test_every_tool_reads_yaml_through_the_one_reader(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str],
        text: str) -> None:
    name = "bomb.tptest.yaml" if command == ["test"] else "bomb.yaml"
    (tmp_path / name).write_text(text)
    argv = [str(ROOT / "examples" / "claims" / "github-release.json") if a == "CLAIMS" else a
            for a in command]
    code, out, err = run_cli(capsys, *argv, str(tmp_path / name))
    assert code == 3, (out, err)
    assert f"{tmp_path / name}:1:" in err
    assert ("expands to more than" in err) or ("nested too deeply" in err)


@pytest.mark.parametrize("text", ["", "a: 1", "a: 1\n", "\n\nb:\n  - x\n\n", "a: 'é'\nb: 2"])
def test_line_index_spans_are_the_documents(text: str) -> None:
    """`LineIndex` (the line breaks' offsets) gives every node the span the composed
    document gives it, at the file's last line too, with or without a final newline."""
    from tppolicy.readers.yaml import LineIndex, compose_yaml

    index = LineIndex("f.yaml", text)
    assert list(index._breaks) == [i for i, c in enumerate(text) if c == "\n"]
    if not text.strip():
        return
    document = compose_yaml(text, "f.yaml", ConfigError)
    node = document.root
    assert node is not None
    assert index.span(node.start_mark, node.end_mark) == document.span(node)
    assert index.head_span(node.start_mark, node.end_mark) == document.head_span(node)
