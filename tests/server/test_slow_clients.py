"""Slow clients ("slowloris") against the real server (uvicorn with tppolicy's protocol,
in a thread, on 127.0.0.1): a request head that never completes, and a body that stops
coming, no longer hold a connection for ever. Deadlines shortened for the test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tppolicy.server import Index, create_app, protocol
from tppolicy.server import app as app_module

from .conftest import GH_ROW


@pytest.fixture
def server(make_index: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    import uvicorn

    monkeypatch.setattr(protocol, "HEAD_TIMEOUT", 0.5)
    monkeypatch.setattr(app_module, "BODY_IDLE_TIMEOUT", 0.5)
    index: Index = make_index()
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["sampleproject"]})
    index.sync(force=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(create_app(index), http=protocol.ReasonH11Protocol,
                            lifespan="on", log_level="critical", timeout_keep_alive=60)
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.started
    try:
        yield sock.getsockname()[1]
    finally:
        runner.should_exit = True
        thread.join(10)
        sock.close()


def _answer(connection: socket.socket, wait: float = 5.0) -> bytes:
    """What the server sent until it closed the connection (b"" if it closed at once);
    fails if it is still open after `wait` seconds."""
    connection.settimeout(wait)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the connection is still open after {wait} s: {received[:200]!r}")
    return received


@pytest.mark.parametrize("head", [
    b"",  # connected, nothing sent
    b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n",  # a header line, then nothing
    b"GET /simple/ HTT",
])
def test_a_request_head_that_never_completes_is_closed(server: int, head: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        connection.sendall(head)
        assert _answer(connection) == b""


def test_a_head_sent_slowly_but_in_time_is_served(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        for part in (b"GET /_/oidc/audience HTTP/1.1\r\n", b"Host: x\r\n",
                     b"Connection: close\r\n", b"\r\n"):
            connection.sendall(part)
            time.sleep(0.1)
        assert b'{"audience":"pypi"}' in _answer(connection)


@pytest.mark.parametrize(("path", "content_type"), [
    ("/_/oidc/mint-token", "application/json"),
    ("/legacy/", "multipart/form-data; boundary=b0undary"),
    ("/_/oidc/burn-token", "application/json"),
])
def test_a_body_that_stops_coming_is_answered_408(server: int, path: str,
                                                   content_type: str) -> None:
    """The body announced 1 000 bytes and sent one: the request waited for the rest
    for ever (and an upload before even checking its credential)."""
    with socket.create_connection(("127.0.0.1", server)) as connection:
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}"
                           "\r\nAuthorization: Basic X190b2tlbl9fOm5vcGU=\r\n"
                           "Content-Length: 1000\r\n\r\n{".encode())
        answer = _answer(connection)
    status = answer.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 408") or (
        path == "/legacy/" and status.startswith(b"HTTP/1.1 403")), answer[:300]
