"""Fixtures for the index server: keys the server trusts for the GitHub issuer (a JWKS
file), signed tokens, an in-process index with a test client, the real server in a
subprocess (HTTPS on 127.0.0.1 with the test CA), a stand-in for GitHub's token
endpoint and a real Redis server. Everything listens on loopback only and stops."""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import EXAMPLES, load_claims
from tests.jwks_server import TlsFiles, make_tls_files
from tests.tokens import GITHUB, SigningKey, jwks, rsa_key

pytest.importorskip("starlette", reason="the server extra is not installed "
                    "(pip install -e '.[server-test]')")

with warnings.catch_warnings():  # starlette 1.x asks for httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient as TestClient

from tppolicy.server import Index, Settings, build_index, create_app

from .pg_cluster import PostgresCluster, pg_url, postgres_cluster  # noqa: F401 - fixtures

_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "http_proxy",
                    "HTTP_PROXY", "no_proxy", "NO_PROXY",
                    # requests lets these override an explicit --cert (twine, pip)
                    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")

GH_ROW = {"provider": "github", "repository_owner": "octo-org",
          "repository_name": "sampleproject", "repository_owner_id": "65",
          "workflow_filename": "release.yml", "environment": "pypi"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end with the real clients (uv, twine, "
                            "pip, id) against the server in a subprocess")


def github_claims(**changes: Any) -> dict[str, Any]:
    """GitHub's release claims, fresh: issued now, 5 minutes, a new jti."""
    now = int(time.time())
    claims = {**load_claims("github-release"), "iat": now, "nbf": now, "exp": now + 300,
              "jti": str(uuid.uuid4())}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def github_token(key: SigningKey | None = None, **changes: Any) -> str:
    return (key or rsa_key()).sign(github_claims(**changes))


def write_jwks(path: Path, *keys: SigningKey) -> Path:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(jwks(*keys)))
    temp.replace(path)  # atomic: a refresh never reads half a file
    return path


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    return write_jwks(tmp_path / "github-jwks.json", rsa_key())


@pytest.fixture
def make_index(tmp_path: Path, jwks_file: Path) -> Iterator[Any]:
    made: list[Index] = []

    def make(**settings: Any) -> Index:
        values: dict[str, Any] = {"db": tmp_path / "index.db", "jwks": {GITHUB: str(jwks_file)},
                                  "jwks_cooldown": 0.2, "reload_interval": 0.05}
        values.update(settings)
        index = build_index(Settings(**values))
        made.append(index)
        return index

    yield make
    for index in made:
        index.storage.close()


@pytest.fixture
def index(make_index: Any) -> Index:
    index: Index = make_index()
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["sampleproject", "sample-extras"]})
    index.sync(force=True)
    return index


@pytest.fixture
def client(index: Index) -> Iterator[TestClient]:
    with TestClient(create_app(index), base_url="http://127.0.0.1") as test_client:
        yield test_client


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES
           and not k.startswith(("PIP_", "UV_", "TWINE_", "ACTIONS_", "GITHUB_"))}
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """`tppolicy serve` in a subprocess, on HTTPS with the test CA."""

    db: Path | str  # a file, or a PostgreSQL URL
    args: list[str]
    tls: TlsFiles
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self, timeout: float = 30.0) -> ServerProcess:
        assert self.process is None
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tppolicy", "serve", "--db", str(self.db), "--port", "0",
             "--ssl-certfile", str(self.tls.cert), "--ssl-keyfile", str(self.tls.key),
             *self.args],
            stdout=subprocess.PIPE, stderr=handle, env=clean_env(**self.env))
        handle.close()  # the server has its own copy
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        lines: queue.Queue[bytes] = queue.Queue()
        stdout = self.process.stdout

        def read() -> None:  # drains standard output: the server never blocks on it
            with stdout:
                for output in stdout:
                    lines.put(output)
            lines.put(b"")

        threading.Thread(target=read, daemon=True).start()
        line = b""
        while b"listening on " not in line:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = b""
            if not line:
                self.stop()
                raise AssertionError(f"the server did not start: {self.log.read_text()}")
        self.url = line.split(b"listening on ", 1)[1].split()[0].decode()
        self._wait_ready(deadline)
        return self

    def _wait_ready(self, deadline: float) -> None:
        import ssl
        import urllib.request

        context = ssl.create_default_context(cafile=str(self.tls.ca))
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_/oidc/audience", timeout=2,
                                            context=context) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"the server does not answer: {self.log.read_text()}")

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def mint(self, token: str) -> tuple[int, dict[str, Any]]:
        return post_json(self.url + "/_/oidc/mint-token", {"token": token}, self.tls.ca)


def post_json(url: str, payload: Any, ca: Path) -> tuple[int, dict[str, Any]]:
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(url, json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:  # an error answer holds the connection too: close it, whatever read() does
            return exc.code, json.loads(exc.read())


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("server-tls"))


@pytest.fixture
def server_process(tmp_path: Path, tls: TlsFiles, jwks_file: Path) -> Iterator[Any]:
    """A factory of server processes (stopped at the end of the test)."""
    started: list[ServerProcess] = []

    def make(*args: str, db: Path | str | None = None, publishers: Path | None = None,
             env: dict[str, str] | None = None, start: bool = True) -> ServerProcess:
        options = ["--jwks", f"{GITHUB}={jwks_file}", "--log-level", "warning",
                   "--reload-interval", "0.2", "--jwks-cooldown", "0.5",
                   "--publishers", str(publishers or EXAMPLES / "publishers.yaml"), *args]
        server = ServerProcess(db or tmp_path / "index.db", options, tls,
                               tmp_path / f"server-{len(started)}.log", env or {})
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- CI tokens


class TokenEndpoint:
    """A stand-in for GitHub's token endpoint: GET $URL&audience=AUD with
    `Authorization: bearer $TOKEN` answers {"value": <a signed GitHub token>}."""

    def __init__(self, claims: dict[str, Any] | None = None,
                 key: SigningKey | None = None) -> None:
        self.request_token = secrets.token_urlsafe(16)
        self.claims = claims or {}
        self.key = key or rsa_key()
        self.issued: list[str] = []
        self.refused = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                authorization = self.headers.get("Authorization", "")
                scheme, _, given = authorization.partition(" ")
                if scheme.lower() != "bearer" or given != endpoint.request_token:
                    endpoint.refused += 1
                    self._answer(401, {"message": "bad request token"})
                    return
                audience = query.get("audience", ["(none)"])[-1]
                token = github_token(endpoint.key, aud=audience, **endpoint.claims)
                endpoint.issued.append(token)
                self._answer(200, {"value": token})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = (f"http://127.0.0.1:{self._server.server_address[1]}/_apis/"
                    "token?api-version=2.0")
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        return {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    yield endpoint
    endpoint.close()


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server (Debian's package) on a free loopback port, in a temp dir."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server; "
                    ".ci/run installs it)")
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError("redis-server did not start") from None
            time.sleep(0.05)
    client.close()
    try:
        yield RedisServer(f"redis://127.0.0.1:{port}/0", process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def fail_credential_writes(index: Index, on: bool) -> None:
    """Make the server's database refuse (`on`) or take again credential rows: a real
    failure of the credential write (a trigger), as a full disk would give."""
    assert index.storage.path is not None
    with sqlite3.connect(index.storage.path) as db:
        if on:
            db.execute("CREATE TRIGGER refuse_credentials BEFORE INSERT ON credentials "
                       "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END")
        else:
            db.execute("DROP TRIGGER refuse_credentials")
