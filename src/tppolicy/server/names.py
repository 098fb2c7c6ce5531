"""The names an index accepts: project names, upload file names, and the ids and
labels shown to operators.

* A project name is PyPI's: ASCII letters, digits, `.`, `_`, `-`, starting and ending
  with a letter or a digit (matched whole, ASCII only: no `re.IGNORECASE`, whose
  case folding lets a Kelvin sign or a dotless i through, and no `$`, which accepts a
  trailing newline).
* A new project whose ultranormalized name (PyPI's "too similar": `Foo-Bar`,
  `foobar`, `f00bar`) equals an existing project's is refused.
* An upload file name is what PyPI accepts: at most 255 bytes of `[a-z0-9._+!-]`, the
  project's normalized name (`-` spelled `_`), the normalized version, and for a wheel
  at most a few tags per part, checked *before* `packaging` expands the tags.
* Text shown to operators (ids, names, field values, `added_by`) is printable: no
  control, format (zero-width, right-to-left), separator or unassigned characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tppolicy.text import project_name_problem

__all__ = ["MAX_FILENAME_BYTES", "MAX_TAGS", "MAX_TAG_PARTS", "MAX_TEXT", "check_filename",
           "check_project_name", "check_requires_python", "check_row", "check_text", "escape"]

MAX_FILENAME_BYTES = 255  # a file name on most file systems; PyPI's column is as long
MAX_TAG_PARTS = 16  # compressed tags per part of a wheel tag (py3.py2 = 2): real wheels use <= 4
MAX_TAGS = 256  # tags a wheel name may expand to (the product of the three parts)
MAX_TEXT = 200  # characters of an id, a name, a field value an operator gives
MAX_VERSION = 128  # characters of a version (packaging raises ValueError past 4300 digits)
MAX_REQUIRES_PYTHON = 512  # characters of a Requires-Python specifier

_FILENAME_CHARS = re.compile(r"[a-z0-9._+!-]+")
_BUILD_TAG = re.compile(r"[0-9][a-z0-9_.]*")
_TAG_PART = re.compile(r"[a-z0-9_]+")
_SEPARATORS = re.compile(r"[-_.]+")


def check_project_name(name: object) -> str | None:
    """Why `name` is not a valid project name, or None."""
    return project_name_problem(name)


def check_requires_python(value: str) -> str | None:
    """Why a `requires_python` form value is refused (as PyPI: a PEP 440 specifier set),
    or None; the index shows it in its pages."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if len(value) > MAX_REQUIRES_PYTHON:
        return f"Invalid value for requires_python: longer than {MAX_REQUIRES_PYTHON} characters"
    try:
        SpecifierSet(value)
    except (InvalidSpecifier, ValueError):
        return (f"Invalid value for requires_python: {escape(value[:100])!r} is not a PEP 440 "
                "specifier set (such as '>=3.9')")
    if not value.isprintable():
        return "Invalid value for requires_python: it holds a character that is not printable"
    return None


def check_text(what: str, value: object, limit: int = MAX_TEXT) -> str | None:
    """Why `value` cannot be shown to an operator as it is, or None: it must be printable
    (no newline, tab, zero-width, right-to-left or other invisible character) and short."""
    if not isinstance(value, str):
        return None  # numbers and booleans are shown as they are
    if len(value) > limit:
        return f"{what}: longer than {limit} characters"
    for char in value:
        if not char.isprintable():
            return (f"{what}: the character U+{ord(char):04X} is not printable "
                    f"(in {escape(value)!r}); use visible characters only")
    return None


def check_row(publisher_id: str, row: Mapping[str, Any], added_by: str | None) -> list[str]:
    """What an operator could not read plainly in a publisher: its id, name, `added_by`
    and field values must be printable; its project names valid."""
    problems = [p for p in (check_text("id", publisher_id), check_text("added_by", added_by))
                if p]
    for key, value in row.items():
        if key == "projects" and isinstance(value, list | tuple):
            problems.extend(p for p in map(check_project_name, value) if p)
        elif key == "pending_project":
            problems.extend(p for p in [check_project_name(value)] if p)
        else:
            problems.extend(p for p in [check_text(key, value, 1000)] if p)
    return problems


def escape(text: str) -> str:
    """`text` with every character that is not printable (newline, tab, zero-width,
    right-to-left...) written as a backslash escape: one line, nothing hidden."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape_char(char: str) -> str:
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else \
        f"\\U{code:08x}"


def _normalized(name: str) -> str:
    return _SEPARATORS.sub("-", name).lower()


def check_filename(filename: str, name: str, version: str) -> tuple[str, str] | str:
    """(the kind, `bdist_wheel` or `sdist`; the canonical release version) of an upload
    file name for project `name` at `version`, or why it is refused (as PyPI: the
    normalized project name with `_`, the normalized version, a known extension)."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        canonicalize_version,
        parse_sdist_filename,
        parse_wheel_filename,
    )
    from packaging.version import InvalidVersion, Version

    shown = repr(escape(filename[:300]))
    if len(filename.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
        return f"Invalid filename {shown}: longer than {MAX_FILENAME_BYTES} bytes"
    if filename.endswith(".whl"):
        kind, stem = "bdist_wheel", filename[:-4]
    elif filename.endswith(".tar.gz"):
        kind, stem = "sdist", filename[:-7]
    else:
        return (f"Invalid file extension: {shown} is neither a wheel (.whl) nor a source "
                "distribution (.tar.gz)")
    if not _FILENAME_CHARS.fullmatch(filename) or filename.startswith("."):
        return (f"Invalid filename {shown}: a distribution's file name holds only lowercase "
                "ASCII letters, digits and '.', '_', '+', '!', '-' (the normalized project "
                "name, the normalized version, and for a wheel its tags)")
    if len(version) > MAX_VERSION:
        return f"Invalid version: longer than {MAX_VERSION} characters"
    try:
        release = Version(version)
    except (InvalidVersion, ValueError):
        return f"Invalid version {escape(version)!r}: see PEP 440"
    prefix = _normalized(name).replace("-", "_")
    if not stem.startswith(prefix + "-"):
        return (f"Start filename for {_normalized(name)!r} with {prefix!r}: {shown} does not "
                "(file names carry the normalized project name, as PEP 625 and PEP 491 say)")
    rest = stem[len(prefix) + 1:]
    file_version = rest.split("-", 1)[0]
    if file_version != str(release):
        return (f"Invalid filename {shown}: it does not match the name and version given "
                f"(a file name carries the normalized version {str(release)!r}; the form "
                f"says {escape(version)!r})")
    if kind == "bdist_wheel":
        parts = rest.split("-")
        if len(parts) not in (4, 5):
            return (f"Invalid filename {shown}: a wheel is named "
                    "NAME-VERSION[-BUILD]-PYTHON-ABI-PLATFORM.whl")
        if len(parts) == 5 and not _BUILD_TAG.fullmatch(parts[1]):
            return f"Invalid filename {shown}: a build tag starts with a digit"
        count = 1
        for part in parts[-3:]:
            pieces = part.split(".")
            if len(pieces) > MAX_TAG_PARTS or not all(_TAG_PART.fullmatch(p) for p in pieces):
                return (f"Invalid filename {shown}: a wheel tag part holds at most "
                        f"{MAX_TAG_PARTS} dot-separated tags of letters, digits and '_'")
            count *= len(pieces)
        if count > MAX_TAGS:
            return f"Invalid filename {shown}: the wheel's tags expand to more than {MAX_TAGS}"
        try:
            file_name, parsed, _, _ = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion, ValueError) as exc:
            return f"Invalid filename {shown}: {exc}"
    else:
        if "-" in rest:
            return f"Invalid filename {shown}: a source distribution is NAME-VERSION.tar.gz"
        try:
            file_name, parsed = parse_sdist_filename(filename)
        except (InvalidSdistFilename, InvalidVersion, ValueError) as exc:
            return f"Invalid filename {shown}: {exc}"
    if file_name != _normalized(name) or parsed != release:
        return (f"Invalid filename {shown}: it does not match the name and version given "
                f"({escape(name)!r} {escape(version)!r})")
    return kind, canonicalize_version(release)
