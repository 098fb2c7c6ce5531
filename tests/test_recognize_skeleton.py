"""What the parser reads of a compiled policy read fast (`recognize._skeleton`): the
provider blocks at the file's lines, and every comment and line between the publisher
blocks after them, so that the file is refused (read whole) where the parser refuses it."""

from __future__ import annotations

import pytest

from tppolicy.decide import recognize as R
from tppolicy.decide.load import compile_publishers_text
from tppolicy.errors import TppolicyError
from tppolicy.language.parse import parse_policy
from tppolicy.language.printer import format_policy
from tppolicy.language.providers import load_providers

PUBLISHERS = "publishers:\n" + "".join(
    f"  - name: p{i}\n    provider: github\n    projects: [p{i}]\n"
    f"    repository_owner: o\n    repository_name: r{i}\n"
    f'    repository_owner_id: "1"\n    workflow_filename: release.yml\n'
    for i in range(6)) + (
    "  - name: g\n    provider: google\n    projects: [g]\n"
    "    email: g@p.iam.gserviceaccount.com\n")


@pytest.fixture(scope="module")
def compiled() -> str:
    policy = compile_publishers_text(PUBLISHERS, "p.yaml").to_policy_file("p.yaml")
    return "# Compiled.\n\n" + format_policy(policy)


def _between(text: str, line: str, name: str = "p3") -> str:
    """`text` with `line` put before publisher `name`'s block."""
    at = text.index(f'publisher "{name}" {{')
    return text[:at] + line + "\n" + text[at:]


def _parsed_whole(text: str) -> bool:
    try:
        parse_policy(text, "x.tpp")
    except TppolicyError:
        return False
    return True


@pytest.mark.parametrize(("line", "read_fast"), [
    ("# a comment between blocks", True),
    ("  # an indented comment", True),
    ("   ", True),  # a line of spaces
    ("# a control character \x01 in a comment", False),
    ("# a bidirectional control \u202e in a comment", False),
    ("\x0c", False),  # a form feed alone: the parser refuses it
    ("\u2028", False),  # a line separator alone
    ('# an escape "\\ud800" spelled in a comment', None),  # as the parser judges it
])
def test_the_lines_between_blocks_are_judged_as_the_parser_judges_them(
        compiled: str, line: str, read_fast: bool | None) -> None:
    providers = load_providers()
    for text in (_between(compiled, line), compiled + line + "\n",
                 _between(compiled, line, "p0")):
        expected = _parsed_whole(text) if read_fast is None else read_fast
        assert _parsed_whole(text) == expected
        for data in (text, text.encode()):
            reading = R.CompiledReading.of(data, "x.tpp", providers)
            assert (reading is not None) == expected, (line, type(data))


def test_the_provider_blocks_are_at_the_file_s_lines(compiled: str) -> None:
    """A provider block after publisher blocks (not as compile prints, but read so): the
    publishers before it are empty lines, the provider parsed at its own lines."""
    google = compiled.index("provider google {")
    block = compiled[google:compiled.index("\n}\n", google) + 3]
    moved = compiled.replace(block, "")
    at = moved.index('publisher "p2" {')
    text = moved[:at] + block + "\n" + moved[at:]
    regions = R._regions(text)
    assert regions is not None
    skeleton = R._skeleton(text, regions)
    parsed = parse_policy(skeleton, "x.tpp")
    assert [(p.name, p.span.line) for p in parsed.providers] == [
        (kind_line[1], text[:start].count("\n") + 1)
        for kind_line, start in (((None, "github"), text.index("provider github {")),
                                 ((None, "google"), text.index("provider google {")))]
    assert not parsed.publishers
    assert R.CompiledReading.of(text, "x.tpp", load_providers()) is not None
    assert R.CompiledReading.of(text.encode(), "x.tpp", load_providers()) is not None


def test_a_shipped_header_as_printed_parses_back_to_itself() -> None:
    """What `_printed_headers` stands on: each shipped provider's header, printed as
    `compile` prints it, is the tree the parser makes of that text."""
    from tppolicy.language.printer import format_provider

    for provider in load_providers().values():
        if not provider.rules:
            continue
        header = provider.header()
        parsed = parse_policy("# a comment\n\n" + format_provider(header) + "\n", "h.tpp")
        assert parsed.providers == (header,), provider.name
        assert R._header_text(provider) == (header, format_provider(header))


def _headers(data: str | bytes) -> list[object]:
    reading = R.CompiledReading.of(data, "x.tpp", load_providers())
    assert reading is not None
    return [(name, checked.ast) for name, checked in reading.headers.items()]


def test_printed_headers_are_read_as_the_parser_reads_them(compiled: str) -> None:
    """A compiled policy's headers read without the parser are the parser's; a file whose
    headers or lines outside blocks are otherwise (a comment inside a header, a comment
    with a backslash or not ASCII) is parsed, and read alike."""
    providers = load_providers()
    regions = R._regions(compiled)
    assert regions is not None
    skeleton = R._skeleton(compiled, regions)
    fast = R._printed_headers(compiled, regions, skeleton, "x.tpp", providers)
    assert fast is not None
    assert fast == parse_policy(skeleton, "x.tpp")
    expected = _headers(compiled)
    assert len(expected) == 2
    inside = compiled.replace('provider google {\n', 'provider google {\n  # inside\n')
    for text in (inside, "# a path C:\\x\n" + compiled, "# é\n" + compiled,
                 compiled.replace("\n\npublisher", "\n\t\npublisher", 1)):
        regions = R._regions(text)
        assert regions is not None
        assert R._printed_headers(text, regions, R._skeleton(text, regions), "x.tpp",
                                  providers) is None
        assert _headers(text) == expected
        assert _headers(text.encode()) == expected
