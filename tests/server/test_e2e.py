"""End to end with the real clients, unchanged: `uv publish --trusted-publishing always`
gets its token from a stand-in for GitHub's token endpoint and exchanges it with the
server; `python -m id` does the same for twine; pip installs from the simple index.
The server runs in a subprocess on HTTPS (uv reaches the token endpoints over https
only) with a CA made for the test. Loopback only; every command has a timeout."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.tokens import GITHUB

from .conftest import TokenEndpoint, clean_env, post_json

# The real clients (uv, twine, pip) in subprocesses: the slow group (`.ci/run` runs it).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIENT_TIMEOUT = 120


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real distributions built with `python -m build` (hatchling, no network)."""
    pytest.importorskip("build", reason="pip install -e '.[server-test]'")
    pytest.importorskip("hatchling", reason="pip install -e '.[server-test]'")
    root = tmp_path_factory.mktemp("dists")
    out = root / "dist"
    for name, version, kinds in (("sampleproject", "1.0", ("--wheel", "--sdist")),
                                 ("sampleproject", "1.1", ("--wheel",)),
                                 ("sampleproject-plugin", "0.1", ("--wheel",)),
                                 ("otherproject", "1.0", ("--wheel",))):
        source = root / f"{name}-{version}"
        module = source / "src" / name.replace("-", "_")
        module.mkdir(parents=True)
        (module / "__init__.py").write_text(f'VALUE = "{name} {version}, published by '
                                            'trusted publishing"\n')
        (source / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\nrequires-python = ">=3.8"\n')
        done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", *kinds,
                               "--outdir", str(out), str(source)], capture_output=True,
                              text=True, timeout=CLIENT_TIMEOUT, check=False, env=clean_env())
        assert done.returncode == 0, done.stdout + done.stderr
    return out


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[server-test]')")
    return found


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT,
                          check=False, env=env)


def uv_publish(server: Any, endpoint: TokenEndpoint, tmp_path: Path,
               *files: Path) -> subprocess.CompletedProcess[str]:
    env = clean_env(**endpoint.env(), SSL_CERT_FILE=str(server.tls.ca),
                    UV_CACHE_DIR=str(tmp_path / "uv-cache"), HOME=str(tmp_path),
                    UV_NO_CONFIG="1")
    return run([tool("uv"), "publish", "--trusted-publishing", "always", "--publish-url",
                server.url + "/legacy/", *map(str, files)], env)


def id_token(endpoint: TokenEndpoint) -> str:
    """`python -m id pypi`, as gh-action-pypi-publish runs it before twine."""
    pytest.importorskip("id", reason="pip install -e '.[server-test]'")
    done = run([sys.executable, "-m", "id", "pypi"], clean_env(**endpoint.env()))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def twine_upload(server: Any, credential: str, *files: Path) -> subprocess.CompletedProcess[str]:
    tool("twine")
    return run([sys.executable, "-m", "twine", "upload", "--repository-url",
                server.url + "/legacy/", "--username", "__token__", "--password", credential,
                "--cert", str(server.tls.ca), "--non-interactive", "--disable-progress-bar",
                *map(str, files)], clean_env())


def pip_install(server: Any, target: Path, requirement: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir",
                "--disable-pip-version-check", "--no-deps", "--index-url",
                server.url + "/simple/", "--cert", str(server.tls.ca), "--target", str(target),
                requirement], clean_env())


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload)
                                                                                % 4)))
    return value


def test_uv_and_twine_publish_and_pip_installs(server_process: Any, token_endpoint: TokenEndpoint,
                                               dists: Path, tmp_path: Path) -> None:
    server = server_process()
    # uv: audience, the CI's token, mint-token, upload: all by itself
    done = uv_publish(server, token_endpoint, tmp_path,
                      dists / "sampleproject-1.0-py3-none-any.whl",
                      dists / "sampleproject-1.0.tar.gz")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Uploading sampleproject-1.0-py3-none-any.whl" in done.stderr
    assert len(token_endpoint.issued) == 1

    # id + mint-token + twine, as gh-action-pypi-publish does it
    token = id_token(token_endpoint)
    claims = claims_of(token)
    assert (claims["iss"], claims["aud"]) == (GITHUB, "pypi")
    status, minted = post_json(server.url + "/_/oidc/mint-token", {"token": token},
                               server.tls.ca)
    assert status == 200, minted
    assert minted["expires"] - time.time() == pytest.approx(900, abs=60)
    done = twine_upload(server, minted["token"], dists / "sampleproject-1.1-py3-none-any.whl")
    assert done.returncode == 0, done.stdout + done.stderr

    # pip, from the simple index, checking the hashes it lists
    for version in ("1.0", "1.1"):
        target = tmp_path / f"site-{version}"
        done = pip_install(server, target, f"sampleproject=={version}")
        assert done.returncode == 0, done.stdout + done.stderr
        installed = (target / "sampleproject" / "__init__.py").read_text()
        assert f"sampleproject {version}, published by trusted publishing" in installed


def test_a_denied_publisher_is_explained_in_uvs_output(
        server_process: Any, token_endpoint: TokenEndpoint, dists: Path,
        tmp_path: Path) -> None:
    server = server_process()
    token_endpoint.claims = {"environment": "release"}  # the publisher expects 'pypi'
    done = uv_publish(server, token_endpoint, tmp_path,
                      dists / "sampleproject-1.0-py3-none-any.whl")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Failed to obtain token for trusted publishing" in output
    assert '"code":"invalid-publisher"' in output
    assert "closest publisher 'sampleproject-github': environment: token has 'release', " \
        "publisher expects 'pypi' (ignoring case)" in output
    assert "Traceback" not in output


def test_a_pending_publisher_creates_the_project_on_first_upload(
        server_process: Any, dists: Path, tmp_path: Path) -> None:
    server = server_process()
    endpoint = TokenEndpoint(claims={
        "repository": "octo-org/sampleproject-plugin", "environment": None,
        "job_workflow_ref": "octo-org/sampleproject-plugin/.github/workflows/"
                            "publish.yaml@refs/tags/v1.2.0"})
    try:
        done = uv_publish(server, endpoint, tmp_path,
                          dists / "sampleproject_plugin-0.1-py3-none-any.whl")
    finally:
        endpoint.close()
    assert done.returncode == 0, done.stdout + done.stderr
    done = pip_install(server, tmp_path / "site", "sampleproject-plugin")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = run([sys.executable, "-m", "tppolicy", "serve", "--db", str(server.db),
                  "publishers", "list"], clean_env())
    assert "new-plugin-pending\tgithub\tsampleproject-plugin\t" in listed.stdout  # converted


def test_twine_prints_why_an_upload_is_refused(server_process: Any,
                                               token_endpoint: TokenEndpoint,
                                               dists: Path) -> None:
    server = server_process("--credential-ttl", "3")
    status, minted = server.mint(id_token(token_endpoint))
    assert status == 200, minted
    done = twine_upload(server, minted["token"], dists / "otherproject-1.0-py3-none-any.whl")
    assert done.returncode == 1
    output = " ".join((done.stdout + done.stderr).split())  # rich wraps lines
    assert "HTTPError: 403 Forbidden from " in output
    assert "The given token isn't allowed to upload to project 'otherproject': it was " \
        "minted for trusted publisher 'sampleproject-github'" in output
    time.sleep(max(0.0, minted["expires"] + 1 - time.time()))
    done = twine_upload(server, minted["token"], dists / "sampleproject-1.1-py3-none-any.whl")
    assert done.returncode == 1
    output = " ".join((done.stdout + done.stderr).split())
    assert "Invalid API Token: the token expired" in output
    assert "trusted publishing tokens last 3 s: mint a new one" in output
