"""Reading a source file's text: UTF-8, with the bad byte's line and column.

One rule for links, kept by every reader of files (`read_source`, and `refuse_outside_link`
for a reader that opens a file itself): a file reached through a symbolic link whose target
lies outside the trees it may point into (by default the current folder's tree and the
link's own folder) is refused before it is read. CI runs tppolicy on a pull request's tree:
a `publishers.yaml` there that is a link to /proc/self/environ or ~/.ssh/id_rsa had its
first line echoed in the error, in a public log. A path typed that is no link is read, as
`cat` would; so are the links under /dev and /proc/self/fd (`/dev/stdin`, `<(...)`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tppolicy.errors import Diagnostic, Span, TppolicyError
from tppolicy.limits import MAX_SOURCE_BYTES

# Where the links a program is given stand for its own streams: /dev/stdin, /dev/fd/63
# (bash's `<(...)`) resolve to /proc/<pid>/fd/pipe:[...], which is no file of any tree.
_STREAM_FOLDERS = (Path("/dev"), Path("/proc/self/fd"), Path("/proc/thread-self/fd"))


@dataclass(frozen=True, slots=True)
class LinkTree:
    """Where a link on a file's path may point: inside one of `folders` (links resolved;
    empty: the current folder's tree and the link's own folder). `name` says which tree
    in the error ("the checkout"), `hint` what to do instead."""

    folders: tuple[Path, ...] = ()
    name: str = ""
    hint: str = ""


def outside_link(path: Path, tree: LinkTree | None = None) -> tuple[Path, Path] | None:
    """The first link on `path` whose target lies outside `tree`, and that target; None
    when there is none. Checked: the file itself, and each folder on its path inside the
    current folder (folders above it are the user's own, /tmp a link to /private/tmp)."""
    absolute = Path(os.path.abspath(path))
    if any(absolute.is_relative_to(folder) for folder in _STREAM_FOLDERS):
        return None
    try:
        here = Path.cwd()
    except OSError:  # the current folder was removed: only the file itself is checked
        here = absolute.parent
    given = (path if path.is_absolute() else here / path).parts
    # The folders down to the current one are the user's: start below them when the
    # path goes through it (a relative path: one step for `publishers.yaml`).
    start = len(here.parts) if given[:len(here.parts)] == here.parts else 1
    prefix = Path(*given[:start])
    for position in range(start, len(given)):
        part = given[position]
        prefix = prefix / part
        last = position == len(given) - 1
        if not last and (part == ".." or not Path(os.path.abspath(prefix)).is_relative_to(here)):
            continue
        if not prefix.is_symlink():
            continue
        try:
            target = prefix.resolve()
            folders = tree.folders if tree is not None and tree.folders else (
                here, prefix.parent)
            inside = any(target.is_relative_to(folder.resolve()) for folder in folders)
        except (OSError, RuntimeError):  # a link loop: opening the file says so
            return None
        if not inside:
            return prefix, target
    return None


def refuse_outside_link(path: Path, error: type[TppolicyError], *, what: str = "file",
                        tree: LinkTree | None = None) -> None:
    """Raise `error` when `path` reaches outside `tree` through a link (`outside_link`):
    the error names the link and its target, never anything the target holds."""
    found = outside_link(path, tree)
    if found is None:
        return
    link, target = found
    if tree is not None and tree.folders:
        place = f"{tree.name or 'the tree'} ({', '.join(str(f) for f in tree.folders)})"
    else:
        place = "the current folder's tree and the link's own folder"
    if os.path.abspath(link) == os.path.abspath(path):
        message = f"the {what} is a link to a file outside {place}: it points to {target}"
    else:
        message = (f"the {what}'s path goes through {link}, a link outside {place}: "
                   f"it points to {target}")
    hint = (tree.hint if tree is not None and tree.hint else
            "pass the target's own path if you mean it (tppolicy does not follow a link "
            "out of the tree: in CI it may be a pull request's link to a secret)")
    raise error([Diagnostic(message, Span(str(path), 0, 0, 0, 0), hint=hint)])


def read_source(path: Path, error: type[TppolicyError], encoding: str = "utf-8-sig",
                max_bytes: int = MAX_SOURCE_BYTES, *, what: str = "file",
                tree: LinkTree | None = None) -> str:
    """A source file's text (UTF-8; by default a byte-order mark is dropped, `"utf-8"`
    keeps it, for a tool that writes the file back); `error` names the file, and for a
    byte that is not UTF-8 its line and column. A file over `max_bytes` is refused
    without being read whole (one size limit for every reader: `tppolicy.limits`); one
    reached through a link out of `tree` is not read (`refuse_outside_link`)."""
    return decode_source(read_source_bytes(path, error, max_bytes, what=what, tree=tree),
                         str(path), error, encoding)


def read_source_bytes(path: Path, error: type[TppolicyError],
                      max_bytes: int = MAX_SOURCE_BYTES, *, what: str = "file",
                      tree: LinkTree | None = None) -> bytes:
    """`read_source`'s bytes, not decoded (`decode_source` decodes them, with its
    errors): for a reader that can take most of a large file without its whole text."""
    with open_source(path, error, what=what, tree=tree) as handle:
        return read_opened(handle, str(path), error, max_bytes)


def open_source(path: Path, error: type[TppolicyError], *, what: str = "file",
                tree: LinkTree | None = None) -> BinaryIO:
    """`path` open for reading its bytes (`read_opened` reads them), once
    `refuse_outside_link` lets it be read; `error` when it cannot be opened: for a reader
    that reads parts of a large file again instead of holding its bytes."""
    refuse_outside_link(path, error, what=what, tree=tree)
    try:
        return path.open("rb")
    except OSError as exc:
        raise _unreadable(exc, str(path), error) from None


def read_opened(handle: BinaryIO, source: str, error: type[TppolicyError],
                max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of a file `open_source` opened, from where it stands (its start when just
    opened), with `read_source_bytes`'s errors."""
    try:
        raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise _unreadable(exc, source, error) from None
    if len(raw) > max_bytes:
        raise error([Diagnostic(f"the file is larger than the limit of {max_bytes} bytes",
                                Span(source, 0, 0, 0, 0),
                                hint="is this the right file? tppolicy reads policy, "
                                "publishers, test and workflow files, which are small")])
    return raw


def _unreadable(exc: OSError, source: str, error: type[TppolicyError]) -> TppolicyError:
    return error([Diagnostic(f"cannot read the file: {exc.strerror or exc}",
                             Span(source, 0, 0, 0, 0))])


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
