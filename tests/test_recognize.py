"""A compiled policy's blocks as `compile` printed them are read without the parser
(`tppolicy.decide.recognize`): the same publishers and the same decisions as the whole
read gives; anything else (a block edited by hand, a comment inside one, another provider
header, a problem) is read whole, so that an edit is never replaced by what the shipped
provider would have made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_compile_stream import GENERATED
from tppolicy.decide.load import (
    compile_publishers_text,
    load_policy_for_claims,
    load_policy_text,
)
from tppolicy.decide.policy import Policy
from tppolicy.decide.recognize import load_compiled_policy
from tppolicy.errors import TppolicyError
from tppolicy.language.check import check_policy
from tppolicy.language.parse import parse_policy
from tppolicy.language.printer import format_policy
from tppolicy.language.providers import load_providers

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = (ROOT / "examples" / "publishers.yaml").read_text("utf-8")


def _compiled(publishers: str) -> str:
    policy = compile_publishers_text(publishers, "p.yaml").to_policy_file("p.yaml")
    return "# Compiled by tppolicy from p.yaml.\n\n" + format_policy(policy)


def _whole(text: str) -> Policy:
    return Policy(check_policy(parse_policy(text, "c.tpp"), load_providers(), text),
                  source_text=text)


def _claims() -> list[dict[str, Any]]:
    """Every example claims file, each also with its environment and repository changed."""
    found = []
    for path in sorted((ROOT / "examples" / "claims").glob("*.json")):
        claims = json.loads(path.read_text("utf-8"))
        found += [claims, {**claims, "environment": "staging"},
                  {**claims, "repository": "octo-org/other"}]
    return found


def _claims_of_generated() -> list[dict[str, Any]]:
    claims = json.loads((ROOT / "examples" / "claims" / "github-release.json").read_text("utf-8"))
    made = []
    for i in (0, 1, 3, 7, 39):
        repository = f"org{i // 3}/repo{i}"
        made.append({**claims, "repository": repository, "repository_owner": f"org{i // 3}",
                     "repository_owner_id": str(100 + i // 3),
                     "job_workflow_ref": f"{repository}/.github/workflows/"
                                         f"{'release.yml' if i % 2 else 'publish.yaml'}"
                                         f"@{claims['ref']}",
                     "environment": "pypi" if i % 3 else "whatever"})
    return made


@pytest.mark.parametrize(("publishers", "claims"), [
    (EXAMPLES, _claims()), (GENERATED, _claims() + _claims_of_generated())],
    ids=["examples", "generated"])
def test_a_compiled_policy_is_read_as_the_whole_read_reads_it(
        publishers: str, claims: list[dict[str, Any]]) -> None:
    text = _compiled(publishers)
    fast = load_compiled_policy(text, "c.tpp", load_providers(), None)
    assert fast is not None  # every block recognized
    whole = _whole(text)
    assert [(p.label, p.projects, p.pending, dict(p.fields), p.rules) for p in fast.publishers] \
        == [(p.label, p.projects, p.pending, dict(p.fields), p.rules) for p in whole.publishers]
    assert any(fast.evaluate(c).allowed for c in claims)
    for one in claims:
        assert fast.evaluate(one, explain=True).to_json() == \
            whole.evaluate(one, explain=True).to_json()
        kept = load_policy_for_claims(text, "c.tpp", one)
        assert kept.evaluate(one, explain=True).to_json() == \
            whole.evaluate(one, explain=True).to_json()
    # and the public reader takes that way
    assert format_policy(load_policy_text(text, "c.tpp").to_policy_file("p.yaml")) == \
        format_policy(whole.to_policy_file("p.yaml"))


def _edits() -> list[tuple[str, str]]:
    return [
        # a rule loosened by hand: its own text decides, not the shipped provider's
        ('  rule environment: lower(claims.environment) == "pypi"\n',
         '  rule environment: true\n'),
        # a comment inside a block
        ('  rule repository_owner: ', '  # reviewed\n  rule repository_owner: '),
        # a field bound to its default, which compile leaves out
        ('    environment = "pypi"\n', '    environment = "pypi"\n    ref_pattern = ""\n'),
        # another issuer in the provider header
        ('  issuer "https://token.actions.githubusercontent.com"\n',
         '  issuer "https://token.actions.githubusercontent.com"\n'
         '  issuer "https://token.example.com"\n'),
        # spaces at a line's end
        ('  provider github\n', '  provider github \n'),
    ]


@pytest.mark.parametrize(("old", "new"), [
    pytest.param(*edit, id=name, marks=() if name in ("rule", "issuer") else pytest.mark.slow)
    for edit, name in zip(_edits(), ["rule", "comment", "default", "issuer", "spaces"],
                          strict=True)])
def test_an_edited_file_is_read_whole(old: str, new: str) -> None:
    text = _compiled(EXAMPLES)
    assert old in text
    edited = text.replace(old, new, 1)
    assert load_compiled_policy(edited, "c.tpp", load_providers(), None) is None
    whole = _whole(edited)
    assert format_policy(load_policy_text(edited, "c.tpp").to_policy_file("x")) == \
        format_policy(whole.to_policy_file("x"))


def _block_of(text: str, label: str) -> tuple[int, int]:
    start = text.index(f'\npublisher "{label}" {{\n') + 1
    return start, text.index("\n}\n", start) + 2


def test_a_loosened_rule_decides_as_written() -> None:
    """The security point: a hand-edited rule is the policy. Made always true, the
    event_name rule allows the pull_request_target run that the compiled rule refused."""
    text = _compiled(EXAMPLES)
    claims = json.loads((ROOT / "examples" / "claims" / "github-release.json").read_text("utf-8"))
    chosen = load_policy_text(text, "c.tpp").evaluate(claims).publisher
    assert chosen is not None
    target = {**claims, "event_name": "pull_request_target"}
    assert not load_policy_text(text, "c.tpp").evaluate(target).allowed
    start, stop = _block_of(text, chosen)
    block = text[start:stop]
    loose = block.replace('  rule event_name: claims.event_name != "pull_request_target"\n'
                          "      else \"publishing from a workflow invoked via "
                          "'pull_request_target' is not supported\"",
                          "  rule event_name: true")
    assert loose != block
    edited = text[:start] + loose + text[stop:]
    assert _whole(edited).evaluate(target).allowed
    assert load_policy_text(edited, "c.tpp").evaluate(target).allowed
    assert load_policy_for_claims(edited, "c.tpp", target).evaluate(target).allowed


def _twice(text: str) -> str:
    start = text.index("\npublisher ") + 1
    return text + "\n" + text[start:text.index("\n}\n", start) + 3]


@pytest.mark.parametrize("damage", [
    # a provider block left open: the publishers would be inside it
    lambda t: t.replace("\n}\n", "\n", 1),
    # the same publisher twice
    _twice,
    # a stray line between blocks
    lambda t: t.replace("\npublisher ", "\nstray\npublisher ", 1),
], ids=["unclosed", "twice", "stray"])
def test_a_broken_file_is_refused_as_the_whole_read_refuses_it(damage: Any) -> None:
    text = damage(_compiled(EXAMPLES))
    assert load_compiled_policy(text, "c.tpp", load_providers(), None) is None
    with pytest.raises(TppolicyError) as whole:
        _whole(text)
    with pytest.raises(TppolicyError) as read:
        load_policy_text(text, "c.tpp")
    assert str(read.value) == str(whole.value)


def _layouts() -> list[str]:
    """A compiled policy as compile prints it, and as hands leave it around its blocks."""
    text = _compiled(GENERATED)
    first = text.index("\npublisher ") + 1
    second = text.index("\npublisher ", first) + 1
    return [
        text,
        text.replace("\n\npublisher ", "\n\n\npublisher ", 1),  # two blank lines
        text[:second] + "# reviewed by the release team\n" + text[second:],
        text[:second] + "# reviewed\n\n" + text[second:],  # a comment, then a blank line
        text[:second - 1] + text[second:],  # no blank line between two blocks
        text[:second] + "\n" + text[second:],  # two blank lines between two blocks
        text.rstrip("\n"),  # no final newline
        text + "\n",  # a blank line at the end
        text.replace("# Compiled", "#Compiled", 1),
        text + "# the end\n",
        text.replace("  provider github\n", "  provider github\n  # why\n", 1),
    ]


_LAYOUT_IDS = ["printed", "two-blank", "comment", "comment-blank", "no-blank",
               "two-blank-blocks", "no-newline", "blank-end", "comment-space", "comment-end",
               "comment-inside"]
# the printed policy and a run of blocks two blank lines apart in the default run; the
# other layouts in the slow group (each is two runs of the parser on a 40-publisher file)


@pytest.mark.parametrize("text", [
    pytest.param(text, id=name, marks=() if name in ("printed", "two-blank-blocks")
                 else pytest.mark.slow) for text, name in zip(_layouts(), _LAYOUT_IDS,
                                                              strict=True)])
def test_fmt_judges_a_compiled_policy_as_the_parser_does(text: str) -> None:
    """fmt reads a compiled policy's blocks as compile printed them without the parser
    (`_compiled_in_layout`): what it makes of the file is what the parser's way makes."""
    from tppolicy.tools import fmt

    assert fmt.format_policy_text(text, "c.tpp") == fmt._format_policy(text, "c.tpp")


def test_fmt_takes_the_fast_way_for_a_printed_policy() -> None:
    from tppolicy.tools import fmt

    text = _compiled(GENERATED)
    assert fmt._compiled_in_layout(text, "c.tpp")
    assert not fmt._compiled_in_layout(_layouts()[1], "c.tpp")


@pytest.mark.parametrize("publishers", [
    pytest.param(EXAMPLES, id="examples"),
    pytest.param(GENERATED, id="generated", marks=pytest.mark.slow),
    pytest.param("planted", id="planted", marks=pytest.mark.slow)])
def test_lint_finds_in_a_compiled_policy_what_the_parser_way_finds(publishers: str,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    """lint reads a compiled policy's blocks as compile printed them without the parser
    (`_lint_compiled`): the same findings, at the same places, as the parser's way, on a
    file with problems planted every few publishers (every code lint gives a publishers
    file's entries)."""
    from tests.test_lint_stream_findings import planted_text
    from tppolicy.tools import lint

    text = _compiled(planted_text(600) if publishers == "planted" else publishers)
    assert lint._lint_compiled(text, "c.tpp", load_providers()) is not None
    fast = [f.to_json() for f in lint.lint_policy_text(text, "c.tpp")]
    monkeypatch.setattr(lint, "_lint_compiled", lambda *args: None)
    slow = [f.to_json() for f in lint.lint_policy_text(text, "c.tpp")]
    assert fast == slow
    if publishers == "planted":
        assert len({f["code"] for f in slow}) >= 5, slow


def test_a_compiled_policy_file_is_read_from_its_bytes(tmp_path: Path) -> None:
    """`load_policy_file` and `lint_file` read a compiled policy's blocks from the file's
    bytes (its whole text is never made): the same policy and findings as from its
    text; a file the bytes' reading refuses (a byte-order mark, a byte that is not
    UTF-8 in a block) is read and refused as before, at the byte's line and column."""
    from tppolicy.decide.load import load_policy_file
    from tppolicy.errors import PolicyCheckError
    from tppolicy.tools.lint import lint_file, lint_policy_text

    text = _compiled(GENERATED)
    path = tmp_path / "c.tpp"
    path.write_text(text, "utf-8")
    claims = _claims_of_generated()[0]
    whole = _whole(text)
    assert load_policy_file(path).evaluate(claims, explain=True).to_json() == \
        whole.evaluate(claims, explain=True).to_json()
    assert load_policy_file(path, claims=claims).evaluate(claims).allowed
    assert [f.to_json() for f in lint_file(path)] == \
        [f.to_json() for f in lint_policy_text(text, str(path))]
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # read as text: the mark dropped
    assert load_policy_file(path).evaluate(claims).allowed
    at = text.index('"pub-5"')
    path.write_bytes(text[:at].encode() + b'"pub-\xff5"' + text[at + 7:].encode())
    line = text[:at].count("\n") + 1
    for read in (load_policy_file, lint_file):
        with pytest.raises(PolicyCheckError, match=f"c.tpp:{line}:.*not UTF-8"):
            read(path)


def test_a_compiled_policy_file_s_blocks_are_read_again_from_the_file(tmp_path: Path) -> None:
    """`CompiledReading.of_file` does not hold the file's bytes: its blocks are read from
    the file again, one at a time, giving the blocks (and lines) the bytes give; a file
    changed after its first reading ends the blocks with `Unrecognized` (the tools then
    read it whole); a stream that cannot be read again keeps its bytes."""
    import io

    from tests.test_lint_stream_findings import planted_text
    from tppolicy.decide.recognize import CompiledReading, Unrecognized
    from tppolicy.tools.lint import lint_file, lint_policy_text

    text = _compiled(planted_text(60)) + "# tppolicy: ignore\n"
    path = tmp_path / "c.tpp"
    path.write_text(text, "utf-8")
    providers = load_providers()
    bytes_reading = CompiledReading.of(text.encode(), "c.tpp", providers)
    assert bytes_reading is not None
    with path.open("rb") as handle:
        reading = CompiledReading.of_file(handle, lambda h: h.read(), "c.tpp", providers)
        assert reading is not None and not isinstance(reading.text, (str, bytes))
        assert [(b.text, b.start, b.stop, b.line) for b in reading.blocks()] == \
            [(b.text, b.start, b.stop, b.line) for b in bytes_reading.blocks()]
        assert list(reading.lines()) == text.split("\n")[:-1] == list(bytes_reading.lines())
        path.write_text(text.replace("pub-1", "pub-7", 1), "utf-8")  # same size
        with pytest.raises(Unrecognized):
            list(reading.blocks())
        with pytest.raises(Unrecognized):
            list(reading.lines())
    stream = io.BytesIO(text.encode())
    stream.seekable = lambda: False  # type: ignore[method-assign]
    kept = CompiledReading.of_file(stream, lambda h: h.read(), "c.tpp", providers)
    assert kept is not None and kept.text == text.encode()
    # the tools read the file as its text reads (findings, suppressions)
    path.write_text(text, "utf-8")
    findings = [f.to_json() for f in lint_file(path)]
    assert findings and findings == [f.to_json() for f in lint_policy_text(text, str(path))]


def test_a_file_read_again_is_read_whole_when_it_changed(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A compiled policy changed while `load_policy_file` or `lint_file` reads its blocks
    again is read whole, as it is once changed."""
    from tppolicy.decide import recognize
    from tppolicy.decide.load import load_policy_file
    from tppolicy.tools.lint import lint_file, lint_policy_text

    text = _compiled(GENERATED)
    path = tmp_path / "c.tpp"
    path.write_text(text, "utf-8")
    edited = text.replace('"pub-5"', '"pub-Q"', 1)
    assert edited != text
    original = recognize.CompiledReading.of

    def of_then_edit(*args: Any) -> Any:
        found = original(*args)
        path.write_text(edited, "utf-8")  # after the first reading, before the blocks
        return found

    monkeypatch.setattr(recognize.CompiledReading, "of", of_then_edit)
    names = [p.label for p in load_policy_file(path).publishers]
    assert names == [p.label for p in _whole(edited).publishers]
    path.write_text(text, "utf-8")
    assert [f.to_json() for f in lint_file(path)] == \
        [f.to_json() for f in lint_policy_text(edited, str(path))]


def test_a_recognized_block_s_positions_are_the_parser_s() -> None:
    """lint finds a recognized block's head and projects when a finding first asks
    (`_BlockSpans`, `_ProjectSpans`): where the whole read's `_policy_pub` finds them."""
    from tests.test_lint_stream_findings import planted_text
    from tppolicy.decide.recognize import CompiledReading
    from tppolicy.tools import lint

    text = _compiled(planted_text(40))
    reading = CompiledReading.of(text, "c.tpp", load_providers())
    assert reading is not None
    whole = _whole(text)
    lines = text.splitlines()
    blocks = list(reading.blocks())
    assert len(blocks) == len(whole.publishers)
    for block, checked in zip(blocks, whole.publishers, strict=True):
        expected = lint._policy_pub(checked, lines)
        spans = lint._BlockSpans(block.text, "c.tpp", block.line)
        projects = lint._ProjectSpans(spans, block.checked.ast.projects)
        assert spans.head() == expected.span and spans.span == checked.ast.span
        assert len(projects) == len(expected.project_spans)
        assert [projects[i] for i in range(len(projects))] == list(expected.project_spans)


def test_a_block_s_head_is_read_as_the_parser_reads_it() -> None:
    """`_read_header` reads a printed block's name, provider, projects and fields as the
    parser does (the usual strings and lists of them without `json.loads`), and gives
    None for a head the printer does not write."""
    from tests.test_lint_stream_findings import planted_text
    from tppolicy.decide.recognize import _read_header, _value

    for text in ['["a"]', '["a", "b-c"]', '["a, b"]', '[""]', '["a\\"b"]', '["a\\\\", "b"]',
                 '[]', '["a" ,"b"]', '["a",  "b"]', '["a", 1]', '["a"', '["]', '[""""]']:
        try:
            expected = json.loads(text)
        except ValueError:
            expected = None
        assert _value(text, list) == expected, text
    providers = load_providers()
    odd = EXAMPLES + ('  - name: "odd \\"name\\" \\\\ here"\n    provider: google\n'
                      '    projects: ["a-b", "c.d", "e_f"]\n'
                      '    email: "o@x.iam.gserviceaccount.com"\n    sub: "77"\n')
    for publishers in (odd, planted_text(40)):
        text = _compiled(publishers)
        for ast in parse_policy(text, "c.tpp").publishers:
            block = "\n".join(text.split("\n")[ast.span.line - 1:ast.span.end_line])
            read = _read_header(block, providers)
            assert read is not None
            name, provider, projects, pending, fields = read
            assert (name, provider, projects, pending) == \
                (ast.name, ast.provider, ast.projects, ast.pending_project)
            defaults = {n: d.default.value for n, d in providers[provider].fields.items()
                        if d.default is not None}
            assert fields == {**defaults, **{b.name: b.value.value for b in ast.bindings}}
            assert list(fields) == list(providers[provider].fields)
    block = ('publisher "x" {\n  provider google\n  projects ["a"]\n\n  fields {\n'
             '    email = "e@x"\n    sub = "1"\n  }\n}')
    assert _read_header(block, providers) is not None
    for old, new in [('    sub = "1"', '    9sub = "1"'), ('    sub = "1"', '    s b = "1"'),
                     ('    sub = "1"', '    sub = '), ('    sub = "1"', '   sub = "1"'),
                     ('    sub = "1"', '    sub = "1"\n    sub = "2"'),
                     ('    sub = "1"', '    sub = 1.5'), ('    sub = "1"', '    nope = "1"'),
                     ('  provider google', '  provider  google')]:
        assert _read_header(block.replace(old, new), providers) is None, new
