"""The index server's protocol, in process: token exchange with PyPI's error codes,
uploads and their refusals, the simple index, pending publishers, burn-token."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import time
import zipfile
from typing import Any

from tests.tokens import GITHUB, rsa_key
from tppolicy.server import Index

from .conftest import GH_ROW, TestClient, github_token

PLUGIN_ROW = {**GH_ROW, "repository_name": "sampleproject-plugin",
              "workflow_filename": "publish.yaml", "pending_project": "sampleproject-plugin"}
PLUGIN_CLAIMS = {"repository": "octo-org/sampleproject-plugin",
                 "job_workflow_ref": "octo-org/sampleproject-plugin/.github/workflows/"
                 "publish.yaml@refs/tags/v1.2.0"}


FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # the same bytes whenever a wheel is built


def wheel(name: str = "sampleproject", version: str = "1.0") -> tuple[str, bytes]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(f"{name.replace('-', '_')}/__init__.py",
                                         FIXED_TIME), "")
    return f"{name.replace('-', '_')}-{version}-py3-none-any.whl", buffer.getvalue()


def upload(client: TestClient, credential: str, name: str = "sampleproject",
           version: str = "1.0", data: bytes | None = None, filename: str | None = None,
           extra: dict[str, str] | None = None, **form: str) -> Any:
    default_name, default_data = wheel(name, version)
    data = default_data if data is None else data
    fields = {":action": "file_upload", "protocol_version": "1", "name": name,
              "version": version, "filetype": "bdist_wheel",
              "sha256_digest": hashlib.sha256(data).hexdigest(), **form, **(extra or {})}
    return client.post("/legacy/", data=fields, auth=("__token__", credential),
                       files={"content": (filename or default_name, data)})


def mint(client: TestClient, **changes: Any) -> Any:
    return client.post("/_/oidc/mint-token", json={"token": github_token(**changes)})


def credential(client: TestClient, **changes: Any) -> str:
    answer = mint(client, **changes)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def error(answer: Any) -> tuple[str, str]:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["message"] == "Token request failed"
    [only] = body["errors"]
    return only["code"], only["description"]


# ------------------------------------------------------------------ mint-token
def test_audience(client: TestClient) -> None:
    assert client.get("/_/oidc/audience").json() == {"audience": "pypi"}


def test_mint_a_15_minute_credential_stored_as_a_hash(client: TestClient, index: Index) -> None:
    before = time.time()
    answer = mint(client)
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True
    assert body["token"].startswith("tpp-")
    assert before + 899 <= body["expires"] <= time.time() + 901
    assert index.storage.path is not None
    with sqlite3.connect(index.storage.path) as db:
        dump = "\n".join(db.iterdump())
    assert body["token"] not in dump
    assert hashlib.sha256(body["token"].encode()).hexdigest() in dump
    stored = index.storage.credential(body["token"])
    assert stored is not None
    assert stored.projects == ("sampleproject", "sample-extras")


def test_a_token_is_exchanged_once(client: TestClient) -> None:
    token = github_token()
    assert client.post("/_/oidc/mint-token", json={"token": token}).status_code == 200
    code, description = error(client.post("/_/oidc/mint-token", json={"token": token}))
    assert (code, description) == ("invalid-reuse-token", "invalid token: already used")


def test_invalid_payloads(client: TestClient) -> None:
    cases = [
        (b"not json", "not JSON"),
        (b"[1]", "token: field required"),
        (b'{"token": 1}', "token: input should be a valid string"),
        (b'{"token": "a.b.c"}', "malformed JWT"),
        (b'{"token": "' + b"x" * 70000 + b'"}', "larger than"),
    ]
    for body, words in cases:
        code, description = error(client.post("/_/oidc/mint-token", content=body))
        assert code == "invalid-payload"
        assert words in description, description
    unknown = rsa_key().sign({"iss": "https://ci.example.com", "aud": "pypi",
                              "iat": int(time.time()), "exp": int(time.time()) + 60})
    code, description = error(client.post("/_/oidc/mint-token", json={"token": unknown}))
    assert code == "invalid-payload"
    assert description.startswith("unknown trusted publishing issuer")


def test_invalid_tokens(client: TestClient) -> None:
    now = int(time.time())
    expired = error(mint(client, iat=now - 900, nbf=now - 900, exp=now - 600))
    assert expired[0] == "invalid-token"
    assert "the token expired 10 min 0 s ago" in expired[1]
    wrong_key = error(client.post("/_/oidc/mint-token",
                                  json={"token": github_token(rsa_key("other-kid"))}))
    assert wrong_key[0] == "invalid-token"
    assert "unknown key id 'other-kid'" in wrong_key[1]
    audience = error(mint(client, aud="testpypi"))
    assert audience[0] == "invalid-token" and "audience 'testpypi'" in audience[1]


def test_invalid_publisher_explains_only_to_the_same_repository(client: TestClient) -> None:
    near = error(mint(client, environment="release"))
    assert near[0] == "invalid-publisher"
    assert "closest publisher 'release'" in near[1]
    assert "environment: token has 'release', publisher expects 'pypi'" in near[1]
    stranger = error(mint(client, repository="mallory/sampleproject",
                          repository_owner="mallory", repository_owner_id="666"))
    assert stranger == ("invalid-publisher",
                        "valid token, but no corresponding github publisher")


def test_publishers_added_to_the_database_are_picked_up(client: TestClient,
                                                        index: Index) -> None:
    claims = {"repository": "octo-org/tool", "job_workflow_ref":
              "octo-org/tool/.github/workflows/release.yml@refs/tags/v1.2.0"}
    assert error(mint(client, **claims))[0] == "invalid-publisher"
    index.storage.put_publisher("tool", {**GH_ROW, "repository_name": "tool",
                                         "projects": ["tool"]})
    # Picked up by the follower's next check (reload_interval is 0.05 s in these tests),
    # or the one after it when an exchange found it due; a loaded machine starts them
    # late (a fixed 0.1 s sleep failed then): asked until then, the deadline bounds a hang.
    assert until_answered(client, claims, 200) <= {422}
    index.storage.delete_publisher("tool")
    assert until_answered(client, claims, 422) <= {200}
    assert error(mint(client, **claims))[0] == "invalid-publisher"


def until_answered(client: TestClient, claims: dict[str, str], status: int) -> set[int]:
    """Exchange tokens with these claims until one is answered `status` (60 s at most);
    the other statuses answered meanwhile."""
    others: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = mint(client, **claims)
        if answer.status_code == status:
            return others
        others.add(answer.status_code)
        time.sleep(0.01)
    raise AssertionError(f"never answered {status} in 60 s, only {sorted(others)}")


# ------------------------------------------------------------------ upload
def test_upload_then_install_from_the_simple_index(client: TestClient) -> None:
    token = credential(client)
    filename, data = wheel()
    answer = upload(client, token, data=data)
    assert answer.status_code == 200, answer.text
    root = client.get("/simple/").text
    assert '<a href="sampleproject/">sampleproject</a>' in root
    page = client.get("/simple/sampleproject/").text
    digest = hashlib.sha256(data).hexdigest()
    assert f"../../files/sampleproject/{filename}#sha256={digest}" in page
    assert client.get(f"/files/sampleproject/{filename}").content == data
    redirect = client.get("/simple/SampleProject/", follow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "/simple/sampleproject/"
    assert client.get("/simple/nothing/").status_code == 404
    assert client.get("/files/sampleproject/nothing-1.0.tar.gz").status_code == 404


def test_upload_refusals(client: TestClient, index: Index) -> None:
    token = credential(client)

    def refused(answer: Any, status: int, words: str) -> None:
        assert answer.status_code == status, answer.text
        body = answer.json()
        assert words in body["code"], body
        assert body["code"].startswith(f"{status} ")

    name, data = wheel()
    fields = {":action": "file_upload", "name": "sampleproject", "version": "1.0"}
    refused(client.post("/legacy/", data=fields, files={"content": (name, data)}), 403,
            "Invalid or non-existent authentication information")
    refused(client.post("/legacy/", data=fields, files={"content": (name, data)},
                        auth=("alice", token)), 403, "Username/Password authentication")
    refused(upload(client, "tpp-unknown"), 403, "unknown API token")
    refused(upload(client, token, "other"), 403,
            "isn't allowed to upload to project 'other': it was minted for trusted "
            "publisher 'release', which may upload to sample-extras, sampleproject")
    refused(upload(client, token, version="1.0", filename="sampleproject-2.0-py3-none-any.whl"),
            400, "does not match the name and version")
    refused(upload(client, token, sha256_digest="0" * 64), 400, "digest supplied does not match")
    refused(upload(client, token, data=b"not a zip"), 400, "a wheel is a zip file")
    refused(upload(client, token, filename="sampleproject-1.0.zip"), 400,
            "Invalid file extension")
    refused(upload(client, token, version="x!y"), 400, "Invalid version")
    refused(upload(client, token, extra={":action": "remove_pkg"}), 400, "Unknown :action")
    assert upload(client, token).status_code == 200
    assert upload(client, token).status_code == 200  # identical: a no-op, as on PyPI
    _, other = wheel()
    changed = other + b"\0"
    refused(upload(client, token, data=changed), 400, "File already exists")
    assert index.storage.revoke_credential(token)
    refused(upload(client, token, version="2.0"), 403, "the token was revoked")


def test_an_expired_credential_is_refused(make_index: Any) -> None:
    index: Index = make_index(credential_ttl=1)
    index.storage.put_publisher("release", {**GH_ROW, "projects": ["sampleproject"]})
    index.sync(force=True)
    from tppolicy.server import create_app

    with TestClient(create_app(index)) as client:
        token = credential(client)
        time.sleep(1.1)
        answer = upload(client, token)
        assert answer.status_code == 403
        assert "Invalid API Token: the token expired 0 s ago (trusted publishing tokens " \
            "last 1 s: mint a new one)" in answer.json()["code"]


def test_burn_token_revokes(client: TestClient) -> None:
    token = credential(client)
    assert client.post("/_/oidc/burn-token", json={"token": token}).status_code == 202
    assert client.post("/_/oidc/burn-token", content=b"junk").status_code == 202
    assert "revoked" in upload(client, token).json()["code"]


def test_upload_size_limit(make_index: Any) -> None:
    index: Index = make_index(max_upload_bytes=1000)
    index.storage.put_publisher("release", {**GH_ROW, "projects": ["sampleproject"]})
    index.sync(force=True)
    from tppolicy.server import create_app

    with TestClient(create_app(index)) as client:
        token = credential(client)
        answer = upload(client, token, data=b"PK" + b"\0" * 5000)
        assert answer.status_code == 413
        answer = upload(client, token, data=b"PK" + b"\0" * (3 * 1024 * 1024))
        assert answer.status_code == 413


# ------------------------------------------------------------------ pending publishers
def test_a_pending_publisher_creates_its_project(client: TestClient, index: Index) -> None:
    index.storage.put_publisher("plugin", PLUGIN_ROW, added_by="alice")
    index.sync(force=True)
    assert not index.storage.project_exists("sampleproject-plugin")
    token = credential(client, **PLUGIN_CLAIMS)
    assert index.storage.project_exists("sampleproject-plugin")
    stored = index.storage.publisher("plugin")
    assert stored is not None and stored.pending_project is None
    assert stored.row["projects"] == ["sampleproject-plugin"]
    assert upload(client, token, "sampleproject-plugin").status_code == 200
    again = credential(client, **PLUGIN_CLAIMS)  # now a normal publisher
    assert upload(client, again, "sampleproject-plugin", "1.1").status_code == 200


def test_a_pending_publisher_for_an_existing_project_fails_and_goes(client: TestClient,
                                                                    index: Index) -> None:
    index.storage.create_project("SampleProject_Plugin")
    index.storage.put_publisher("plugin", PLUGIN_ROW, added_by="alice")
    index.sync(force=True)
    code, description = error(mint(client, **PLUGIN_CLAIMS))
    assert code == "invalid-pending-publisher"
    assert description.startswith("valid token, but project already exists")
    assert index.storage.publisher("plugin") is None


def test_creating_a_project_voids_other_owners_pending_publishers(index: Index) -> None:
    for owner in ("bob", "alice"):
        index.storage.put_publisher(owner, {**PLUGIN_ROW, "pending_project": "Sample_T00l",
                                            "workflow_filename": f"{owner}.yml"}, added_by=owner)
    index.sync(force=True)
    # A normal publisher for a project that does not exist yet: the project is created
    # (the operator who added the publisher owns it), as `project_created` says.
    index.storage.put_publisher("tool", {**GH_ROW, "projects": ["sample-tool"],
                                         "workflow_filename": "tool.yml"}, added_by="alice")
    index.sync(force=True)
    assert index.storage.project_exists("sample-tool")
    assert index.storage.publisher("bob") is None  # 'Sample_T00l' collides with it
    assert index.engine.get("bob") is None
    assert index.storage.publisher("alice") is not None  # the creator's own survives


def test_keys_are_read_again_on_rotation(client: TestClient, jwks_file: Any) -> None:
    from .conftest import write_jwks

    new_key = rsa_key("rotated")
    assert error(client.post("/_/oidc/mint-token",
                             json={"token": github_token(new_key)}))[0] == "invalid-token"
    write_jwks(jwks_file, rsa_key(), new_key)
    time.sleep(0.25)  # the cooldown of these tests
    answer = client.post("/_/oidc/mint-token", json={"token": github_token(new_key)})
    assert answer.status_code == 200, answer.text
    assert GITHUB
