"""`tppolicy fmt`'s library: policy files with comments, publishers files, file handling."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tppolicy.decide.publishers import load_publishers_text
from tppolicy.errors import ConfigError, PolicySyntaxError
from tppolicy.language.parse import parse_policy, parse_policy_outline, parse_policy_with_comments
from tppolicy.language.printer import format_policy, format_policy_with_comments
from tppolicy.language.providers import load_providers
from tppolicy.tools import fmt as _fmt
from tppolicy.tools import fmt_canonical as _canonical
from tppolicy.tools.fmt import (
    FormatterError,
    collect_files,
    format_file,
    format_policy_text,
    format_publishers_text,
    is_publishers_text,
    unified_diff,
)
from tppolicy.tools.fmt_canonical import is_canonical_publishers, needs_quotes

from .conftest import EXAMPLES, ROOT

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fmt"
FORMAT_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "format"
POLICY_GOLDEN = sorted(p.name.removesuffix(".in.tpp") for p in FIXTURES.glob("*.in.tpp"))
YAML_GOLDEN = sorted(p.name.removesuffix(".in.yaml") for p in FIXTURES.glob("*.in.yaml"))
SHIPPED = sorted(p.name for p in (ROOT / "policies").glob("*.tpp"))
PROVIDERS = {name: p.ast for name, p in load_providers().items()}


def comment_texts(text: str) -> Counter[str]:
    _, comments = parse_policy_with_comments(text)
    return Counter(c.text for c in comments)


def yaml_comments(text: str) -> Counter[str]:
    """Comment lines of a YAML file with no '#' inside its values (true of the fixtures)."""
    found: Counter[str] = Counter()
    for line in text.split("\n"):
        if "#" in line:
            found["#" + line.split("#", 1)[1].rstrip()] += 1
    return found


def publishers(text: str) -> list[tuple[Any, ...]]:
    return [(e.index, e.name, e.provider, e.projects, e.pending_project, dict(e.fields))
            for e in load_publishers_text(text, "<test>", PROVIDERS)]


# ------------------------------------------------------------------ parsing comments
def test_parse_with_comments_gives_the_same_tree_and_the_comments() -> None:
    text = ('# head\nprovider p {  # opening\n  issuer "x#y"   # after  \n\n'
            '  # alone\n}\n')
    policy, comments = parse_policy_with_comments(text, "f.tpp")
    assert policy == parse_policy(text, "f.tpp")
    assert [(c.text, c.span.line, c.span.column, c.own_line) for c in comments] == [
        ("# head", 1, 1, True), ("# opening", 2, 15, False), ("# after", 3, 18, False),
        ("# alone", 5, 3, True)]
    assert str(comments[1].span) == "f.tpp:2:15"
    assert comments[3].blank_before and not comments[3].blank_after
    assert not comments[0].blank_before


def test_parse_with_comments_reports_syntax_errors_like_parse_policy() -> None:
    text = "provider p {\n  issuer 42\n}\n"
    with pytest.raises(PolicySyntaxError) as expected:
        parse_policy(text, "f.tpp")
    with pytest.raises(PolicySyntaxError) as found:
        parse_policy_with_comments(text, "f.tpp")
    assert found.value.render() == expected.value.render()
    assert found.value.diagnostics[0].span is not None
    assert str(found.value.diagnostics[0].span) == "f.tpp:2:10"


def test_outline_gives_every_item_as_written() -> None:
    text = 'provider p {\n  claims { required a: string }\n  rule r { require true }\n}\n'
    _, outline, _ = parse_policy_outline(text)
    (provider,) = outline
    assert provider.kind == "provider"
    assert (provider.span.line, provider.span.end_line) == (1, 4)
    assert [c.kind for c in provider.children] == ["claims", "block_rule"]
    assert [c.kind for c in provider.children[0].children] == ["claim_decl"]
    assert [c.kind for c in provider.children[1].children] == ["require"]


# -------------------------------------------------------------- policy golden files
@pytest.mark.parametrize("name", POLICY_GOLDEN)
def test_policy_golden(name: str) -> None:
    source = (FIXTURES / f"{name}.in.tpp").read_text("utf-8")
    expected = (FIXTURES / f"{name}.out.tpp").read_text("utf-8")
    assert format_policy_text(source) == expected
    assert comment_texts(expected) == comment_texts(source)
    assert parse_policy(expected) == parse_policy(source)


@pytest.mark.parametrize("name", POLICY_GOLDEN)
def test_policy_golden_output_is_a_fixed_point(name: str) -> None:
    expected = (FIXTURES / f"{name}.out.tpp").read_text("utf-8")
    assert format_policy_text(expected) == expected


@pytest.mark.parametrize("path", sorted(FORMAT_FIXTURES.glob("*.tpp")), ids=lambda p: p.name)
def test_without_comments_it_is_format_policy(path: Path) -> None:
    text = path.read_text("utf-8")
    policy, outline, comments = parse_policy_outline(text)
    if comments:
        comments = ()
    assert format_policy_with_comments(policy, outline, comments) == format_policy(policy)


def test_format_policy_still_drops_comments() -> None:
    text = "# a comment\nprovider p {}  # another\n"
    assert format_policy(parse_policy(text)) == "provider p {}\n"
    assert format_policy_text(text) == text


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_policies_keep_every_comment(name: str) -> None:
    text = (ROOT / "policies" / name).read_text("utf-8")
    once = format_policy_text(text, name)
    assert comment_texts(once) == comment_texts(text)
    assert sum(comment_texts(text).values()) > 0
    assert parse_policy(once) == parse_policy(text)
    assert format_policy_text(once, name) == once


def test_comment_only_files() -> None:
    assert format_policy_text("") == ""
    assert format_policy_text("# one\n\n\n# two\n") == "# one\n\n# two\n"


def test_crowded_lines_keep_every_comment() -> None:
    # Several comments compete for one line: the last stays, the others go above.
    text = ('provider p {\n  custom_issuers true  # a\n  custom_issuers true  # b\n'
            '  rule r: true  # c\n}\n')
    assert format_policy_text(text) == (
        "provider p {\n  # a\n  custom_issuers true  # b\n\n  rule r: true  # c\n}\n")


def test_comments_of_an_empty_block_stay_in_it() -> None:
    text = "provider p {\n  claims {\n    # nothing yet\n  }\n}\n"
    assert format_policy_text(text) == "provider p {\n  # nothing yet\n}\n"
    assert format_policy_text("publisher {  # head\n}\n") == "publisher {  # head\n}\n"


def test_a_result_that_would_not_parse_back_alike_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fmt, "format_policy_with_comments",
                        lambda *args: "provider other {}\n")
    with pytest.raises(FormatterError, match="different policy"):
        format_policy_text("provider p {}\n")
    monkeypatch.setattr(_fmt, "format_policy_with_comments", lambda *args: "provider p {}\n")
    with pytest.raises(FormatterError, match="comment"):
        format_policy_text("provider p {}  # gone\n")


# ------------------------------------------------------------------ publishers files
@pytest.mark.parametrize("name", YAML_GOLDEN)
def test_publishers_golden(name: str) -> None:
    source = (FIXTURES / f"{name}.in.yaml").read_text("utf-8")
    expected = (FIXTURES / f"{name}.out.yaml").read_text("utf-8")
    assert format_publishers_text(source, "in.yaml", PROVIDERS) == expected
    assert format_publishers_text(expected, "out.yaml", PROVIDERS) == expected
    assert yaml_comments(expected) == yaml_comments(source)


def test_publishers_golden_orders_keys_and_quotes() -> None:
    text = (FIXTURES / "publishers.out.yaml").read_text("utf-8")
    lines = [line.strip() for line in text.split("\n")]
    github = lines.index("- name: sampleproject-github")
    assert lines[github + 1:github + 3] == [
        "provider: github  # the provider", "projects: [sampleproject, sampleproject-extras]"]
    assert 'repository_owner_id: "65"  # a string, so it stays quoted' in lines
    assert '- name: "yes"' in lines
    assert 'projects: [sampleproject, "1.0"]' in lines
    assert 'environment: ""' in lines
    assert lines[lines.index('environment: ""') + 1].startswith("note:")


def test_example_publishers_file_is_formatted() -> None:
    text = (EXAMPLES / "publishers.yaml").read_text("utf-8")
    assert format_publishers_text(text, "publishers.yaml", PROVIDERS) == text


# The fast path: a file already canonical is recognised line by line, not round-tripped.
CANONICAL = "publishers:\n  - name: a\n    provider: google\n    projects: [p]\n    email: a@b.c\n"


def test_fast_check_recognises_canonical_files() -> None:
    for text in [(EXAMPLES / "publishers.yaml").read_text("utf-8"),
                 (FIXTURES / "publishers.out.yaml").read_text("utf-8"),
                 CANONICAL, "# head\n" + CANONICAL + "\n# tail\n    # indented tail\n",
                 "# head\n\n  # more\n\n" + CANONICAL,
                 CANONICAL.replace("publishers:\n", "publishers:\n  # above\n\n"),
                 # the round trip keeps the lines above the first entry as they are
                 CANONICAL.replace("publishers:\n", "publishers:\n# at column 0\n"),
                 CANONICAL.replace("publishers:\n", "publishers:\n      # at column 6\n"),
                 CANONICAL.replace("publishers:", '"publishers":'),
                 CANONICAL.replace("publishers:", "'publishers':"),
                 CANONICAL.replace("[p]", '[p, "1.0"]  # two').replace("a@b.c", '"65"'),
                 CANONICAL.replace("\n    email", "\n    # above\n\n    email")]:
        assert is_canonical_publishers(text, PROVIDERS), text
        assert _fmt._format_publishers(text, "p.yaml", PROVIDERS, fast=False)[0] == text


@pytest.mark.parametrize("change", [
    ("[p]", "[p,q]"), ("[p]", "[ p ]"), ("[p]", "[]"), ("[p]", "['p']"), ("[p]", '["p"]'),
    ("a@b.c", "'a@b.c'"), ("a@b.c", '"a@b.c"'), ("a@b.c", "65"), ("a@b.c", "yes"),
    ("a@b.c", "a@b.c # one blank"), ("a@b.c", "a@b.c   # three"), ("a@b.c", '"a\\"b"'),
    ("a@b.c", "&x a@b.c"), ("a@b.c", "!!str a@b.c"), ("a@b.c", "|\n      a"),
    ("a@b.c", "{a: b}"), ("a@b.c", "a@b.c\n      continued"), ("a@b.c", "\"\u00e9\""),
    ("    provider: google\n", "    provider: google\n" * 2),
    ("  - name: a\n    provider: google\n", "  - provider: google\n    name: a\n"),
    ("    email", "      # deeper\n    email"), ("    email", "\temail"),
    ("publishers:\n", "---\npublishers:\n"),
    ("publishers:\n", "\npublishers:\n"), ("publishers:\n", "\n# head\npublishers:\n"),
    ("publishers:\n", "other: 1\npublishers:\n"), ("email: a@b.c\n", "email: a@b.c"),
    ("email: a@b.c\n", "email: a@b.c \n"), ("email: a@b.c\n", "email: a@b.c\r\n"),
    ("  - name", "  -  name"), ("  - name", "- name"), ("email", "null"),
])
def test_fast_check_sends_anything_else_to_the_round_trip(change: tuple[str, str]) -> None:
    text = CANONICAL.replace(*change)
    assert text != CANONICAL
    assert not is_canonical_publishers(text, PROVIDERS)


def test_fast_paths_keep_the_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from tppolicy.readers import yaml as yaml_reader

    monkeypatch.setattr(yaml_reader, "MAX_CHARS", len(CANONICAL) - 1)
    for text in (CANONICAL, CANONICAL.replace("[p]", "['p']")):
        with pytest.raises(ConfigError, match="too large"):
            format_publishers_text(text, "p.yaml", PROVIDERS)


def test_fast_check_follows_each_providers_field_order() -> None:
    swapped = CANONICAL.replace("    projects: [p]\n    email: a@b.c\n",
                                "    projects: [p]\n    sub: x\n    email: a@b.c\n")
    assert not is_canonical_publishers(swapped, PROVIDERS)
    unknown = swapped.replace("provider: google", "provider: acme")
    assert is_canonical_publishers(unknown, PROVIDERS)  # its keys keep their order
    assert _fmt._format_publishers(unknown, "p.yaml", PROVIDERS, fast=False)[0] == unknown


def test_fast_path_counts_the_same_problems() -> None:
    text = CANONICAL.replace("a@b.c", "not an email").replace("[p]", "[p!]")
    assert is_canonical_publishers(text, PROVIDERS)
    fast = _fmt._format_publishers(text, "p.yaml", PROVIDERS)
    assert fast == _fmt._format_publishers(text, "p.yaml", PROVIDERS, fast=False)
    assert fast == (text, 2)


@pytest.mark.parametrize("problem", [
    "", "a name twice", "a project twice", "an unknown provider", "a field missing",
    "a field not matching", "an unregistered issuer", "an empty name"])
def test_fast_paths_count_problems_from_the_entries_read(
        problem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast paths count a file's problems from the entries they read (none when each
    is plainly valid, without reading the file again; else by loading the file): the same
    count as the round trip's."""
    second = ("  - name: b\n    provider: github\n    projects: [q]\n"
              "    repository_owner: o\n    repository_name: r\n"
              "    repository_owner_id: \"1\"\n    workflow_filename: w.yml\n")
    text = CANONICAL + second
    enterprise = (text.replace("provider: github\n", "provider: github_enterprise\n")
                  + "    issuer_url: https://token.actions.githubusercontent.com/acme\n")
    text = {
        "": text, "a name twice": text.replace("name: b", "name: a"),
        "a project twice": text.replace("[q]", "[q, Q]"),
        "an unknown provider": text.replace("provider: google", "provider: acme"),
        "a field missing": text.replace("    email: a@b.c\n", ""),
        "a field not matching": text.replace("a@b.c", "not-an-email"),
        "an unregistered issuer": enterprise,
        "an empty name": text.replace("name: b", 'name: ""'),
    }[problem]
    exported = yaml.safe_dump(yaml.safe_load(text))
    for shape in (text, exported):
        slow = _fmt._format_publishers(shape, "p.yaml", PROVIDERS, fast=False)
        with monkeypatch.context() as patch:
            if not problem:  # (read again only when some entry is not plainly valid)
                patch.setattr(_fmt, "_problem_count", None)
            assert _fmt._format_publishers(shape, "p.yaml", PROVIDERS) == slow
        assert (slow[1] == 0) == (problem == "")
    assert is_canonical_publishers(text, PROVIDERS)
    assert _canonical.format_simple_publishers(exported, PROVIDERS) is not None


def test_simple_files_are_written_directly_as_the_round_trip_writes_them() -> None:
    exported = ("publishers:\n- email: a@b.c\n  name: 'a'\n  projects:\n  - p\n  - '1.0'\n"
                "  provider: google\n# between\n- name: b\n  provider: gitlab   # eol  \n"
                "  # above the namespace\n  namespace: \"g\"\n  project: p\n"
                "  projects: [ q , 'yes' ]\n  workflow_filepath: ci/release.yml\n# end\n")
    fixture = (FIXTURES / "publishers.in.yaml").read_text("utf-8")
    for text in (exported, fixture):
        written = _canonical.format_simple_publishers(text, PROVIDERS)
        assert written is not None
        assert written == _fmt._format_publishers(text, "p.yaml", PROVIDERS, fast=False)[0]
        assert is_canonical_publishers(written, PROVIDERS)
    assert _canonical.format_simple_publishers(exported, PROVIDERS) == (
        "publishers:\n  - name: a\n    provider: google\n    projects: [p, \"1.0\"]\n"
        "    email: a@b.c\n  # between\n  - name: b\n    provider: gitlab  # eol\n"
        "    projects: [q, \"yes\"]\n    # above the namespace\n    namespace: g\n"
        "    project: p\n    workflow_filepath: ci/release.yml\n# end\n")


@pytest.mark.parametrize("text", [
    # after a flow list, ruamel.yaml gives the comment to the next key: no reordering
    "publishers:\n  - projects: [a]\n    # c\n    name: n\n    provider: gitlab\n",
    "publishers:\n  - provider: gitlab\n    name: n  #\n",  # an empty comment stays put
    "publishers:\n  - provider: gitlab\n    name: 65\n",  # plain, not a string: kept
    "publishers:\n  - provider: gitlab\n    name: \"a\\tb\"\n",  # an escape
    "publishers:\n  - provider: gitlab\n    name: n\n      continued\n",
])
def test_other_files_go_to_the_round_trip(text: str) -> None:
    assert _canonical.format_simple_publishers(text, PROVIDERS) is None


SHAPES = {  # shapes of publishers files that exporters and reviewers write
    "comments at any column": "publishers:\n# c0\n  - provider: gitlab\n    name: n\n"
                              "   # at column 3\n  - name: m\n        # at 8\n"
                              "    provider: gitlab\n# end\n",
    "yaml.dump(indent=4)": "publishers:\n-   environment: pypi\n    name: a\n    projects:\n"
                           "    - p\n    provider: github\n-   name: b\n    provider: google\n",
    "quoted keys": '"publishers":\n  - "name": "a"\n    "provider": "google"\n'
                   '    "projects": ["p", "q"]\n    \'email\': "a@b.c"\n',
    "blanks at line ends": "# top \npublishers:  \n  # first  \n  - provider: gitlab  \n"
                           "    name: n \n    projects: [p]   # c\n  \n  # c \n"
                           "  - name: m\n    provider: gitlab\n  # end \n",
    "document markers": "# above\n---\npublishers:\n  - provider: gitlab\n"
                        "    projects: [a, b]\n    name: n\n  # after\n# end\n...\n# below\n",
    "block list with comments": "publishers:\n  - provider: gitlab\n    projects:\n"
                                "      - a  # c\n      - \"1.0\"\n    # above\n"
                                "    namespace: g  # eol\n  # between\n  - name: b\n"
                                "    provider: gitlab\n    projects:\n      - b\n"
                                "      - c  # last\n# end\n",
    "dashes at column 4": "publishers:\n    # first\n    - name: a\n      provider: google\n"
                          "    # second\n    - provider: google\n      name: b\n",
    "flow mapping entries": "# top\n\"publishers\":\n  # first\n"
                            "  - {provider: gitlab, name: 'n', projects: [a, \"1.0\", 'yes'],"
                            " namespace: \"g\", id: \"65\"}\n"
                            "  - {name: m, provider: google, projects: [\"p\"], email: a@b.c}\n",
    "JSON": '{\n  "publishers": [\n    {\n      "provider": "gitlab",\n      "name": "n",\n'
            '      "projects": ["a", "1.0"],\n      "note": "x",\n      "id": "65"\n    },\n'
            '    {"name": "m", "provider": "google", "email": "a@b.c"}\n  ]\n}\n',
    "JSON on one line": '{"publishers":[{"name":"a","provider":"gitlab","project":"a,b"}]}\n',
    "flow mapping entries in a document": "---\npublishers:\n  - {project: \"x:y\", name: a,"
                                          " provider: gitlab, note: \"a,b\"}\n...\n",
    # one flow mapping, as fmt writes a JSON file (lines broken after a ',' or an opening
    # bracket, an entry's '{' that starts a line at column 3)
    "fmt's output of JSON": '{"publishers": [{provider: gitlab, "note": x, name: "a,b",\n'
                            '"id": "65", projects: [\np, "yes"]},\n   {name: m, provider:'
                            ' google, projects: ["p"], email: a@b.c}]}\n',
    "one flow mapping, its key plain": "{publishers: [{name: a, provider: gitlab}]}\n",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_more_shapes_are_written_directly_as_the_round_trip_writes_them(name: str) -> None:
    text = SHAPES[name]
    written = _canonical.format_simple_publishers(text, PROVIDERS)
    assert written is not None
    assert written == _fmt._format_publishers(text, "p.yaml", PROVIDERS, fast=False)[0]
    assert _fmt._format_publishers(written, "p.yaml", PROVIDERS, fast=False)[0] == written


def test_comments_after_the_last_entry_before_a_document_end_are_kept_as_they_are() -> None:
    """They were kept at their column when the last entry's keys had moved, and indented
    by the next run, which read them after another key: formatting was not idempotent."""
    text = ("publishers:\n  - alpha: a\n    provider: acme\n    name: n\n"
            "    projects: [x, y]\n  # a: b\n# c\n...\n")
    once = _fmt._format_publishers(text, "p.yaml", PROVIDERS, fast=False)[0]
    assert once.endswith("  # a: b\n# c\n...\n")
    assert _fmt._format_publishers(once, "p.yaml", PROVIDERS, fast=False)[0] == once


@pytest.mark.parametrize("text", [
    "\n# note  \npublishers:\n  - name: |\n    provider: acme\n",
    "# top  \npublishers:\n  - name: n  \n    provider: acme\n  \n  # c  \n"
    "  - name: m\n    provider: acme\n    note: >\n      folded\n  # after  \n",
])
def test_blanks_after_comments_are_dropped_at_once(text: str) -> None:
    """The round trip kept the blanks after some comments (above `publishers:`, after the
    last entry) and dropped others, and the next run, which read the file otherwise (an
    empty block scalar had become ""), dropped them: formatting was not idempotent."""
    once = _fmt._format_publishers(text, "p.yaml", PROVIDERS, fast=False)[0]
    assert " \n" not in once
    assert _fmt._format_publishers(once, "p.yaml", PROVIDERS, fast=False)[0] == once


@pytest.mark.parametrize("text", [
    "publishers:\n  - name: n\n    note: &a !!binary  # c\n    # below\n  - name: m\n",
    "publishers:\n  - note: &a !!binary\n    # below\n    name: n\n    provider: acme\n",
    "publishers:\n  - name: n\n    note: !!binary  # c\n  - name: m\n",
])
def test_an_empty_binary_value_with_a_comment_is_formatted_for_good_or_refused(
        text: str) -> None:
    """ruamel.yaml wrote it `!!binary |` with the comment at one column, and the next run
    at another: formatting was not idempotent. Now a file with anchors or tags is formatted
    again, and refused at its tag (exit 3) when that changes it again."""
    try:
        once = _fmt._format_publishers(text, "p.yaml", PROVIDERS)[0]
    except ConfigError as exc:
        assert "found the explicit YAML tag 'tag:yaml.org,2002:binary'" in exc.render()
        return
    assert _fmt._format_publishers(once, "p.yaml", PROVIDERS)[0] == once


def test_block_list_items_at_different_columns_are_invalid_yaml_not_a_list() -> None:
    """The direct writer read them as one list (and wrote `[a, b]`): an invalid file came
    out valid."""
    text = "publishers:\n  - name: n\n    provider: google\n    projects:\n        - a\n      - b\n"
    assert _canonical.format_simple_publishers(text, PROVIDERS) is None
    with pytest.raises(ConfigError, match="invalid YAML"):
        _fmt._format_publishers(text, "p.yaml", PROVIDERS)


def test_lines_of_blanks_in_a_block_scalar_are_kept() -> None:
    text = ("publishers:\n  - name: n\n    provider: acme\n    note: |+\n      a\n"
            "        \n      \n    \n  # c  \n")
    once = _fmt._format_publishers(text, "p.yaml", PROVIDERS, fast=False)[0]
    assert yaml.safe_load(once) == yaml.safe_load(text)
    assert "\n  # c\n" in once


@pytest.mark.parametrize("text", [
    # a quoted key the round trip does not place (not the provider's) keeps its quotes
    "publishers:\n  - 'other': x\n    provider: gitlab\n    name: n\n",
    # flow mapping entries with anything unusual: comments, blank lines, anchors, a plain
    # value YAML reads as a number, an entry on two lines, a quoted key, an empty list,
    # blanks at line ends, block and flow entries mixed
    "publishers:\n  - {name: a, provider: gitlab}  # c\n",
    "publishers:\n  - {name: a, provider: gitlab}\n  # c\n  - {name: b, provider: gitlab}\n",
    "publishers:\n  - {name: a, provider: gitlab}\n\n",
    "publishers:\n  - {name: &a a, provider: gitlab}\n  - {name: *a, provider: gitlab}\n",
    "publishers:\n  - {name: a, provider: gitlab, project: 65}\n",
    "publishers:\n  - {name: a,\n     provider: gitlab}\n",
    "publishers:\n  - {\"name\": a, provider: gitlab}\n",
    "publishers:\n  - {name: a, provider: gitlab, projects: []}\n",
    "publishers:\n  - {name: a, provider: gitlab} \n",
    "publishers:\n  - {name: a, provider: gitlab}\n  - name: b\n    provider: gitlab\n",
    "publishers:\n  - {name: a,provider: gitlab}\n",
    # JSON that is not a list of entries of strings, or with an escape, or a key twice
    '{"publishers": [{"name": "a", "provider": "gitlab", "id": 65}]}\n',
    '{"publishers": [{"name": "a b", "provider": "gitlab"}]}\n',
    '{"publishers": [{"name": "\\u00e9", "provider": "gitlab"}]}\n',
    '{"publishers": [{"name": "a", "name": "b", "provider": "gitlab"}]}\n',
    '{"publishers": [{"name": "a", "provider": "gitlab"}], "other": 1}\n',
    '{"publishers": [{"name": "a", "provider": "gitlab", "projects": []}]}\n',
    '{"publishers": []}\n',
    '{"publishers": [{"name": "a", "provider": "gitlab"}]}\n\n',
    # one flow mapping (as fmt writes JSON) with a line broken elsewhere than after a ','
    # or an opening bracket (in a plain string: YAML reads "a b"), a single-quoted string
    # (which may run over a line break), a blank in a string, a comment, blanks doubled
    '{"publishers": [{name: a\nb, provider: gitlab}]}\n',
    '{"publishers": [{name: a,\nprovider: gitlab, project: \'p,\nq\'}]}\n',
    '{"publishers": [{name: a, provider: gitlab, project: "p q"}]}\n',
    '{"publishers": [{name: a, provider: gitlab}]}  # c\n',
    '{"publishers": [{name: a,  provider: gitlab}]}\n',
    '{"publishers": [{name: a, provider: gitlab, project: "p,\nq"}]}\n',
])
def test_more_shapes_that_go_to_the_round_trip(text: str) -> None:
    assert _canonical.format_simple_publishers(text, PROVIDERS) is None


@pytest.mark.parametrize("name", YAML_GOLDEN)
def test_publishers_load_alike(name: str) -> None:
    source = (FIXTURES / f"{name}.in.yaml").read_text("utf-8")
    formatted = format_publishers_text(source, "in.yaml", PROVIDERS)
    with pytest.raises(ConfigError) as before:  # the 'note' key is not a publisher's
        publishers(source)
    with pytest.raises(ConfigError) as after:
        publishers(formatted)
    assert [d.message for d in before.value.diagnostics] == [
        d.message for d in after.value.diagnostics]
    valid = "\n".join(line for line in source.split("\n") if "note:" not in line)
    assert publishers(format_publishers_text(valid, "in.yaml", PROVIDERS)) == publishers(valid)


@pytest.mark.parametrize(("value", "quoted"), [
    ("65", True), ("yes", True), ("No", True), ("on", True), ("1.0", True), ("1e3", True),
    ("0x1F", True), ("1:20", True), ("", True), ("null", True), ("~", True),
    ("2024-01-01", True), ("a: b", True), ("x #y", True), ("-", True), ("* star", True),
    ("release.yml", False), ("octo-org", False), ("a b", False), ("ci/release.yml", False),
    ("publisher@example.com", False), ("x#y", False),
])
def test_which_strings_need_quotes(value: str, quoted: bool) -> None:
    assert needs_quotes(value, in_flow=False) is quoted


def test_the_resolver_tables_answer_as_the_resolvers() -> None:
    import itertools

    import yaml
    from ruamel.yaml.nodes import ScalarNode

    def resolvers(value: str) -> bool:
        return bool(
            _canonical._PYYAML_RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
            == "tag:yaml.org,2002:str"
            and _canonical._RUAMEL_RESOLVER.resolve(ScalarNode, value, (True, False))
            == "tag:yaml.org,2002:str")

    pieces = ["", "0", "1", "9", ".", "-", "+", "_", ":", "e", "x", "o", "b", "n", "y", "t",
              "f", "~", "<", "=", "!", "&", "*", "inf", "nan", "null", "true", "Yes", "0x",
              "0o", "0b", "1e3", "2026-01-01", " ", "T", "Z"]
    for a, b, c in itertools.product(pieces, repeat=3):
        value = a + b + c
        assert _canonical._resolves_to_str(value) is resolvers(value), value


def test_flow_lists_quote_commas() -> None:
    assert needs_quotes("a,b", in_flow=True)
    assert not needs_quotes("a,b", in_flow=False)


def test_question_marks_and_colons_are_judged_as_pyyaml_reads_them() -> None:
    # Was an AttributeError (a lone emitter has no YAML version) for any string with '?'.
    # In a flow list pyyaml reads '?' as a key and ':x' as a value: they must be quoted.
    for value in ("?x", "a?b", ":x"):
        assert needs_quotes(value, in_flow=True)
        assert not needs_quotes(value, in_flow=False)
    text = "publishers:\n  - name: '?x'\n    provider: acme\n    projects: ['a?b', 'c']\n"
    assert format_publishers_text(text, "p.yaml", PROVIDERS) == (
        'publishers:\n  - name: ?x\n    provider: acme\n    projects: ["a?b", c]\n')


def test_a_plain_string_that_cannot_stay_plain_is_double_quoted_at_once() -> None:
    # ruamel.yaml would quote '---x' (or 'a,b' moved into a flow list) its own way, and
    # the next run would change its quotes again: formatting was not idempotent.
    text = ("publishers:\n  - name: ---x\n    provider: acme\n    projects:\n"
            "      - a,b\n")
    once = format_publishers_text(text, "p.yaml", PROVIDERS)
    assert once == ('publishers:\n  - name: "---x"\n    provider: acme\n'
                    '    projects: ["a,b"]\n')
    assert format_publishers_text(once, "p.yaml", PROVIDERS) == once


def test_a_null_keeps_its_word() -> None:
    # ruamel.yaml writes every null as nothing; the loader words `~` ("found null") and
    # nothing ("found nothing") differently, so the formatter refused such files (exit 4).
    text = ("publishers:\n  - provider: github\n    name: ~\n    environment:\n"
            "    projects: [NULL, null, a]\n")
    assert format_publishers_text(text, "p.yaml", PROVIDERS) == (
        "publishers:\n  - name: ~\n    provider: github\n    projects: [NULL, null, a]\n"
        "    environment:\n")


def test_comments_after_a_flow_list_that_ends_an_entry_are_indented_at_once() -> None:
    # ruamel.yaml keeps them at their column above the next entry; once the keys moved,
    # the next run indented them by two: formatting twice changed the text again.
    text = ("publishers:\n  - provider: acme\n    name: a\n    projects: [b]\n    # c\n\n"
            "  - name: b\n    provider: acme\n    projects: [b]\n")
    once = format_publishers_text(text, "p.yaml", PROVIDERS)
    assert once == text.replace("  - provider: acme\n    name: a\n",
                                "  - name: a\n    provider: acme\n").replace("    # c", "  # c")
    assert format_publishers_text(once, "p.yaml", PROVIDERS) == once


@pytest.mark.parametrize("text", [
    "publishers:\n  - provider: github\n    projects:\n      - &y\n      - a\n",
    "publishers:\n  - provider: acme\n    name: a\n    projects: [&y]\n",
    "publishers:\n  - provider: acme\n    name: a\n    projects: [&y , b]\n",
    "publishers: [&y]\n",
])
def test_an_anchored_empty_list_item_is_refused_as_check_refuses_it(text: str) -> None:
    # A flow list cannot hold an empty value: written `null`, its error ("found nothing")
    # would change, and the formatter called that its own bug (exit 4). No list item may be
    # empty, so the file is invalid: it is refused with the errors `check` gives (exit 3).
    with pytest.raises(ConfigError) as loaded:
        load_publishers_text(text, "p.yaml", PROVIDERS)
    with pytest.raises(ConfigError) as caught:
        format_publishers_text(text, "p.yaml", PROVIDERS)
    assert caught.value.render() == loaded.value.render()
    assert any("found nothing" in d.message for d in caught.value.diagnostics)


@pytest.mark.parametrize(("text", "formatted"), [
    # the comments after an empty block scalar were written at column 1, and moved again
    # by the next run
    ("publishers:\n  - name: a\n    note: >-\n    provider: acme\n    projects: [x]\n"
     "    # c\n",
     'publishers:\n  - name: a\n    provider: acme\n    projects: [x]\n    note: ""\n'
     "    # c\n"),
    ("publishers:\n  - name: a\n    provider: acme\n    note: >\n    # c\n  # d\n"
     "  - name: b\n    provider: acme\n",
     'publishers:\n  - name: a\n    provider: acme\n    note: ""\n  # c\n  # d\n'
     "  - name: b\n    provider: acme\n"),
    # the comment on an empty block scalar's header was lost unnoticed
    ("publishers:\n  - note: >  # e\n    projects: [x]\n    name: a\n    provider: acme\n",
     'publishers:\n  - name: a\n    provider: acme\n    projects: [x]\n    note: ""  # e\n'),
])
def test_an_empty_block_scalar_is_an_empty_string_and_formatting_is_idempotent(
        text: str, formatted: str) -> None:
    once = format_publishers_text(text, "p.yaml", PROVIDERS)
    assert once == formatted
    assert format_publishers_text(once, "p.yaml", PROVIDERS) == once


@pytest.mark.parametrize("text", [
    # moved to the end, `|+` kept the blank lines below it: its text changed (exit 4)
    "publishers:\n  - name: a\n      # c\n    projects: [x]\n    note: |+\n\n"
    "    provider: acme\n\n\n",
    # moved, its text took in the comment below the entry's next key (exit 4)
    "publishers:\n  - projects: [x]\n    provider: acme\n    note: >\n      # c\n"
    "    name: a\n      # c\n",
    # moved, the comment after it went to column 1, and the next run moved it again
    "publishers:\n  - note: >\n      # c\n    name: a\n    provider: acme\n"
    "    projects: [x]\n    # c\n  - name: b\n    provider: acme\n",
])
def test_an_entry_with_a_block_scalar_keeps_its_order(text: str) -> None:
    def first_keys(text: str) -> list[str]:
        entry = yaml.safe_load(text)["publishers"][0]
        assert isinstance(entry, dict)
        return list(entry)

    once = format_publishers_text(text, "p.yaml", PROVIDERS)
    assert first_keys(once) == first_keys(text)
    assert yaml.safe_load(once) == yaml.safe_load(text)
    assert format_publishers_text(once, "p.yaml", PROVIDERS) == once


def test_a_block_scalar_header_comment_counts_as_a_comment() -> None:
    text = "publishers:\n  - name: a\n    note: >  # e\n      text\n"
    assert _fmt._all_comments(_fmt._load_rt(text, "p.yaml")) == Counter(["# e"])


def test_plain_values_keep_their_text() -> None:
    # `yes` is the boolean true for pyyaml (YAML 1.1): quoting it would change the data.
    text = "publishers:\n  - environment: yes\n    provider: github\n"
    assert format_publishers_text(text, "p.yaml", PROVIDERS) == (
        "publishers:\n  - provider: github\n    environment: yes\n")


def test_entry_with_aliases_keeps_its_order() -> None:
    text = ("publishers:\n  - provider: google\n    email: &e a@b.example\n    name: 'n'\n"
            "  - provider: google\n    email: *e\n    name: m\n")
    assert format_publishers_text(text, "p.yaml", PROVIDERS) == text.replace("'n'", "n")


def test_block_list_with_comments_inside_is_kept() -> None:
    text = ("publishers:\n  - provider: google\n    projects:\n      - a  # on a\n      - b\n"
            "    name: n\n")
    assert format_publishers_text(text, "p.yaml", PROVIDERS) == text


def test_other_indentation_is_normalized_and_comments_follow_their_keys() -> None:
    text = ("publishers:\n- provider: google  # g\n  # about the email\n  email: a@b.example\n"
            "  name: n\n# end\n")
    assert format_publishers_text(text, "p.yaml", PROVIDERS) == (
        "publishers:\n  - name: n\n    provider: google  # g\n    # about the email\n"
        "    email: a@b.example\n# end\n")


@pytest.mark.parametrize(("text", "message", "where"), [
    ("x: 1\n", "not a publishers file", "p.yaml:1:1"),
    ("publishers: 3\n", "not a publishers file", "p.yaml:1:1"),
    ("publishers:\n  - name: [a\n", "invalid YAML", "p.yaml:3:1"),
    ("publishers:\n  - name: a\n    name: b\n", "invalid YAML", "p.yaml:3:5"),
])
def test_publishers_errors(text: str, message: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        format_publishers_text(text, "p.yaml", PROVIDERS)
    diagnostic = caught.value.diagnostics[0]
    assert message in diagnostic.message
    assert str(diagnostic.span) == where


def test_a_yaml_result_that_would_not_load_alike_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fmt, "_canonical_string", lambda value, in_flow: "changed")
    with pytest.raises(FormatterError, match="different data"):  # the round trip's check
        _fmt._format_publishers("publishers:\n  - name: 'x'\n", "p.yaml", PROVIDERS,
                                fast=False)


def test_a_direct_writing_that_would_not_read_alike_is_not_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = "publishers:\n  - provider: google  # g\n    name: 'x'\n"
    expected = "publishers:\n  - name: x\n    provider: google  # g\n"
    assert _canonical.format_simple_publishers(text, PROVIDERS) == expected
    for wrong in (expected.replace(": x", ": y"), expected.replace("  # g", ""),
                  expected.replace("x\n", "x\n    sub: z\n"), "publishers: []\n"):
        monkeypatch.setattr(_canonical, "write_simple_publishers", lambda *_, w=wrong: w)
        assert _canonical.format_simple_publishers(text, PROVIDERS) is None
        assert format_publishers_text(text, "p.yaml", PROVIDERS) == expected  # round trip


def test_is_publishers_text() -> None:
    assert _canonical.is_simple_publishers(CANONICAL)  # told line by line
    assert is_publishers_text(CANONICAL)
    assert not _canonical.is_simple_publishers("publishers: []\n")  # told by loading it
    assert is_publishers_text("publishers: []\n")
    assert not is_publishers_text("publishers: {}\n")
    assert not is_publishers_text("[a\n")


# ------------------------------------------------------------------------ files
def test_collect_files(tmp_path: Path) -> None:
    (tmp_path / "a.tpp").write_text("provider a {}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "publishers.yaml").write_text("publishers: []\n")
    (tmp_path / "sub" / "other.yml").write_text("jobs: {}\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "b.tpp").write_text("provider b {}\n")
    named = tmp_path / "notes.txt"
    assert collect_files([tmp_path, named, tmp_path / "a.tpp"]) == [
        tmp_path / "a.tpp", tmp_path / "sub" / "publishers.yaml", named]


def test_format_file_results(tmp_path: Path) -> None:
    good = tmp_path / "good.tpp"
    good.write_text("provider p {}\n")
    messy = tmp_path / "messy.tpp"
    messy.write_text("provider p {  issuer 'x' }\n".replace("'", '"'))
    crlf = tmp_path / "crlf.tpp"
    crlf.write_bytes(b"provider p {}\r\n")
    bad = tmp_path / "bad.tpp"
    bad.write_text("provider {\n")
    assert not format_file(good, PROVIDERS).changed
    result = format_file(messy, PROVIDERS)
    assert result.changed and result.formatted == 'provider p {\n  issuer "x"\n}\n'
    assert format_file(crlf, PROVIDERS).changed
    failed = format_file(bad, PROVIDERS)
    assert failed.error is not None and failed.formatted is None
    assert str(failed.error.diagnostics[0].span) == f"{bad}:1:10"
    assert format_file(tmp_path / "missing.tpp", PROVIDERS).error is not None
    (tmp_path / "x.txt").write_text("x")
    unknown = format_file(tmp_path / "x.txt", PROVIDERS).error
    assert unknown is not None and "not a policy or publishers file" in unknown.render()
    (tmp_path / "latin1.tpp").write_bytes(b"# caf\xe9\n")
    latin1 = format_file(tmp_path / "latin1.tpp", PROVIDERS).error
    assert latin1 is not None and "not UTF-8" in latin1.render()


def test_unified_diff(tmp_path: Path) -> None:
    path = tmp_path / "p.tpp"
    path.write_text("provider p {issuer \"x\"}")
    diff = unified_diff(format_file(path, PROVIDERS))
    assert diff.startswith(f"--- {path} (original)\n+++ {path} (formatted)\n@@")
    assert '-provider p {issuer "x"}\n\\ No newline at end of file\n' in diff
    assert '+  issuer "x"\n' in diff


# ---------------------------------------------- inputs tests/property/test_fmt_exit.py found
@pytest.mark.parametrize(("text", "where", "message"), [
    # ruamel.yaml keeps no position for the items of a tagged list: a TypeError (exit 4)
    ("publishers:\n  - name: a\n    provider: acme\n    note: !!str\n      - ~\n",
     "p.yaml:4:11", "invalid YAML"),
    # `!` on nothing is the empty string for the loader, null for ruamel.yaml (exit 4)
    ("publishers:\n  - repository_owner_id: !\n    provider: github\n",
     "p.yaml:2:26", "explicit YAML tag '!'"),
    # ruamel.yaml's writer fails on an aliased value whose comments were rewritten (an
    # AttributeError, exit 4): refused at the alias
    ("publishers:\n  - name: a\n    provider: acme\n    note: &b >-\n    # c\n    x: [*b]\n"
     "  - name: *b\n",
     "p.yaml:6:9", "found the alias '*b'"),
    # ruamel.yaml drops the values of a `!!set`, and the comments on them, when it loads
    # it: the comment was lost and the file rewritten (exit 0); the file is invalid
    ("publishers:\n  - name: a\n    provider: acme\n    note: !!set\n      k:\n"
     "        x: 1  # c\n",
     "p.yaml:2:5", "missing 'projects'"),
])
def test_input_the_formatter_cannot_keep_is_refused_as_invalid(
        text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        format_publishers_text(text, "p.yaml", PROVIDERS)
    first = caught.value.diagnostics[0]
    assert str(first.span) == where
    assert message in first.message


def test_comments_are_counted_as_the_scanner_reads_them() -> None:
    text = ('a: é # x\nb: "q # r" #s\nc: >-  # h\n  # no\nd: [a, #z\n  b]\n#end\n  # ind\n'
            "e: a#b\n")
    assert _fmt._scanned_comments(text) == Counter(
        ["# x", "#s", "# h", "#z", "#end", "# ind"])


@pytest.mark.parametrize(("text", "formatted"), [
    # a flow mapping's values are in flow context: `?x` written plain was invalid (exit 4)
    ("publishers: [{? q: \"?x\", name: 'release.yml'}]\n",
     'publishers: [{name: release.yml, q: "?x"}]\n'),
    # an anchored quoted string was requoted without its anchor, its alias expanded: the
    # next run, seeing no alias, reordered the keys
    ("publishers:\n  - projects: &p 'x'\n    name: a\n    provider: acme\n  - name: b\n"
     "    provider: acme\n    projects: *p\n",
     "publishers:\n  - projects: &p 'x'\n    name: a\n    provider: acme\n  - name: b\n"
     "    provider: acme\n    projects: *p\n"),
    # an alias to an anchored null is written as a null: it no longer keeps the keys in
    # their order (the next run, which saw no alias, reordered them)
    ("publishers:\n  - note: &y\n    name: a\n    provider: acme\n  - provider: acme\n"
     "    environment: *y\n    name: b\n",
     "publishers:\n  - name: a\n    provider: acme\n    note:\n  - name: b\n"
     "    provider: acme\n    environment:\n"),
    # a tagged empty string written `""`: the comment below it, which ruamel.yaml keeps
    # above the next key, kept the keys in their order; the next run reordered them
    ("publishers:\n  - name: a\n    pending_project: !<tag:yaml.org,2002:str>  # e\n"
     "    # note\n    provider: gitlab\n    projects: [a]\n",
     "publishers:\n  - name: a\n    # note\n    provider: gitlab\n    projects: [a]\n"
     '    pending_project: ""  # e\n'),
    # a merge of an empty list is written as nothing: the next run, seeing no alias,
    # reordered the keys the first run kept in their order
    ("publishers:\n  - provider: acme\n    name: a\n  - name: b\n    note:\n"
     "      k: &a1 []\n      <<: *a1\n",
     "publishers:\n  - name: a\n    provider: acme\n  - name: b\n    note:\n      k: []\n"),
    # a null word outside the entries, or after an anchor, was written as nothing and its
    # comment moved; the next run moved it again
    ("publishers:\n  - name: a\n    provider: acme\n    note: [&a3 NULL]\nafter:\n"
     "  - &a4 ~  # c\n",
     "publishers:\n  - name: a\n    provider: acme\n    note: [NULL]\nafter:\n  - ~      # c\n"),
    # a null tagged on a text (`!!null "1e3"`) was written as nothing, its comment moved
    ("publishers:\n  - name: a\n    provider: acme\nafter:\n  - !!null \"1e3\"  # c\n",
     "publishers:\n  - name: a\n    provider: acme\nafter:\n  - null          # c\n"),
    # an anchored empty block scalar kept its block form, and the comment after it became
    # its text (exit 4): it is `""` too, with its anchor
    ("publishers:\n    - name: [b]\n      provider: gitlab\n      environment: &b >-\n"
     "      # c\n",
     'publishers:\n  - name: [b]\n    provider: gitlab\n    environment: &b ""\n# c\n'),
    # a null merged into an entry (`<<: *a1`) has no position of its own: KeyError (exit 4)
    ("other:\n  - &a0\npublishers:\n  - &a1\n    projects: *a0\n  - sub: &a2\n"
     "    <<: *a1\n",
     "other:\n  - \npublishers:\n  - &a1\n    projects:\n  - sub:\n    <<: *a1\n"),
    # the anchored empty block scalar, replaced, was freed and its id reused by a string
    # written later, which was then taken for one of its aliases (data changed: exit 4)
    ("publishers:\n    - provider: google\n      email: &a0 |-\n"
     "      pending_project: [\"-\", \"-\"]\n",
     'publishers:\n  - provider: google\n    email: &a0 ""\n    pending_project: ["-", "-"]\n'),
    # a string tagged `!!str` whose text, plain, ruamel.yaml reads as a number: written
    # in its writer's quotes ('1e3'), which the next run made double quotes
    ("publishers:\n  - name: a\n    namespace: [!<tag:yaml.org,2002:str> 1e3, '65']\n",
     'publishers:\n  - name: a\n    namespace: ["1e3", "65"]\n'),
    # the comment after a block scalar that ends an entry went under its keys, and the
    # next run, which read it above the next entry, put it at the entries' indentation
    ("publishers:\n    - email: x\n      projects: >+\n\n    - provider: gitlab\n"
     "  # - x\n      name: pub-2\n",
     "publishers:\n  - email: x\n    projects: >2+\n\n  # - x\n  - name: pub-2\n"
     "    provider: gitlab\n"),
    # an anchored block scalar no alias uses: the comment after it became its text (exit 4)
    ("publishers:\n    - project: -x\n      environment: &a0 |2\n          more\n\n"
     "      # c\n      name: a\n",
     "publishers:\n  - project: -x\n    environment: &a0 |2\n        more\n\n    # c\n"
     "    name: a\n"),
])
def test_formatting_found_inputs_is_idempotent(text: str, formatted: str) -> None:
    once = format_publishers_text(text, "p.yaml", PROVIDERS)
    assert once == formatted
    assert format_publishers_text(once, "p.yaml", PROVIDERS) == once


@pytest.mark.parametrize(("text", "formatted"), [
    # the comment after a block scalar kept its column (6) while the block's text moved
    # from column 8 to 6: the text took it in (exit 4)
    ("publishers:\n    - name: a\n      provider: acme\n      note: |\n        text\n\n"
     "      # c\n",
     "publishers:\n  - name: a\n    provider: acme\n    note: |\n      text\n\n  # c\n"),
    # the same in a nested mapping (exit 4)
    ("publishers:\n  - name: a\n    provider: acme\n    beta:\n      k: |-\n"
     "          more\n\n        # c\n      x: y\n",
     "publishers:\n  - name: a\n    provider: acme\n    beta:\n      k: |-\n        more\n\n"
     "      # c\n      x: y\n"),
    # ruamel.yaml ends a document whose last text keeps its line ends with `...`: the
    # next run kept that line and wrote its own again
    ("publishers:\n  - name: a\n    provider: acme\n    note:\n      x: |+\n\n\n  #\n\n",
     "publishers:\n  - name: a\n    provider: acme\n    note:\n      x: |2+\n\n\n      #\n\n"
     "...\n"),
    # an anchored block scalar shares its comment tokens with its alias: rewriting them
    # made ruamel.yaml fail (AttributeError, exit 4); it is left as it is
    ("publishers:\n    - name: &a1 |\n        text\n      # c\n      note:\n        - *a1\n"
     "      provider: acme\n",
     "publishers:\n  - name: &a1 |\n      text\n     # c\n    note:\n      - *a1\n"
     "    provider: acme\n"),
    # the comments before `---` (and after `...`) were dropped on load: exit 4, or lost
    # an empty first entry after a comment: ruamel.yaml wrote the next block entry on one
    # line (`- provider: github name: pub-1`, not YAML: exit 4)
    ("publishers:  # c\n- {}\n- provider: github\n  name: pub-1\n",
     "publishers:  # c\n  - {}\n  - name: pub-1\n    provider: github\n"),
    ("publishers:\n  # c\n  - {}  # d\n  - {}\n  - provider: acme\n    name: a\n",
     "publishers:\n  # c\n  - {}  # d\n  - {}\n  - name: a\n    provider: acme\n"),
    ("##\n--- !!map\npublishers: []\n", "##\n--- !!map\npublishers: []\n"),
    ("%YAML 1.1\n# c\n--- # e\npublishers:\n  - provider: acme\n    name: a\n...\n# z\n",
     "%YAML 1.1\n# c\n--- # e\npublishers:\n  - name: a\n    provider: acme\n...\n# z\n"),
])
def test_comments_around_block_scalars_and_document_markers_are_kept(
        text: str, formatted: str) -> None:
    once = format_publishers_text(text, "p.yaml", PROVIDERS)
    assert once == formatted
    assert format_publishers_text(once, "p.yaml", PROVIDERS) == once


def test_a_comment_after_an_empty_item_loses_its_blanks_once() -> None:
    """`- #x  `: an empty sequence item with a comment, blanks after it. The round trip
    moved the comment to a line of its own with its blanks, and the next run dropped
    them: formatting was not idempotent (found by tests/property/test_fmt_publishers.py).
    Blanks at a line's end outside any scalar now go before the round trip."""
    text = ("# 'q'\npublishers:\n    # - x \n  - provider: github\n    'name': pub-0  \n"
            "    'projects': \n      - #x  \n      - pypi  \n# \n")
    providers = {name: p.ast for name, p in load_providers().items()}
    once, _ = _fmt._format_publishers(text, "p.yaml", providers)
    assert "#x\n" in once and "#x " not in once
    assert _fmt._format_publishers(once, "p.yaml", providers)[0] == once
    # a block scalar's blank-ended lines are its content: kept
    block = "publishers: []\nnote: |\n  kept  \n  # not a comment  \n"
    assert "kept  \n  # not a comment  \n" in _fmt._format_publishers(block, "p.yaml",
                                                                     providers)[0]
