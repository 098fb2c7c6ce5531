"""`tppolicy fmt` on publishers files, on generated files with comments: the fast check never
calls a file canonical that the full round trip would change, the formatted text loads to
the same data and keeps every comment, and formatting is idempotent."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tppolicy.errors import ConfigError
from tppolicy.language.providers import load_providers
from tppolicy.tools import fmt as _fmt
from tppolicy.tools.fmt import FormatterError
from tppolicy.tools.fmt_canonical import (
    format_simple_publishers,
    is_canonical_publishers,
    is_simple_publishers,
)

# Hypothesis runs of hundreds of examples each: the slow group (.ci/run runs it).
pytestmark = pytest.mark.slow

PROVIDERS = {name: p.ast for name, p in load_providers().items()}
KEYS = {
    "github": ["repository_owner", "repository_name", "repository_owner_id",
               "workflow_filename", "environment"],
    "gitlab": ["namespace", "project", "workflow_filepath", "environment"],
    "google": ["email", "sub"],
    "acme": ["alpha", "beta"],  # an unknown provider: its keys keep their order
}
VALUES = ["pypi", "65", "yes", "no", "on", "1.0", "", "a b", "x: y", "x:y", "a #b", "#x",
          "-x", "- x", "[x]", "{x}", "null", "~", "0o17", "0x1F", "1_000", "true", "True",
          "https://gitlab.com", "v*", "a,b", "a\"b", "a'b", "a\\b", "*x", "&y", "!t", "é",
          "release.yml", "octo-org", "pub@x.iam.gserviceaccount.com", " lead", "trail ",
          "2026-01-01", ".inf", "=", "<<", "?x", "%x", "@x", "`x", "|", ">", "a\u00a0b",
          "12:30", "1e3", "-", "...", "---x"]
STRINGS = ["pypi", "octo-org", "release.yml", "a b", "x:y", "a?b", "v*", "é", "a,b", "a'b",
           "https://gitlab.com", "pub@x.iam.gserviceaccount.com", "a\"b", "?x", "1.0", "65",
           "yes", "", "-x", "@x"]


def _write(value: str, style: str, in_flow: bool) -> str:
    # Plain, most values are what they are to YAML (65 an integer, yes a boolean...); '&y'
    # would be an anchor on an empty value, which a flow list cannot hold (the formatter
    # refuses such a file: tests/test_fmt.py), so it is always quoted.
    if (style == "plain" and value and value.strip() == value and "\n" not in value
            and not value.startswith("&")):
        return value
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value, ensure_ascii=False)


def _comment(rnd: random.Random) -> str:
    return "#" + rnd.choice(["", " note", " é ü", "# twice", " a: b", " - x", " 'q'"])


@st.composite
def publishers_files(draw: st.DrawFn, flow_entries: bool = False) -> str:
    """A publishers file: entries of several providers, keys in any order, values in any
    quoting, comments and blank lines anywhere a line may go, end-of-line comments; at
    times quoted keys, blanks after the dashes (`-   key`), blanks at line ends, document
    markers (`---`, `...`), entries written as flow mappings on one line each (all of them
    if `flow_entries`, with no comment or blank line among them, no blanks at line ends)."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    styles = draw(st.sampled_from([["plain"], ["plain", "double"],
                                   ["plain", "single", "double"]]))
    values = VALUES if rnd.random() < 0.5 else STRINGS  # STRINGS: fewer oddities
    dash = rnd.choice(["", "  ", "  "])  # where the entries' dashes stand
    gap = rnd.choice([" ", " ", " ", "   "])  # the blanks after them
    if flow_entries:  # (and fewer oddities, for more files written directly)
        dash, gap = "  ", " "
        values = STRINGS if rnd.random() < 0.8 else VALUES
        styles = ["plain", "double"] if styles == ["plain"] else styles
    quoted_keys = rnd.random() < (0.03 if flow_entries else 0.15)
    flow = flow_entries or rnd.random() < 0.3  # each entry a flow mapping: `- {name: a, ...}`
    lines: list[str] = []
    if rnd.random() < 0.1:
        lines.append("")  # a blank first line is not kept
    if rnd.random() < 0.5:
        lines.append(_comment(rnd))
        for _ in range(rnd.randrange(3)):
            lines.append(rnd.choice(["", _comment(rnd), "  " + _comment(rnd)]))
    lines.append(rnd.choice(["publishers:"] * 6 + ['"publishers":', "'publishers':",
                                                   "publishers:  "]))
    for number in range(draw(st.integers(1, 4))):
        provider = rnd.choice(sorted(KEYS))
        keys = ["name", "provider", rnd.choice(["projects", "pending_project"])]
        keys += rnd.sample(KEYS[provider], rnd.randrange(len(KEYS[provider]) + 1))
        if rnd.random() < 0.2:
            keys.append("note")
        if rnd.random() < 0.7:
            rnd.shuffle(keys)
        entry: list[str] = []
        for key in keys:
            if key == "provider":
                value = provider
            elif key == "name":
                value = f"pub-{number}" if rnd.random() < 0.7 else rnd.choice(values)
            else:
                value = rnd.choice(values)
            style = rnd.choice(styles)
            written_key = key
            if quoted_keys and rnd.random() < 0.7:
                written_key = rnd.choice(['"{}"', "'{}'"]).format(key)
            if key == "projects":
                items = [rnd.choice(values) for _ in range(rnd.randrange(1, 4))]
                if flow or rnd.random() < 0.7:
                    text = "[" + ", ".join(_write(i, rnd.choice(styles), True)
                                           for i in items) + "]"
                    entry.append(f"{written_key}: {text}")
                else:
                    entry.append(f"{written_key}:")
                    entry += [f"  - {_write(i, rnd.choice(styles), False)}" for i in items]
                continue
            entry.append(f"{written_key}: {_write(value, style, flow)}")
        if flow:
            entry = ["{" + ", ".join(entry) + "}"]
        for at, line in enumerate(entry):
            prefix = dash + "-" + gap if at == 0 else dash + " " * (1 + len(gap))
            lines.append(prefix + line)
        # comments and blank lines between this entry's lines, and at line ends
        for _ in range(0 if flow_entries else rnd.randrange(3)):
            at = rnd.randrange(len(lines) - len(entry), len(lines) + 1)
            if rnd.random() < 0.4 and at < len(lines) and "#" not in lines[at]:
                lines[at] += " " * rnd.randrange(1, 4) + _comment(rnd)
            elif rnd.random() < 0.2:
                lines.insert(at, "")
            else:
                indent = rnd.choice([0, 1, 2, 4, 6, len(dash), len(dash) + 2, len(dash) + 2])
                lines.insert(at, " " * indent + _comment(rnd))
    for _ in range(0 if flow_entries else rnd.randrange(3)):
        lines.append(rnd.choice(["", _comment(rnd), "  " + _comment(rnd)]))
    if not flow_entries and rnd.random() < 0.15:  # blanks at the ends of some lines
        lines = [line + " " * rnd.choice([0, 0, 1, 2]) for line in lines]
    if rnd.random() < 0.15:  # document markers, and comments around them
        lines[:0] = rnd.choice([["---"], ["# c", "---"], ["", "---"], ["---", ""],
                                ["--- # c"], ["%YAML 1.1", "---"]])
    if rnd.random() < 0.15:
        lines += rnd.choice([["..."], ["...", "# after"], ["...", ""], ["# c", "..."]])
    return "\n".join(lines) + "\n"


def _comments(text: str) -> Counter[str]:
    """The comments of `text`, read by ruamel.yaml's round trip, and the lines around its
    document that the formatter keeps as they are (`%YAML 1.1` would make ruamel.yaml read
    the document as YAML 1.1, which the formatter does not ask of it)."""
    prefix, body, suffix = _fmt._document_frame(text)
    return _fmt._all_comments(_fmt._load_rt(body, "<test>")) + Counter([prefix, suffix])


def _data(text: str) -> Any:
    """The data of `text` as tppolicy reads it (libyaml's safe loader where there is one)."""
    return _fmt._typed(_fmt._plain_data(text, "<test>"))


def _format(text: str) -> str | None:
    try:
        return _fmt.format_publishers_text(text, "<test>", PROVIDERS)
    except ConfigError:
        return None  # not YAML the formatter takes (e.g. a key twice)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(publishers_files())
def test_fast_check_agrees_with_the_round_trip(text: str) -> None:
    fast = is_canonical_publishers(text, PROVIDERS)
    try:
        full, count = _fmt._format_publishers(text, "<test>", PROVIDERS, fast=False)
    except (ConfigError, FormatterError):
        assert not fast
        return
    if fast:
        assert full == text
        # the fast path counts the same problems (from the entries it read, when it can)
        assert _fmt._format_publishers(text, "<test>", PROVIDERS) == (full, count)
    again = is_canonical_publishers(full, PROVIDERS)
    event(f"formatted text seen as canonical: {again}")
    if again:  # the formatted text, near the canonical layout, tries the fast check harder
        assert _fmt._format_publishers(full, "<test>", PROVIDERS, fast=False)[0] == full


def _direct_agrees(text: str, note: str = "") -> tuple[str, int] | None:
    """fmt's direct writing of `text`, checked equal to the round trip's text: (that text,
    the round trip's problem count), or None when the file is not written directly."""
    direct = format_simple_publishers(text, PROVIDERS)
    event(f"written directly: {direct is not None}{note}")
    if direct is None:
        return None
    full, count = _fmt._format_publishers(text, "<test>", PROVIDERS, fast=False)
    assert direct == full
    return full, count


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(publishers_files())
def test_direct_formatting_agrees_with_the_round_trip(text: str) -> None:
    agreed = _direct_agrees(text)
    if agreed is None:
        return
    full, count = agreed
    assert _fmt._format_publishers(text, "<test>", PROVIDERS) == (full, count)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(publishers_files())
def test_a_simple_file_is_a_publishers_file(text: str) -> None:
    if is_simple_publishers(text):
        data = yaml.safe_load(text)
        assert isinstance(data, dict) and isinstance(data.get("publishers"), list)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(publishers_files())
def test_formatting_keeps_data_and_comments_and_is_idempotent(text: str) -> None:
    once = _format(text)
    if once is None:
        return
    assert _format(once) == once
    if once != text:  # (a text left as it is may hold tags pyyaml cannot construct)
        assert _data(once) == _data(text)
        assert _comments(once) == _comments(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(publishers_files(flow_entries=True))
def test_flow_mapping_entries_agree_with_the_round_trip(text: str) -> None:
    agreed = _direct_agrees(text)
    if agreed is None:
        return
    direct, _ = agreed
    assert format_simple_publishers(direct, PROVIDERS) == direct


@st.composite
def json_files(draw: st.DrawFn, plain: bool = False) -> str:
    """A publishers file as JSON (as json.dumps writes it, indented or on one line): many
    entries at times, with long strings, so that the round trip breaks its line past the
    width before keys, list items and entries; at times keys no provider declares,
    escapes, values that are not strings, a key twice (never if `plain`, and then
    always long)."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    clean = [v for v in STRINGS if v and " " not in v and '"' not in v and v.isascii()]
    odd = 0.0 if plain else rnd.choice([0.0, 0.0, 0.01, 0.1])  # how often a value is
    long = plain or rnd.random() < 0.5  # any other one
    entries: list[Any] = []
    for number in range(rnd.randrange(1, 60 if long else 5)):
        provider = rnd.choice(sorted(KEYS))
        keys = ["name", "provider", rnd.choice(["projects", "pending_project"])]
        keys += rnd.sample(KEYS[provider], rnd.randrange(len(KEYS[provider]) + 1))
        if rnd.random() < 0.05 and not plain:
            keys.append("note")
        rnd.shuffle(keys)
        entry: dict[str, Any] = {}
        for key in keys:
            values = VALUES if rnd.random() < odd else clean
            value: Any = rnd.choice(values)
            if long and rnd.random() < 0.5:
                value = rnd.choice(["p", "a.b", "x-y"]) * rnd.randrange(1, 120)
            if key == "provider":
                value = provider
            elif key == "name" and rnd.random() < 0.7:
                value = f"pub-{number}"
            elif key == "projects":
                value = [rnd.choice(values) if not long or rnd.random() < 0.5
                         else "p" * rnd.randrange(1, 300) for _ in range(rnd.randrange(1, 4))]
            elif rnd.random() < 0.03 and not plain:
                value = rnd.choice([65, True, None, 1.5, []])
            entry[key] = value
        entries.append(entry)
    text = json.dumps({"publishers": entries}, ensure_ascii=rnd.random() < 0.5,
                      indent=rnd.choice([None, 2, 4]),
                      separators=rnd.choice([None, (",", ":"), (", ", ": ")]))
    if rnd.random() < 0.03 and not plain:
        text = text.replace('"provider"', '"name": "twice", "provider"', 1)
    return text + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_files())
def test_json_files_agree_with_the_round_trip(text: str) -> None:
    agreed = _direct_agrees(text, f"; lines: {min(text.count(chr(10)), 2)}")
    if agreed is None:
        return
    direct, _ = agreed
    assert _fmt._format_publishers(direct, "<test>", PROVIDERS, fast=False)[0] == direct


@st.composite
def block_project_files(draw: st.DrawFn) -> str:
    """A formatted publishers file whose `projects` flow lists are at times block lists,
    with comments on some items (the round trip keeps those, and their entry's order),
    comment lines among them, and items quoted or not."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    text = _format(draw(publishers_files()))
    if text is None:
        return "publishers:\n  - name: a\n    projects:\n      - p  # c\n"
    lines: list[str] = []
    for line in text.split("\n"):
        if line.startswith(("    projects: [", "  - projects: [")) and rnd.random() < 0.7:
            try:
                items = yaml.safe_load(line.split(": ", 1)[1].split("  #")[0])
            except yaml.YAMLError:
                lines.append(line)
                continue
            lines.append(line[:4] + "projects:")
            for item in items:
                style = rnd.choice(["plain", "plain", "double", "single"])
                written = _write(str(item), style, True)
                comment = rnd.choice(["", "", "  # c", "  # c", " # one", "   # three"])
                lines.append(" " * rnd.choice([6, 6, 6, 4, 8]) + "- " + written + comment)
                if rnd.random() < 0.1:
                    lines.append(" " * rnd.choice([4, 6]) + "# inside")
        else:
            lines.append(line)
    return "\n".join(lines)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block_project_files())
def test_block_lists_with_comments_agree_with_the_round_trip(text: str) -> None:
    direct = format_simple_publishers(text, PROVIDERS)
    fast = is_canonical_publishers(text, PROVIDERS)
    event(f"written directly: {direct is not None}; canonical: {fast}")
    try:
        full, _ = _fmt._format_publishers(text, "<test>", PROVIDERS, fast=False)
    except (ConfigError, FormatterError):
        assert direct is None and not fast
        return
    if direct is not None:
        assert direct == full
    if fast:
        assert full == text


@st.composite
def flow_documents(draw: st.DrawFn) -> str:
    """A publishers file that is one flow mapping, as fmt writes a JSON file
    (`json_files` formatted by the round trip), as it is or changed: the `publishers` key
    plain, its lines joined into one or broken at other places (after a ', ', inside a
    plain string), a plain value quoted, a quoted one made plain, blanks doubled."""
    text = draw(json_files(plain=draw(st.booleans())))
    try:
        text = _fmt._format_publishers(text, "<test>", PROVIDERS, fast=False)[0]
    except (ConfigError, FormatterError):
        return text
    rnd = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(rnd.choice([0, 0, 1, 2])):
        change = rnd.choice(["plain key", "one line", "break", "break in a string", "quote",
                             "unquote", "blanks"])
        if change == "plain key":
            text = text.replace('{"publishers"', "{publishers", 1)
        elif change == "one line":
            text = re.sub(r"([,{\[])\n(?:   (?=\{))?",
                          lambda m: ", " if m.group(1) == "," else m.group(1), text[:-1]) + "\n"
        elif change == "blanks" and ", " in text:
            at = rnd.choice([m.start() for m in re.finditer(", ", text)])
            text = text[:at] + ",  " + text[at + 2:]
        else:
            pattern = {"break": r", ", "break in a string": r"[a-z]-[a-z]",
                       "quote": r": [a-z][a-z0-9.-]*(?=[,}])",
                       "unquote": r': "[^"]*"'}[change]
            found = list(re.finditer(pattern, text))
            if not found:
                continue
            m = rnd.choice(found)
            new = {"break": ",\n", "break in a string": m.group().replace("-", "-\n"),
                   "quote": f': "{m.group()[2:]}"', "unquote": f": {m.group()[3:-1]}"}[change]
            text = text[:m.start()] + new + text[m.end():]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow_documents())
def test_flow_documents_agree_with_the_round_trip(text: str) -> None:
    """A file fmt made of a JSON file (one flow mapping) is written directly as the round
    trip writes it (it took the round trip: ~20 s at 10 000 publishers), with the same
    problem count; the round trip's own text is written directly unchanged."""
    agreed = _direct_agrees(text, f"; lines: {min(text.count(chr(10)), 2)}")
    if agreed is None:
        return
    direct, count = agreed
    assert _fmt._format_publishers(text, "<test>", PROVIDERS) == (direct, count)
    assert format_simple_publishers(direct, PROVIDERS) == direct
