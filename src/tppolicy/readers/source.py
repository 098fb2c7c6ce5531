"""Reading a source file's text: UTF-8, with the bad byte's line and column."""

from __future__ import annotations

from pathlib import Path

from tppolicy.errors import Diagnostic, Span, TppolicyError
from tppolicy.limits import MAX_SOURCE_BYTES


def read_source(path: Path, error: type[TppolicyError], encoding: str = "utf-8-sig",
                max_bytes: int = MAX_SOURCE_BYTES) -> str:
    """A source file's text (UTF-8; by default a byte-order mark is dropped, `"utf-8"`
    keeps it, for a tool that writes the file back); `error` names the file, and for a
    byte that is not UTF-8 its line and column. A file over `max_bytes` is refused
    without being read whole (one size limit for every reader: `tppolicy.limits`)."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error([Diagnostic(f"cannot read the file: {exc.strerror or exc}",
                                Span(source, 0, 0, 0, 0))]) from None
    if len(raw) > max_bytes:
        raise error([Diagnostic(f"the file is larger than the limit of {max_bytes} bytes",
                                Span(source, 0, 0, 0, 0),
                                hint="is this the right file? tppolicy reads policy, "
                                "publishers, test and workflow files, which are small")])
    return decode_source(raw, source, error, encoding)


def decode_source(raw: bytes, source: str, error: type[TppolicyError],
                  encoding: str = "utf-8-sig", what: str = "file") -> str:
    """`raw` decoded; `error` at the line and column of a byte that is not UTF-8."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        before = raw[:exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise error([Diagnostic(
            f"the {what} is not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded",
            Span(source, line, column, line, column + 1), hint=f"save the {what} as UTF-8")],
        ) from None
