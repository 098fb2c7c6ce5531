"""Field patterns (`matches "<regex>"`) whose matching time can explode on a hostile value
are refused where the pattern is written (language/patterns.py, called by the checker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tppolicy import PolicyCheckError
from tppolicy.language.check import check_policy, check_provider
from tppolicy.language.parse import parse_policy
from tppolicy.language.patterns import MAX_OVERLAPPING_LOOPS, pattern_problem

from .conftest import EXAMPLES, ROOT, run_cli

POLICIES = ROOT / "policies"


def _provider(pattern: str, publisher_value: str | None = None) -> str:
    """A provider whose field `name` has `pattern` (its field line is line 7), and a
    publisher binding `publisher_value` to it if given."""
    text = ('provider p {\n'
            '  issuer "https://issuer.example"\n'
            '  claims {\n'
            '    required repository: string\n'
            '  }\n'
            '  fields {\n'
            f'    name: string matches {json.dumps(pattern)}\n'
            '  }\n'
            '  lookup { key publisher.name == claims.repository }\n'
            '  rule repository: claims.repository == publisher.name\n'
            '}\n')
    if publisher_value is not None:
        text += ('publisher "one" {\n  provider p\n  projects ["demo"]\n'
                 f'  fields {{ name = {json.dumps(publisher_value)} }}\n}}\n')
    return text


def _shipped_patterns() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(POLICIES.glob("*.tpp")):
        for provider in parse_policy(path.read_text("utf-8"), str(path)).providers:
            for decl in provider.fields:
                if decl.pattern is not None:
                    found.append((path.name, decl.name, decl.pattern))
    return found


SHIPPED = _shipped_patterns()


def test_the_shipped_files_have_patterns() -> None:
    assert len(SHIPPED) >= 40


@pytest.mark.parametrize(("file", "field", "pattern"), SHIPPED,
                         ids=[f"{f}:{n}" for f, n, _ in SHIPPED])
def test_every_shipped_pattern_is_accepted(file: str, field: str, pattern: str) -> None:
    assert pattern_problem(pattern) is None


@pytest.mark.parametrize("pattern", [
    # the publishers schema's own patterns (decide/publishers.py)
    r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$",
    r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$",
    # safe idioms: separated repetition, lookaheads, bounded counts, codes
    r"^[a-z0-9]+(-[a-z0-9]+)*$",
    r"^[A-Za-z0-9.-]+(/[A-Za-z0-9._-]+)+$",
    r"^(?!-)(?!.*--)[a-z0-9-]{3,40}$",
    r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$",
    r"^([0-9]{1,3}\.){3}[0-9]{1,3}$",
    r"^(a|ab)*$",  # {a, ab}: every text splits one way only
    r"^(\d+\s)*$",  # \d and \s share no character, Unicode included
    r"^((?!\*+$)[^ ]+)?$",
    r"^[a-z]*[a-z]*$",  # two overlapping loops: n^2, bounded by the length cap
    r"^(ab|cd|e)+$",
    r"^(?i)[a-z]+(\.[a-z]+)*$",
])
def test_safe_idioms_are_accepted(pattern: str) -> None:
    assert pattern_problem(pattern) is None


HOSTILE = [
    # (pattern, the part blamed)
    (r"^(a+)+$", "(a+)+"),
    (r"^(a*)*$", "(a*)*"),
    (r"^(a|a)*$", "(a|a)*"),
    (r"^(\w+\s?)*$", r"(\w+\s?)*"),
    (r"^([a-z]+-?)*x$", "([a-z]+-?)*"),
    (r"^(a|ab|b)*$", "(a|ab|b)*"),  # "ab" splits as ab or a,b
    (r"^(.*,)*$", "(.*,)*"),
    (r"^(\s*\S+)*$", r"(\s*\S+)*"),
    (r"^(a|a){0,30}$", "(a|a){0,30}"),  # a large count is as bad as none
    (r"^(?!(a+)+$)[a-z]+$", "(a+)+"),  # inside a lookahead too
    (r"^x(y|[a-z0-9]+)+z$", "(y|[a-z0-9]+)+"),
    (r"^[a-z]([a-z0-9]|-?[a-z0-9])*$", "([a-z0-9]|-?[a-z0-9])*"),
]


@pytest.mark.parametrize(("pattern", "blamed"), HOSTILE, ids=[p for p, _ in HOSTILE])
def test_nested_ambiguous_repetition_is_refused(pattern: str, blamed: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None
    assert pattern[problem.start:problem.end] == blamed
    assert f"the repetition {blamed} can match the same text in more than one way" \
        in problem.message
    assert "exponential time on a hostile value" in problem.message
    assert "start" in problem.hint


@pytest.mark.parametrize(("pattern", "blamed"), HOSTILE, ids=[p for p, _ in HOSTILE])
def test_the_checker_refuses_it_at_the_pattern(pattern: str, blamed: str) -> None:
    text = _provider(pattern)
    with pytest.raises(PolicyCheckError) as info:
        check_provider(parse_policy(text, "p.tpp").providers[0], text)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.message.startswith("the pattern of 'name': the repetition ")
    assert diagnostic.span is not None
    line = text.splitlines()[6]
    literal = line.index('"') + 1
    offset = json.dumps(pattern)[1:].index(json.dumps(blamed)[1:-1])
    assert (diagnostic.span.source, diagnostic.span.line) == ("p.tpp", 7)
    assert diagnostic.span.column == literal + offset + 1
    assert line[diagnostic.span.column - 1:diagnostic.span.end_column - 1] \
        == json.dumps(blamed)[1:-1]
    assert diagnostic.hint


def test_a_literal_written_with_other_escapes_is_located_at_its_start() -> None:
    text = _provider("^(a+)+$").replace('"^(a+)+$"', '"\\u005e(a+)+$"')
    with pytest.raises(PolicyCheckError) as info:
        check_provider(parse_policy(text, "p.tpp").providers[0], text)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.span is not None
    assert diagnostic.span.line == 7
    assert diagnostic.span.column == text.splitlines()[6].index('"') + 1


def test_more_overlapping_loops_than_allowed_are_refused() -> None:
    assert MAX_OVERLAPPING_LOOPS == 2
    assert pattern_problem(r"^a*a*$") is None
    problem = pattern_problem(r"^.*a.*a.*a$")
    assert problem is not None
    assert problem.message.startswith("3 consecutive repetitions, from .* to .*, can share "
                                      "out the same text in many ways")
    assert "power 3" in problem.message
    # copies made by counts count too: ((.*){2}){2}... is (.*)^12
    problem = pattern_problem(r"^((((.)*){2}){0,3}){2}x$")
    assert problem is not None
    assert problem.message.startswith("12 copies of the repetition (.)* (made by the counts")


def test_back_references_are_refused() -> None:
    for pattern in (r"^(a+)\1$", r"^(?P<x>a)(?P=x)$", r"^(a)?(?(1)b|c)$"):
        problem = pattern_problem(pattern)
        assert problem is not None
        assert "refer back to a group" in problem.message


@pytest.mark.parametrize("pattern", [
    "^(" + "|".join(f"[a-z]{{0,2}}x{i}" for i in range(200)) + ")+$",
    # 2 000 optional characters: 4 million transitions, 7.5 s to analyse before the
    # analysis had a budget of steps
    "^" + "a?" * 2000 + "$",
    "^" + "[a-z]*" * 200 + "$",
], ids=["alternatives", "optional", "loops"])
def test_a_pattern_too_complex_to_analyse_is_refused(pattern: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None
    assert problem.kind == "complex"
    assert "too complex" in problem.message


def test_a_refused_pattern_is_never_run_on_a_publisher_value() -> None:
    """The checker used to match publishers' values against a refused pattern: on this
    value, (a+)+ would backtrack 2^40 times (years)."""
    text = _provider(r"^(a+)+$", "a" * 40 + "!")
    with pytest.raises(PolicyCheckError) as info:
        check_policy(parse_policy(text, "p.tpp"), {}, text)
    messages = [d.message for d in info.value.diagnostics]
    assert any("can match the same text in more than one way" in m for m in messages)


@pytest.mark.parametrize("command", ["lint", "check", "compile", "fmt", "test"])
def test_every_command_refuses_the_provider_file_with_exit_3(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    providers = tmp_path / "providers"
    providers.mkdir()
    (providers / "p.tpp").write_text(_provider(r"^([a-z]+-?)*x$"), "utf-8")
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text("publishers:\n  - provider: p\n    projects: [demo]\n"
                          "    name: abc-x\n", "utf-8")
    claims = tmp_path / "claims.json"
    claims.write_text('{"iss": "https://issuer.example", "repository": "abc-x"}', "utf-8")
    with_providers = ["--providers", str(providers)]
    argv = {
        "lint": ["lint", str(providers / "p.tpp")],
        "check": ["check", "--publishers", str(publishers), "--claims", str(claims),
                  *with_providers],
        "compile": ["compile", str(publishers), *with_providers],
        "fmt": ["fmt", "--check", str(publishers), *with_providers],
        "test": ["test", str(EXAMPLES / "publishers.tptest.yaml"), *with_providers],
    }[command]
    code, out, err = run_cli(capsys, *argv)
    assert code == 3, (out, err)
    assert (f"{providers / 'p.tpp'}:7:28: the pattern of 'name': the repetition "
            "([a-z]+-?)* can match") in err


@pytest.mark.parametrize("pattern", [r"^a|b$", r"^(a)|(b)$", r"^a\$"])
def test_a_pattern_anchored_in_part_only_is_refused(pattern: str) -> None:
    """`^a|b$` passed the anchoring check (it starts with ^ and ends with $): a publishers
    file (the schema runs `search`) accepted 'xxb', which the engine (`fullmatch`) and the
    checker refused."""
    text = _provider(pattern)
    with pytest.raises(PolicyCheckError) as info:
        check_provider(parse_policy(text, "p.tpp").providers[0], text)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.message == "the pattern of 'name' is not anchored as a whole"
    assert diagnostic.hint is not None and "^(a|b)$ rather than ^a|b$" in diagnostic.hint
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (7, 26)
