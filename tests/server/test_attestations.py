"""PEP 740 attestations bound to the trusted publisher, with a real distribution and
its real publish attestation (signed on Sigstore's production instance by
trailofbits/pypi-attestations' release workflow; ../shared/testdata/pep740/, read in
place), verified offline. A good one is stored and served as provenance; a tampered
one, one for another identity or another file, a list of non-attestations, a field
that is not JSON: 400, and nothing stored. Then uv and twine upload it for real."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tppolicy.language.providers import load_providers
from tppolicy.server import Index, create_app
from tppolicy.server.attestations import AttestationRefused, identity_of, prepare

from .conftest import GH_ROW, TestClient, TokenEndpoint, clean_env, github_token

pytest.importorskip("pypi_attestations", reason="pip install -e '.[server]'")

ROOT = Path(__file__).resolve().parents[2]


def _testdata_dir() -> Path:
    """../shared/testdata/pep740 beside the project root; from a git worktree, beside
    the main checkout's root too."""
    candidates = [ROOT.parent / "shared" / "testdata" / "pep740"]
    dotgit = ROOT / ".git"
    if dotgit.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(dotgit.read_text().partition("gitdir:")[2].strip())
        if gitdir.parent.name == "worktrees":
            candidates.append(gitdir.parents[2].parent / "shared" / "testdata" / "pep740")
    return next((c for c in candidates if c.is_dir()), candidates[0])


DATA = _testdata_dir()
SDIST = "pypi_attestations-0.0.19.tar.gz"
ATTESTATION = SDIST + ".publish.attestation"
PROJECT, VERSION = "pypi-attestations", "0.0.19"
TOB_ROW = {"provider": "github", "repository_owner": "trailofbits",
           "repository_name": "pypi-attestations", "repository_owner_id": "2314423",
           "workflow_filename": "release.yml"}
TOB_CLAIMS: dict[str, Any] = {
              "repository": "trailofbits/pypi-attestations", "repository_owner": "trailofbits",
              "repository_owner_id": "2314423", "environment": None,
              "ref": "refs/tags/v0.0.19", "sha": "08802efe1f8e5fec4ad842d6b8ce97656092ee72",
              "job_workflow_ref": "trailofbits/pypi-attestations/.github/workflows/"
                                  "release.yml@refs/tags/v0.0.19",
              "workflow_ref": "trailofbits/pypi-attestations/.github/workflows/"
                              "release.yml@refs/tags/v0.0.19"}
INVALID = "Invalid attestations supplied during upload: "


@pytest.fixture(scope="module")
def testdata() -> Path:
    if not (DATA / SDIST).is_file() or not (DATA / ATTESTATION).is_file():
        pytest.skip(f"MISSING TEST DATA: {DATA} (the real PEP 740 attestation; CI has "
                    "shared/ beside its clone): attestation tests NOT RUN")
    return DATA


@pytest.fixture
def attested(make_index: Any) -> Index:
    index: Index = make_index()
    index.storage.put_publisher("tob", {**TOB_ROW, "name": "tob", "projects": [PROJECT]})
    index.storage.put_publisher("other", {**GH_ROW, "name": "other", "projects": [PROJECT]})
    index.sync(force=True)
    return index


def mint(client: TestClient, **claims: Any) -> str:
    answer = client.post("/_/oidc/mint-token", json={"token": github_token(**claims)})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def upload(client: TestClient, credential: str, data: bytes, attestations: str | None) -> Any:
    fields = {":action": "file_upload", "protocol_version": "1", "name": PROJECT,
              "version": VERSION, "filetype": "sdist",
              "sha256_digest": hashlib.sha256(data).hexdigest()}
    if attestations is not None:
        fields["attestations"] = attestations
    return client.post("/legacy/", data=fields, auth=("__token__", credential),
                       files={"content": (SDIST, data)})


def attestation(testdata: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((testdata / ATTESTATION).read_text())
    return value


def nothing_stored(client: TestClient, index: Index) -> None:
    assert index.storage.files(PROJECT) == []
    assert index.storage.with_provenance(PROJECT) == set()
    assert client.get(f"/simple/{PROJECT}/").status_code == 404
    assert not (index.storage.files_dir / PROJECT / SDIST).exists()


def test_a_good_attestation_is_verified_stored_and_served(testdata: Path,
                                                          attested: Index) -> None:
    data = (testdata / SDIST).read_bytes()
    good = attestation(testdata)
    with TestClient(create_app(attested), base_url="http://127.0.0.1") as client:
        answer = upload(client, mint(client, **TOB_CLAIMS), data, json.dumps([good]))
        assert answer.status_code == 200, answer.text
        url = f"/integrity/{PROJECT}/{VERSION}/{SDIST}/provenance"
        served = client.get(url)
        assert served.status_code == 200
        assert served.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
        provenance = served.json()
        assert provenance["version"] == 1
        [bundle] = provenance["attestation_bundles"]
        assert bundle["publisher"] == {"kind": "GitHub",
                                       "repository": "trailofbits/pypi-attestations",
                                       "workflow": "release.yml", "environment": None}
        [stored] = bundle["attestations"]
        assert stored["envelope"] == good["envelope"]
        assert stored["verification_material"]["certificate"] == \
            good["verification_material"]["certificate"]
        page = client.get(f"/simple/{PROJECT}/",
                          headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        assert page["files"][0]["provenance"] == url
        assert f'data-provenance="{url}"' in client.get(f"/simple/{PROJECT}/").text
        assert client.get(f"/integrity/{PROJECT}/0.0.18/{SDIST}/provenance").status_code == 404
        assert client.get(f"/integrity/other/{VERSION}/{SDIST}/provenance").status_code == 404


@pytest.mark.parametrize("case", ["tampered", "another-identity", "another-file",
                                  "not-attestations", "not-json", "not-a-list", "two"])
def test_bad_attestations_are_refused_and_nothing_is_stored(testdata: Path, attested: Index,
                                                            case: str) -> None:
    data = (testdata / SDIST).read_bytes()
    good = attestation(testdata)
    claims: dict[str, Any] = TOB_CLAIMS
    field = json.dumps([good])
    expected = INVALID
    if case == "tampered":
        signature = bytearray(base64.b64decode(good["envelope"]["signature"]))
        signature[10] ^= 0x01
        bad = {**good, "envelope": {**good["envelope"],
                                    "signature": base64.b64encode(bytes(signature)).decode()}}
        field = json.dumps([bad])
        expected = INVALID + "Could not verify the uploaded artifact using the included " \
            "attestation"
    elif case == "another-identity":  # the publisher octo-org/sampleproject minted it
        claims = {}
        expected = INVALID + "Could not verify the uploaded artifact"
    elif case == "another-file":  # the same name, other bytes: the digest differs
        data = data[:-10] + b"\0" * 10
        expected = INVALID + "Could not verify the uploaded artifact"
    elif case == "not-attestations":
        field = json.dumps([{"kind": "attestation?"}, {"version": 1}])
        expected = INVALID + "not an attestation: 0."
    elif case == "not-json":
        field = "[{not json"
        expected = INVALID + "the field is not JSON"
    elif case == "not-a-list":
        field = json.dumps(good)
        expected = INVALID + "expected a JSON list of attestations, got dict"
    elif case == "two":
        field = json.dumps([good, good])
        expected = "Only a single attestation per file is supported."
    with TestClient(create_app(attested), base_url="http://127.0.0.1") as client:
        answer = upload(client, mint(client, **claims), data, field)
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"].startswith(expected), answer.json()["message"]
        assert answer.json()["code"].startswith("400 " + expected)
        nothing_stored(client, attested)


def test_an_identical_upload_without_attestations_then_with(testdata: Path,
                                                           attested: Index) -> None:
    data = (testdata / SDIST).read_bytes()
    with TestClient(create_app(attested), base_url="http://127.0.0.1") as client:
        credential = mint(client, **TOB_CLAIMS)
        assert upload(client, credential, data, None).status_code == 200
        url = f"/integrity/{PROJECT}/{VERSION}/{SDIST}/provenance"
        assert client.get(url).status_code == 404
        again = upload(client, credential, data, json.dumps([attestation(testdata)]))
        assert again.status_code == 200, again.text
        assert client.get(url).json()["version"] == 1


def test_the_identity_comes_from_the_provider_files() -> None:
    providers = load_providers([])
    github = providers["github"]
    values = {name: (d.default.value if d.default else None) for name, d in
              github.fields.items()}
    values.update({k: v for k, v in TOB_ROW.items() if k != "provider"}, environment="pypi")
    assert identity_of(github, values) == {"kind": "GitHub",
                                           "repository": "trailofbits/pypi-attestations",
                                           "workflow": "release.yml", "environment": "pypi"}
    google = providers["google"]
    assert identity_of(google, {"email": "r@p.iam.gserviceaccount.com", "sub": ""}) == \
        {"kind": "Google", "email": "r@p.iam.gserviceaccount.com"}
    gitlab = providers["gitlab"]
    values = {name: (d.default.value if d.default else None) for name, d in
              gitlab.fields.items()}
    values.update(namespace="octo-group/python", project="sampleproject",
                  workflow_filepath="ci/release.yml")
    assert identity_of(gitlab, values) == {
        "kind": "GitLab", "repository": "octo-group/python/sampleproject",
        "workflow_filepath": "ci/release.yml", "environment": None}
    # github_enterprise extends github and declares none (`let attestation_kind = null`)
    enterprise = providers["github_enterprise"]
    values = {name: (d.default.value if d.default else None) for name, d in
              enterprise.fields.items()}
    values.update({k: v for k, v in TOB_ROW.items() if k != "provider"})
    assert identity_of(enterprise, values) is None
    # a provider whose file declares none says so, and refuses
    activestate = providers["activestate"]
    assert identity_of(activestate, {}) is None
    with pytest.raises(AttestationRefused) as refused:
        prepare("[]", activestate, {})
    assert refused.value.status == 400
    assert "provider 'activestate' declares no attestation identity" in \
        refused.value.message


# ------------------------------------------------------------------ the real uv and twine
@pytest.mark.e2e
@pytest.mark.slow  # uv and twine in subprocesses
def test_uv_and_twine_upload_the_real_attestation(testdata: Path, server_process: Any,
                                                  tmp_path: Path) -> None:
    from .test_e2e import CLIENT_TIMEOUT, tool

    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(
        "publishers:\n  - name: tob\n    provider: github\n    projects: [pypi-attestations]\n"
        "    repository_owner: trailofbits\n    repository_name: pypi-attestations\n"
        '    repository_owner_id: "2314423"\n    workflow_filename: release.yml\n')
    dist = tmp_path / "dist"
    dist.mkdir()
    shutil.copy(testdata / SDIST, dist / SDIST)
    shutil.copy(testdata / ATTESTATION, dist / ATTESTATION)
    url_path = f"/integrity/{PROJECT}/{VERSION}/{SDIST}/provenance"

    # uv publish dist/*: it pairs dist/<file>.publish.attestation with the file
    server = server_process(publishers=publishers, db=tmp_path / "uv.db")
    endpoint = TokenEndpoint(claims=TOB_CLAIMS)
    try:
        done = subprocess.run(
            [tool("uv"), "publish", "--trusted-publishing", "always", "--publish-url",
             server.url + "/legacy/", str(dist / "*")],
            capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False,
            env=clean_env(**endpoint.env(), SSL_CERT_FILE=str(server.tls.ca),
                          UV_CACHE_DIR=str(tmp_path / "uv-cache"), HOME=str(tmp_path),
                          UV_NO_CONFIG="1"))
    finally:
        endpoint.close()
    assert done.returncode == 0, done.stdout + done.stderr
    provenance = _get(server.url + url_path, server.tls.ca)
    assert provenance["attestation_bundles"][0]["publisher"]["repository"] == \
        "trailofbits/pypi-attestations"

    # twine --attestations: the same, with a token minted by hand
    server = server_process(publishers=publishers, db=tmp_path / "twine.db")
    status, minted = server.mint(github_token(None, **TOB_CLAIMS))
    assert status == 200, minted
    tool("twine")
    done = subprocess.run(
        [sys.executable, "-m", "twine", "upload", "--attestations", "--repository-url",
         server.url + "/legacy/", "--username", "__token__", "--password", minted["token"],
         "--cert", str(server.tls.ca), "--non-interactive", "--disable-progress-bar",
         str(dist / SDIST), str(dist / ATTESTATION)],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert _get(server.url + url_path, server.tls.ca)["version"] == 1


def _get(url: str, ca: Path) -> dict[str, Any]:
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(url, timeout=20, context=context) as response:
        value: dict[str, Any] = json.loads(response.read())
    return value


@pytest.mark.slow  # the default run's budget (.ci/run runs it)
@pytest.mark.e2e
def test_an_index_that_cannot_verify_refuses_with_503(testdata: Path, server_process: Any,
                                                      tmp_path: Path) -> None:
    """sigstore's trust root cannot be read (its cache directory cannot be made): the
    upload is refused with 503 and nothing is stored, never accepted without its
    attestation."""
    import ssl

    import httpx

    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(
        "publishers:\n  - name: tob\n    provider: github\n    projects: [pypi-attestations]\n"
        "    repository_owner: trailofbits\n    repository_name: pypi-attestations\n"
        '    repository_owner_id: "2314423"\n    workflow_filename: release.yml\n')
    server = server_process(publishers=publishers, env={
        "XDG_CACHE_HOME": "/dev/null/cache", "XDG_DATA_HOME": "/dev/null/data"})
    status, minted = server.mint(github_token(None, **TOB_CLAIMS))
    assert status == 200, minted
    data = (testdata / SDIST).read_bytes()
    fields = {":action": "file_upload", "protocol_version": "1", "name": PROJECT,
              "version": VERSION, "filetype": "sdist",
              "sha256_digest": hashlib.sha256(data).hexdigest(),
              "attestations": json.dumps([attestation(testdata)])}
    context = ssl.create_default_context(cafile=str(server.tls.ca))
    with httpx.Client(verify=context, timeout=60) as http:
        answer = http.post(server.url + "/legacy/", data=fields,
                           files={"content": (SDIST, data)},
                           auth=("__token__", minted["token"]))
        assert answer.status_code == 503, answer.text
        assert answer.json()["message"].startswith("The index cannot verify attestations now")
        assert http.get(server.url + f"/simple/{PROJECT}/").status_code == 404
