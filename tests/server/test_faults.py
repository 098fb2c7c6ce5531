"""Load and faults against the real server process (loopback, bounded counts):
concurrent exchanges of one token, replicas, key rotation while serving, the JWKS
endpoint down, and a restart (kill -9) in the middle of a run."""

from __future__ import annotations

import hashlib
import http.client
import io
import ssl
import threading
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.jwks_server import JwksServer
from tests.tokens import GITHUB, jwks, rsa_key
from tppolicy.server.storage import Storage

from .conftest import RedisServer, github_token, post_json, write_jwks

CONCURRENT = 24  # simultaneous exchanges of one token


def race(servers: list[Any], token: str, count: int = CONCURRENT) -> list[tuple[int, Any]]:
    """`count` exchanges of one token at once, spread over `servers`."""
    barrier = threading.Barrier(count)

    def one(position: int) -> tuple[int, Any]:
        server = servers[position % len(servers)]
        barrier.wait(10)
        return post_json(server.url + "/_/oidc/mint-token", {"token": token}, server.tls.ca)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def codes(answers: list[tuple[int, Any]]) -> list[str]:
    return sorted("ok" if status == 200 else body["errors"][0]["code"]
                  for status, body in answers)


def test_concurrent_exchanges_of_one_token_exactly_one_wins(server_process: Any) -> None:
    server = server_process()
    for _ in range(3):
        assert codes(race([server], github_token())) == \
            ["invalid-reuse-token"] * (CONCURRENT - 1) + ["ok"]


@pytest.mark.slow  # a server process or two for a second: the slow group
def test_replicas_sharing_the_database_file(server_process: Any, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    first, second = server_process(db=db), server_process(db=db)
    assert codes(race([first, second], github_token())) == \
        ["invalid-reuse-token"] * (CONCURRENT - 1) + ["ok"]


@pytest.mark.slow  # a server process or two for a second: the slow group
def test_replicas_sharing_redis(server_process: Any, tmp_path: Path,
                                redis_server: RedisServer) -> None:
    first = server_process("--redis", redis_server.url, db=tmp_path / "a.db")
    second = server_process("--redis", redis_server.url, db=tmp_path / "b.db")
    assert codes(race([first, second], github_token())) == \
        ["invalid-reuse-token"] * (CONCURRENT - 1) + ["ok"]


@pytest.mark.slow  # a server process or two for a second: the slow group
def test_key_rotation_while_serving(server_process: Any, jwks_file: Path) -> None:
    server = server_process()  # reads jwks_file again on an unknown kid (cooldown 0.5 s)
    old, new = rsa_key(), rsa_key("rotated-2")
    results: list[int] = []
    stop = threading.Event()

    def steady_load() -> None:  # tokens signed with the old key, all along
        while not stop.is_set() and len(results) < 400:
            results.append(server.mint(github_token(old))[0])

    loader = threading.Thread(target=steady_load)
    loader.start()
    try:
        time.sleep(0.3)
        assert server.mint(github_token(new))[1]["errors"][0]["code"] == "invalid-token"
        write_jwks(jwks_file, old, new)  # the issuer publishes the new key
        deadline = time.monotonic() + 30  # bounds a hang (a loaded machine is slow)
        while server.mint(github_token(new))[0] != 200:
            assert time.monotonic() < deadline, "the new key was never picked up"
            time.sleep(0.1)
    finally:
        stop.set()
        loader.join(30)
    assert results and set(results) == {200}, results  # no request failed meanwhile
    write_jwks(jwks_file, new)  # the old key is withdrawn
    time.sleep(0.6)
    server.mint(github_token(rsa_key("unknown-kid")))  # an unknown kid makes it refresh
    status, body = server.mint(github_token(old))
    assert status == 422 and "unknown key id 'rsa-1'" in body["errors"][0]["description"]
    assert server.mint(github_token(new))[0] == 200


@pytest.mark.slow  # a server process or two for a second: the slow group
def test_jwks_endpoint_down(server_process: Any, tls: Any) -> None:
    with JwksServer(tls) as keys:
        keys.set_jwks(jwks(rsa_key()))
        server = server_process("--jwks", f"{GITHUB}={keys.url}/jwks", "--fetch-timeout", "1",
                                env={"SSL_CERT_FILE": str(tls.ca)})
        assert server.mint(github_token())[0] == 200
    # The endpoint is gone: cached keys still verify; an unknown kid fails fast.
    assert server.mint(github_token())[0] == 200
    started = time.monotonic()
    status, body = server.mint(github_token(rsa_key("new-kid")))
    assert status == 422 and body["errors"][0]["code"] == "invalid-token"
    assert time.monotonic() - started < 3
    assert server.mint(github_token())[0] == 200  # and the server keeps serving

    # A server that never had the keys refuses with the reason, within the timeout.
    with JwksServer(tls) as gone:
        url = gone.url
    cold = server_process("--jwks", f"{GITHUB}={url}/jwks", "--fetch-timeout", "1",
                          env={"SSL_CERT_FILE": str(tls.ca)}, db=server.db.with_name("cold.db"))
    started = time.monotonic()
    status, body = cold.mint(github_token())
    assert status == 422 and body["errors"][0]["code"] == "invalid-token"
    assert "cannot be fetched" in body["errors"][0]["description"]
    assert time.monotonic() - started < 3


FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # the same bytes whenever a wheel is built


def wheel(version: str) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("sampleproject/__init__.py", FIXED_TIME),
                         f"VERSION = {version!r}\n")
    return f"sampleproject-{version}-py3-none-any.whl", buffer.getvalue()


def upload(server: Any, credential: str, version: str) -> int:
    import base64
    import uuid

    filename, data = wheel(version)
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in ((":action", "file_upload"), ("name", "sampleproject"),
                       ("version", version), ("filetype", "bdist_wheel"),
                       ("sha256_digest", hashlib.sha256(data).hexdigest())):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                     f"{value}\r\n".encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                 .encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    auth = base64.b64encode(f"__token__:{credential}".encode()).decode()
    request = urllib.request.Request(
        server.url + "/legacy/", b"".join(parts), method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                 "Authorization": f"Basic {auth}"})
    context = ssl.create_default_context(cafile=str(server.tls.ca))
    try:
        with urllib.request.urlopen(request, timeout=20, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:  # close the error answer's connection
            return exc.code


@pytest.mark.slow  # a server stopped and started again under exchanges
def test_a_restart_mid_run_loses_no_credential_and_no_file(server_process: Any) -> None:
    server = server_process()
    status, first = server.mint(github_token())
    assert status == 200 and upload(server, first["token"], "1.0") == 200
    minted: list[str] = []
    used_tokens: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set() and len(used_tokens) < 2000:
            token = github_token()
            try:
                status, body = server.mint(token)
            except (OSError, http.client.HTTPException):  # IncompleteRead, too
                return  # the server went down mid-request: its answer never came
            used_tokens.append(token)
            if status == 200:
                minted.append(body["token"])

    loaders = [threading.Thread(target=load) for _ in range(4)]
    for thread in loaders:
        thread.start()
    time.sleep(1.0)
    hang = time.monotonic() + 60  # a loaded machine mints slower: more than 10 first
    while len(minted) <= 10 and time.monotonic() < hang and any(t.is_alive() for t in loaders):
        time.sleep(0.05)
    server.stop(kill=True)  # kill -9 in the middle of the run
    stop.set()
    for thread in loaders:
        thread.join(30)
    assert len(minted) > 10
    server.start()
    storage = Storage(server.db)
    try:
        lost = [c for c in minted if storage.credential(c) is None]
        assert not lost, f"{len(lost)} of {len(minted)} minted credentials lost"
    finally:
        storage.close()
    assert upload(server, minted[-1], "1.1") == 200  # a credential from before the crash
    assert upload(server, first["token"], "1.2") == 200
    with urllib.request.urlopen(server.url + "/simple/sampleproject/", timeout=10,
                                context=ssl.create_default_context(cafile=str(server.tls.ca))
                                ) as response:
        page = response.read().decode()
    for version in ("1.0", "1.1", "1.2"):
        assert f"sampleproject-{version}-py3-none-any.whl" in page
    status, body = server.mint(used_tokens[0])  # replay protection survived too
    assert body["errors"][0]["code"] == "invalid-reuse-token"


@pytest.fixture(autouse=True)
def _bounded() -> Any:
    started = time.monotonic()
    yield
    assert time.monotonic() - started < 90, "a fault test ran too long"
