"""`tppolicy fmt`: one canonical layout for policy files and publishers files.

Policy files (`*.tpp`) are printed by `_format.format_policy_with_comments`: the layout of
`format_policy`, with every comment kept next to its item. Publishers files (`*.yaml`,
`*.yml` with a top-level `publishers:` list) are rewritten with `ruamel.yaml` in round-trip
mode, which keeps comments (pyyaml drops them):

* the keys of each entry in a fixed order: `name`, `provider`, `projects`, `pending_project`,
  the provider's fields in the order its `fields { ... }` block declares them, then any
  other key in its original order. Comments move with the key they are on or above.
* strings that YAML would read as another type ("65", "yes", "1.0", "") in double quotes,
  other strings plain where YAML allows it (else double-quoted). A value that is plain in
  the file keeps its text, so it keeps its meaning for every YAML reader.
* `projects` as a flow list: `projects: [a, b]`.
* indentation: 2 for mappings, list dashes indented by 2 under their key.

An entry whose structure is not a plain mapping of scalars (anchors or aliases in the file, a
nested mapping, comments inside a block list, a block scalar) keeps its key order; its strings
are still quoted canonically. An empty block scalar (`note: >`) is the empty string, `""`.

Nothing is written unless it is safe: the formatted text must parse back to the same policy
tree (policy files), or load to the same data and the same publishers, with the same
errors if the file has errors (publishers files), and keep every comment; otherwise
`FormatterError` is raised (a bug in the formatter: the file is left alone).

The library never prints; the command line (`_cli/fmt.py`) reports.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.compat import ordereddict
from ruamel.yaml.emitter import Emitter
from ruamel.yaml.error import CommentMark, MarkedYAMLError
from ruamel.yaml.error import YAMLError as RuamelYAMLError
from ruamel.yaml.events import MappingEndEvent
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.tokens import CommentToken

from tppolicy.decide.publishers import (
    NotPlain,
    PlainCheck,
    PublisherEntry,
    iter_plain_publishers,
    load_publishers_text,
)
from tppolicy.errors import ConfigError, Diagnostic, PolicySyntaxError, Span, TppolicyError
from tppolicy.language.ast import Provider
from tppolicy.language.parse import parse_policy_outline
from tppolicy.language.printer import format_policy_with_comments
from tppolicy.tools.fmt_canonical import (
    format_simple_publishers,
    is_canonical_publishers,
    is_simple_publishers,
    key_order,
    needs_quotes,
    plain_allowed,
)
from tppolicy.tools.fmt_diff import iter_unified_diff_texts

__all__ = [
    "POLICY_SUFFIXES",
    "YAML_SUFFIXES",
    "FileResult",
    "FormatterError",
    "collect_files",
    "format_file",
    "format_policy_text",
    "format_publishers_text",
    "is_publishers_text",
    "iter_unified_diff",
    "unified_diff",
    "write_file",
]

POLICY_SUFFIXES = (".tpp",)
YAML_SUFFIXES = (".yaml", ".yml")

_ENTRY_KEY_INDENT = " " * 4  # "  - " then the keys
_ENTRY_INDENT = " " * 2  # the dash of an entry


class FormatterError(Exception):
    """The formatter would change what a file means or lose a comment: a bug, not bad input.

    The file is left as it is.
    """


# ----------------------------------------------------------------------- policy files
def _comment_texts(texts: Iterable[str]) -> Counter[str]:
    return Counter(t.strip() for t in texts)


def format_policy_text(text: str, source: str = "<policy>") -> str:
    """A policy file in the canonical layout, comments kept; `PolicySyntaxError` if it
    does not parse, `FormatterError` if the result would not mean the same."""
    if _compiled_in_layout(text, source):
        return text
    return _format_policy(text, source)


def _compiled_in_layout(text: str, source: str) -> bool:
    """Is `text` a compiled policy whose publisher blocks are all as `compile` printed
    them (`CompiledReading`), laid out as fmt lays it out? Each such block is in the
    canonical layout already (it is the printer's text, and holds no comment), and so is
    a run of them one blank line apart (fmt joins blocks so); the file is when it is with
    each run cut to its first block's first two lines and a brace (a block fmt prints as
    it is): the layout around the runs (blank lines, comments) is fmt's to judge, on a
    text of a few lines, not the parser's 34 a publisher."""
    from tppolicy.decide.recognize import CompiledReading, Unrecognized
    from tppolicy.language.providers import load_providers

    reading = CompiledReading.of(text, source, load_providers())
    if reading is None:
        return False
    parts: list[str] = []
    position = 0
    try:
        for block in reading.blocks():
            if parts and text[position:block.start] == "\n\n":
                position = block.stop  # one blank line after the block before: as fmt puts
                continue               # it, and the blocks' stub stands for both
            head = text.index("\n", text.index("\n", block.start) + 1) + 1
            parts += [text[position:block.start], text[block.start:head], "}"]
            position = block.stop
    except (Unrecognized, TppolicyError):
        return False
    parts.append(text[position:])
    stub = "".join(parts)
    try:
        return _format_policy(stub, source) == stub
    except (TppolicyError, FormatterError):
        return False


def _format_policy(text: str, source: str) -> str:
    """`format_policy_text` by the parser."""
    policy, outline, comments = parse_policy_outline(text, source)
    formatted = format_policy_with_comments(policy, outline, comments)
    try:
        again, _, kept = parse_policy_outline(formatted, source)
    except PolicySyntaxError as exc:
        raise FormatterError(f"the formatted text does not parse: {exc}") from None
    if again != policy:
        raise FormatterError("the formatted text would parse to a different policy")
    if _comment_texts(c.text for c in kept) != _comment_texts(c.text for c in comments):
        raise FormatterError("the formatted text would lose or change a comment")
    return formatted


# ------------------------------------------------------------------- publishers files
class _NullWord:
    """A null value written as a word (`~`, `null`, `Null`, `NULL`): ruamel.yaml would write
    every null as nothing, and the publishers loader words the two differently ("found
    null", "found nothing")."""

    __slots__ = ("word",)

    def __init__(self, word: str) -> None:
        self.word = word


class _Representer(RoundTripRepresenter):
    """ruamel.yaml's round-trip representer, which writes a `_NullWord` as its word."""


def _represent_null_word(representer: Any, data: _NullWord) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", data.word)


_Representer.add_representer(_NullWord, _represent_null_word)


class _Emitter(Emitter):
    """ruamel.yaml's emitter, which ends the line of an empty flow mapping (`- {}`) in block
    context for good.

    After a comment (`publishers:  # c`), ruamel.yaml's own keeps the flag that the next
    key follows `- ` on the same line past the `{}`: a block mapping written after it came
    out on one line (`- provider: github name: pub-1`, not YAML).
    """

    def expect_first_flow_mapping_key(self) -> None:
        """As ruamel.yaml's, and after an empty mapping at block level the next key starts
        its own line."""
        empty = isinstance(self.event, MappingEndEvent)
        super().expect_first_flow_mapping_key()
        if empty and self.flow_level == 0:
            self.no_newline = False
# the word, after the anchor or tag it may have (`&a NULL`: ruamel.yaml keeps neither)
_NULL_WORD = re.compile(r"(?:[&!][^ \t,\[\]{}]*[ \t]+)*(~|null|Null|NULL)(?=[ ,\]}#]|\Z)")


_NULL_TAGGED = re.compile(r"(?:&[^ \t,\[\]{}]*[ \t]+)?(?:!!null|!<tag:yaml\.org,2002:null>)"
                          r"(?:[ \t]+&[^ \t,\[\]{}]*)?[ \t]+[^ \t#,\]}]")


def _null_word(lines: Sequence[str], position: tuple[int, int] | None) -> _NullWord | None:
    """The word of the null value at `position` (line, column) of the text, or None for an
    empty one (its position is then the next token's) or an unknown position (ruamel.yaml
    keeps none for the items of a tagged list: `!!python/none` then `- ~`)."""
    if position is None:
        return None
    line, column = position
    if line >= len(lines):
        return None
    found = _NULL_WORD.match(lines[line], column)
    if found:
        return _NullWord(found.group(1))
    if _NULL_TAGGED.match(lines[line], column):
        return _NullWord("null")  # `!!null "x"`: written as nothing, its comment moved
    return None


def _keep_null_words(node: Any, lines: Sequence[str], seen: set[int] | None = None) -> None:
    """Replace each null value in `node` (a mapping or a list, and those in it, at any depth)
    written as a word by a `_NullWord`, so that it is written back as that word (outside
    the entries too: the next run read an empty value there, and wrote its comment
    elsewhere)."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return  # an alias of a list or mapping already seen
    seen.add(id(node))
    if isinstance(node, CommentedMap):
        for key in list(node.keys()):
            value = node[key]
            if value is None:
                if key not in node.lc.data:
                    continue  # merged in (`<<: *a`): written where its anchor is
                word = _null_word(lines, node.lc.value(key))
                if word is not None:
                    ordereddict.__setitem__(node, key, word)
            elif isinstance(value, (CommentedMap, CommentedSeq)):
                _keep_null_words(value, lines, seen)
    elif isinstance(node, CommentedSeq):
        for i, item in enumerate(node):
            if item is None:
                word = _null_word(lines, node.lc.item(i))
                if word is not None:
                    list.__setitem__(node, i, word)
            elif isinstance(item, (CommentedMap, CommentedSeq)):
                _keep_null_words(item, lines, seen)


def _yaml() -> YAML:
    rt = YAML(typ="rt")
    rt.Representer = _Representer
    rt.Emitter = _Emitter
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096  # never fold a long line
    return rt


def _yaml_diagnostic(exc: Exception, source: str) -> Diagnostic:
    line = column = 1
    message = "invalid YAML"
    if isinstance(exc, (MarkedYAMLError, yaml.MarkedYAMLError)):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        problem = exc.problem or exc.context
        if problem:
            message = f"invalid YAML: {problem}"
    elif isinstance(exc, yaml.reader.ReaderError):
        message = f"invalid YAML: {exc.reason}"
    return Diagnostic(message, Span(source, line, column, line, column + 1))


def _load_rt(text: str, source: str) -> Any:
    try:
        return _yaml().load(text)
    except (RuamelYAMLError, yaml.YAMLError) as exc:
        raise ConfigError([_yaml_diagnostic(exc, source)], text) from None
    except RecursionError:
        raise ConfigError([Diagnostic("the YAML is nested too deeply",
                                      Span(source, 0, 0, 0, 0))], text) from None
    except Exception as exc:  # ruamel.yaml's own bugs (`!!set` on a scalar): bad input
        raise ConfigError([Diagnostic(f"invalid YAML: {type(exc).__name__}: {exc}",
                                      Span(source, 0, 0, 0, 0),
                                      hint="remove explicit tags such as !!set")], text) from None


def _refuse_unbounded(text: str, source: str) -> None:
    """Refuse, before any round trip, what the publishers loader refuses: recursive aliases
    and alias bombs (the same limit as `check`, `lint` and `serve load`; ruamel.yaml
    and the comparisons below walk every expanded value)."""
    from tppolicy.readers.yaml import compose_yaml

    compose_yaml(text, source, ConfigError)


def _plain_data(text: str, source: str) -> Any:
    """The document as the project's loader (pyyaml, YAML 1.1) reads it."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            return yaml.load(text, Loader=loader)  # CSafeLoader: the safe loader, in C
        except Exception:  # pyyaml's own parser words the error
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_diagnostic(exc, source)], text) from None
    except RecursionError:
        raise ConfigError([Diagnostic("the YAML is nested too deeply",
                                      Span(source, 0, 0, 0, 0))], text) from None


def _typed(value: Any) -> Any:
    """`value` with every scalar tagged by its type: True and 1 differ, as do 1 and 1.0."""
    if isinstance(value, dict):
        return ("map", tuple(sorted(((repr(_typed(k)), _typed(v)) for k, v in value.items()),
                                    key=lambda kv: kv[0])))
    if isinstance(value, list):
        return ("seq", tuple(_typed(v) for v in value))
    return (type(value).__name__, repr(value))


def is_publishers_text(text: str) -> bool:
    """Whether `text` is YAML whose top level is a mapping with a `publishers` list.

    A simple publishers file is told line by line (`is_simple_publishers`), any other
    text by loading it."""
    if is_simple_publishers(text):
        return True
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("publishers"), list)


_NULL_TAG = "tag:yaml.org,2002:null"
_NULL_TEXT = re.compile(r"(~|null|Null|NULL)?\Z")


def _is_null_event(event: yaml.ScalarEvent) -> bool:
    if event.tag == _NULL_TAG:
        return True
    return (event.tag in (None, "!") and not event.style and event.implicit[0]
            and _NULL_TEXT.match(event.value) is not None)


def _has_aliases(text: str) -> bool:
    """Whether the round trip writes an alias: one to a null value is written as a null
    (ruamel.yaml keeps no anchor on a null), so it does not count; else the next run,
    which no longer sees it, would reorder the keys the first run kept in their order."""
    if "*" not in text:  # an alias starts with '*'
        return False
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # (the text composed already)
    null_anchors: set[str] = set()
    for event in yaml.parse(text, loader):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in null_anchors:
                return True
        elif isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            if isinstance(event, yaml.ScalarEvent) and _is_null_event(event):
                null_anchors.add(event.anchor)
            else:
                null_anchors.discard(event.anchor)  # an anchor defined again
    return False


_RESOLVER = VersionedResolver()


def _not_str_plain(value: str) -> bool:
    """Whether ruamel.yaml would read `value`, written plain, as another type than a string
    (`1e3`): a string it holds as plain then had a tag (`!!str 1e3`), and its writer would
    quote it its own way, which the next run quoted again (not idempotent)."""
    tag = _RESOLVER.resolve(ScalarNode, value, (True, False))
    return bool(tag != "tag:yaml.org,2002:str")


def _anchored(value: Any) -> bool:
    """Whether `value` (from the round trip) carries an anchor (`&a`)."""
    anchor = getattr(value, "yaml_anchor", None)
    return callable(anchor) and anchor() is not None


def _canonical_string(value: Any, in_flow: bool) -> Any:
    """A string in its canonical style; any other value as it is.

    A quoted string is written plain where it may be, else double-quoted (unless it has an
    anchor: then it is kept as it is, with the aliases to it). A plain one keeps
    its text (so its meaning for every YAML reader), unless the emitter cannot write it
    plain where it now is (`---x`, or `a,b` moved into a flow list): then it is
    double-quoted too, as the emitter would otherwise quote it its own way.
    """
    if _anchored(value):
        return value  # a new string would lose its anchor, and its aliases their target
    if isinstance(value, (SingleQuotedScalarString, DoubleQuotedScalarString)):
        text = str(value)
        if needs_quotes(text, in_flow):
            return DoubleQuotedScalarString(text)
        return text
    if type(value) is str and (not plain_allowed(value, in_flow) or _not_str_plain(value)):
        return DoubleQuotedScalarString(value)
    return value  # plain, block scalars, numbers...: their text is their meaning


def _empty_block_scalar(entry: CommentedMap, key: Any,
                        replaced: dict[int, tuple[Any, Any]]) -> bool:
    """Write the empty block scalar `entry[key]` (`note: >`, the empty string) as `""`,
    its header's comment (`note: >  # why`) at the end of its line and the comment lines
    after it under it. False if `entry[key]` is not an empty block scalar.

    ruamel.yaml writes the comments after an empty block scalar at column 1, and the
    next run moved them again: formatting was not idempotent. An anchored one keeps its
    anchor; `replaced` (id of the old string: the old string, kept alive so that its id is
    not reused, and the new one) tells where its aliases are.
    """
    value = entry[key]
    if not isinstance(value, (FoldedScalarString, LiteralScalarString)) or str(value):
        return False
    new = replaced[id(value)][1] if id(value) in replaced else DoubleQuotedScalarString("")
    anchor = value.yaml_anchor()
    if anchor is not None and id(value) not in replaced:
        new.yaml_set_anchor(anchor.value, always_dump=True)
        replaced[id(value)] = (value, new)
    ordereddict.__setitem__(entry, key, new)
    slots = entry.ca.items.get(key)
    if slots is None:
        return True
    header = slots[3] if len(slots) > 3 else None
    after = slots[2]
    # After a block scalar, the comment token holds only the lines below it.
    below = after.value if isinstance(after, CommentToken) else ""
    if header:
        eol = " ".join(str(h).strip() for h in header)
        text = f" {eol}\n{below}"
    elif below:
        text = below if below.startswith("\n") else "\n" + below
    else:
        text = ""
    slots[2] = CommentToken(text, CommentMark(0)) if text else None
    if len(slots) > 3:
        slots[3] = None
    return True


def _replace_aliased(node: Any, replaced: Mapping[int, tuple[Any, Any]],
                     seen: set[int]) -> None:
    """Put `replaced[id(value)][1]` in place of each `value` in `node` (at any depth) that is
    there: the other uses (aliases) of an anchored value that was rewritten."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, CommentedMap):
        for key in list(node.keys()):
            value = node[key]
            if id(value) in replaced:
                ordereddict.__setitem__(node, key, replaced[id(value)][1])
            elif isinstance(value, (CommentedMap, CommentedSeq)):
                _replace_aliased(value, replaced, seen)
    elif isinstance(node, CommentedSeq):
        for i, item in enumerate(node):
            if id(item) in replaced:
                list.__setitem__(node, i, replaced[id(item)][1])
            elif isinstance(item, (CommentedMap, CommentedSeq)):
                _replace_aliased(item, replaced, seen)


def _indent_after_block_scalars(mapping: CommentedMap, indent: str,
                                last_indent: str | None = None, aliases: bool = True) -> None:
    """Indent the comment lines after each block scalar of `mapping` (and of the block
    mappings in it) as the keys beside it (`indent`), or by `last_indent` after the last
    key (an entry's: as the comments between entries): ruamel.yaml writes them at their
    old column, and where the block scalar's text is now indented less (`- ` was at
    column 4, now 2), the text took them in (its data changed). With `aliases` in the
    document, an anchored one is left as it is (an alias shares its comment tokens)."""
    keys = list(mapping.keys())
    for key, value in mapping.items():
        if isinstance(value, (FoldedScalarString, LiteralScalarString)):
            if value and not (aliases and _anchored(value)):
                last = key == keys[-1] and last_indent is not None
                _indent_after_block_scalar(mapping, key, last_indent or indent if last else indent)
        elif isinstance(value, CommentedMap) and not value.fa.flow_style():
            _indent_after_block_scalars(value, indent + " " * 2, aliases=aliases)


def _indent_after_block_scalar(entry: CommentedMap, key: Any, indent: str) -> None:
    """Indent the comment lines after the block scalar `entry[key]` by `indent`."""
    slots = entry.ca.items.get(key)
    token = slots[2] if slots else None
    if not isinstance(token, CommentToken):
        return
    lines = token.value.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not all(not line.strip() or line.strip().startswith("#") for line in lines):
        return
    text = "".join(f"{indent}{line.strip()}\n" if line.strip() else "\n" for line in lines)
    slots[2] = CommentToken(text, CommentMark(0))


def _claim_comments_below(entry: CommentedMap, key: Any) -> None:
    """Make the comments after the empty value of `key`, which ruamel.yaml keeps above the
    next key, the comments after `key` (its end-of-line comment and the lines below it).

    Used when the empty value is written as text (`key: !<...str>` as `key: ""`): the next
    run reads those comments after it, and it reordered the keys the first run kept in
    their order (formatting was not idempotent).
    """
    keys = list(entry.keys())
    at = keys.index(key)
    slots = entry.ca.items.get(keys[at + 1]) if at + 1 < len(keys) else None
    own = entry.ca.items.get(key)
    if not slots or not slots[1] or (own is not None and any(s is not None for s in own)):
        return
    tokens = slots[1]
    if not all(isinstance(t, CommentToken) for t in tokens):
        return
    line = entry.lc.key(key)[0]
    text = ""
    for number, token in enumerate(tokens):
        if number == 0 and token.start_mark.line == line:
            text = f" {token.value.strip()}\n"  # at the end of the key's line
            continue
        if not text:
            text = "\n"
        text += "".join(f"{' ' * token.column}{part.strip()}\n" if part.strip() else "\n"
                        for part in token.value.removesuffix("\n").split("\n"))
    entry.ca.items[key] = [None, None, CommentToken(text, CommentMark(0)), None]
    slots[1] = None


def _split_comment(token: Any) -> tuple[str, list[str]] | None:
    """A comment token after a value: the comment at the end of the value's line, and the
    lines that follow it (comments, "" for a blank line). None if it is not of that form."""
    if token is None:
        return "", []
    if not isinstance(token, CommentToken):
        return None
    value: str = token.value
    if value.startswith("\n"):
        eol, rest = "", value[1:]
    else:
        first, newline, rest = value.partition("\n")
        eol = first.strip()
        if not eol.startswith("#") or not newline:
            return None
    lines = rest.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    stripped = [line.strip() for line in lines]
    if any(line and not line.startswith("#") for line in stripped):
        return None
    return eol, stripped


def _value_comment(entry: CommentedMap, key: Any) -> tuple[str, list[str]] | None:
    """The comments after `entry[key]`, or None if they are not where a simple entry has
    them (then the entry is left in its order)."""
    slots = entry.ca.items.get(key)
    if slots is not None and any(s is not None for i, s in enumerate(slots) if i != 2):
        return None
    token = slots[2] if slots is not None else None
    value = entry[key]
    if isinstance(value, CommentedSeq):
        if key != "projects" or any(isinstance(v, (CommentedMap, CommentedSeq))
                                    for v in value):
            return None
        if value.fa.flow_style():
            if value.ca.items or value.ca.end:
                return None
            if value.ca.comment:
                token = value.ca.comment[0]
                if any(c is not None for c in value.ca.comment[1:]):
                    return None
        else:
            if value.ca.comment or value.ca.end or token is not None:
                return None
            last = len(value) - 1
            for index, slots_ in value.ca.items.items():
                if index != last or any(s is not None for s in slots_[1:]):
                    return None
            token = value.ca.items[last][0] if last in value.ca.items else None
            found = _split_comment(token)
            if found is None or found[0]:
                return None  # a comment on the last item: keep the block list
            return found
    elif isinstance(value, CommentedMap):
        return None
    return _split_comment(token)


def _comment_token(eol: str, lines: Sequence[str], indent: str | None) -> CommentToken | None:
    if not eol and not lines:
        return None
    text = f" {eol}\n" if eol else "\n"
    for line in lines:
        text += (line if indent is None or not line else indent + line) + "\n"
    return CommentToken(text, CommentMark(0))


def _reorder(entries: CommentedSeq, index: int, order: list[Any], last_entry: bool,
             raw_trailer: list[str]) -> bool:
    """Put the keys of `entries[index]` in `order`, moving each key's comments with it.

    False (and the entry unchanged) when its comments are not where a simple entry has
    them. Comments above a key that becomes the first go above the entry's dash.
    """
    entry = entries[index]
    keys = list(entry.keys())
    if entry.ca.comment or entry.ca.end or getattr(entry, "merge", None):
        return False
    if any(isinstance(v, (FoldedScalarString, LiteralScalarString)) for v in entry.values()):
        return False  # moved, a block scalar's text and the comments after it would change
    found: dict[Any, tuple[str, list[str]]] = {}
    for key in keys:
        comment = _value_comment(entry, key)
        if comment is None:
            return False
        found[key] = comment
    eol = {k: found[k][0] for k in keys}
    lead: dict[Any, list[str]] = {keys[0]: []}
    for previous, key in itertools.pairwise(keys):
        lead[key] = found[previous][1]
    trailer = found[keys[-1]][1]
    if last_entry:
        trailer = raw_trailer or trailer
    values = {k: entry[k] for k in keys}
    for key in keys:
        del entry[key]
    entry.ca.items.clear()
    for key in order:
        value = values[key]
        if isinstance(value, CommentedSeq):
            value.ca.items.clear()
            value.ca.comment = None
            value.fa.set_flow_style()
        entry[key] = value
    if lead[order[0]]:
        above = CommentToken("".join(f"{_ENTRY_INDENT}{line}\n" if line else "\n"
                                     for line in lead[order[0]]), CommentMark(0))
        slots = entries.ca.items.setdefault(index, [None, None, None, None])
        slots[1] = [*(slots[1] or []), above]
    for i, key in enumerate(order):
        if i + 1 < len(order):
            token = _comment_token(eol[key], lead[order[i + 1]], _ENTRY_KEY_INDENT)
        else:
            token = _comment_token(eol[key], trailer, None if last_entry else _ENTRY_INDENT)
        if token is None:
            continue
        entry.ca.items[key] = [None, None, token, None]
        if isinstance(entry[key], CommentedSeq):
            entry[key].ca.comment = [token, None]
    return True


def _indent_comments_above(entries: CommentedSeq, index: int) -> None:
    """Indent the comment lines ruamel.yaml puts above `entries[index]` (those after a
    flow list that ends the entry before, which it keeps at their column) as the comments
    between two entries are indented: else the next run, when the keys have moved, indents
    them, and formatting twice would not give the same text."""
    slots = entries.ca.items.get(index)
    if not slots or not slots[1]:
        return
    tokens = []
    for token in slots[1]:
        lines = token.value.split("\n") if isinstance(token, CommentToken) else None
        if lines is None or not all(not t.strip() or t.strip().startswith("#") for t in lines):
            return
        if lines[-1] == "":
            lines.pop()
        tokens.append(CommentToken("".join(f"{_ENTRY_INDENT}{t.strip()}\n" if t.strip()
                                           else "\n" for t in lines), CommentMark(0)))
    slots[1] = tokens


def _raw_lines(entry: CommentedMap) -> list[str]:
    """The lines after the last entry's last value, as written (comments at the end of the
    file keep their indentation)."""
    keys = list(entry.keys())
    value = entry[keys[-1]]
    if isinstance(value, CommentedSeq) and not value.fa.flow_style():
        slots = value.ca.items.get(len(value) - 1)
        token = slots[0] if slots else None
    elif isinstance(value, CommentedSeq) and value.ca.comment:
        token = value.ca.comment[0]
    else:
        slots = entry.ca.items.get(keys[-1])
        token = slots[2] if slots else None
    if not isinstance(token, CommentToken):
        return []
    value_text: str = token.value
    rest = value_text[1:] if value_text.startswith("\n") else value_text.partition("\n")[2]
    lines = rest.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip() for line in lines]


def _all_comments(node: Any) -> Counter[str]:
    """Every comment line in a round-trip document (each token once), block scalar
    headers' comments (`note: >  # why`) included."""
    seen: set[int] = set()
    texts: list[str] = []

    def tokens(value: Any) -> Iterable[Any]:
        if isinstance(value, (CommentToken, str)):  # str: a block scalar header's comment
            yield value
        elif isinstance(value, list):
            for item in value:
                yield from tokens(item)

    def walk(value: Any) -> None:
        ca = getattr(value, "ca", None)
        if ca is not None:
            for slot in (ca.comment, ca.end, *ca.items.values()):
                for token in tokens(slot):
                    if id(token) in seen:
                        continue
                    seen.add(id(token))
                    text = token if isinstance(token, str) else token.value
                    texts.extend(line.strip() for line in text.split("\n")
                                 if line.strip().startswith("#"))
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return Counter(texts)


def _scanned_comments(text: str) -> Counter[str]:
    """Every comment in the YAML `text`, told by its scanner: a `#` after a space or at the
    start of a line that no token covers, to the end of its line. Unlike `_all_comments`
    it sees the comments that ruamel.yaml's round trip drops when it loads a document
    (inside a `!!set`), and it reads the text as written, not ruamel.yaml's view of it."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spans = []
    for token in yaml.scan(text, loader):
        start = token.start_mark.index
        if isinstance(token, yaml.ScalarToken) and token.style in ("|", ">"):
            # a block scalar's header line (`>-  # why`) may end with a comment
            header_end = text.find("\n", start)
            start = token.end_mark.index if header_end == -1 else header_end
        spans.append((start, token.end_mark.index))
    spans.sort()
    found: list[str] = []
    at = 0  # spans[at:] may still cover a '#' from here on
    position = text.find("#")
    while position != -1:
        while at < len(spans) and spans[at][1] <= position:
            at += 1
        # tokens do not overlap: only the first one ending after the '#' may cover it
        covered = at < len(spans) and spans[at][0] <= position
        if not covered and (position == 0 or text[position - 1] in " \t\n"):
            end = text.find("\n", position)
            end = len(text) if end == -1 else end
            found.append(text[position:end].strip())
            position = text.find("#", end)
        else:
            position = text.find("#", position + 1)
    return Counter(found)


_BLANKS_AT_END = re.compile(r"[ \t]+$", re.MULTILINE)
_NEXT_TEXT = re.compile(r"^[ \t]*[^ \t\r\n]", re.MULTILINE)  # a line with text


def _without_blanks_after_comments(text: str) -> str:
    """`text` without the blanks at the ends of its lines that are outside any scalar
    (and the lines of blanks after a block scalar, which may be its content): after a
    comment, a value, or nothing. ruamel.yaml's round trip kept some and dropped others,
    and the next run did otherwise (formatting was not idempotent: a comment after an
    empty sequence item, `- #x  `, is moved to a line of its own with its blanks). `text`
    as it is if it does not scan."""
    if _BLANKS_AT_END.search(text) is None:
        return text
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spans = []
    try:
        for token in yaml.scan(text, loader):
            if isinstance(token, yaml.ScalarToken):
                end = token.end_mark.index
                if token.style in ("|", ">"):
                    found = _NEXT_TEXT.search(text, end)
                    end = len(text) if found is None else found.start()
                spans.append((token.start_mark.index, end))
    except yaml.YAMLError:
        return text
    out = []
    at = 0  # spans[at:] end after the line being read
    start = 0
    for line in text.splitlines(keepends=True):
        end = start + len(line)
        while at < len(spans) and spans[at][1] <= start:
            at += 1
        body = line.rstrip("\r\n")
        kept = body.rstrip(" \t")
        if kept != body:
            tail = start + len(kept)  # the blanks at the line's end, from here
            inside = False
            for span_start, span_end in spans[at:]:
                if span_start >= start + len(body):
                    break
                if span_end > tail:
                    inside = True
                    break
            if not inside:
                line = kept + line[len(body):]
        out.append(line)
        start = end
    return "".join(out)


_START_LINE = re.compile(r"---(?:[ \t]+[!&][^ \t#]*)*[ \t]*(?:#.*)?\Z")


def _document_frame(text: str) -> tuple[str, str, str]:
    """`text` as (what comes before its document's content: directives, comments and the
    `---` line; the content; the `...` line and what follows it). ruamel.yaml's round
    trip drops the lines before `---` and after `...` (their comments were lost), so
    they are kept as they are, around the formatted content. The content is preceded by
    as many blank lines as the first part has lines, so positions in it stay the file's.
    ("", text, "") for a document without those markers (or with content on the `---`
    line)."""
    if "---" not in text and "..." not in text:
        return "", text, ""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    start = end = None
    try:
        for event in yaml.parse(text, loader):
            if isinstance(event, yaml.DocumentStartEvent):
                if start is not None:
                    return "", text, ""  # several documents: the loader refuses them
                start = event
            elif isinstance(event, yaml.DocumentEndEvent):
                end = event
    except yaml.YAMLError:
        return "", text, ""  # the round trip's reader words the error
    head = 0
    if start is not None and start.explicit and start.end_mark is not None:
        line_start = text.rfind("\n", 0, start.end_mark.index) + 1
        line_end = text.find("\n", line_start)
        line_end = len(text) if line_end == -1 else line_end
        if not _START_LINE.match(text, line_start, line_end):
            return "", text, ""
        head = min(line_end + 1, len(text))
    tail = len(text)
    if end is not None and end.explicit and end.start_mark is not None:
        tail = text.rfind("\n", 0, end.start_mark.index) + 1
    if head == 0 and tail == len(text):
        return "", text, ""
    prefix = text[:head]
    return prefix, "\n" * prefix.count("\n") + text[head:tail], text[tail:]


def _refuse_tags(text: str, source: str) -> None:
    """`ConfigError` at the first explicit tag (`!`, `!!str`, `!!set`...) or alias (`*a`)
    of `text`, if it has one: the round trip's reader does not read every tag as the loader
    does (an empty `!` is the empty string for one, null for the other), and its writer
    fails on some aliased values with comments; so a file with tags or aliases whose
    formatted text would not mean the same is refused as input it cannot format, not
    called a bug of the formatter. A publishers file needs neither."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for event in yaml.parse(text, loader):
        tag = getattr(event, "tag", None)
        if isinstance(event, yaml.AliasEvent):
            found, hint = f"the alias '*{event.anchor}'", "write the value it stands for"
        elif isinstance(event, yaml.NodeEvent) and tag is not None:
            found, hint = f"the explicit YAML tag {tag!r}", "remove the tag"
        else:
            continue
        mark = event.start_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise ConfigError([Diagnostic(
            f"tppolicy fmt cannot format this file without changing what it means: "
            f"found {found}, which it cannot keep as it is",
            Span(source, line, column, line, column + 1),
            hint=f"{hint} (a publishers file needs no tags or aliases), then run fmt "
                 "again")], text)


def _publishers_result(text: str, source: str, providers: Mapping[str, Provider],
                       ) -> tuple[str, tuple[Any, ...]]:
    """What `load_publishers_text` makes of `text`: its entries without their spans, or its
    error messages."""
    try:
        entries = load_publishers_text(text, source, providers)
    except ConfigError as exc:
        return "error", tuple(sorted((d.path or "", d.message) for d in exc.diagnostics))
    return "ok", tuple(_entry_value(e) for e in entries)


def _entry_value(entry: PublisherEntry) -> tuple[Any, ...]:
    return (entry.index, entry.name, entry.provider, entry.projects, entry.pending_project,
            _typed(dict(entry.fields)))


def format_publishers_text(text: str, source: str, providers: Mapping[str, Provider]) -> str:
    """A publishers file in the canonical layout, comments kept.

    `ConfigError` if it is not YAML or not a mapping with a `publishers` list;
    `FormatterError` if the result would not load to the same publishers.
    """
    return _format_publishers(text, source, providers)[0]


def _problem_count(text: str, source: str, providers: Mapping[str, Provider]) -> int:
    """How many problems loading the publishers file `text` reports (0 if none).

    A plain file is read as a stream, one publisher at a time (`iter_plain_publishers`:
    if it reads every entry, loading would report nothing); any other is loaded whole.
    """
    try:
        for _ in iter_plain_publishers(text, source, providers):
            pass
        return 0
    except NotPlain:
        pass
    try:
        load_publishers_text(text, source, providers)
    except ConfigError as exc:
        return len(exc.diagnostics)
    return 0


class _EntriesRead:
    """The entries a fast path read (each as `is_canonical_publishers` gives it: YAML's
    data of the entry), checked as `iter_plain_publishers` checks them: when every one
    is accepted, loading the file reports no problem, and it is not read again."""

    __slots__ = ("accepted", "check", "count", "providers")

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = providers
        self.check = PlainCheck(providers)
        self.count = 0
        self.accepted = True

    def __call__(self, entry: dict[str, Any]) -> None:
        self.count += 1
        self.accepted = self.accepted and self.check.accept(entry)

    def problem_count(self, text: str, source: str) -> int:
        """`_problem_count` of the file these entries were read from."""
        if self.count and self.accepted:
            return 0
        return _problem_count(text, source, self.providers)


def _within_size_limit(text: str) -> bool:
    """Whether `text` is within the readers' size limit (beyond it, the round trip's reader
    refuses it, and the fast paths must not format it)."""
    from tppolicy.readers import yaml as yaml_reader

    return len(text) <= yaml_reader.MAX_CHARS


def _round_trip(body: str, source: str, source_text: str, providers: Mapping[str, Provider],
                reorder: bool, suffix: str) -> tuple[str, Counter[str]]:
    """The document `body` (`_document_frame`) with its strings in their canonical style
    and, if `reorder`, each entry's keys in their order; and the comments it holds."""
    document = _load_rt(body, source)
    if not isinstance(document, CommentedMap) or not isinstance(
            document.get("publishers"), CommentedSeq):
        raise ConfigError([Diagnostic(
            "not a publishers file: expected a mapping with a 'publishers' list",
            Span(source, 1, 1, 1, 2),
            hint="a publishers file is a mapping: 'publishers: [...]'")], source_text)
    comments = _all_comments(document)
    entries = document["publishers"]
    _keep_null_words(document, body.split("\n"))
    replaced: dict[int, tuple[Any, Any]] = {}
    aliases = _has_aliases(body)
    for index, entry in enumerate(entries):
        if not isinstance(entry, CommentedMap) or not entry:
            continue
        # in a flow mapping (`publishers: [{...}]`) its values are written in flow context
        in_flow = bool(entries.fa.flow_style() or entry.fa.flow_style())
        for key in list(entry.keys()):
            value = entry[key]
            # The base classes' __setitem__: ruamel's would keep the old quoting style.
            if isinstance(value, CommentedSeq):
                for i, item in enumerate(value):
                    list.__setitem__(value, i, _canonical_string(item, in_flow=True))
            elif isinstance(value, (FoldedScalarString, LiteralScalarString)) and value:
                pass  # its text is its meaning
            elif not _empty_block_scalar(entry, key, replaced):
                ordereddict.__setitem__(entry, key, _canonical_string(value, in_flow))
                if type(value) is str and not value:  # written empty, a tag on nothing
                    _claim_comments_below(entry, key)
        if not in_flow:
            _indent_after_block_scalars(entry, _ENTRY_KEY_INDENT, _ENTRY_INDENT, aliases)
        last = index == len(entries) - 1 and list(document.keys())[-1] == "publishers"
        order = key_order(list(entry.keys()), entry.get("provider"), providers)
        if reorder and index > 0:
            _indent_comments_above(entries, index)
        if reorder:
            _reorder(entries, index, order, last, _raw_lines(entry) if last else [])
    if replaced:
        _replace_aliased(document, replaced, set())
    out = io.StringIO()
    try:
        _yaml().dump(document, out)
    except Exception:  # ruamel.yaml's writer on an aliased value with comments
        _refuse_tags(source_text, source)
        raise
    formatted = out.getvalue()
    return formatted, comments


def _format_publishers(text: str, source: str, providers: Mapping[str, Provider],
                       fast: bool = True) -> tuple[str, int]:
    """The formatted text, and how many problems loading the file reports (a file with
    schema errors is still formatted: it keeps the same errors).

    A file already in the canonical layout is recognised line by line
    (`fmt_canonical.is_canonical_publishers`, unless `fast` is False) and not round-tripped.

    A file with anchors or tags is formatted again: ruamel.yaml writes some of their
    values otherwise the second time (an anchored empty `!!binary` value with a comment);
    then the second text is the result if formatting it changes nothing, and else the file
    is refused at its first tag (`_refuse_tags`) or called a formatter bug.
    """
    if fast and _within_size_limit(text):
        read = _EntriesRead(providers)
        if is_canonical_publishers(text, providers, read):
            return text, read.problem_count(text, source)
        read = _EntriesRead(providers)
        written = format_simple_publishers(text, providers, read)
        if written is not None:
            return written, read.problem_count(text, source)
    formatted, count = _format_by_round_trip(text, source, providers)
    if formatted == text or not _ANCHOR_OR_TAG.search(text):
        return formatted, count
    second = _format_by_round_trip(formatted, source, providers)[0]
    if second == formatted:
        return formatted, count
    if _format_by_round_trip(second, source, providers)[0] != second:
        _refuse_tags(text, source)
        raise FormatterError("formatting the formatted text changes it again")
    return second, count


_ANCHOR_OR_TAG = re.compile(r"(?:^|[\s\[{,:-])[&!]")  # maybe an anchor or a tag


def _format_by_round_trip(text: str, source: str, providers: Mapping[str, Provider],
                          ) -> tuple[str, int]:
    """`_format_publishers` by ruamel.yaml's round trip, once."""
    _refuse_unbounded(text, source)
    prefix, body, suffix = _document_frame(_without_blanks_after_comments(text))
    reorder = not _has_aliases(text)
    formatted, comments = _round_trip(body, source, text, providers, reorder, suffix)
    if not reorder and not _has_aliases(formatted):
        # The aliases are gone (an alias to a null, a merge of nothing): the next run,
        # which sees none, would reorder the keys; so they are reordered at once.
        formatted, comments = _round_trip(body, source, text, providers, True, suffix)
    if suffix and formatted.endswith("\n...\n"):
        formatted = formatted[:-len("...\n")]  # the file's own `...` line ends it
    if prefix or suffix:
        formatted = prefix + (formatted.lstrip("\n") if prefix else formatted) + suffix
    before = _publishers_result(text, source, providers)
    count = len(before[1]) if before[0] == "error" else 0
    if formatted == text:  # already canonical: nothing to compare the text with
        return formatted, count
    # The original's data first, outside the check below: a tag pyyaml cannot construct
    # (`!!python/object:...`) is invalid input (exit 3), not a formatter bug.
    original = _typed(_plain_data(text, source))
    try:
        again = _load_rt(_document_frame(formatted)[1], source)  # as `document` was read
        same_data = _typed(_plain_data(formatted, source)) == original
    except ConfigError as exc:
        _refuse_tags(text, source)
        if before[0] == "error":
            # A layout ruamel.yaml writes wrong for an invalid file: refused as invalid,
            # with the errors `check` and `lint` give (exit 3), not as a formatter bug.
            load_publishers_text(text, source, providers)
        raise FormatterError(f"the formatted text is not valid YAML: {exc}") from None
    if not same_data:
        _refuse_tags(text, source)
        raise FormatterError("the formatted text would load to different data")
    problem = None
    if _publishers_result(formatted, source, providers) != before:
        problem = "the formatted text would load to different publishers"
    elif _all_comments(again) != comments or (
            _scanned_comments(formatted) != _scanned_comments(text)):
        problem = "the formatted text would lose or change a comment"
    if problem is not None:
        if before[0] == "error":
            # An invalid file whose errors or comments the layout cannot keep (an anchored
            # empty list item, `[&y]`, can only be written `[null]`, which changes its
            # error; a `!!set` loses the comments inside it), though its data stays the
            # same: refused as invalid, with the errors `check` and `lint` give (exit 3).
            load_publishers_text(text, source, providers)
        raise FormatterError(problem)
    return formatted, count


# ------------------------------------------------------------------------------ files
@dataclass(frozen=True, slots=True)
class FileResult:
    """One file formatted (in memory): its text before and after, or why it could not be."""

    path: Path
    original: str | None = None
    formatted: str | None = None
    error: TppolicyError | None = None
    bug: FormatterError | None = None
    problems: int = 0  # a publishers file formatted as it is, with this many schema errors

    @property
    def changed(self) -> bool:
        return self.formatted is not None and self.formatted != self.original


def _read(path: Path) -> str:
    from tppolicy.readers.source import read_source

    return read_source(path, ConfigError, "utf-8")  # a byte-order mark is kept, and written


def format_file(path: str | os.PathLike[str], providers: Mapping[str, Provider]) -> FileResult:
    """Read and format one file (nothing is written); errors are in the result."""
    file = Path(path)
    source = str(file)
    original: str | None = None
    try:
        original = _read(file)
        # Canonical files are UTF-8 without a byte order mark, with "\n" line ends.
        text = original.removeprefix("\ufeff").replace("\r\n", "\n")
        problems = 0
        if file.suffix in POLICY_SUFFIXES:
            formatted = format_policy_text(text, source)
        elif file.suffix in YAML_SUFFIXES:
            # A lone "\r" is a line break to YAML too (old Mac files): one was an
            # internal error (exit 4), the comments compared line by line.
            formatted, problems = _format_publishers(text.replace("\r", "\n"), source,
                                                     providers)
        else:
            raise ConfigError([Diagnostic(
                "not a policy or publishers file",
                Span(source, 0, 0, 0, 0),
                hint="tppolicy fmt formats *.tpp policy files and *.yaml / *.yml "
                     "publishers files")])
    except TppolicyError as exc:
        return FileResult(file, original, error=exc)
    except FormatterError as exc:
        return FileResult(file, original, bug=exc)
    return FileResult(file, original, formatted, problems=problems)


def _inside(file: Path, tree: Path) -> bool:
    """Whether `file`, links resolved, is a regular file inside the folder `tree`."""
    try:
        resolved = file.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return resolved.is_relative_to(tree) and resolved.is_file()


def collect_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files to format: each file named, and in each folder named (recursively) the
    `*.tpp` files and the YAML files that are publishers files. Hidden folders are skipped,
    and so are links that lead out of the folder (they are neither read nor rewritten).
    """
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if not path.is_dir():
            found.append(path)
            continue
        tree = path.resolve()
        for file in sorted(path.rglob("*")):
            parts = file.relative_to(path).parts
            if any(p.startswith(".") for p in parts) or not file.is_file():
                continue
            if not _inside(file, tree):
                continue  # a link out of the folder: never read, never rewritten
            if file.suffix in POLICY_SUFFIXES:
                found.append(file)
            elif file.suffix in YAML_SUFFIXES:
                try:
                    text = _read(file)
                except ConfigError:
                    continue
                if is_publishers_text(text):
                    found.append(file)
    unique: dict[Path, None] = dict.fromkeys(found)
    return list(unique)


def unified_diff(result: FileResult) -> str:
    """The change `result` makes, as a unified diff ("" when there is none)."""
    return "".join(iter_unified_diff(result))


def iter_unified_diff(result: FileResult) -> Iterator[str]:
    """`unified_diff`, one line at a time (each ends with a line end)."""
    if result.formatted is None or result.original is None:
        return
    name = str(result.path)
    # difflib.unified_diff's lines, found with the texts' lines kept as offsets (fmt_diff)
    lines = iter_unified_diff_texts(result.original, result.formatted,
                                    f"{name} (original)", f"{name} (formatted)")
    for line in lines:
        if line.endswith("\n"):
            yield line
        else:
            yield line + "\n"
            yield "\\ No newline at end of file\n"


def write_file(result: FileResult) -> None:
    """Write the formatted text over the file (UTF-8, "\\n" line ends)."""
    if result.formatted is None:
        raise ValueError(f"{result.path}: nothing to write")
    with open(result.path, "w", encoding="utf-8", newline="\n") as f:
        f.write(result.formatted)
