"""The error message of a refused upload reaches clients under any ASGI server, and the
private reason-phrase header never does: under `tppolicy serve` (uvicorn with the
reason-phrase protocol) the message is the status line's reason, which twine prints;
under hypercorn and plain uvicorn it is in the JSON body (uv prints it, twine with
--verbose) and the header is dropped."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tppolicy.server import Storage

from .conftest import GH_ROW, clean_env, free_port, github_token, post_json
from .test_app import wheel
from .test_simple import real_wheel

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
REFUSAL = "The given token isn't allowed to upload to project 'otherproject'"


def refused_upload(url: str, credential: str, ca: Path | None) -> tuple[int, str, Any, str]:
    """A raw HTTP/1.1 upload to a project outside the credential: (status, reason,
    headers, body)."""
    filename, data = wheel("otherproject")
    boundary = "tppolicy-boundary"
    fields = {":action": "file_upload", "protocol_version": "1", "name": "otherproject",
              "version": "1.0", "filetype": "bdist_wheel",
              "sha256_digest": hashlib.sha256(data).hexdigest()}
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                    f"{v}\r\n".encode() for k, v in fields.items())
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
             f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
             ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca))
        connection = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                                 context=context, timeout=20)
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
    import base64

    auth = base64.b64encode(f"__token__:{credential}".encode()).decode()
    connection.request("POST", "/legacy/", body, {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Authorization": f"Basic {auth}"})
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    return response.status, response.reason, response.headers, text


@pytest.fixture
def asgi_server(tmp_path: Path, jwks_file: Path) -> Iterator[Any]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(kind: str) -> str:
        db = tmp_path / f"{kind}.db"
        storage = Storage(db)
        storage.put_publisher("release", {**GH_ROW, "name": "release",
                                          "projects": ["sampleproject"]})
        storage.close()
        port = free_port()
        if kind == "hypercorn":
            pytest.importorskip("hypercorn", reason="pip install -e '.[server-test]'")
            argv = [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}",
                    "tests.server.asgi_app:app"]
        else:
            argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port",
                    str(port), "--log-level", "warning", "tests.server.asgi_app:app"]
        env = clean_env(TPPOLICY_TEST_DB=str(db), TPPOLICY_TEST_JWKS=str(jwks_file),
                        PYTHONPATH=os.pathsep.join(filter(None, [
                            str(ROOT), os.environ.get("PYTHONPATH", "")])))
        with (tmp_path / f"{kind}.log").open("wb") as log:  # the server keeps its own copy
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                connection.request("GET", "/_/health")
                if connection.getresponse().status == 200:
                    return url
            except OSError:
                pass
            finally:
                connection.close()
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError((tmp_path / f"{kind}.log").read_text())
            time.sleep(0.1)

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def mint_http(url: str) -> str:
    import urllib.request

    request = urllib.request.Request(url + "/_/oidc/mint-token",
                                     json.dumps({"token": github_token()}).encode(),
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        token: str = json.loads(response.read())["token"]
    return token


def test_tppolicy_serve_sets_the_reason_phrase_and_drops_the_header(
        server_process: Any) -> None:
    server = server_process()
    status, minted = post_json(server.url + "/_/oidc/mint-token", {"token": github_token()},
                               server.tls.ca)
    assert status == 200, minted
    status, reason, headers, body = refused_upload(server.url, minted["token"], server.tls.ca)
    assert status == 403
    assert reason.startswith(REFUSAL)
    assert "x-tppolicy-reason" not in {k.lower() for k in headers}
    assert REFUSAL in json.loads(body)["message"]


@pytest.mark.slow  # two more servers started in subprocesses
@pytest.mark.parametrize("kind", ["hypercorn", "uvicorn"])
def test_other_asgi_servers_never_see_the_private_header(asgi_server: Any, kind: str,
                                                         tmp_path: Path) -> None:
    url = asgi_server(kind)
    credential = mint_http(url)
    status, reason, headers, body = refused_upload(url, credential, None)
    assert status == 403
    assert reason in ("Forbidden", "")  # the server's own phrase (hypercorn sends none)
    assert "x-tppolicy-reason" not in {k.lower() for k in headers}
    answer = json.loads(body)
    assert answer["message"].startswith(REFUSAL)
    assert answer["code"].startswith(f"403 {REFUSAL}")

    # twine: the status, and the message with --verbose (it prints the body)
    if shutil.which("twine") is None:
        pytest.skip("twine is not installed (pip install -e '.[server-test]')")
    filename, data = real_wheel("otherproject", metadata=b"Metadata-Version: 2.1\n"
                                b"Name: otherproject\nVersion: 1.0\n")
    (tmp_path / filename).write_bytes(data)
    done = subprocess.run([sys.executable, "-m", "twine", "upload", "--verbose",
                           "--repository-url", url + "/legacy/", "--username", "__token__",
                           "--password", credential, "--non-interactive",
                           "--disable-progress-bar", str(tmp_path / filename)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=clean_env())
    assert done.returncode == 1
    output = " ".join((done.stdout + done.stderr).split())
    assert "HTTPError: 403 Forbidden from " in output
    assert REFUSAL in output
