"""YAML with positions: the one reader for every YAML file tppolicy reads (publishers files,
lint, the test runner's case tables).

`compose_yaml` turns text into pyyaml nodes (each with its start and end line and column)
under one set of limits, or raises the caller's error type with the problem's file, line
and column:

- at most `MAX_CHARS` characters;
- at most `MAX_DEPTH` nested collections (libyaml's composer recurses in C and would
  crash on a deep enough document, pyyaml's in Python and would be slow);
- at most `MAX_ALIASES` alias uses, and at most `MAX_VALUES` values once aliases are
  expanded (a few hundred bytes of nested aliases can stand for billions of values);
  an anchor used inside itself is refused.

The nodes are composed by libyaml (through pyyaml's C binding) when it is there, by pyyaml's
own Python parser otherwise. A document libyaml refuses is parsed again by the Python parser,
whose messages are more precise, so errors read the same with or without libyaml.

`stream_items` reads a large, plain file (a mapping whose one key holds a list) one list
item at a time from the parser's events, without composing the document: memory for one
item, not for the file. Anything it does not read plainly (anchors, aliases, tags, other
keys, deeper nesting, a syntax error) raises `NotPlain`, and the caller reads the file
with `compose_yaml` instead, which words every problem.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from tppolicy.errors import Diagnostic, Span, TppolicyError
from tppolicy.limits import MAX_SOURCE_BYTES

__all__ = [
    "MAX_ALIASES",
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_VALUES",
    "LineIndex",
    "NotPlain",
    "YamlDocument",
    "check_limits",
    "children",
    "compose_yaml",
    "construct_scalar",
    "resolve_scalar",
    "stream_items",
]

MAX_CHARS = MAX_SOURCE_BYTES  # one size limit for files and for text handed to the API
MAX_DEPTH = 200
MAX_ALIASES = 10_000
MAX_VALUES = 1_000_000
# Deeper than this, libyaml's composer (recursive, in C) is not trusted with the document: its
# parser (iterative) measures the depth first. It crashes somewhere past 20 000 levels.
_SAFE_DEPTH = 5_000

_LOADER: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_CONSTRUCTOR = yaml.SafeLoader("")


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A composed document: its root node (None for an empty file) and where it came from."""

    source: str
    text: str
    root: yaml.Node | None
    lines: list[str]

    def span(self, node: yaml.Node | None) -> Span:
        """Where `node` is; a block node that ends at the start of the next line ends on its
        own last line instead."""
        if node is None or node.start_mark is None:
            return Span(self.source, 0, 0, 0, 0)
        start, end = node.start_mark, node.end_mark or node.start_mark
        end_line, end_column = end.line + 1, end.column + 1
        if end.column == 0 and end.line > start.line:
            end_line = end.line
            end_column = len(self.lines[end.line - 1]) + 1 if end.line - 1 < len(self.lines) else 1
        return Span(self.source, start.line + 1, start.column + 1, end_line, end_column)

    def head_span(self, node: yaml.Node) -> Span:
        """Where `node` starts: for a block node, the rest of its first line."""
        start, end = node.start_mark, node.end_mark
        if end.line > start.line:
            line = self.lines[start.line] if start.line < len(self.lines) else ""
            return Span(self.source, start.line + 1, start.column + 1, start.line + 1,
                        len(line) + 1)
        return Span(self.source, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly under `node` (keys and values of a mapping, in order)."""
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def construct_scalar(node: yaml.ScalarNode) -> Any:
    """The value pyyaml's safe loader gives a scalar (a plain string without a call into the
    constructor). Raises what the constructor raises for a bad explicitly tagged value."""
    if node.tag == _STR:
        return node.value
    value = _CONSTRUCTOR.construct_object(node, deep=True)
    if value.__class__ is int and value.bit_length() > _MAX_INT_BITS:
        # 0x and 0b integers have no digit limit, but their decimal text does: every message
        # showing such a value raised ValueError (an internal error).
        raise ValueError(f"an integer of {value.bit_length()} bits is too large to show")
    return value


_MAX_INT_BITS = 4096  # (int -> str refuses more than 4 300 decimal digits, ~14 000 bits)


def compose_yaml(text: str, source: str, error: type[TppolicyError]) -> YamlDocument:
    """Compose `text` into nodes within the limits; `error` (with the text) on any problem."""
    def fail(message: str, span: Span, hint: str | None = None) -> TppolicyError:
        return error([Diagnostic(message, span, hint=hint)], text)

    if len(text) > MAX_CHARS:
        raise fail(f"the file is too large: {len(text)} characters, at most {MAX_CHARS}",
                   Span(source, 0, 0, 0, 0), "split it into smaller files")
    lines = text.splitlines()
    document = YamlDocument(source, text, None, lines)
    too_deep = f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)"
    bound = _depth_bound(lines)
    if bound > _SAFE_DEPTH:  # libyaml's composer might run out of stack: ask its parser
        deep = _too_deep(text)
        if deep is not None:
            raise fail(too_deep, _mark_span(source, deep), "flatten the document")
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except Exception:  # libyaml's messages are terse: take pyyaml's own for the same text
        root = _compose_python(text, source, error)
    if root is None:
        return document
    document = YamlDocument(source, text, root, lines)
    if bound > MAX_DEPTH or "*" in text:  # an alias starts with '*': else nothing is shared
        problem = _check_graph(root)
        if problem is not None:
            message, node = problem
            raise fail(message, document.span(node),
                       "flatten the document" if message == too_deep else None)
    return document


def check_limits(text: str, source: str, error: type[TppolicyError]) -> None:
    """Refuse, from the parser's events alone, what `compose_yaml` refuses past its limits
    (nesting deeper than `MAX_DEPTH`, an anchor used inside itself, more than `MAX_ALIASES`
    alias uses, more than `MAX_VALUES` values once aliases are expanded), with the file,
    line and column: for a reader that composes with another library (ruamel.yaml's
    recursive composer took seconds to fail on 2 000 levels). A syntax error is left to
    that reader, which words it. The parser (libyaml's when there) keeps an explicit stack:
    any depth is safe here, and the cost is one pass over the events."""
    if len(text) > MAX_CHARS:
        raise error([Diagnostic(f"the file is too large: {len(text)} characters, at most "
                                f"{MAX_CHARS}", Span(source, 0, 0, 0, 0),
                                hint="split it into smaller files")], text)
    if "*" not in text and _depth_bound(text.splitlines()) <= MAX_DEPTH:
        return  # no alias, and too shallow to matter: nothing to count
    problem = _event_limits(text)
    if problem is not None:
        message, mark = problem
        raise error([Diagnostic(message, _mark_span(source, mark),
                                hint="flatten the document" if "deeply" in message
                                else None)], text)


def _event_limits(text: str) -> tuple[str, Any] | None:
    sizes: dict[str, int] = {}  # anchor -> values it stands for
    frames: list[list[Any]] = [[None, 0]]  # [anchor, values] of each open collection
    open_anchors: set[str] = set()
    uses = 0
    try:
        for event in _events(text):
            if isinstance(event, yaml.CollectionStartEvent):
                if len(frames) > MAX_DEPTH:
                    return (f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)",
                            event.start_mark)
                if event.anchor is not None:
                    open_anchors.add(event.anchor)
                frames.append([event.anchor, 1])
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, values = frames.pop()
                values = min(values, MAX_VALUES + 1)
                if anchor is not None:
                    sizes[anchor] = values
                    open_anchors.discard(anchor)
                frames[-1][1] += values
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    sizes[event.anchor] = 1
                frames[-1][1] += 1
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor in open_anchors:
                    return ("an anchor is used inside itself (a recursive alias)",
                            event.start_mark)
                uses += 1
                if uses > MAX_ALIASES:
                    return (f"more than {MAX_ALIASES} aliases", event.start_mark)
                frames[-1][1] += sizes.get(event.anchor or "", 1)
            elif isinstance(event, yaml.DocumentEndEvent):
                frames = [[None, 0]]  # each document of a stream is counted alone
            if frames[-1][1] > MAX_VALUES:
                return (f"the document expands to more than {MAX_VALUES} values through "
                        "aliases", event.start_mark)
    except yaml.YAMLError:
        return None  # the caller's parser words it
    return None


def _compose_python(text: str, source: str, error: type[TppolicyError]) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise error([_yaml_diagnostic(exc, text, source)], text) from None
    except RecursionError:
        raise error([Diagnostic("the YAML is nested too deeply", Span(source, 0, 0, 0, 0))],
                    text) from None
    except Exception as exc:  # pyyaml's own bugs must not escape as tracebacks
        raise error([Diagnostic(f"invalid YAML: {exc}", Span(source, 0, 0, 0, 0))],
                    text) from None


def _yaml_diagnostic(exc: yaml.YAMLError, text: str, source: str) -> Diagnostic:
    line = column = 1
    message = f"invalid YAML: {exc}"
    hint: str | None = None
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        message = f"invalid YAML: {exc.problem or exc.context or 'syntax error'}"
        if exc.context and exc.problem and exc.context_mark is not None:
            hint = f"{exc.context} at line {exc.context_mark.line + 1}, " \
                   f"column {exc.context_mark.column + 1}"
        if exc.problem and "'\\t'" in exc.problem and mark is not None:
            lines = text.splitlines()
            before = lines[mark.line][:mark.column] if mark.line < len(lines) else ""
            hint = ("YAML does not allow tabs for indentation; use spaces" if not before.strip()
                    else "a tab after ':' or '-' is not allowed here: write a space")
    elif isinstance(exc, yaml.reader.ReaderError):
        before = text[:exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        message = f"invalid YAML: the character {shown} is not allowed in a YAML file"
    return Diagnostic(message, Span(source, line, column, line, column + 1), hint=hint)


def _depth_bound(lines: list[str]) -> int:
    """An upper bound of the nesting depth, from the lines alone (cheap, never too low).

    Block collections: each two levels indent by at least a column. Flow collections: each
    opens with a bracket; a closing bracket is taken off only on a line that starts outside
    any bracket and has no quote or comment character (where it may be text, the count
    only grows). A closing bracket inside a block plain scalar on such a line can hide at
    most one line of openings, hence the third `widest`.
    """
    widest = max(map(len, lines), default=0)
    open_, peak = 0, 0
    for line in lines:
        opens = line.count("[") + line.count("{")
        if not opens:
            continue
        peak = max(peak, open_ + opens)
        if open_ == 0 and '"' not in line and "'" not in line and "#" not in line:
            open_ = max(0, opens - line.count("]") - line.count("}"))
        else:
            open_ += opens
    return peak + 3 * widest + 2


def _too_deep(text: str) -> Any:
    """The mark of the first collection nested deeper than `MAX_DEPTH`, or None. The
    parser works with an explicit stack, so any depth is safe here."""
    depth = 0
    try:
        for event in _events(text):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None  # reported with its position when composing
    return None


def _events(text: str) -> Iterator[yaml.Event]:
    return yaml.parse(text, Loader=_LOADER)


def _mark_span(source: str, mark: Any) -> Span:
    return Span(source, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2)


def _check_graph(root: yaml.Node) -> tuple[str, yaml.Node] | None:
    """Refuse nesting deeper than `MAX_DEPTH`, a recursive alias, more than `MAX_ALIASES`
    alias uses, and a document that aliases expand past `MAX_VALUES` values. A node met
    again is an alias use."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    uses = 0
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 1)]
    while stack:
        node, post, depth = stack.pop()
        key = id(node)
        if post:
            sizes[key] = min(MAX_VALUES + 1, 1 + sum(sizes[id(c)] for c in children(node)))
            open_.discard(key)
            continue
        if key in open_:
            return ("an anchor is used inside itself (a recursive alias)", node)
        if key in sizes:
            uses += 1
            if uses > MAX_ALIASES:
                return (f"more than {MAX_ALIASES} aliases", node)
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        if depth > MAX_DEPTH:
            return (f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)", node)
        open_.add(key)
        stack.append((node, True, depth))
        stack.extend((c, False, depth + 1) for c in reversed(children(node)))
    if sizes[id(root)] > MAX_VALUES:
        return (f"the document expands to more than {MAX_VALUES} values through aliases", root)
    return None


# ------------------------------------------------------------------- streaming
class NotPlain(Exception):
    """`stream_items` met something it leaves to `compose_yaml` (which reads any YAML
    within the limits and words every problem)."""


# Line breaks other than "\n" that YAML or `str.splitlines` (the line numbering of
# `YamlDocument`) knows: a file holding one is read by `compose_yaml`.
_OTHER_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_RESOLVER: Any = yaml.resolver.Resolver()
_PLAIN = (True, False)


_RESOLVED: dict[str, str] = {}  # plain scalar -> its tag (keys, provider names...)
# The first characters for which an implicit resolver may give a plain scalar another
# tag than str; a scalar starting with another is a str (unless some resolver is tried
# whatever the first character, or a path resolver: then `_RESOLVER_FIRSTS` is None).
_RESOLVER_FIRSTS: frozenset[str | None] | None = (
    frozenset(_RESOLVER.yaml_implicit_resolvers)
    if None not in _RESOLVER.yaml_implicit_resolvers and not _RESOLVER.yaml_path_resolvers
    else None)


def resolve_scalar(event: yaml.ScalarEvent) -> str:
    """The tag the safe loader gives an untagged scalar (`tag:yaml.org,2002:str` for
    quoted text, the implicit resolvers' for a plain scalar)."""
    if not event.implicit[0]:
        return _STR
    value = event.value
    if value and _RESOLVER_FIRSTS is not None and value[0] not in _RESOLVER_FIRSTS:
        return _STR  # what `resolve` gives when no implicit resolver is tried
    tag = _RESOLVED.get(value)
    if tag is None:
        tag = str(_RESOLVER.resolve(yaml.ScalarNode, value, _PLAIN))
        if len(value) <= 32:  # the words files repeat; a bounded table
            if len(_RESOLVED) >= 4096:
                _RESOLVED.clear()
            _RESOLVED[value] = tag
    return tag


_BREAK = re.compile("\n")


class LineIndex:
    """Spans from a plain file's marks, as `YamlDocument.span` and `head_span` give them,
    without a list of the file's lines (the offsets of its line breaks: 8 bytes a line)."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self._length = len(text)
        self._breaks = array("q", map(re.Match.start, _BREAK.finditer(text)))
        self._lines = len(self._breaks) + (1 if text and not text.endswith("\n") else 0)

    def _line_length(self, line: int) -> int:
        """The length of 0-based line `line` (0 past the last line)."""
        if line >= self._lines:
            return 0
        start = self._breaks[line - 1] + 1 if line > 0 else 0
        end = self._breaks[line] if line < len(self._breaks) else self._length
        return end - start

    def span(self, start: Any, end: Any) -> Span:
        """`YamlDocument.span` of a node from `start` to `end` (marks)."""
        end_line, end_column = end.line + 1, end.column + 1
        if end.column == 0 and end.line > start.line:
            end_line = end.line
            end_column = self._line_length(end.line - 1) + 1 if end.line - 1 < self._lines \
                else 1
        return Span(self.source, start.line + 1, start.column + 1, end_line, end_column)

    def head_span(self, start: Any, end: Any) -> Span:
        """`YamlDocument.head_span` of a node from `start` to `end` (marks)."""
        if end.line > start.line:
            return Span(self.source, start.line + 1, start.column + 1, start.line + 1,
                        self._line_length(start.line) + 1)
        return Span(self.source, start.line + 1, start.column + 1, end.line + 1,
                    end.column + 1)


def stream_items(text: str, key: str, max_depth: int = 2) -> Iterator[list[yaml.Event]]:
    """The events of each item of the list under `key`, for a document that is a mapping
    with that one key; an item nests at most `max_depth` collections. `NotPlain` (maybe
    after some items) for anything else: another shape, an anchor, an alias, a tag, a
    syntax error, a file over `MAX_CHARS` characters or with line breaks other than
    "\\n". The parser (libyaml's when there) works with an explicit stack."""
    if len(text) > MAX_CHARS or any(b in text for b in _OTHER_BREAKS):
        raise NotPlain
    loader = _LOADER(text)
    try:
        yield from _stream_items(loader.get_event, key, max_depth)
    except yaml.YAMLError:
        raise NotPlain from None
    finally:
        loader.dispose()


_STARTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_ENDS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _stream_items(get: Callable[[], yaml.Event | None], key: str,
                  max_depth: int) -> Iterator[list[yaml.Event]]:
    def take(kind: type[yaml.Event]) -> Any:
        event = get()
        if not isinstance(event, kind) or getattr(event, "anchor", None) is not None \
                or getattr(event, "tag", None) is not None:
            raise NotPlain
        return event

    take(yaml.StreamStartEvent)
    take(yaml.DocumentStartEvent)
    take(yaml.MappingStartEvent)
    name = take(yaml.ScalarEvent)
    if name.value != key or resolve_scalar(name) != _STR:
        raise NotPlain
    take(yaml.SequenceStartEvent)
    scalar, starts, ends, end_of_list = yaml.ScalarEvent, _STARTS, _ENDS, yaml.SequenceEndEvent
    while True:
        event: Any = get()
        kind = event.__class__
        if kind is end_of_list:
            break
        if (kind is not scalar and kind not in starts) or event.anchor is not None \
                or event.tag is not None:  # an alias, or an anchor or a tag
            raise NotPlain
        item = [event]
        depth = 0 if kind is scalar else 1
        while depth:
            event = get()
            kind = event.__class__
            if kind in ends:
                depth -= 1
            elif (kind is not scalar and kind not in starts) or event.anchor is not None \
                    or event.tag is not None:
                raise NotPlain
            elif kind is not scalar:
                depth += 1
                if depth > max_depth:
                    raise NotPlain
            item.append(event)
        yield item
    take(yaml.MappingEndEvent)
    take(yaml.DocumentEndEvent)
    take(yaml.StreamEndEvent)
