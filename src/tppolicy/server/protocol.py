"""HTTP/1.1 for uvicorn with PyPI's reason phrases.

twine prints an upload error as `HTTPError: 403 Forbidden from URL` followed by the
response's *reason phrase*, which PyPI sets to the error message. ASGI cannot set a
reason phrase. So this protocol (uvicorn's h11 protocol, its connection wrapped)
advertises an ASGI extension, `tppolicy.reason-phrase`, in each request's scope; only
then does the app send the phrase, in a private header (`x-tppolicy-reason`) that the
protocol moves into the status line and drops. Under any other server (or if uvicorn's
internals change and the wrapping cannot be done) nothing is advertised, the app sends
no such header, and the message reaches clients in the JSON body only (uv prints it,
twine with `--verbose`).
"""

from __future__ import annotations

from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_HEADER = b"x-tppolicy-reason"
EXTENSION = "tppolicy.reason-phrase"


class _ReasonConnection:
    """An `h11.Connection` whose responses take their reason phrase from the header."""

    def __init__(self, connection: h11.Connection) -> None:
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def send(self, event: Any) -> bytes | None:
        if isinstance(event, h11.Response):
            reason = None
            headers = []
            for name, value in event.headers:
                if name.lower() == _HEADER:
                    reason = value
                else:
                    headers.append((name, value))
            if reason is not None:
                event = h11.Response(status_code=event.status_code, headers=headers,
                                     reason=reason, http_version=event.http_version)
        output: bytes | None = self._connection.send(event)
        return output


def _advertising(app: Any) -> Any:
    """`app`, with the extension in the scope of each HTTP request."""

    async def advertised(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            scope["extensions"] = {**(scope.get("extensions") or {}), EXTENSION: {}}
        await app(scope, receive, send)

    return advertised


class ReasonH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with reason phrases from `x-tppolicy-reason`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(getattr(self, "conn", None), h11.Connection) and \
                callable(getattr(self, "app", None)):
            self.conn = _ReasonConnection(self.conn)  # type: ignore[assignment]
            self.app = _advertising(self.app)
