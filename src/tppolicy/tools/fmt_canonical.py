"""The fast path of `tppolicy fmt` for publishers files: is a text already in the canonical
layout?

`is_canonical_publishers` reads the text line by line, with no YAML tree, and answers True
only for a file that the full round trip of `tppolicy.tools.fmt` would leave exactly as it
is. It accepts a narrow form, the one the formatter writes for ordinary files:

    # comments at column 0
    publishers:
      # comments (indented 2) or blank lines above an entry
      - name: value  # an end-of-line comment (two spaces before '#')
        # comments (indented 4) or blank lines above a key
        projects: [a, "1.0"]
        key: "65"
      - name: other
        projects:       # a block list, when an item has a comment
          - a  # why
    # comments after the last entry, indented as they are

with each entry's keys in the canonical order, every key and plain value a string that YAML
(1.1 and 1.2) reads as that string and that may be written plain, every double-quoted value
one that must be quoted and holds no escape, no tab, no trailing blank, no anchor, alias or
tag. Anything else answers False, and the caller runs the full round trip: the answer may
be False for a canonical file, never True for a file the round trip would change
(`tests/property/test_fmt_publishers.py` checks it on generated files).
"""

from __future__ import annotations

import io
import itertools
import json
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

import yaml
from ruamel.yaml.emitter import Emitter
from ruamel.yaml.nodes import ScalarNode as RuamelScalarNode
from ruamel.yaml.resolver import VersionedResolver

from tppolicy.language.ast import Provider

__all__ = ["FIRST_KEYS", "format_simple_publishers", "is_canonical_publishers",
           "is_simple_publishers", "key_order", "needs_quotes", "plain_allowed",
           "write_simple_publishers"]

FIRST_KEYS = ("name", "provider", "projects", "pending_project")
_STR_TAG = "tag:yaml.org,2002:str"

# One resolver of each kind (resolving a scalar reads their tables and changes nothing).
_PYYAML_RESOLVER: Any = yaml.resolver.Resolver()
_RUAMEL_RESOLVER: Any = VersionedResolver(version=(1, 2))


def _implicit_patterns() -> dict[str | None, tuple[re.Pattern[str], ...]] | None:
    """The two resolvers' implicit patterns by the first character they apply to (None:
    any): a plain scalar is a string for both exactly when none of its patterns matches.
    None if some implicit pattern would resolve to a string (then the order would matter
    and the resolvers themselves are asked)."""
    table: dict[str | None, list[re.Pattern[str]]] = {}
    for resolvers in (_PYYAML_RESOLVER.yaml_implicit_resolvers,
                      _RUAMEL_RESOLVER.versioned_resolver):
        for first, pairs in resolvers.items():
            for tag, pattern in pairs:
                if str(tag) == _STR_TAG:
                    return None
                table.setdefault(first, []).append(pattern)
    wildcard = table.pop(None, [])
    return {first: (*patterns, *wildcard) for first, patterns in table.items()} | {
        None: tuple(wildcard)}


def _combined(patterns: tuple[re.Pattern[str], ...]) -> re.Pattern[str] | None:
    """One pattern that matches where any of `patterns` does (they share their flags)."""
    if not patterns or len({p.flags for p in patterns}) != 1:
        return None
    return re.compile("|".join(f"(?:{p.pattern})" for p in patterns), patterns[0].flags)


_PATTERNS = _implicit_patterns()
_COMBINED = None if _PATTERNS is None else {
    first: _combined(patterns) for first, patterns in _PATTERNS.items()}


# Strings that any YAML emitter may write plain, in block and in flow context: no
# indicator, no blank, no ':' (the analysis below would find nothing to refuse).
_SAFE_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@+-]*\Z")
# Characters beyond the fast path: tabs and other controls, carriage returns, the line
# breaks YAML knows beyond "\n", byte order marks, surrogates, non-characters.
_UNUSUAL = re.compile("[^\n\x20-\x7e\u00a0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd]")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
# A key and a value that may be plain in any context, nothing else on the line.
_SIMPLE = re.compile(r"(  - |    )([A-Za-z_][A-Za-z0-9_-]*): ([A-Za-z0-9_][A-Za-z0-9_./@+-]*)\Z")
_BLANKS_AT_END = re.compile(" +$", re.MULTILINE)
_LONG_LINE = 1000  # far below the emitter's width (4096), where it would fold a scalar


def _resolves_to_str(value: str) -> bool:
    if _PATTERNS is not None and _COMBINED is not None:
        first = value[0] if value else ""
        combined = _COMBINED.get(first, _COMBINED[None])
        if combined is not None:
            return combined.match(value) is None
        patterns = _PATTERNS.get(first, _PATTERNS[None])
        return not any(pattern.match(value) for pattern in patterns)
    return bool(
        _PYYAML_RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG
        and _RUAMEL_RESOLVER.resolve(RuamelScalarNode, value, (True, False)) == _STR_TAG)


@lru_cache(maxsize=4096)
def _plain_allowed(value: str, in_flow: bool) -> bool:
    emitter = Emitter(io.StringIO(), allow_unicode=True)
    # A lone emitter is its own serializer: its YAML version decides '?' and ':'. YAML 1.1's
    # rules are the stricter ones, and pyyaml's: '[a?b]' is not a list of one string there.
    emitter.use_version = (1, 1)  # type: ignore[attr-defined]
    analysis = emitter.analyze_scalar(value)
    allowed = analysis.allow_flow_plain if in_flow else analysis.allow_block_plain
    return bool(allowed and not analysis.empty and not analysis.multiline)


def plain_allowed(value: str, in_flow: bool) -> bool:
    """Whether the emitter may write the string `value` as a plain scalar (in a flow list
    when `in_flow`), whatever type a reader then gives it."""
    return bool(_SAFE_PLAIN.match(value)) or _plain_allowed(value, in_flow)


def needs_quotes(value: str, in_flow: bool) -> bool:
    """Whether `value` must be quoted: a plain scalar would be read as another type (by
    YAML 1.1, as pyyaml and so tppolicy read it, or by YAML 1.2) or is not allowed plain
    (in a flow list when `in_flow`)."""
    return not _resolves_to_str(value) or not plain_allowed(value, in_flow)


def key_order(keys: list[Any], provider: Any, providers: Mapping[str, Provider]) -> list[Any]:
    """The canonical order of an entry's keys: `name`, `provider`, `projects`,
    `pending_project`, the provider's fields in the order it declares them, then the other
    keys in their order in the file."""
    present = set(keys)
    order = [k for k in FIRST_KEYS if k in present]
    if isinstance(provider, str) and provider in providers:
        order += [d.name for d in providers[provider].fields if d.name in present]
    placed = set(order)
    order += [k for k in keys if k not in placed]
    return order


def _quoted(text: str, in_flow: bool) -> str | None:
    """The content of a canonical double-quoted scalar `text` ("..."), or None."""
    content = text[1:-1]
    if len(text) < 2 or text[-1] != '"' or '"' in content or "\\" in content:
        return None
    if not content.isascii() or not needs_quotes(content, in_flow):
        return None  # a string that may be plain is written plain
    return content


def _scalar(text: str, in_flow: bool) -> str | None:
    """The string a canonical scalar's text stands for, or None."""
    if text.startswith('"'):
        return _quoted(text, in_flow)
    if not text or needs_quotes(text, in_flow):
        return None
    return text


def _flow_list(text: str) -> list[str] | None:
    """The strings of a canonical flow list `[a, "b"]` (the whole of `text`), or None."""
    if not text.startswith("[") or not text.endswith("]"):
        return None
    items: list[str] = []
    position, end = 1, len(text) - 1
    while position < end:
        if text[position] == '"':
            close = text.find('"', position + 1)
            if close < 0 or close >= end:
                return None
            stop = close + 1
        else:
            stop = position
            while stop < end and text[stop] not in ",[]{}\"":
                stop += 1
        item = _scalar(text[position:stop], in_flow=True)
        if item is None:
            return None
        items.append(item)
        if stop == end:
            return items
        if text[stop:stop + 2] != ", ":
            return None
        position = stop + 2
    return None  # "[]" (an empty list) or a trailing ", "


def _value(key: str, text: str) -> str | list[str] | None:
    """The value of `key: <text>` with its end-of-line comment removed, or None if the text
    is not canonical."""
    if text.startswith("["):
        if key != "projects":
            return None
        close = text.find("]")
        body, tail = text[:close + 1], text[close + 1:]
        if close < 0 or not (tail == "" or tail.startswith("  #")):
            return None
        return _flow_list(body)
    if text.startswith('"'):
        close = text.find('"', 1)
        body, tail = text[:close + 1], text[close + 1:]
        if close < 0 or not (tail == "" or tail.startswith("  #")):
            return None
        return _quoted(body, in_flow=False)
    comment = text.find(" #")
    if comment >= 0:
        if comment == 0 or text[comment - 1] != " " or text[comment - 2:comment - 1] == " ":
            return None  # exactly two blanks before '#'
        text = text[:comment - 1]
    return _scalar(text, in_flow=False)


def _block_item(text: str) -> tuple[str, bool] | None:
    """The string of a canonical block list item (what follows `- `) and whether it has an
    end-of-line comment (two blanks before its '#'), or None."""
    if text.startswith('"'):
        close = text.find('"', 1)
        body, tail = text[:close + 1], text[close + 1:]
        if close < 0:
            return None
    else:
        at = text.find(" #")
        body, tail = (text, "") if at < 0 else (text[:at - 1], text[at - 1:])
    if tail and (not tail.startswith("  #") or len(tail) == 3):
        return None  # not two blanks, or an empty comment
    value = _scalar(body, in_flow=True)
    return None if value is None else (value, bool(tail))


def _key_ok(key: str, cache: dict[str, bool]) -> bool:
    """Whether `key` is written canonically (plain, and a string for YAML)."""
    ok = cache.get(key)
    if ok is None:
        ok = cache[key] = bool(_KEY.match(key)) and not needs_quotes(key, False)
    return ok


def _key_value(line: str, entry: dict[str, Any], keys: dict[str, bool]) -> bool:
    """Add the `key: value` that starts at column 4 of `line` to `entry`; False if it is
    not canonical."""
    simple = _SIMPLE.match(line)
    if simple is not None:  # the common case: a plain string, no comment
        key, value = simple.group(2, 3)
        if key in entry or not _key_ok(key, keys) or not _resolves_to_str(value):
            return False
        entry[key] = value
        return True
    colon = line.find(": ", 4)
    if colon < 0:
        return False
    key = line[4:colon]
    if key in entry or not _key_ok(key, keys):
        return False
    found = _value(key, line[colon + 2:])
    if found is None:
        return False
    entry[key] = found
    return True


def _comments_ok(lines: list[str], indent: str) -> bool:
    """Comment lines (blank lines too) as the formatter writes them above an entry or a
    key: at `indent`."""
    return all(line == "" or (line.startswith(indent) and line[len(indent)] == "#")
               for line in lines)


def _entry_ok(entry: dict[str, Any], providers: Mapping[str, Provider],
              orders: dict[tuple[Any, ...], bool]) -> bool:
    """Whether the keys of `entry` are in the canonical order."""
    keys = tuple(entry)
    provider = entry.get("provider")
    shape = (provider if isinstance(provider, str) else None, *keys)
    ok = orders.get(shape)
    if ok is None:
        ok = orders[shape] = key_order(list(keys), provider, providers) == list(keys)
    return ok


def _top_line(line: str, number: int) -> bool:
    """Whether a line above `publishers:` is kept as it is: the first a comment at column
    0, the others comments or blank lines (a blank line first is not kept)."""
    if number == 0:
        return line.startswith("#")
    return not line or line.lstrip(" ").startswith("#")


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` (which ends with a line end), one at a time: a file's lines are
    never all held at once."""
    start = 0
    while (end := text.find("\n", start)) >= 0:
        yield text[start:end]
        start = end + 1


def is_canonical_publishers(text: str, providers: Mapping[str, Provider],
                            seen: Callable[[dict[str, Any]], None] | None = None) -> bool:
    """True only if the full formatting of the publishers file `text` is `text` itself;
    False when it may not be (the caller then formats it the slow way). `seen` is given
    each entry read (a mapping of its keys to strings and lists of strings)."""
    if not text.endswith("\n") or " \n" in text or _UNUSUAL.search(text):
        return False
    lines = _lines(text)
    for number, line in enumerate(lines):
        if _PUBLISHERS.match(line):  # (a quoted key keeps its quotes)
            break
        if not _top_line(line, number):  # comments at the top of the file, then the key
            return False
    else:
        return False
    entry: dict[str, Any] | None = None
    pending: list[str] = []
    keys: dict[str, bool] = {}
    orders: dict[tuple[Any, ...], bool] = {}
    block: list[str] | None = None  # the items of a block `projects` list being read
    commented = False  # whether one of them has a comment
    for line in lines:
        if not line or line.lstrip(" ").startswith("#"):
            pending.append(line)
            continue
        if len(line) > _LONG_LINE:
            return False
        if block is not None:
            if line.startswith("      - "):
                item = _block_item(line[8:])
                if item is None or pending:
                    return False
                block.append(item[0])
                commented = commented or item[1]
                continue
            if not commented:
                return False  # written as a flow list
            block = None
        if line.startswith("    "):
            if entry is None or (pending and not _comments_ok(pending, "    ")):
                return False
            if line == "    projects:":
                # A block list with a comment on an item: the round trip keeps it, and the
                # entry in its order (here the canonical one)
                if "projects" in entry:
                    return False
                block = entry["projects"] = []
                commented = False
                pending = []
                continue
        elif line.startswith("  - "):
            if entry is not None:
                if not _entry_ok(entry, providers, orders):
                    return False
                if seen is not None:
                    seen(entry)
            # (the round trip keeps the lines above the first entry as they are)
            if pending and entry is not None and not _comments_ok(pending, "  "):
                return False
            entry = {}
        else:
            return False
        if not _key_value(line, entry, keys):
            return False
        if pending:
            pending = []
    if entry is None or not _entry_ok(entry, providers, orders) or (
            block is not None and not commented):
        return False
    if seen is not None:
        seen(entry)
    # After the last entry: comment lines as they are, and blank lines.
    return all(not line or line.lstrip(" ").startswith("#") for line in pending)


# ------------------------------------------------------------- formatting simple files
# A key: plain, or quoted (without escapes: the formatter writes it plain)
_KEY_TEXT = r"""([A-Za-z_][A-Za-z0-9_-]*|"[A-Za-z_][A-Za-z0-9_-]*"|'[A-Za-z_][A-Za-z0-9_-]*')"""
# An entry's first line: its dash, the blanks after it (`-   key` as `yaml.dump(indent=4)`
# writes it), its first key
_DASH = re.compile(rf"( *)-( +){_KEY_TEXT}:(?: +(.*))?\Z")
_SIMPLE_ANY = re.compile(
    rf"( *)(?:-( +))?{_KEY_TEXT}: ([A-Za-z0-9_][A-Za-z0-9_./@+-]*)\Z")
_KEY_LINE = re.compile(rf"( *){_KEY_TEXT}:(?: +(.*))?\Z")
_PUBLISHERS = re.compile(r"""(publishers|"publishers"|'publishers'):\Z""")
_ITEM = re.compile(r"( *)- +(.*)\Z")


class _Entry:
    """One entry of a simple publishers file: its keys in the file's order, each with its
    value's canonical text, its end-of-line comment and the comment (or blank) lines after
    it."""

    __slots__ = ("after", "eol", "flow", "item_eol", "keys", "quoted", "raw", "values")

    def __init__(self) -> None:
        self.flow: dict[str, bool] = {}  # whether a list is a flow list in the file
        self.quoted: list[str] = []  # the keys quoted in the file
        self.item_eol: dict[str, list[str]] = {}  # a block list's items' comments
        self.raw: list[str] = []  # its lines as they are (without blanks at their ends)
        self.keys: list[str] = []
        self.values: dict[str, str | list[str]] = {}
        self.eol: dict[str, str] = {}
        self.after: dict[str, list[str]] = {}


def _write_scalar(value: str, in_flow: bool) -> str | None:
    """`value` as the formatter writes it: plain where it may be, else double-quoted; None
    when the double-quoted form would need an escape (the round trip then writes it)."""
    if not needs_quotes(value, in_flow):
        return value
    if not value.isascii() or '"' in value or "\\" in value or not value.isprintable():
        return None
    return f'"{value}"'


def _read_scalar(text: str, stops: str) -> tuple[str, int] | None:
    """A plain or quoted string at the start of `text`, and where it ends; a plain one ends
    at one of `stops`, " #" or the end. None for anything else (or a plain text YAML reads
    as another type, or that may not be plain)."""
    if text.startswith("'"):
        position = 1
        while True:
            close = text.find("'", position)
            if close < 0:
                return None
            if text[close + 1:close + 2] != "'":
                return text[1:close].replace("''", "'"), close + 1
            position = close + 2
    if text.startswith('"'):
        close = text.find('"', 1)
        if close < 0 or "\\" in text[1:close]:
            return None
        return text[1:close], close + 1
    end = len(text)
    for stop in (*stops, " #"):
        found = text.find(stop)
        if 0 <= found < end:
            end = found
    value = text[:end].rstrip(" ")
    if not value or needs_quotes(value, in_flow=bool(stops)):
        return None
    return value, end


def _eol(tail: str) -> str | None:
    """The end-of-line comment in `tail` (what follows a value): "" for none, None if
    something else is there."""
    stripped = tail.strip(" ")
    if not stripped:
        return ""
    if not stripped.startswith("#") or not tail.startswith(" ") or stripped == "#":
        return None  # (ruamel.yaml keeps an empty end-of-line comment where it was)
    return stripped


def _read_value(key: str, text: str) -> tuple[str | list[str], str] | None:
    """A key's value (a string, or the strings of a flow list for `projects`) and its
    end-of-line comment, from the text after `key:`."""
    if text.startswith("["):
        if key != "projects":
            return None
        items: list[str] = []
        position = 1
        while True:
            rest = text[position:].lstrip(" ")
            position = len(text) - len(rest)
            read = _read_scalar(rest, ",]")
            if read is None:
                return None
            items.append(read[0])
            rest = text[position + read[1]:].lstrip(" ")
            position = len(text) - len(rest)
            if rest.startswith("]"):
                eol = _eol(text[position + 1:])
                return None if eol is None else (items, eol)
            if not rest.startswith(","):
                return None
            position += 1
    read = _read_scalar(text, "")
    if read is None:
        return None
    eol = _eol(text[read[1]:])
    return None if eol is None else (read[0], eol)


class _NotSimple(Exception):
    """The file is not simple: the round trip formats it."""


def _read_simple(text: str) -> Iterator[list[str] | tuple[_Entry, bool]]:
    """A simple publishers file, one part at a time: the lines above its first entry (the
    comments at its top, `publishers:`, the comment or blank lines under it), then each
    entry and whether it is the last (the lines after the last entry are its last key's
    `after`). `_NotSimple`, maybe after some parts, for any other file."""
    if _UNUSUAL.search(text) or not text.endswith("\n"):
        raise _NotSimple
    lines = _lines(text)
    head: list[str] = []
    for number, line in enumerate(lines):
        line = line.rstrip(" ")  # (the round trip drops the blanks at the ends of lines
        if _PUBLISHERS.match(line):  # of comments, blank lines and this one)
            head.append(line)
            break
        head.append(line)
        if not _top_line(line, number):
            raise _NotSimple
    else:
        raise _NotSimple
    first = ""
    for line in lines:
        if line.strip(" ") and not line.lstrip(" ").startswith("#"):
            first = line
            break
        head.append(line.rstrip(" "))
    found = _DASH.match(first.rstrip(" "))
    if found is None:
        raise _NotSimple
    yield head
    dash, gap = found.group(1, 2)
    indent = dash + " " + gap
    entry: _Entry | None = None
    last_key = ""
    block: list[str] | None = None  # the items of a block list being read
    item_lead = ""
    keys: dict[str, bool] = {}
    for line in itertools.chain((first,), lines):
        if len(line) > _LONG_LINE:
            raise _NotSimple
        bare = line.rstrip(" ")
        stripped = bare.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            if entry is None:  # pragma: no cover - the first line read is an entry's
                raise _NotSimple
            entry.after[last_key].append(bare)
            entry.raw.append(bare)
            block = None
            continue
        if block is not None and entry is not None:
            item = _ITEM.match(bare)
            if item is not None and len(item.group(1)) >= len(indent) and (
                    not block or item.group(1) == item_lead):
                item_lead = item.group(1)  # (every item at the first one's column)
                read = _read_scalar(item.group(2), "")
                eol = None if read is None else _eol(item.group(2)[read[1]:])
                if read is None or eol is None:
                    raise _NotSimple
                block.append(read[0])
                entry.item_eol.setdefault(last_key, []).append(eol)
                entry.raw.append(bare)
                continue
            block = None
        simple = _SIMPLE_ANY.match(bare)  # the common case: a plain string, no comment
        if simple is not None:
            lead, blanks, key, rest = simple.groups()
        else:
            matched = _DASH.match(bare)
            if matched is not None:
                lead, blanks, key, rest = matched.groups()
            else:
                matched = _KEY_LINE.match(bare)
                if matched is None:
                    raise _NotSimple
                (lead, key, rest), blanks = matched.groups(), None
        quoted = key[0] in "\"'"
        if quoted:
            key = key[1:-1]
        is_dash = blanks is not None
        if is_dash and lead == dash and blanks == gap:
            if entry is not None:
                if not _entry_done(entry):
                    raise _NotSimple
                yield entry, False
            entry = _Entry()
        elif is_dash or lead != indent or entry is None:
            raise _NotSimple
        if key in entry.values or not _key_ok(key, keys):
            raise _NotSimple
        if quoted:
            entry.quoted.append(key)
        if simple is not None:
            if not _resolves_to_str(rest):
                raise _NotSimple
            entry.values[key], entry.eol[key], entry.flow[key] = rest, "", False
        elif rest is None:
            if key != "projects":
                raise _NotSimple
            block = []
            entry.values[key], entry.eol[key] = block, ""
        else:
            value = _read_value(key, rest)
            if value is None:
                raise _NotSimple
            entry.values[key], entry.eol[key] = value
            entry.flow[key] = isinstance(value[0], list)
        entry.keys.append(key)
        entry.after[key] = []
        entry.raw.append(bare)
        last_key = key
    if entry is None or not _entry_done(entry):
        raise _NotSimple
    yield entry, True


def _entry_done(entry: _Entry) -> bool:
    """Check an entry read whole: no empty list, no lines after a flow list without an
    end-of-line comment."""
    if any(isinstance(v, list) and not v for v in entry.values.values()):
        return False
    # Lines after a flow list with no end-of-line comment go to the next key in ruamel.yaml,
    # which then leaves the entry in its order.
    return not any(entry.after[key] and entry.eol[key] == "" and isinstance(value, list)
                   and entry.flow.get(key, False) for key, value in entry.values.items())


def is_simple_publishers(text: str) -> bool:
    """Whether `text` is a simple publishers file (see `write_simple_publishers`), read one
    entry at a time: YAML whose top level is a mapping with a `publishers` list."""
    try:
        for _ in _read_simple(text):
            pass
    except _NotSimple:
        return False
    return True


def _comment_texts(text: str) -> Counter[str]:
    """The comments of a simple publishers file, as a check of the direct writer."""
    found: Counter[str] = Counter()
    for line in _lines(text):
        stripped = line.strip(" ")
        if stripped.startswith("#"):
            found[stripped] += 1
        elif " #" in line:  # (a quoted value may hold " #" too: then the counts differ)
            found[line[line.index(" #") + 1:].rstrip(" ")] += 1
    return found


def _digest(values: Mapping[str, str | list[str]]) -> int:
    """A hash of an entry's keys and values, to compare what was read with what was
    written without keeping either."""
    return hash(tuple(sorted((key, tuple(value) if isinstance(value, list) else value)
                             for key, value in values.items())))


def _document_markers(text: str) -> tuple[str, str, str]:
    """`text` as (the comment and blank lines above a `---` line, and that line; what
    follows, to a `...` line; the `...` line and the comment and blank lines after it):
    the round trip keeps the first and the last as they are. ("", text, "") without
    such lines."""
    head = 0
    if text.startswith(("---\n", "#", "\n")):
        position = 0
        while position < len(text):
            end = text.find("\n", position) + 1 or len(text)
            line = text[position:end].rstrip("\n")
            position = end
            if line == "---":
                head = end
                break
            if line and not line.startswith("#"):
                break
    tail = len(text)
    if "\n...\n" in text or text.startswith("...\n"):
        position = len(text)
        while position > head:
            start = text.rfind("\n", head, position - 1) + 1
            line = text[start:position].rstrip("\n")
            if line == "...":
                tail = start
                break
            if line.strip(" ") and not line.lstrip(" ").startswith("#"):
                break
            position = start
    if head == 0 and tail == len(text):
        return "", text, ""
    return text[:head], text[head:tail], text[tail:]


def format_simple_publishers(text: str, providers: Mapping[str, Provider],
                             seen: Callable[[dict[str, Any]], None] | None = None,
                             ) -> str | None:
    """`write_simple_publishers`, checked: its text must be canonical for
    `is_canonical_publishers`, which must read the same entries (the same keys, strings
    and lists, by their hashes) and the same comments; None when it is not (the caller
    then runs the round trip). A document's `---` line (and the comments above it) and its
    `...` line (and those after it) stay as they are. A file whose entries are flow
    mappings, one a line, is written by `_format_flow_entries`, a JSON file by
    `_format_json` (the first reads each line it writes back alike). `seen` is given each
    entry read back from the written text, as `is_canonical_publishers` gives them (not
    for flow mapping entries and JSON)."""
    prefix, text, suffix = _document_markers(text)
    written = _format_simple_body(text, providers, seen)
    if written is None or not (prefix or suffix):
        return written
    # (comment and blank lines: the round trip drops the blanks at their ends)
    return _BLANKS_AT_END.sub("", prefix) + written + _BLANKS_AT_END.sub("", suffix)


def _format_simple_body(text: str, providers: Mapping[str, Provider],
                        seen: Callable[[dict[str, Any]], None] | None = None) -> str | None:
    """`format_simple_publishers` of a text without document markers."""
    if "\n  - {" in text:
        return _format_flow_entries(text, providers, seen)
    if text.startswith("{"):
        written = _format_json(text, providers, seen)
        if written is None and not text.startswith('{\n'):
            written = _format_flow_document(text, providers, seen)
        return written
    digests = array("q")
    written = write_simple_publishers(text, providers, digests)
    if written is None:
        return None
    count = 0
    same = True

    def compare(entry: dict[str, Any]) -> None:
        """Each entry read back from the written text against the one read from the file."""
        nonlocal count, same
        same = same and count < len(digests) and _digest(entry) == digests[count]
        count += 1
        if seen is not None:
            seen(entry)

    if not is_canonical_publishers(written, providers, compare) or not same:
        return None
    if count != len(digests):
        return None
    if "#" in text and _comment_texts(text) != _comment_texts(written):
        return None
    return written


def write_simple_publishers(text: str, providers: Mapping[str, Provider],
                            digests: array[int] | None = None) -> str | None:
    """The canonical layout of a simple publishers file, written directly, one entry at a
    time: the text the full round trip of `tppolicy.tools.fmt` makes of it (the property
    tests compare the two on generated files); None for a file that is not simple (the
    caller then runs the round trip). `digests` gets each entry's `_digest`.

    Simple: comments at column 0, `publishers:` (or `"publishers":`, blanks after it), then
    entries of `key: value` lines (the entries' dashes at one indentation, the same blanks
    after each dash, keys under the first) whose keys are plain or quoted names (a quoted
    one that the formatter does not place, not the provider's, keeps its quotes: not
    simple) and whose values are strings, plain or quoted without escapes, and `projects`
    lists (flow, or block without comment lines inside, every item at one column; a block
    list with an end-of-line comment on an item is kept by the round trip, with its entry
    in its order: only an entry already canonical so is simple); comments on their own line
    at any column, end-of-line comments, blank lines; blanks at the ends of lines (dropped).
    """
    pieces: list[str] = []
    try:
        for part in _read_simple(text):
            if isinstance(part, list):
                pieces.append("".join(f"{line}\n" for line in part))
                continue
            entry, last = part
            pieces.append(_write_entry(entry, last, providers))
            if digests is not None:
                digests.append(_digest(entry.values))
    except _NotSimple:
        return None
    return "".join(pieces)


def _write_entry(entry: _Entry, last: bool, providers: Mapping[str, Provider]) -> str:
    """An entry in the canonical layout, with the comment lines after it; `_NotSimple` if
    a string would need an escape."""
    provider = entry.values.get("provider")
    order = key_order(entry.keys, provider, providers)
    if entry.quoted:
        # The round trip writes the keys it places (name, provider..., the provider's
        # fields) plain, and keeps the quotes of the others (then the text is not canonical)
        known = set(FIRST_KEYS)
        if isinstance(provider, str) and provider in providers:
            known.update(d.name for d in providers[provider].fields)
        if not known.issuperset(entry.quoted):
            raise _NotSimple
    lead: dict[str, list[str]] = {entry.keys[0]: []} | {
        key: [line.strip() for line in entry.after[previous]]
        for previous, key in zip(entry.keys, entry.keys[1:], strict=False)}
    after = entry.after[entry.keys[-1]]  # after the last entry: the lines as they are
    if not last:
        after = [line.strip() for line in after]
    out = [f"  {line}" if line else "" for line in lead[order[0]]]
    kept = [key for key, eols in entry.item_eol.items() if any(eols)]
    if kept and (order != entry.keys or kept != ["projects"]):
        raise _NotSimple  # the round trip keeps such an entry in its order: only a
        # canonical one is written here
    for position, key in enumerate(order):
        value = entry.values[key]
        if key in kept:
            assert isinstance(value, list)
            out.append(("  - " if position == 0 else "    ") + f"{key}:")
            for item, eol in zip(value, entry.item_eol[key], strict=True):
                out.append(f"      - {_write_scalar(item, in_flow=True)}"
                           + (f"  {eol}" if eol else ""))
        else:
            if isinstance(value, list):
                items = [_write_scalar(item, in_flow=True) for item in value]
                if any(item is None for item in items):
                    raise _NotSimple
                written: str | None = "[" + ", ".join(str(item) for item in items) + "]"
            else:
                written = _write_scalar(value, in_flow=False)
            if written is None:
                raise _NotSimple
            eol = entry.eol[key]
            out.append(("  - " if position == 0 else "    ") + f"{key}: {written}"
                       + (f"  {eol}" if eol else ""))
        if position + 1 < len(order):
            out += [f"    {line}" if line else "" for line in lead[order[position + 1]]]
        elif last:
            out += after
        else:
            out += [f"  {line}" if line else "" for line in after]
    if kept and out != entry.raw:
        raise _NotSimple
    return "".join(f"{line}\n" for line in out)


# ------------------------------------------------------------- flow mapping entries
_FLOW_ENTRY = re.compile(r"  - \{(.+)\}\Z")


def _read_flow_entry(body: str, keys: dict[str, bool], quoted: set[str] | None = None,
                     ) -> dict[str, str | list[str]] | None:
    """The keys and values of a one-line flow mapping entry (`body`: what is between its
    braces), keys plain (or double-quoted, when `quoted` is given: it gets those), values
    strings or (for `projects`) flow lists of strings, each `, ` between two pairs; None
    for anything else."""
    values: dict[str, str | list[str]] = {}
    position, end = 0, len(body)
    while True:
        colon = body.find(": ", position)
        if colon < 0:
            return None
        key = body[position:colon]
        if quoted is not None and key.startswith('"') and key.endswith('"') and len(key) > 2:
            key = key[1:-1]
            quoted.add(key)
        if key in values or not _key_ok(key, keys):
            return None
        position = colon + 2
        value: str | list[str]
        if body.startswith("[", position):
            if key != "projects":
                return None
            items: list[str] = []
            position += 1
            while True:
                read = _read_scalar(body[position:], ",]")
                if read is None:
                    return None
                items.append(read[0])
                position += read[1]
                if body.startswith("]", position):
                    position += 1
                    break
                if not body.startswith(", ", position):
                    return None
                position += 2
            value = items
        else:
            read = _read_scalar(body[position:], ",")
            if read is None:
                return None
            value, position = read[0], position + read[1]
        values[key] = value
        if position == end:
            return values
        if not body.startswith(", ", position):
            return None
        position += 2


def _write_flow_entry(values: Mapping[str, str | list[str]],
                      providers: Mapping[str, Provider]) -> str | None:
    """An entry as the round trip writes a one-line flow mapping entry (its keys in their
    order, its strings in their canonical style in flow context), or None."""
    parts: list[str] = []
    for key in key_order(list(values), values.get("provider"), providers):
        value = values[key]
        if isinstance(value, list):
            items = [_write_scalar(item, in_flow=True) for item in value]
            if any(item is None for item in items):
                return None
            parts.append(f"{key}: [" + ", ".join(str(item) for item in items) + "]")
        else:
            written = _write_scalar(value, in_flow=True)
            if written is None:
                return None
            parts.append(f"{key}: {written}")
    line = "  - {" + ", ".join(parts) + "}"
    return None if len(line) > _LONG_LINE else line


def _format_flow_entries(text: str, providers: Mapping[str, Provider],
                         seen: Callable[[dict[str, Any]], None] | None = None) -> str | None:
    """The canonical layout of a publishers file whose entries are flow mappings, one a
    line (`  - {name: a, provider: github, projects: [p], ...}`), written directly: comment
    lines at its top, `publishers:` (maybe quoted), comment or blank lines, then only entry
    lines, with no comment, no blank at their ends, no empty list, no quoted key; None for
    any other file (the round trip formats it). Each line written is read back to the same
    entry and written again to the same line."""
    if _UNUSUAL.search(text) or not text.endswith("\n"):
        return None
    lines = _lines(text)
    out: list[str] = []
    for number, line in enumerate(lines):
        line = line.rstrip(" ")
        out.append(line)
        if _PUBLISHERS.match(line):
            break
        if not _top_line(line, number):
            return None
    else:
        return None
    keys: dict[str, bool] = {}
    entries = 0
    for line in lines:
        if not entries and (not line.strip(" ") or line.lstrip(" ").startswith("#")):
            out.append(line.rstrip(" "))  # comment or blank lines under `publishers:`
            continue
        found = _FLOW_ENTRY.match(line)
        if found is None or len(line) > _LONG_LINE:
            return None
        values = _read_flow_entry(found.group(1), keys)
        if values is None:
            return None
        written = _write_flow_entry(values, providers)
        if written is None:
            return None
        if written != line:
            again = _FLOW_ENTRY.match(written)
            back = None if again is None else _read_flow_entry(again.group(1), keys)
            if back is None or back != values or _write_flow_entry(back, providers) != written:
                return None
        out.append(written)
        entries += 1
        if seen is not None:
            seen(dict(values))
    if not entries:
        return None
    return "".join(f"{line}\n" for line in out)


# ------------------------------------------------------------- JSON
_WIDTH = 4096  # the round trip's line width: past it, a flow collection goes on a new line
_FLOW_ITEM_ALIGN = 3  # the column of an entry's `{` that starts a line (sequence indent - 1)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members; `_NotSimple` for a key given twice (YAML refuses it)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _NotSimple
    return found


def _json_entries(text: str) -> list[dict[str, str | list[str]]] | None:
    """The entries of a JSON publishers file (`{"publishers": [{...}, ...]}`, any
    layout) whose strings hold no escape and no blank, keys are names and values strings
    or non-empty lists of strings (`projects`); None for anything else."""
    if "\\" in text or not text.endswith("}\n") or _UNUSUAL.search(text):
        return None
    try:
        data = json.loads(text, object_pairs_hook=_json_pairs)
    except (ValueError, RecursionError, _NotSimple):
        return None
    if not isinstance(data, dict) or list(data) != ["publishers"]:
        return None
    entries = data["publishers"]
    if not isinstance(entries, list) or not entries:
        return None
    keys: dict[str, bool] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not entry:
            return None
        for key, value in entry.items():
            if not _key_ok(key, keys):
                return None
            items = value if isinstance(value, list) and key == "projects" else [value]
            if not items or not all(isinstance(i, str) and i and " " not in i
                                    for i in items):
                return None
    return entries


class _FlowWriter:
    """Text as ruamel.yaml's emitter writes flow collections: a blank before a scalar or
    an opening bracket unless at a line's start or after an opening bracket; a new line
    (at column 0: the flow collections of a document at the top level have no indentation)
    before an item or key when the line is past the width (then an entry's `{` is moved
    to column 3, as after a dash)."""

    __slots__ = ("column", "parts", "whitespace")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.column = 0
        self.whitespace = True

    def put(self, text: str, blank: bool, opening: bool = False) -> None:
        """Write `text` (with a blank before it if `blank` and not after whitespace)."""
        if blank and not self.whitespace:
            text = " " + text
        self.parts.append(text)
        self.column += len(text)
        self.whitespace = opening

    def item(self, first: bool) -> None:
        """Before an item or key: the separator, and a new line past the width."""
        if not first:
            self.put(",", False)
        if self.column > _WIDTH:
            self.parts.append("\n")
            self.column = 0
            self.whitespace = True


def _format_json(text: str, providers: Mapping[str, Provider],
                 seen: Callable[[dict[str, Any]], None] | None = None) -> str | None:
    """The canonical layout of a JSON publishers file, as the round trip writes it: one
    flow mapping, `"publishers"` quoted as it is, the entries' keys in their order (plain
    if the formatter places them, else quoted as they are), their strings in their
    canonical style in flow context, lines broken past the width; None for a file
    `_json_entries` does not read. `seen` is given each entry."""
    entries = _json_entries(text)
    if entries is None:
        return None
    return _write_flow_document(_taken(entries), '"publishers"', providers, seen)


def _taken(entries: list[dict[str, str | list[str]]],
           ) -> Iterator[tuple[dict[str, str | list[str]], set[str] | None]]:
    """Each of `entries`, let go from the list as it is given (every key quoted)."""
    for number, entry in enumerate(entries):
        entries[number] = {}
        yield entry, None


def _write_flow_document(
        entries: Iterable[tuple[dict[str, str | list[str]], set[str] | None]], publishers: str,
        providers: Mapping[str, Provider], seen: Callable[[dict[str, Any]], None] | None = None,
        digests: array[int] | None = None) -> str | None:
    """`entries` as the round trip writes a publishers file that is one flow mapping
    (`publishers` the key's text; the keys the formatter does not place keep their quotes:
    each entry comes with those quoted in the file, or None when all are), or None if a
    string would need an escape. Each entry is let go once written, after `seen` has it;
    `digests` gets each entry's `_digest`."""
    out = _FlowWriter()
    out.put("{", True, opening=True)
    out.item(True)
    out.put(publishers, True)
    out.put(":", False)
    out.put("[", True, opening=True)
    chunks: list[str] = []
    for number, (entry, quoted) in enumerate(entries):
        if seen is not None:
            seen(entry)
        if digests is not None:
            digests.append(_digest(entry))
        out.item(number == 0)
        # (an item of a flow list that starts a line is aligned as if after a dash)
        out.put(" " * max(0, _FLOW_ITEM_ALIGN - out.column) + "{", True, opening=True)
        provider = entry.get("provider")
        known = set(FIRST_KEYS)  # written plain; the others keep their quotes
        if isinstance(provider, str) and provider in providers:
            known.update(d.name for d in providers[provider].fields)
        for position, key in enumerate(key_order(list(entry), provider, providers)):
            out.item(position == 0)
            plain = key in known or (quoted is not None and key not in quoted)
            out.put(key if plain else f'"{key}"', True)
            out.put(":", False)
            value = entry[key]
            if isinstance(value, list):
                out.put("[", True, opening=True)
                for at, item in enumerate(value):
                    out.item(at == 0)
                    written = _write_scalar(item, in_flow=True)
                    if written is None:
                        return None
                    out.put(written, True)
                out.put("]", False)
            else:
                written = _write_scalar(value, in_flow=True)
                if written is None:
                    return None
                out.put(written, True)
        out.put("}", False)
        chunks.append("".join(out.parts))
        out.parts.clear()
    out.put("]", False)
    out.put("}", False)
    return "".join(chunks) + "".join(out.parts) + "\n"


# ------------------------------------------------------------- one flow mapping
# Where the round trip's writer breaks a flow mapping's lines: after a ',' (then an entry's
# '{' that starts a line is moved to column 3) or an opening bracket.
_SINGLE_QUOTED = re.compile(r"(?:[:,] |\[)'")  # maybe a single-quoted string's start
_FLOW_BREAK = re.compile(r"([,{\[])\n(?:   (?=\{))?")


def _flow_document_entries(text: str) -> tuple[str, Iterator[tuple[
        dict[str, str | list[str]], set[str] | None]]] | None:
    """The text of the `publishers` key and the entries of a publishers file that is one
    flow mapping on lines as the round trip writes it (`{"publishers": [{name: a, ...},
    ...]}`, lines broken after a ',' or an opening bracket only): keys plain names (or
    quoted), values strings (plain, or double-quoted without escapes) or, for `projects`,
    flow lists of them, each `, ` between two items; each entry with its keys that are
    quoted, read one at a time (`_NotSimple` at one that is not so). None for a text
    that is not so."""
    if "#" in text or "\\" in text or _UNUSUAL.search(text):
        return None
    publishers = "publishers" if text.startswith("{publishers: [{") else '"publishers"'
    head = "{" + publishers + ": [{"
    if not text.startswith(head) or not text.endswith("}]}\n"):
        return None
    for line in _lines(text):
        if line.count('"') % 2:  # a quoted string would run over a line break
            return None
    flat = _FLOW_BREAK.sub(lambda found: ", " if found.group(1) == "," else found.group(1),
                           text[:-1])
    if "\n" in flat or "  " in flat or _SINGLE_QUOTED.search(flat):
        return None  # a line broken elsewhere (a plain string on two lines), blanks, a
        # single-quoted string (which may run over a line break)
    return publishers, _flow_document_items(flat, len(head), len(flat) - len("}]}"))


def _flow_document_items(flat: str, start: int, end: int) -> Iterator[tuple[
        dict[str, str | list[str]], set[str] | None]]:
    """The entries of `_flow_document_entries` (`flat`: its text on one line; the entries
    from `start` to `end`, without their first '{' and last '}')."""
    keys: dict[str, bool] = {}
    while True:
        # (a quoted string holding "}, {" leaves the entry before it with a quote not closed)
        stop = flat.find("}, {", start, end)
        quoted: set[str] = set()
        values = _read_flow_entry(flat[start:end if stop < 0 else stop], keys, quoted)
        if values is None or any('"' in item or " " in item for value in values.values()
                                 for item in (value if isinstance(value, list) else [value])):
            raise _NotSimple  # (a plain string holding a quote would hide a line break;
            # the round trip's writer may break a line at a string's blank, as at JSON's)
        yield values, quoted
        if stop < 0:
            return
        start = stop + len("}, {")


def _format_flow_document(text: str, providers: Mapping[str, Provider],
                          seen: Callable[[dict[str, Any]], None] | None = None) -> str | None:
    """The canonical layout of a publishers file that is one flow mapping, as `fmt`
    writes a JSON file (`_flow_document_entries`), written directly, one entry at a time:
    read back, the text written has the same entries; None for any other file (the round
    trip formats it)."""
    read = _flow_document_entries(text)
    if read is None:
        return None
    publishers, entries = read
    digests = array("q")
    try:
        written = _write_flow_document(entries, publishers, providers, seen, digests)
        again = None if written is None else _flow_document_entries(written)
        if again is None or again[0] != publishers:
            return None
        count = 0
        for values, _ in again[1]:
            if count >= len(digests) or _digest(values) != digests[count]:
                return None
            count += 1
    except _NotSimple:
        return None
    return written if count == len(digests) else None
