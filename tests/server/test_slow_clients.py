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
    monkeypatch.setattr(protocol, "BODY_TIMEOUT", 0.8)
    monkeypatch.setattr(app_module, "BODY_IDLE_TIMEOUT", 0.3)
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


def test_a_request_head_that_never_completes_is_closed(server: int) -> None:
    """Connected and silent, a header line then nothing, half a request line: each is
    closed once the deadline passed (the three at once: one deadline to wait)."""
    heads = [b"", b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n", b"GET /simple/ HTT"]
    connections = [socket.create_connection(("127.0.0.1", server)) for _ in heads]
    try:
        for connection, head in zip(connections, heads, strict=True):
            connection.sendall(head)
        for connection in connections:
            assert _answer(connection) == b""
    finally:
        for connection in connections:
            connection.close()


def test_a_head_sent_slowly_but_in_time_is_served(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        for part in (b"GET /_/oidc/audience HTTP/1.1\r\n", b"Host: x\r\n",
                     b"Connection: close\r\n", b"\r\n"):
            connection.sendall(part)
            time.sleep(0.1)
        assert b'{"audience":"pypi"}' in _answer(connection)


def test_a_body_that_stops_coming_is_answered_408(server: int) -> None:
    """The body announced 1 000 bytes and sent one: the request waited for the rest
    for ever (and an upload, answered 403 at once, kept reading the rest for ever). The
    mint endpoint keeps timers off its hot path: the protocol closes the connection."""
    requests = [("/_/oidc/mint-token", "application/json", b""),
                ("/legacy/", "multipart/form-data; boundary=b0undary", b"HTTP/1.1 403"),
                ("/_/oidc/burn-token", "application/json", b"HTTP/1.1 408")]
    connections = [socket.create_connection(("127.0.0.1", server)) for _ in requests]
    try:
        for connection, (path, content_type, _) in zip(connections, requests, strict=True):
            connection.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                               f"{content_type}\r\nAuthorization: Basic "
                               "X190b2tlbl9fOm5vcGU=\r\nContent-Length: 1000\r\n\r\n{"
                               .encode())
        for connection, (_, _, status) in zip(connections, requests, strict=True):
            answer = _answer(connection)
            assert answer.startswith(status) and (status or not answer), answer[:300]
    finally:
        for connection in connections:
            connection.close()
