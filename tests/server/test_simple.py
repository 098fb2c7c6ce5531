"""The simple repository API: PEP 691 content negotiation and JSON, PEP 658/714 core
metadata of wheels, in process; then the real pip and uv resolving from the running
server with the wheels removed from disk (they can only have used the metadata)."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tppolicy.server import Index
from tppolicy.server.simple import HTML_V1, JSON_V1, TEXT_HTML, negotiate

from .conftest import TestClient, clean_env
from .test_app import credential, upload

METADATA = b"Metadata-Version: 2.1\nName: sampleproject\nVersion: 1.0\n" \
    b"Requires-Python: >=3.8\n\nA sample.\n"


def real_wheel(name: str = "sampleproject", version: str = "1.0",
               metadata: bytes | None = METADATA) -> tuple[str, bytes]:
    stem = f"{name.replace('-', '_')}-{version}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}/__init__.py", "")
        if metadata is not None:
            archive.writestr(f"{stem}.dist-info/METADATA", metadata)
        archive.writestr(f"{stem}.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return f"{stem}-py3-none-any.whl", buffer.getvalue()


# ------------------------------------------------------------------ negotiation
@pytest.mark.parametrize(("accept", "expected"), [
    (None, TEXT_HTML),
    ("", TEXT_HTML),
    ("*/*", TEXT_HTML),
    ("text/html", TEXT_HTML),
    (JSON_V1, JSON_V1),
    ("application/vnd.pypi.simple.latest+json", JSON_V1),
    ("application/vnd.pypi.simple.latest+html", HTML_V1),
    # pip's header
    (f"{JSON_V1}, {HTML_V1}; q=0.1, text/html; q=0.01", JSON_V1),
    (f"{JSON_V1};q=0.2, text/html", TEXT_HTML),
    (f"{JSON_V1};q=0.5, {HTML_V1};q=0.5", JSON_V1),  # a tie: the server's order
    (f"{JSON_V1};q=0, */*", TEXT_HTML),
    ("application/*", JSON_V1),
    ("text/*;q=0.3, application/json", TEXT_HTML),
    (f"{JSON_V1};q=bogus, text/html;q=0.1", TEXT_HTML),
    ("application/json", None),
    (f"{JSON_V1};q=0", None),
    ("image/png, text/plain", None),
])
def test_negotiation(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept).media_type == expected


def test_json_and_html_forms(client: TestClient, index: Index) -> None:
    token = credential(client)
    filename, data = real_wheel()
    assert upload(client, token, data=data, filename=filename,
                  requires_python=">=3.8").status_code == 200
    bare, bare_data = real_wheel(version="1.1", metadata=None)  # no METADATA: none served
    assert upload(client, token, version="1.1", data=bare_data,
                  filename=bare).status_code == 200
    digest = hashlib.sha256(METADATA).hexdigest()

    root = client.get("/simple/", headers={"Accept": JSON_V1})
    assert root.status_code == 200
    assert root.headers["content-type"] == JSON_V1
    assert root.headers["vary"] == "Accept"
    assert root.json() == {"meta": {"api-version": "1.1"},
                           "projects": [{"name": "sampleproject"}]}

    page = client.get("/simple/sampleproject/", headers={"Accept": JSON_V1})
    assert page.headers["content-type"] == JSON_V1
    assert page.headers["vary"] == "Accept"
    body = page.json()
    assert body["meta"] == {"api-version": "1.1"}
    assert body["name"] == "sampleproject"
    assert body["versions"] == ["1.0", "1.1"]
    first, second = body["files"]
    assert first["filename"] == filename
    assert first["url"] == f"../../files/sampleproject/{filename}"
    assert first["hashes"] == {"sha256": hashlib.sha256(data).hexdigest()}
    assert first["requires-python"] == ">=3.8"
    assert first["core-metadata"] == first["dist-info-metadata"] == {"sha256": digest}
    assert first["size"] == len(data)
    assert first["upload-time"].endswith("Z")
    assert first["yanked"] is False
    assert first["provenance"] is None
    assert second["core-metadata"] is False and second["dist-info-metadata"] is False

    html = client.get("/simple/sampleproject/")
    assert html.headers["content-type"].startswith("text/html")
    assert html.headers["vary"] == "Accept"
    assert f'data-dist-info-metadata="sha256={digest}" ' \
        f'data-core-metadata="sha256={digest}"' in html.text
    assert html.text.count("data-core-metadata") == 1
    v1 = client.get("/simple/sampleproject/", headers={"Accept": HTML_V1})
    assert v1.headers["content-type"] == HTML_V1

    metadata = client.get(f"/files/sampleproject/{filename}.metadata")
    assert metadata.status_code == 200
    assert metadata.content == METADATA
    assert client.get(f"/files/sampleproject/{bare}.metadata").status_code == 404
    assert client.get(f"/files/other/{filename}.metadata").status_code == 404


def test_not_acceptable_and_not_found(client: TestClient) -> None:
    for path in ("/simple/", "/simple/sampleproject/"):
        answer = client.get(path, headers={"Accept": "application/json"})
        assert answer.status_code == 406
        assert answer.headers["vary"] == "Accept"
        assert JSON_V1 in answer.text
    missing = client.get("/simple/nothing/", headers={"Accept": JSON_V1})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    redirect = client.get("/simple/Sample.Project/", headers={"Accept": JSON_V1},
                          follow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["vary"] == "Accept"


def test_a_database_without_the_metadata_column_gains_it(tmp_path: Path,
                                                          make_index: Any) -> None:
    db = sqlite3.connect(tmp_path / "index.db")
    db.execute("CREATE TABLE files (filename TEXT PRIMARY KEY, project TEXT NOT NULL, "
               "version TEXT NOT NULL, filetype TEXT NOT NULL, requires_python TEXT, "
               "sha256 TEXT NOT NULL, size INTEGER NOT NULL, uploaded REAL NOT NULL, "
               "uploaded_by TEXT)")
    db.execute("INSERT INTO files VALUES ('sampleproject-1.0.tar.gz', 'sampleproject', '1.0', "
               "'sdist', NULL, 'ab', 1, 0, NULL)")
    db.commit()
    db.close()
    index = make_index()
    [stored] = index.storage.files("sampleproject")
    assert stored.metadata_sha256 is None


# ------------------------------------------------------------------ the real pip and uv
@pytest.mark.e2e
@pytest.mark.slow  # pip and uv in subprocesses
def test_pip_and_uv_resolve_from_the_metadata_alone(server_process: Any, tmp_path: Path) -> None:
    from .test_e2e import CLIENT_TIMEOUT, tool

    server = server_process()
    wheel_dir = tmp_path / "dists"
    wheel_dir.mkdir()
    filename, data = real_wheel(metadata=METADATA + b"")
    (wheel_dir / filename).write_bytes(data)
    status, minted = server.mint(_token())
    assert status == 200, minted
    done = subprocess.run(
        [sys.executable, "-m", "twine", "upload", "--repository-url", server.url + "/legacy/",
         "--username", "__token__", "--password", minted["token"], "--cert",
         str(server.tls.ca), "--non-interactive", "--disable-progress-bar",
         str(wheel_dir / filename)], capture_output=True, text=True, timeout=CLIENT_TIMEOUT,
        check=False, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    stored = server.db.parent / "index-files" / "sampleproject" / filename
    assert (stored.parent / (filename + ".metadata")).read_bytes() == METADATA

    # pip reads the metadata file to resolve. How it says so depends on its version:
    # "Obtaining dependency information for ... from <url>.metadata" (23.x to 26.3),
    # "Downloading <file>.metadata (89 bytes)" (newer); both name the .metadata file.
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir",
         "--disable-pip-version-check", "--dry-run", "--ignore-installed", "--report",
         str(report), "--index-url", server.url + "/simple/", "--cert", str(server.tls.ca),
         "sampleproject==1.0"], capture_output=True, text=True, timeout=CLIENT_TIMEOUT,
        check=False, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{filename}.metadata" in done.stdout, done.stdout
    [item] = json.loads(report.read_text())["install"]
    assert item["metadata"]["name"] == "sampleproject"
    assert item["download_info"]["url"].endswith(filename)

    # The wheel leaves the disk: uv resolves from the metadata alone.
    stored.unlink()

    requirements = tmp_path / "requirements.in"
    requirements.write_text("sampleproject==1.0\n")
    done = subprocess.run(
        [tool("uv"), "pip", "compile", "--no-cache", "--no-header", "--index-url",
         server.url + "/simple/", str(requirements)], capture_output=True, text=True,
        timeout=CLIENT_TIMEOUT, check=False,
        env=clean_env(SSL_CERT_FILE=str(server.tls.ca), UV_NO_CONFIG="1",
                      HOME=str(tmp_path), UV_CACHE_DIR=str(tmp_path / "uv-cache")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sampleproject==1.0" in done.stdout


def _token() -> str:
    from .conftest import github_token

    return github_token()
