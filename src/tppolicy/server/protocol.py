"""HTTP/1.1 for uvicorn with PyPI's reason phrases.

twine prints an upload error as `HTTPError: 403 Forbidden from URL` followed by the
response's *reason phrase*, which PyPI sets to the error message. ASGI cannot set a
reason phrase, so the app sends it in a private header (`x-tppolicy-reason`) and this
protocol (uvicorn's h11 protocol with its connection wrapped) moves it into the status
line and drops the header.
"""

from __future__ import annotations

from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_HEADER = b"x-tppolicy-reason"


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


class ReasonH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with reason phrases from `x-tppolicy-reason`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _ReasonConnection(self.conn)  # type: ignore[assignment]
