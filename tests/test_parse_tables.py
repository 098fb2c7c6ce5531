"""The parser's prepared tables (policy.tables.json): made from this grammar, parsing exactly
as the tables built from the grammar, and nothing loaded from a cache directory."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from lark import Lark

from tppolicy.language import parse, prepared
from tppolicy.language.tables import tables_text

from .conftest import EXAMPLES, ROOT

TABLES = ROOT / "src" / "tppolicy" / "language" / parse.TABLES_FILE
REGENERATE = "python -m tppolicy.language.tables"


def _policy_files() -> list[Path]:
    return sorted([*ROOT.joinpath("policies").glob("*.tpp"),
                   *ROOT.joinpath("tests", "fixtures").rglob("*.tpp")])


def test_the_tables_were_made_from_this_grammar() -> None:
    recorded = json.loads(TABLES.read_text("utf-8"))
    assert recorded["grammar_sha256"] == parse.grammar_digest(parse.grammar_text()), (
        f"policy.lark changed: regenerate the parse tables with `{REGENERATE}`")
    assert recorded["lark"] == parse.lark_series(), (
        f"another lark: regenerate the parse tables with `{REGENERATE}`")


def test_the_parser_uses_the_prepared_tables() -> None:
    _, prepared = parse.build_parser()
    assert prepared


def test_prepared_and_built_parsers_parse_alike() -> None:
    prepared, used = parse.build_parser()
    built, _ = parse.build_parser(prepared=False)
    assert used
    files = _policy_files()
    assert len(files) >= 7
    for path in files:
        text = path.read_text("utf-8")
        try:
            expected = built.parse(text)
        except Exception as exc:  # a fixture with a syntax error: the same error
            try:
                prepared.parse(text)
            except Exception as again:
                assert type(again) is type(exc), path
                assert str(again) == str(exc), path
                continue
            raise AssertionError(f"{path}: only the built parser refuses it") from exc
        assert prepared.parse(text) == expected, path


def test_regenerated_tables_parse_alike(tmp_path: Path) -> None:
    # Lark numbers states differently from run to run: compared by what they parse.
    data = json.loads(tables_text(parse.grammar_text()),
                      object_pairs_hook=parse._int_keys)
    again: Lark = Lark._load_from_dict(data["data"], data["memo"])  # type: ignore[no-untyped-call]
    text = ROOT.joinpath("policies", "github.tpp").read_text("utf-8")
    assert again.parse(text) == parse.build_parser()[0].parse(text)


def test_nothing_in_the_package_can_unpickle() -> None:
    unsafe = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "joblib"}
    for path in sorted(ROOT.joinpath("src", "tppolicy").rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            elif isinstance(node, ast.keyword) and node.arg == "cache":
                names = ["lark cache="] if not (isinstance(node.value, ast.Constant)
                                                 and node.value.value in (False, None)) else []
            else:
                continue
            assert not unsafe.intersection(names), f"{path}:{node.lineno}: {names}"
            assert "lark cache=" not in names, f"{path}:{node.lineno}: a lark cache"


def test_check_reads_and_writes_no_cache_directory(tmp_path: Path) -> None:
    cache, temp, home = tmp_path / "cache", tmp_path / "tmp", tmp_path / "home"
    # Files where the old pickle caches were (and lark's cache=True would look): read, they
    # would fail the run.
    planted = [cache / "tppolicy" / "provider-github.pickle", temp / ".lark_cache_x.tmp",
               home / ".cache" / "tppolicy" / "provider-gitlab.pickle"]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x80\x04not a pickle")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "TMPDIR": str(temp), "HOME": str(home),
           "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tppolicy", "check", "--publishers",
         str(EXAMPLES / "publishers.yaml"), "--claims",
         str(EXAMPLES / "claims" / "github-release.json")],
        capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    left = sorted(p for folder in (cache, temp, home) for p in folder.rglob("*") if p.is_file())
    assert left == sorted(planted)


# ----------------------------------------------------- prepared trees of shipped files
def test_the_prepared_trees_are_current() -> None:
    document = json.loads((TABLES.with_name(prepared.PREPARED_FILE)).read_text("utf-8"))
    assert document["code_sha256"] == prepared.code_digest(), (
        "the grammar, parse.py, prepared.py or ast.py changed: regenerate with "
        f"`{REGENERATE}`")
    shipped = sorted(ROOT.joinpath("policies").glob("*.tpp"))
    digests = {prepared.text_digest(path.read_text("utf-8")) for path in shipped}
    assert set(document["trees"]) == digests, (
        f"a shipped provider file changed: regenerate with `{REGENERATE}`")


def test_a_prepared_tree_is_the_parsed_tree_spans_included() -> None:
    for path in sorted(ROOT.joinpath("policies").glob("*.tpp")):
        text = path.read_text("utf-8")
        tree = prepared.prepared_policy(text, str(path))
        fresh = parse.parse_policy_fresh(text, str(path))
        assert tree is not None, path
        assert tree == fresh, path
        assert prepared.encode_tree(tree) == prepared.encode_tree(fresh), path
        assert tree.providers[0].span.source == str(path)
        assert parse.parse_policy(text, str(path)) == fresh


def test_another_text_is_parsed() -> None:
    path = ROOT / "policies" / "github.tpp"
    text = path.read_text("utf-8").replace('"pypi"', '"testpypi"', 1) + "\n"
    assert prepared.text_digest(text) not in json.loads(
        TABLES.with_name(prepared.PREPARED_FILE).read_text("utf-8"))["trees"]
    assert parse.parse_policy(text, "x.tpp") == parse.parse_policy_fresh(text, "x.tpp")


def test_the_shipped_providers_load_without_the_parser_or_lark() -> None:
    code = ("from tppolicy.language.providers import load_providers\n"
            "assert len(load_providers()) >= 7\n"
            "import sys\n"
            "print('lark' in sys.modules, 'tppolicy.language.parse' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "False False"), done.stderr
