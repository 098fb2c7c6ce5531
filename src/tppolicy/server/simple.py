"""The simple repository API in both forms: PEP 503 HTML and PEP 691 JSON, chosen by
content negotiation, with the core metadata of wheels (PEP 658, PEP 714) and PEP 740
provenance links.

Negotiation follows PEP 691: the client's `Accept` header lists media types with
q-values; the server answers with the acceptable type of highest q (ties: the order of
`SERVED`, JSON first), `406 Not Acceptable` when none of its types is acceptable, and
always sends `Vary: Accept`. No `Accept` header, or only wildcards (`*/*`, what curl
sends), means `text/html`: a type the client names beats one it only matches by wildcard.
"""

from __future__ import annotations

import html
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from .storage import StoredFile, normalize

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
API_VERSION = "1.1"  # PEP 700: versions, size, upload-time

# What the server can answer, in its order of preference on equal q-values.
SERVED: tuple[str, ...] = (JSON_V1, HTML_V1, TEXT_HTML)
_ALIASES = {"application/vnd.pypi.simple.latest+json": JSON_V1,
            "application/vnd.pypi.simple.latest+html": HTML_V1}

MAX_METADATA_BYTES = 10 * 1024 * 1024  # a wheel's METADATA larger than this is not served


@dataclass(frozen=True, slots=True)
class Choice:
    """The outcome of negotiation: the media type to answer with, or None (406)."""

    media_type: str | None

    @property
    def is_json(self) -> bool:
        return self.media_type == JSON_V1


def _parse_accept(header: str) -> list[tuple[str, float, int]]:
    """(media type, q, position) of each entry; entries with a malformed q are q=0."""
    entries = []
    for position, part in enumerate(header.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        q = 1.0
        for parameter in pieces[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        entries.append((_ALIASES.get(media, media), q, position))
    return entries


def negotiate(accept: str | None) -> Choice:
    """The media type to answer an `Accept` header with (PEP 691)."""
    if accept is None or not accept.strip():
        return Choice(TEXT_HTML)
    entries = _parse_accept(accept)
    best: tuple[float, bool, bool, int] | None = None
    chosen = None
    for served_rank, media in enumerate(SERVED):
        q, named = _quality(media, entries)
        if q <= 0:
            continue
        # named types by the server's order; wildcard matches prefer plain HTML
        key = (q, named, not named and media == TEXT_HTML, -served_rank)
        if best is None or key > best:
            best, chosen = key, media
    return Choice(chosen)


def _quality(media: str, entries: Sequence[tuple[str, float, int]]) -> tuple[float, bool]:
    """The q the client gives `media` and whether it named it: its exact entry, else
    `type/*`, else `*/*` (the most specific entry decides, as RFC 9110 says)."""
    kind = media.split("/")[0] + "/*"
    for pattern in (media, kind, "*/*"):
        found = [q for m, q, _ in entries if m == pattern]
        if found:
            return max(found), pattern == media
    return 0.0, False


def not_acceptable_body() -> str:
    return ("406 Not Acceptable: this index serves " + ", ".join(SERVED) +
            " (send one of them in the Accept header)\n")


# ------------------------------------------------------------------ core metadata
# The most entries, and bytes of central directory, a wheel may have for its METADATA
# to be read (the largest wheels on PyPI hold some tens of thousands of files). `zipfile`
# builds an object per entry of the directory while holding the interpreter lock: a 51 MB
# wheel of 600 000 empty entries took 237 s and 350 MB (the collector walking them again
# and again), the whole server stalled meanwhile. (`zipfile` reads the directory by its
# size, whatever count the end record says: both are bounded.)
MAX_WHEEL_ENTRIES = 50_000
MAX_WHEEL_DIRECTORY_BYTES = 5 * 1024 * 1024


def zip_directory(path: str) -> tuple[int, int] | None:
    """(entries, central directory bytes) of a zip file, as its end record (zip64 too)
    says, read from its last bytes as `zipfile` finds it, without parsing the directory;
    None if there is no end record."""
    import struct

    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            start = max(0, size - (22 + 65535))
            handle.seek(start)
            tail = handle.read()
            end = tail.rfind(b"PK\x05\x06")
            if end < 0 or end + 22 > len(tail):
                return None
            count, directory = struct.unpack_from("<HI", tail, end + 10)
            if end >= 20 and tail[end - 20:end - 16] == b"PK\x06\x07":  # zip64
                handle.seek(struct.unpack_from("<Q", tail, end - 20 + 8)[0])
                record = handle.read(56)
                if len(record) < 56 or record[:4] != b"PK\x06\x06":
                    return None
                count, directory = struct.unpack_from("<QQ", record, 32)
    except (OSError, ValueError, OverflowError):
        return None
    return int(count), int(directory)


def wheel_metadata(path: str) -> bytes | None:
    """The `METADATA` file of a wheel's `.dist-info` directory (PEP 658), or None when
    the wheel has none, several, or one too large to serve, or more than
    `MAX_WHEEL_ENTRIES` entries or `MAX_WHEEL_DIRECTORY_BYTES` of directory (not parsed
    at all then)."""
    directory = zip_directory(path)
    if directory is None or directory[0] > MAX_WHEEL_ENTRIES or \
            directory[1] > MAX_WHEEL_DIRECTORY_BYTES:
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            found = [i for i in archive.infolist()
                     if i.filename.count("/") == 1 and
                     i.filename.split("/")[0].endswith(".dist-info") and
                     i.filename.endswith("/METADATA")]
            if len(found) != 1 or found[0].file_size > MAX_METADATA_BYTES:
                return None
            with archive.open(found[0]) as handle:
                data = handle.read(MAX_METADATA_BYTES + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError,
            ValueError):
        return None
    if len(data) > MAX_METADATA_BYTES:
        return None
    return data


def metadata_is_readable(data: bytes) -> bool:
    """Is this core metadata a client can parse (UTF-8 email-header text)?"""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    from email.parser import HeaderParser

    headers = HeaderParser().parse(io.StringIO(text))
    return bool(headers.get("Name")) and bool(headers.get("Version"))


# ------------------------------------------------------------------ pages
def _file_url(project: str, filename: str) -> str:
    # URL-encoded, not only HTML-escaped: a '#', '?' or '%' in a name stored by an older
    # version must not change where the link leads.
    return f"../../files/{quote(normalize(project))}/{quote(filename, safe='+!')}"


def _provenance_url(stored: StoredFile) -> str:
    return (f"/integrity/{quote(normalize(stored.project))}/{quote(stored.version, safe='+!')}/"
            f"{quote(stored.filename, safe='+!')}/provenance")


def _upload_time(stored: StoredFile) -> str:
    moment = datetime.fromtimestamp(stored.uploaded, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def root_html(names: Sequence[str]) -> str:
    links = "\n".join(f'    <a href="{html.escape(normalize(n))}/">{html.escape(n)}</a><br/>'
                      for n in names)
    return _page("Simple index", links)


def root_json(names: Sequence[str]) -> dict[str, Any]:
    return {"meta": {"api-version": API_VERSION},
            "projects": [{"name": name} for name in names]}


def project_html(name: str, files: Sequence[StoredFile], with_provenance: set[str]) -> str:
    lines = []
    for f in files:
        attributes = ""
        if f.requires_python:
            attributes += f' data-requires-python="{html.escape(f.requires_python)}"'
        if f.metadata_sha256:
            value = html.escape(f"sha256={f.metadata_sha256}")
            attributes += f' data-dist-info-metadata="{value}" data-core-metadata="{value}"'
        if f.filename in with_provenance:
            attributes += f' data-provenance="{html.escape(_provenance_url(f))}"'
        href = f"{_file_url(name, f.filename)}#sha256={f.sha256}"
        lines.append(f'    <a href="{html.escape(href)}"{attributes}>'
                     f"{html.escape(f.filename)}</a><br/>")
    return _page(f"Links for {name}", "\n".join(lines))


def project_json(name: str, files: Sequence[StoredFile],
                 with_provenance: set[str]) -> dict[str, Any]:
    entries = []
    for f in files:
        metadata: dict[str, str] | bool = {"sha256": f.metadata_sha256} \
            if f.metadata_sha256 else False
        entries.append({
            "filename": f.filename,
            "url": _file_url(name, f.filename),
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "core-metadata": metadata,
            "dist-info-metadata": metadata,
            "size": f.size,
            "upload-time": _upload_time(f),
            "yanked": False,
            "provenance": _provenance_url(f) if f.filename in with_provenance else None,
        })
    versions = sorted({f.version for f in files}, key=_version_key)
    return {"meta": {"api-version": API_VERSION}, "name": normalize(name), "files": entries,
            "versions": versions}


def _version_key(version: str) -> tuple[int, Any]:
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(version))
    except (InvalidVersion, ValueError):  # ValueError: over 4300 digits
        return (1, version)


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html>\n  <head>\n"
            f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
            f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
            f"    <h1>{html.escape(title)}</h1>\n{body}\n  </body>\n</html>\n")
