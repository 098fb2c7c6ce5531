"""A compiled policy read fast: the publisher blocks `tppolicy compile` printed, as it
printed them, are known without the parser.

A block is *recognized* when its text is, byte for byte, what `compile` prints for the
publisher its header and `fields` block describe, bound through the shipped provider whose
header the file holds: then its rules are that provider's rules bound to those fields, and
the publisher is read as a publishers file's is (its fields checked, its rules the
provider's template with its values). Everything else (the provider headers, comments) is
read by the parser, with each recognized block blanked to empty lines, so that positions
stay the file's. A file with anything the fast reading does not follow exactly (a block
edited by hand, another provider header, a problem of any kind) gives None: the caller
reads it whole, and reports every problem as the parser and checker word it.

The header reader below reads a value as the parser does (`json.loads`, the parser's
string reader), and is checked by printing: a block whose text is not the printer's is
not recognized, whatever the reader made of it. The parser reads the printer's text back
to the same values (tests/property checks the round trip).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
from array import array
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, NamedTuple

from tppolicy.decide.core import publisher_id
from tppolicy.decide.policy import Policy, concrete_publisher_text
from tppolicy.errors import Span, TppolicyError
from tppolicy.language import ast as A
from tppolicy.language.check import (
    CheckedPolicy,
    CheckedProvider,
    CheckedPublisher,
    PublisherStream,
    check_policy,
)

__all__ = ["Block", "CompiledReading", "Unrecognized", "load_compiled_policy"]


def load_compiled_policy(text: str | bytes, source: str,
                         providers: Mapping[str, CheckedProvider],
                         issuers: Mapping[str, str] | None,
                         keep: Callable[[CheckedPublisher], bool] | None = None
                         ) -> Policy | None:
    """The Policy of a compiled policy file all of whose publisher blocks are recognized
    (see the module's docstring), or None: read the file whole. `keep`: the publishers
    the Policy holds (their ids are those of the whole file; every publisher is read and
    checked, two of one identity give None), all when None."""
    reading = CompiledReading.of(text, source, providers)
    return None if reading is None else reading.policy(issuers, keep)


class Unrecognized(Exception):
    """A publisher block that is not as `compile` printed it: read the file whole."""


class Block(NamedTuple):
    """A recognized publisher block: the publisher, its text, and where it is."""

    checked: CheckedPublisher
    text: str
    start: int  # offsets in the file's text (its bytes, for a reading of bytes)
    stop: int  # past the closing brace
    line: int  # its first line


class CompiledReading:
    """A compiled policy file whose top level `compile` could have printed: its provider
    headers parsed and checked, each a shipped provider's (`providers`: the file's and the
    base ones, by name, the shipped ones for the file's), and its publisher blocks to
    recognize one by one (`blocks`). `headers`: the file's provider blocks as the checker
    reads them (headers without rules), by name, in the file's order."""

    def __init__(self, text: str | bytes | _FileBytes, source: str, regions: _Regions,
                 providers: dict[str, CheckedProvider], shipped: dict[str, CheckedProvider],
                 headers: dict[str, CheckedProvider]) -> None:
        self.text: str | bytes | _FileBytes = text
        self.source = source
        self.regions = regions
        self.providers = providers
        self.shipped = shipped
        self.headers = headers  # the file's provider blocks checked, in its order

    @classmethod
    def of(cls, text: str | bytes, source: str, providers: Mapping[str, CheckedProvider]
           ) -> CompiledReading | None:
        """The reading of `text` (or of a file's bytes, which are not decoded whole: each
        block is, as it is read), or None when its top level is not as `compile` prints it
        (a line outside blocks and comments, another provider header, a byte-order mark, a
        byte that is not UTF-8, a problem)."""
        if isinstance(text, bytes):
            if b"\r" in text or text.startswith(b"\xef\xbb\xbf"):
                return None
        elif "\r" in text:
            return None
        regions = _regions(text)
        if regions is None or not regions.publishers:
            return None
        try:
            skeleton = _skeleton(text, regions)
            parsed = _printed_headers(text, regions, skeleton, source, providers)
            if parsed is None:  # not only shipped headers as printed: the parser reads them
                from tppolicy.language.parse import parse_policy

                parsed = parse_policy(skeleton, source)
                # each provider region is one whole provider block, and no publisher is
                # left: the blanked blocks were at the top level, between whole items
                spans = [(p.span.line, p.span.end_line) for p in parsed.providers]
                expected = [(line, line + _breaks(text, start, stop))
                            for kind, start, stop, line in regions if kind == "provider"]
                if parsed.publishers or spans != expected:
                    return None
            headers = check_policy(parsed, providers, skeleton)
        except (TppolicyError, UnicodeDecodeError):
            return None
        shipped: dict[str, CheckedProvider] = {}
        for ast in parsed.providers:
            base = providers.get(ast.name)
            if base is None or not base.rules or base.header() != ast:
                return None  # not a shipped provider's header: its blocks are read whole
            shipped[ast.name] = base
        return cls(text, source, regions, {**headers.providers, **shipped}, shipped,
                   {ast.name: headers.providers[ast.name] for ast in parsed.providers})

    @classmethod
    def of_file(cls, handle: BinaryIO, read: Callable[[BinaryIO], bytes], source: str,
                providers: Mapping[str, CheckedProvider]) -> CompiledReading | None:
        """`of` the bytes `read(handle)` gives (its errors raised), a file open at its
        start; the blocks are then read from the file again, block by block, when it is a
        regular file: its bytes are not held while its publishers are (ten thousand
        publishers: their file's ten megabytes). A file changed meanwhile (its size, time
        or inode) ends `blocks` with `Unrecognized`."""
        try:
            stamp = _stamp(handle) if handle.seekable() else None
        except (OSError, ValueError):
            stamp = None
        raw = read(handle)
        reading = cls.of(raw, source, providers)
        if reading is not None and stamp is not None and stamp[0] == len(raw):
            reading.text = _FileBytes(handle, stamp)
        return reading

    def policy(self, issuers: Mapping[str, str] | None,
               keep: Callable[[CheckedPublisher], bool] | None = None) -> Policy | None:
        """`load_compiled_policy` of this reading."""
        publishers = []
        ids: list[str] = []
        taken: set[str] = set()
        counter = itertools.count(1)
        try:
            for block in self.blocks():
                publisher_id_ = publisher_id(block.checked.ast.name, taken, counter)
                taken.add(publisher_id_)
                if keep is None or keep(block.checked):
                    publishers.append(block.checked)
                    ids.append(publisher_id_)
            text = self.text
            return Policy(CheckedPolicy(self.providers, tuple(publishers)), issuers, ids=ids,
                          source_text=text if isinstance(text, str) else None)
        except (Unrecognized, TppolicyError):
            return None

    def lines(self) -> Iterator[str]:
        """The file's lines (without their breaks, the bytes' decoded with "replace"),
        one at a time; `Unrecognized` after the last when the file changed (`of_file`)."""
        text = self.text
        if isinstance(text, str):
            yield from iter_lines(text)
            return
        if isinstance(text, bytes):
            yield from _iter_byte_lines(text)
            return
        yield from text.lines()
        if not text.unchanged():
            raise Unrecognized

    def blocks(self) -> Iterator[Block]:
        """Each publisher block, recognized, in the file's order; `Unrecognized` (or a
        `TppolicyError` without the words of every problem) at the first that is not."""
        text, source = self.text, self.source
        stream = PublisherStream(source, self.shipped)
        names: set[int] = set()  # hashes: two names alike (or a collision) read whole
        # (provider, lookup key, prefer values) of the pending publishers and of the
        # others: a pending one and another alike may be twins, which the whole read
        # words (`Decider.future_twin`)
        kinds: tuple[set[int], set[int]] = (set(), set())
        index = 0
        for kind, start, stop, line in self.regions:
            if kind != "publisher":
                continue
            piece = text[start:stop]
            try:
                block = piece.decode("utf-8") if isinstance(piece, bytes) else piece
            except UnicodeDecodeError:  # the whole read says where
                raise Unrecognized from None
            read = _read_header(block, self.shipped)
            if read is None:
                raise Unrecognized
            name, provider, projects, pending, fields = read
            if name is not None:
                named = hash(name)
                if named in names:
                    raise Unrecognized  # the checker words it
                names.add(named)
            publisher = A.Publisher(name, provider, projects, pending,
                                    span=Span(source, line, 1, line + block.count("\n"), 2))
            checked = stream.check_fields(publisher, fields, index)
            if concrete_publisher_text(checked) != block:
                raise Unrecognized
            try:
                twin = hash((checked.provider.name, checked.key_values,
                             checked.prefer_values))
            except TypeError:  # pragma: no cover - keys are field values, hashable
                raise Unrecognized from None
            if twin in kinds[not checked.pending]:
                raise Unrecognized
            kinds[checked.pending].add(twin)
            yield Block(checked, block, start, stop, line)
            index += 1
        if isinstance(text, _FileBytes) and not text.unchanged():
            raise Unrecognized  # the file changed while it was read: read it whole


def _stamp(handle: BinaryIO) -> tuple[int, int, int, int] | None:
    """A regular file's size, modification time, inode and device (None: not a regular
    file, whose bytes are not read twice)."""
    status = os.fstat(handle.fileno())
    if not stat.S_ISREG(status.st_mode):
        return None
    return (status.st_size, status.st_mtime_ns, status.st_ino, status.st_dev)


class _FileBytes:
    """The bytes of a file read again where they are asked (`text[start:stop]`), not
    held: `CompiledReading.of_file`."""

    __slots__ = ("handle", "stamp")

    def __init__(self, handle: BinaryIO, stamp: tuple[int, int, int, int]) -> None:
        self.handle = handle
        self.stamp = stamp

    def __getitem__(self, where: slice) -> bytes:
        self.handle.seek(where.start)
        return self.handle.read(where.stop - where.start)

    def unchanged(self) -> bool:
        """Whether the file is still the one read first (`_stamp`)."""
        try:
            return _stamp(self.handle) == self.stamp
        except (OSError, ValueError):
            return False

    def lines(self) -> Iterator[str]:
        """`_iter_byte_lines` of the file, read again."""
        self.handle.seek(0)
        for line in self.handle:
            yield line.removesuffix(b"\n").decode("utf-8", "replace")


def iter_lines(text: str) -> Iterator[str]:
    """`text.splitlines()` one line at a time, for a text whose only breaks are "\\n"."""
    start, length = 0, len(text)
    while start < length:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def _iter_byte_lines(data: bytes) -> Iterator[str]:
    """`iter_lines` of a file's bytes, each line decoded as it is read ("replace")."""
    start, length = 0, len(data)
    while start < length:
        end = data.find(b"\n", start)
        if end < 0:
            yield data[start:].decode("utf-8", "replace")
            return
        yield data[start:end].decode("utf-8", "replace")
        start = end + 1


class _Regions:
    """The top-level blocks `_regions` finds, held as arrays (four numbers a block, not a
    tuple of four objects: ten thousand blocks): iterated as (kind, start offset, offset
    past the closing brace, first line)."""

    __slots__ = ("kinds", "numbers", "publishers")

    def __init__(self) -> None:
        self.kinds = bytearray()  # 1: a publisher block, 0: a provider block
        self.numbers = array("q")  # start, stop, line of each
        self.publishers = 0

    def append(self, kind: str, start: int, stop: int, line: int) -> None:
        publisher = kind == "publisher"
        self.kinds.append(publisher)
        self.numbers.extend((start, stop, line))
        self.publishers += publisher

    def __iter__(self) -> Iterator[tuple[str, int, int, int]]:
        numbers = self.numbers
        for index, publisher in enumerate(self.kinds):
            at = 3 * index
            yield ("publisher" if publisher else "provider", numbers[at], numbers[at + 1],
                   numbers[at + 2])


def _regions(text: str | bytes) -> _Regions | None:
    """The file's top-level blocks: (provider | publisher, start offset, offset past the
    closing brace, first line), each from a line opening it at column 0 to the first line
    that is `}` alone; between them only blank lines and comments. None for anything
    else (a file's bytes: a line opening a block or between blocks that is not UTF-8)."""
    regions = _Regions()
    position, line, size = 0, 1, len(text)
    raw = isinstance(text, bytes)
    # (a line break: 10 as an item of bytes)
    newline, breaks, closing = (10, b"\n", b"\n}") if raw else ("\n", "\n", "\n}")
    data: Any = text
    find, count = data.find, data.count
    while position < size:
        end = find(breaks, position)
        if end < 0:
            end = size
        if end == position:  # an empty line
            position, line = end + 1, line + 1
            continue
        piece = data[position:end]
        try:
            first: str = piece.decode("utf-8") if raw else piece
        except UnicodeDecodeError:
            return None
        stripped = first.strip()
        if not stripped or stripped.startswith("#"):
            position, line = end + 1, line + 1
            continue
        if first.startswith("publisher") and first.endswith("{"):
            kind = "publisher"
        elif first.startswith("provider ") and first.endswith("{"):
            kind = "provider"
        else:
            return None
        close = find(closing, end - 1)
        while close >= 0 and close + 2 < size and data[close + 2] != newline:
            close = find(closing, close + 1)
        if close < 0:
            return None
        stop = close + 2
        regions.append(kind, position, stop, line)
        line += count(breaks, position, stop)
        position = stop
    return regions


def _breaks(text: str | bytes, start: int, stop: int) -> int:
    """The line breaks of `text` between two offsets."""
    return text.count(b"\n", start, stop) if isinstance(text, bytes) \
        else text.count("\n", start, stop)


def _skeleton(text: str | bytes, regions: _Regions) -> str:
    """What the parser reads of the file: the text up to the last provider block's end
    with each publisher block before it made empty lines (positions stay the file's),
    then whatever lies between the later publisher blocks that is more than line breaks
    (comments, blank lines of spaces: the parser reads and refuses them as in the file;
    the blocks, and the breaks alone between them, left out). Bytes decoded
    (`UnicodeDecodeError`)."""
    raw = isinstance(text, bytes)
    last = regions.kinds.rfind(0)  # the last provider block
    head_stop = regions.numbers[3 * last + 1] if last >= 0 else 0
    breaks: Any = b"\n" if raw else "\n"
    pieces: list[Any] = []
    position = 0
    for kind, start, stop, _ in regions:
        if kind != "publisher":
            continue
        if start < head_stop:  # before the last provider block: empty lines in its place
            pieces += [text[position:start], breaks * text.count(breaks, start, stop)]
            position = stop
            continue
        if position < head_stop:  # the first block after them: the text up to them
            pieces.append(text[position:head_stop])
            position = head_stop
        gap = text[position:start]
        if gap.strip(breaks):
            pieces.append(gap)
        position = stop
    if position < head_stop:
        pieces.append(text[position:head_stop])
        position = head_stop
    gap = text[position:]
    if gap.strip(breaks):
        pieces.append(gap)
    if raw:
        return b"".join(pieces).decode("utf-8")
    return "".join(pieces)


def _printed_headers(text: str | bytes, regions: _Regions, skeleton: str, source: str,
                     providers: Mapping[str, CheckedProvider]) -> A.PolicyFile | None:
    """What the parser reads of `skeleton` (`_skeleton`'s) when each provider block of the
    file is, byte for byte, a shipped provider's header as `compile` prints it
    (`format_provider(provider.header())`, each provider once) and every other line of it
    is empty or spaces and a comment of printable ASCII without a backslash (which the
    parser reads as nothing, and refuses nothing of): those headers (each the tree the
    parser makes of its printed text, tests/test_recognize_skeleton checks it for every
    shipped provider; their positions the shipped provider's, not read when the blocks
    are all recognized), without the parser. None: parse it."""
    raw = isinstance(text, bytes)
    outside = skeleton
    headers: list[A.Provider] = []
    for kind, start, stop, _ in regions:
        if kind != "provider":
            continue
        piece = text[start:stop]
        block: str = piece.decode("utf-8") if raw else piece  # type: ignore[union-attr,assignment]
        name = block[9:block.find(" {")]
        base = providers.get(name)
        if base is None or not base.rules or any(h.name == name for h in headers):
            return None
        printed = _header_text(base)
        if block != printed[1]:
            return None
        headers.append(printed[0])
        outside = outside.replace(block, "", 1)
    if not all(_OUTSIDE.fullmatch(line) for line in outside.split("\n")):
        return None
    return A.PolicyFile(source, tuple(headers))


def _header_text(provider: CheckedProvider) -> tuple[A.Provider, str]:
    """A shipped provider's header and its text as `compile` prints it (kept with it)."""
    known = _HEADERS.get(id(provider))
    if known is None or known[0] is not provider:
        from tppolicy.language.printer import format_provider

        header = provider.header()
        if len(_HEADERS) >= 64:  # bounded
            _HEADERS.clear()
        known = _HEADERS[id(provider)] = (provider, header, format_provider(header))
    return known[1], known[2]


_HEADERS: dict[int, tuple[CheckedProvider, A.Provider, str]] = {}
# A line outside blocks that the parser reads as nothing and refuses nothing of.
_OUTSIDE = re.compile(r" *(#[ -\[\]-~]*)?")


# Per provider (kept with it): its fields in its order, each with its default (a
# required one with `_REQUIRED`), and the names of the required ones: what `_read_header`
# fills a block's fields in with.
_FIELD_DEFAULTS: dict[int, tuple[CheckedProvider, dict[str, Any], frozenset[str]]] = {}
_REQUIRED = object()


def _field_defaults(provider: CheckedProvider) -> tuple[dict[str, Any], frozenset[str]]:
    known = _FIELD_DEFAULTS.get(id(provider))
    if known is None or known[0] is not provider:
        if len(_FIELD_DEFAULTS) >= 256:  # bounded
            _FIELD_DEFAULTS.clear()
        defaults = {name: _REQUIRED if decl.default is None else decl.default.value
                    for name, decl in provider.fields.items()}
        known = _FIELD_DEFAULTS[id(provider)] = (provider, defaults, frozenset(
            name for name, value in defaults.items() if value is _REQUIRED))
    return known[1], known[2]


def _read_header(block: str, providers: Mapping[str, CheckedProvider]
                 ) -> tuple[str | None, str, tuple[str, ...], str | None, dict[str, Any]] | None:
    """A printed publisher block's name, provider, projects, pending project and fields
    (every field of its provider, in its order, the defaults for those not written), or
    None when its head is not as the printer writes it. (What it reads is checked by
    printing: a block read wrong is not the printer's text of what was read.)"""
    # the head: up to the fields block's closing brace (the rules' lines are not read)
    stop = block.find("\n  }")
    lines = block[:stop].split("\n") if 0 <= stop < 8192 else block.split("\n", 64)[:64]
    first = lines[0]
    if first == "publisher {":
        name: str | None = None
    elif first.startswith('publisher "') and first.endswith('" {'):
        name = _value(first[10:-2], str)
        if name is None:
            return None
    else:
        return None
    count = len(lines)
    kind = lines[1].removeprefix("  provider ") if count > 1 else ""
    provider = providers.get(kind)
    if provider is None or lines[1] != "  provider " + kind:
        return None
    at = 2
    projects: tuple[str, ...] = ()
    pending: str | None = None
    if at < count and lines[at].startswith("  projects ["):
        values = _value(lines[at][11:], list)
        if values is None or not all(v.__class__ is str for v in values):
            return None
        projects, at = tuple(values), at + 1
    if at < count and lines[at].startswith('  pending_project "'):
        pending = _value(lines[at][18:], str)
        if pending is None:
            return None
        at += 1
    given: dict[str, Any] = {}
    if at + 1 < count and lines[at] == "" and lines[at + 1] == "  fields {":
        at += 2
        while at < count and lines[at] != "  }":
            line = lines[at]
            # `    NAME = VALUE`: NAME an identifier (ASCII), VALUE not empty
            field_name, equals, text = line[4:].partition(" = ")
            if not line.startswith("    ") or not equals or not text \
                    or not field_name.isidentifier() or not field_name.isascii() \
                    or field_name in given:
                return None
            if text[0] == '"' and text[-1] == '"' and len(text) > 1 \
                    and '"' not in (inner := text[1:-1]) and "\\" not in inner:
                given[field_name] = inner  # a string without escapes (`_value`'s)
                at += 1
                continue
            value = _value(text, object)
            if value is None and text != "null":
                return None
            given[field_name] = value
            at += 1
    defaults, required = _field_defaults(provider)
    keys = given.keys()
    if not (required <= keys <= defaults.keys()):
        return None  # a required field left out, or a field the provider has not
    fields = defaults.copy()  # in the provider's order, the given values in their places
    fields.update(given)
    return name, kind, projects, pending, fields


def _value(text: str, kind: type) -> Any:
    """A literal as the parser reads it (JSON's strings, integers, true, false, null and
    lists of them), of Python class `kind` (object: any), or None."""
    if kind is not list and len(text) > 1 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if '"' not in inner and "\\" not in inner:  # no escape: the string as it is (a
            return inner  # control character in it is not the printer's: not recognized)
    elif kind is list and text.startswith('["') and text.endswith('"]') and len(text) > 3:
        items = text[2:-2].split('", "')  # strings without escapes, as the printer lists them
        if "\\" not in text and not any('"' in item for item in items):
            return items
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if value.__class__ is float or (kind is not object and value.__class__ is not kind):
        return None
    return value
