"""A real HTTPS server on 127.0.0.1 for the key-fetching tests (PYTEST_DONT_REWRITE).

`JwksServer` serves an OIDC discovery document whose `jwks_uri` points back at it
and a JWKS document, over TLS with a certificate for the IP address 127.0.0.1
signed by a CA generated at test time. Tests change what each path answers while
it runs (`serve`, `set_jwks`, `set_jwks_uri`) with `Reply` values: a JSON document,
an HTTP status, garbage, a huge body, a slow or trickling answer, a redirect, bytes
that are not HTTP at all. Requests are counted per path.

Fixtures (test modules load them with `pytest_plugins = ("tests.jwks_server",)`):

* `tls_files` (session): the CA and the server's certificate and key, as files;
* `jwks_server`: the session's server, reset to its defaults for each test;
* `fresh_jwks_server`: a server of the test's own, which the test may stop;
* `down_url`: an https URL on a loopback port where nothing listens;
* `blackhole_url`: a port that accepts TCP connections and never answers.

Everything is bounded: handler sockets time out, sleeping handlers wake up when
the test ends, and closing joins every thread the server started.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tppolicy.token.keys import DEFAULT_MAX_DOCUMENT, HttpFetcher

from .tokens import ec_key, jwks, rsa_key

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"
HUGE = 10 * 1024 * 1024  # streamed, never held in memory
HANDLER_TIMEOUT = 2.0  # seconds a handler waits on a silent client
FETCH_TIMEOUT = 0.5  # the tests' fetcher timeout
_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "http_proxy",
                    "HTTP_PROXY")


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate (PEM): what clients trust
    cert: Path  # the server's certificate for IP 127.0.0.1, signed by the CA
    key: Path  # the server's private key

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only the test CA (hostname checks on)."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1 signed by it, written to `directory`."""
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tppolicy test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    os.chmod(files.key, 0o600)
    return files


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """What the server answers on one path."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    delay: float = 0.0  # seconds of silence before the status line
    padding: int = 0  # bytes of JSON whitespace streamed after the body
    drip: float = 0.0  # if set, the body is sent one byte at a time, this many seconds apart
    drip_for: float = 2.5  # ... for at most this long; then the connection is closed
    raw: bytes | None = None  # sent instead of an HTTP response (not HTTP at all)


def json_reply(document: Any) -> Reply:
    return Reply(body=json.dumps(document).encode())


def status_reply(status: int) -> Reply:
    return Reply(status=status, body=b'{"error": "no"}')


def garbage_reply() -> Reply:
    return Reply(body=b"<html><body>502 Bad Gateway</body></html>\x00\xff",
                 headers=(("Content-Type", "application/json"),))


def huge_reply(document: Any, size: int = HUGE) -> Reply:
    """`document` followed by `size` bytes of spaces: valid JSON, were it read whole."""
    return replace(json_reply(document), padding=size)


def slow_reply(seconds: float, then: Reply | None = None) -> Reply:
    """Silence for `seconds` before answering (`then`, by default a 200 with `{}`)."""
    return replace(then or json_reply({}), delay=seconds)


def trickle_reply(document: Any, interval: float, limit: float = 2.5) -> Reply:
    """The status and headers at once, then the body one byte per `interval` seconds,
    cut short after `limit` seconds. Every read gets a byte well within a timeout."""
    return replace(json_reply(document), drip=interval, drip_for=limit)


def redirect_reply(location: str, status: int = 302) -> Reply:
    return Reply(status=status, headers=(("Location", location),))


def raw_reply(data: bytes) -> Reply:
    return Reply(raw=data)


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection; bodies end at close
    timeout = HANDLER_TIMEOUT

    def setup(self) -> None:
        # The TLS handshake happens here, in the handler's thread, under a timeout:
        # a client that never speaks TLS cannot block the accept loop.
        self.request.settimeout(self.timeout)
        self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:  # the TLS socket replaced the one socketserver knows how to close
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        reply, wake = self.server.app._take(urlsplit(self.path).path)
        with contextlib.suppress(OSError):  # the client hung up after a cap or a timeout
            self._answer(reply, wake)

    def _answer(self, reply: Reply, wake: threading.Event) -> None:
        if reply.delay and wake.wait(reply.delay):
            return  # the test is over
        if reply.raw is not None:
            self.wfile.write(reply.raw)
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body) + reply.padding))
        self.end_headers()
        if reply.drip:
            stop = time.monotonic() + reply.drip_for
            for index in range(len(reply.body)):
                self.wfile.write(reply.body[index:index + 1])
                if wake.wait(reply.drip) or time.monotonic() > stop:
                    return
        else:
            self.wfile.write(reply.body)
        chunk = b" " * 65536
        left = reply.padding
        while left > 0 and not wake.is_set():
            self.wfile.write(chunk[:left])
            left -= len(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins the handler threads

    def __init__(self, app: JwksServer, tls: ssl.SSLContext) -> None:
        self.app = app
        self.tls = tls
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.app._lock:
            self.app.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        with self.app._lock:  # a failed handshake, mostly: counted, not printed
            self.app.failed_connections += 1


class JwksServer:
    """A threaded HTTPS server on 127.0.0.1 with routes tests change while it runs."""

    def __init__(self, tls: TlsFiles) -> None:
        self.tls = tls
        self._lock = threading.Lock()
        self._routes: dict[str, Reply] = {}
        self._counts: Counter[str] = Counter()
        self._wake = threading.Event()
        self.connections = 0
        self.failed_connections = 0  # TLS handshakes that failed, errors in handlers
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(tls.cert, tls.key)
        self._httpd = _Server(self, context)
        self.port: int = self._httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.reset()
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"jwks-server-{self.port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ behaviour
    def reset(self) -> None:
        """Default routes (discovery → /jwks with keys rsa-1 and ec-1), counts zeroed,
        sleeping handlers woken."""
        with self._lock:
            self._wake.set()
            self._wake = threading.Event()
            self._counts.clear()
            self.connections = 0
            self.failed_connections = 0
            self._routes = {
                DISCOVERY_PATH: json_reply({"issuer": self.url,
                                            "jwks_uri": self.url + JWKS_PATH}),
                JWKS_PATH: json_reply(jwks(rsa_key(), ec_key())),
            }

    def serve(self, path: str, reply: Reply | None) -> None:
        """Answer `reply` on `path` from now on (None: 404)."""
        with self._lock:
            if reply is None:
                self._routes.pop(path, None)
            else:
                self._routes[path] = reply

    def set_jwks(self, document: Mapping[str, Any] | Reply) -> None:
        self.serve(JWKS_PATH, document if isinstance(document, Reply) else json_reply(document))

    def set_jwks_uri(self, uri: object) -> None:
        """The discovery document names `uri` as its jwks_uri."""
        self.serve(DISCOVERY_PATH, json_reply({"issuer": self.url, "jwks_uri": uri}))

    def requests(self, path: str | None = None) -> int:
        """Requests received on `path` (all paths if None) since the last reset."""
        with self._lock:
            return sum(self._counts.values()) if path is None else self._counts[path]

    def fetcher(self, timeout: float = FETCH_TIMEOUT,
                max_bytes: int = DEFAULT_MAX_DOCUMENT) -> HttpFetcher:
        """The real fetcher, trusting this server's CA."""
        return HttpFetcher(timeout=timeout, max_bytes=max_bytes,
                           ssl_context=self.tls.client_context())

    def _take(self, path: str) -> tuple[Reply, threading.Event]:
        with self._lock:
            self._counts[path] += 1
            return self._routes.get(path, status_reply(404)), self._wake

    # ------------------------------------------------------------ lifetime
    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop accepting, wake sleeping handlers and join every thread. Idempotent."""
        with self._lock:
            self._wake.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()  # joins the handler threads (block_on_close)
        assert not self._thread.is_alive(), "the server thread did not stop"

    def __enter__(self) -> JwksServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unused_port() -> int:
    """A loopback port where nothing listens (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def blackhole() -> Iterator[str]:
    """An https URL whose port completes TCP handshakes (backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"https://127.0.0.1:{sock.getsockname()[1]}"


def _handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: a proxy from the environment must not see these requests."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def _jwks_server_session(tls_files: TlsFiles) -> Iterator[JwksServer]:
    server = JwksServer(tls_files)
    try:
        yield server
    finally:
        server.close()
        assert not _handler_threads(), "handler threads left running"


@pytest.fixture
def jwks_server(_jwks_server_session: JwksServer, _no_proxy: None) -> Iterator[JwksServer]:
    """The session's server with its default routes and zeroed counts."""
    _jwks_server_session.reset()
    yield _jwks_server_session
    _jwks_server_session.reset()  # wakes whatever the test left sleeping


@pytest.fixture
def fresh_jwks_server(tls_files: TlsFiles, _no_proxy: None) -> Iterator[JwksServer]:
    """A server of the test's own: closing it makes its URL a server that is down."""
    with JwksServer(tls_files) as server:
        yield server


@pytest.fixture
def down_url(_no_proxy: None) -> str:
    return f"https://127.0.0.1:{unused_port()}"


@pytest.fixture
def blackhole_url(_no_proxy: None) -> Iterator[str]:
    with blackhole() as url:
        yield url
