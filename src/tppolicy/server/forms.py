"""The upload form, parsed so that every temporary file the parser makes is closed.

Starlette's `MultiPartParser` (1.10) makes a `SpooledTemporaryFile` when a part's
headers name a `filename`, but adds it to the form only when the part ends. A body that
stops inside a file part (no closing boundary) parses "successfully" into a form that
does not hold that file, so closing the form leaves it open (a `ResourceWarning` when it
is collected, and a spooled file kept until then). `read_form` keeps every file the
parser made and closes the ones the caller will not get, whatever happens; and it
refuses a multipart body that ends before its closing boundary (a truncated upload),
which the parser itself accepts.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import IO

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request


class InvalidForm(Exception):
    """The request body is not a well-formed form; `message` says what is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _TrackingParser(MultiPartParser):
    """`MultiPartParser` that remembers each file it makes and whether the body reached
    its closing boundary."""

    def __init__(self, headers: Headers, stream: AsyncGenerator[bytes, None], *,
                 max_files: int, max_fields: int) -> None:
        super().__init__(headers, stream, max_files=max_files, max_fields=max_fields)
        self.made: list[UploadFile] = []
        self.ended = False

    def on_headers_finished(self) -> None:
        try:
            super().on_headers_finished()
        finally:
            made = self._current_part.file
            if made is not None and all(made is not seen for seen in self.made):
                self.made.append(made)

    def on_end(self) -> None:
        self.ended = True
        super().on_end()


def _close_all(files: list[UploadFile]) -> None:
    for upload in files:
        file: IO[bytes] = upload.file
        file.close()


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The request's form (multipart or URL-encoded; any other content type is an empty
    form). Raises `InvalidForm` for a malformed or truncated multipart body; any other
    exception (a body limit, a client disconnect) passes through. On any exception no
    temporary file stays open; on success the caller owns the form and closes it."""
    content_type, _ = parse_options_header(request.headers.get("content-type"))
    if content_type == b"application/x-www-form-urlencoded":
        try:
            async with aclosing(request.stream()) as stream:
                return await FormParser(request.headers, stream, max_fields=max_fields).parse()
        except MultiPartException as exc:
            raise InvalidForm(exc.message) from exc
    if content_type != b"multipart/form-data":
        return FormData()
    parser: _TrackingParser | None = None
    form: FormData | None = None
    try:
        async with aclosing(request.stream()) as stream:
            parser = _TrackingParser(request.headers, stream, max_files=max_files,
                                     max_fields=max_fields)
            form = await parser.parse()
        if not parser.ended:
            raise InvalidForm("the multipart body ends before its closing boundary "
                              "(--BOUNDARY--): it was cut short")
        return form
    except MultiPartException as exc:
        raise InvalidForm(exc.message) from exc
    finally:
        if parser is not None:
            kept = [] if form is None or not parser.ended else [
                value for _, value in form.multi_items() if isinstance(value, UploadFile)]
            _close_all([made for made in parser.made
                        if all(made is not upload for upload in kept)])
