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

It also closes a connection whose request head (the request line and headers) is not
complete `HEAD_TIMEOUT` seconds after it began (or after the connection was made): uvicorn
waits for it for ever, so a client sending nothing, or a header line now and then
("slowloris"), held a connection and its memory as long as it liked, and a few thousand
of them the server's file descriptors.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_HEADER = b"x-tppolicy-reason"
EXTENSION = "tppolicy.reason-phrase"
# Seconds a client has to send a whole request head (curl, pip, twine and uv send it at once).
HEAD_TIMEOUT = 20.0
# Seconds without any part of a request body after which the connection is closed (the
# app sees the client leave). The app answers 408 sooner where it reads bodies through its
# middleware (`app.BODY_IDLE_TIMEOUT`); this covers the mint endpoint, which keeps timers
# off its hot path.
BODY_TIMEOUT = 40.0


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
    """uvicorn's h11 protocol, with reason phrases from `x-tppolicy-reason`, and a
    deadline for each request head (`HEAD_TIMEOUT`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(getattr(self, "conn", None), h11.Connection) and \
                callable(getattr(self, "app", None)):
            self.conn = _ReasonConnection(self.conn)  # type: ignore[assignment]
            self.app = _advertising(self.app)
        self._head_since: float | None = None  # when the request head under way began
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_begins()

    def data_received(self, data: bytes) -> None:
        if self._head_since is None and self._awaiting_head():
            self._head_begins()
        super().data_received(data)
        if not self._awaiting_head():
            self._head_since = None  # the head is complete: the app has the request
        # A body under way: its deadline starts again with each part (a request whose
        # body came whole with its head, the usual, sets no timer).
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._their_state() is h11.SEND_BODY and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(BODY_TIMEOUT, self._body_deadline,
                                                    self.cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        super().connection_lost(exc)

    def _their_state(self) -> Any:
        return getattr(getattr(self, "conn", None), "their_state", None)

    def _body_deadline(self, cycle: Any) -> None:
        self._body_timer = None
        if self.cycle is cycle and self._their_state() is h11.SEND_BODY and \
                not self.transport.is_closing():
            self.transport.close()  # the app's `receive` says the client left

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if getattr(getattr(self, "conn", None), "their_state", None) is h11.SEND_BODY and \
                not self.transport.is_closing():
            # Answered before the body was read (a refused upload): uvicorn reads the rest
            # and drops it, for as long as the client sends a byte now and then. At most
            # HEAD_TIMEOUT more seconds, then the connection is closed.
            self.loop.call_later(HEAD_TIMEOUT, self._drain_deadline, self.cycle)

    def _drain_deadline(self, cycle: Any) -> None:
        if self.cycle is cycle and not self.transport.is_closing() and getattr(
                getattr(self, "conn", None), "their_state", None) is h11.SEND_BODY:
            self.transport.close()  # still the body of the request answered

    def _awaiting_head(self) -> bool:
        return getattr(getattr(self, "conn", None), "their_state", None) is h11.IDLE

    def _head_begins(self) -> None:
        self._head_since = self.loop.time()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_deadline)

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self._head_since is None or self.transport.is_closing():
            return
        left = self._head_since + HEAD_TIMEOUT - self.loop.time()
        if left > 0:  # a later head, begun since the timer was set
            self._head_timer = self.loop.call_later(left, self._head_deadline)
        elif self._awaiting_head():
            self.transport.close()
