"""Issue 12's server items, each as its repro: credentials that outlived their
publisher (2), trust on first use in the server (3), a wheel name whose tags cost
seconds of CPU (4), look-alike projects and names that hide text from operators (5),
upload file names (6), and `publishers load` ids colliding across files (11)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sqlite3
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tppolicy.errors import ConfigError
from tppolicy.server import Index, create_app

from .conftest import GH_ROW, TestClient, github_token
from .test_app import PLUGIN_CLAIMS, PLUGIN_ROW, credential, error, mint, upload, wheel

GH_FIELDS = ["repository_owner=octo-org", "repository_name=sampleproject",
             "repository_owner_id=65", "workflow_filename=release.yml", "environment=pypi"]


def sdist(name: str = "sampleproject", version: str = "1.0") -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w") as archive:
        data = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        info = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload_sdist(client: TestClient, token: str, filename: str, version: str = "1.0",
                 data: bytes | None = None) -> Any:
    return upload(client, token, version=version, data=data or sdist(version=version),
                  filename=filename, filetype="sdist")


def raw_upload(client: TestClient, token: str, filename: bytes, data: bytes,
               version: str = "1.0") -> Any:
    """A multipart body written byte by byte: the file name exactly as given (a client
    library would escape or refuse some of the bytes tried here)."""
    boundary = b"tppolicyboundary"
    parts = []
    for key, value in ((":action", "file_upload"), ("name", "sampleproject"),
                       ("version", version), ("sha256_digest",
                                              hashlib.sha256(data).hexdigest())):
        parts.append(b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" +
                     key.encode() + b"\"\r\n\r\n" + value.encode() + b"\r\n")
    parts.append(b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"content\"; "
                 b"filename=\"" + filename + b"\"\r\nContent-Type: application/octet-stream"
                 b"\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n")
    import base64

    auth = base64.b64encode(f"__token__:{token}".encode()).decode()
    return client.post("/legacy/", content=b"".join(parts), headers={
        "Content-Type": "multipart/form-data; boundary=" + boundary.decode(),
        "Authorization": f"Basic {auth}"})


def refused(answer: Any, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert words in answer.json()["message"], answer.json()


# ------------------------------------------------------------------ 2: credentials
def test_removing_a_publisher_revokes_its_credentials(client: TestClient, index: Index) -> None:
    token = credential(client)
    assert index.storage.delete_publisher("release")
    stored = index.storage.credential(token)
    assert stored is not None and stored.revoked
    refused(upload(client, token), 403, "revoked")


def test_narrowing_a_publisher_revokes_its_credentials(client: TestClient, index: Index) -> None:
    token = credential(client)
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["sampleproject"]})
    refused(upload(client, token, "sample-extras"), 403, "")
    refused(upload(client, token), 403, "revoked")
    widened = credential(client)  # gaining a project takes nothing away
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["sampleproject", "more"]})
    assert upload(client, widened).status_code == 200


def test_uploads_check_the_publishers_live_link(client: TestClient, index: Index) -> None:
    """A credential that escaped revocation (a row changed behind the server's back,
    or a mint racing the removal) still meets the live check at upload."""
    token = credential(client)
    assert index.storage.path is not None
    db = sqlite3.connect(index.storage.path)
    with db:
        db.execute("UPDATE publishers SET row = ? WHERE id = 'release'",
                   (json.dumps({**GH_ROW, "name": "release", "projects": ["sampleproject"]}),))
    refused(upload(client, token, "sample-extras"), 403, "may no longer upload to it")
    with db:
        db.execute("DELETE FROM publishers WHERE id = 'release'")
    db.close()
    refused(upload(client, token), 403, "that minted it was removed")


def test_revocation_and_one_sdist_on_postgresql(pg_url: str, make_index: Any,
                                                 tmp_path: Path) -> None:
    index: Index = make_index(db=pg_url, files=tmp_path / "files")
    index.storage.put_publisher("release", {**GH_ROW, "projects": ["sampleproject"]})
    index.sync(force=True)
    with TestClient(create_app(index)) as client:
        token = credential(client)
        first = sdist()
        assert upload_sdist(client, token, "sampleproject-1.0.tar.gz", data=first
                            ).status_code == 200
        refused(upload_sdist(client, token, "sampleproject-1.0.0.tar.gz", version="1.0.0"),
                400, "Only one sdist")
        index.storage.put_publisher("release", {**GH_ROW, "projects": ["other"]})
        refused(upload(client, token), 403, "revoked")


# ------------------------------------------------------------------ 3: trust on first use
def test_trust_on_first_use_is_stored_and_enforced(make_index: Any) -> None:
    index: Index = make_index()
    index.storage.put_publisher("tofu", {**GH_ROW, "trust_on_first_use": True,
                                         "projects": ["sampleproject"]})
    index.sync(force=True)
    with TestClient(create_app(index)) as client:
        assert mint(client, repository_id="74").status_code == 200
        stored = index.storage.publisher("tofu")
        assert stored is not None and stored.row["repository_id"] == "74"
        code, description = error(mint(client, repository_id="99999"))
        assert code == "invalid-publisher" and "repository_id" in description
        assert error(mint(client, repository_id=None))[0] == "invalid-publisher"
        assert mint(client, repository_id="74").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_trust_on_first_use_is_atomic_across_replicas(make_index: Any, backend: str,
                                                       request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:
    """Two servers on one database, both still holding the unlearned publisher: the
    first token teaches, the other replica's different token is refused."""
    db: Any = tmp_path / "index.db" if backend == "sqlite" else \
        request.getfixturevalue("pg_url")
    files = tmp_path / "files"
    first: Index = make_index(db=db, files=files, reload_interval=3600)
    first.storage.put_publisher("tofu", {**GH_ROW, "trust_on_first_use": True,
                                         "projects": ["sampleproject"]})
    first.sync(force=True)
    second: Index = make_index(db=db, files=files, reload_interval=3600)
    assert first.mint(json.dumps({"token": github_token(repository_id="74")}).encode()
                      ).status == 200
    answer = second.mint(json.dumps({"token": github_token(repository_id="99999")}).encode())
    assert answer.status == 422, answer.body
    assert "learned '74'" in answer.body["errors"][0]["description"]
    stored = second.storage.publisher("tofu")
    assert stored is not None and stored.row["repository_id"] == "74"


# ------------------------------------------------------------------ 4: tag bombs
def test_a_wheel_name_with_many_tags_is_refused_before_parsing(client: TestClient) -> None:
    from tppolicy.server.names import check_filename

    token = credential(client)
    tags = ".".join(f"t{i}" for i in range(130))
    bomb = f"sampleproject-1.0-{tags}-{tags}-{tags}.whl"  # 2.2 million tags
    refused(upload(client, token, filename=bomb), 400, "longer than 255 bytes")
    short = ".".join("abcdefghijklmnopq")  # 17 tags: over the limit, within 255 bytes
    refused(upload(client, token, filename=f"sampleproject-1.0-{short}-none-any.whl"), 400,
            "at most 16")
    sixteen = ".".join("abcdefghijklmnop")
    many = f"sampleproject-1.0-{sixteen}-{sixteen}-any.whl"  # 256 x 1: allowed; 512: not
    assert isinstance(check_filename(many, "sampleproject", "1.0"), tuple)
    assert "more than 256" in str(check_filename(
        f"sampleproject-1.0-{sixteen}-{sixteen}-a.b.whl", "sampleproject", "1.0"))


# ------------------------------------------------------------------ 5: look-alikes
@pytest.mark.parametrize("look_alike", ["sample_project", "SampIeproject", "sample.pr0ject"])
def test_a_pending_publisher_for_a_look_alike_creates_nothing(
        client: TestClient, index: Index, look_alike: str) -> None:
    index.storage.create_project("sampleproject")
    index.storage.put_publisher("plugin", {**PLUGIN_ROW, "pending_project": look_alike})
    index.sync(force=True)
    code, description = error(mint(client, **PLUGIN_CLAIMS))
    assert code == "invalid-payload"
    assert "too similar to an existing project ('sampleproject')" in description
    assert not index.storage.project_exists(look_alike)


@pytest.mark.parametrize("name", ["foo\n", "\u212aelvin", "\u0131nfo", "\u017fampleproject",
                                  "foo\u200b"])
def test_project_names_are_ascii_and_whole(name: str) -> None:
    from tppolicy.decide.engine import Engine

    with pytest.raises(ConfigError, match="not a valid project name"):
        Engine().add_publisher({**GH_ROW, "projects": [name]})


def test_admin_commands_refuse_look_alikes_and_hidden_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tppolicy.server.storage import Storage

    db = str(tmp_path / "index.db")
    storage = Storage(db)
    storage.create_project("sampleproject")
    storage.close()
    add = ("serve", "--db", db, "publishers", "add", "github", *GH_FIELDS)
    for pending in ("sample_project", "SampIeproject", "\u017fampleproject", "foo\n",
                    "sampleproject"):
        code, _, err = run_cli(capsys, *add, "--pending-project", pending)
        assert code == 3, (pending, err)
        assert "Traceback" not in err
    code, _, err = run_cli(capsys, *add, "--project", "sample-pr0ject")
    assert code == 3 and "too similar" in err
    for option, value in (("--name", "release\nforged\tgithub"), ("--added-by", "al\u202eice"),
                          ("--id", "a\u200bb"), ("--name", "x\u3000y")):
        code, _, err = run_cli(capsys, *add, "--project", "sampleproject", option, value)
        assert code == 3 and "not printable" in err, (option, value, err)
    code, _, err = run_cli(capsys, "serve", "--db", db, "publishers", "add", "github",
                           *GH_FIELDS[:-1], "environment=py\npi", "--project", "sampleproject")
    assert code == 3 and "not printable" in err
    code, out, _ = run_cli(capsys, "serve", "--db", db, "publishers", "list")
    assert code == 0 and out == ""


def test_publishers_list_shows_one_line_per_publisher(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows written behind the admin commands' back (an older version, SQL) cannot
    forge lines in the listing."""
    from tppolicy.server.storage import Storage

    db = str(tmp_path / "index.db")
    storage = Storage(db)
    storage.put_publisher("real\nforged\tgithub\tevil", {**GH_ROW, "projects": ["x"],
                                                         "environment": "a\u202eb"})
    storage.close()
    code, out, _ = run_cli(capsys, "serve", "--db", db, "publishers", "list")
    assert code == 0
    assert out.count("\n") == 1
    assert "real\\nforged\\tgithub\\tevil\tgithub\tx\t" in out
    assert "environment=a\\u202eb" in out


def test_the_server_does_not_serve_rows_with_hidden_text(client: TestClient,
                                                         index: Index) -> None:
    index.storage.put_publisher("release", {**GH_ROW, "name": "re\u202elease",
                                            "projects": ["sampleproject"]})
    index.sync(force=True)
    assert index.engine.get("release") is None
    assert error(mint(client))[0] == "invalid-publisher"


# ------------------------------------------------------------------ 6: file names
@pytest.mark.parametrize("filename", [
    b"sampleproject-1.0-py3-none-any\x00.whl", b"sampleproject-1.0-py3-none-" +
    b"a" * 300 + b".whl", b"sampleproject-1.0-py3-none-any\n.whl",
    b"sampleproject-1.0-py3-none-any\t.whl", "sampleproject-1.0-py3-none-any\u3000.whl"
    .encode(), b"sampleproject-1.0-py3-none-any#x.whl", b"sampleproject-1.0-py3-none-?.whl",
    b"sampleproject-1.0-py3-none-%2e%2e%2fx.whl", b"../sampleproject-1.0-py3-none-any.whl"])
def test_upload_file_names_are_refused_with_400(client: TestClient, index: Index,
                                                filename: bytes) -> None:
    token = credential(client)
    _, data = wheel()
    answer = raw_upload(client, token, filename, data)
    assert answer.status_code == 400, answer.text
    assert index.storage.files("sampleproject") == []


def test_one_sdist_per_release_and_normalized_names(client: TestClient, index: Index) -> None:
    token = credential(client)
    first = sdist()
    assert upload_sdist(client, token, "sampleproject-1.0.tar.gz", data=first).status_code == 200
    refused(upload_sdist(client, token, "SampleProject-1.0.tar.gz"), 400, "lowercase")
    refused(upload_sdist(client, token, "sample_project-1.0.tar.gz"), 400,
            "Start filename for 'sampleproject' with 'sampleproject'")
    refused(upload_sdist(client, token, "sampleproject-1.0.0.tar.gz", version="1.0.0"), 400,
            "Only one sdist may be uploaded per release")
    refused(upload_sdist(client, token, "sampleproject-v1.tar.gz", version="v1"), 400,
            "normalized version '1'")
    refused(upload(client, token, version="1.0", filename="sampleproject-1.0-PY3-none-any.whl"),
            400, "lowercase")
    assert [f.filename for f in index.storage.files("sampleproject")] == [
        "sampleproject-1.0.tar.gz"]
    assert upload_sdist(client, token, "sampleproject-1.0.tar.gz", data=first
                        ).status_code == 200  # the same file again: a no-op
    assert upload(client, token).status_code == 200  # a wheel beside the sdist


def test_a_dotted_name_uploads_with_its_normalized_file_name(client: TestClient,
                                                             index: Index) -> None:
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["Sample.Extras"]})
    index.sync(force=True)
    token = credential(client)
    answer = upload(client, token, "Sample.Extras", data=sdist("sample_extras"),
                    filename="sample_extras-1.0.tar.gz", filetype="sdist")
    assert answer.status_code == 200, answer.text


# ------------------------------------------------------------------ 11: load ids
def test_publishers_load_ids_do_not_collide_across_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "index.db")
    for team in ("a", "b"):
        (tmp_path / team).mkdir()
        (tmp_path / team / "publishers.yaml").write_text(
            "publishers:\n  - provider: github\n    projects: [" + team + "-project]\n"
            "    repository_owner: " + team + "-org\n    repository_name: r\n"
            "    repository_owner_id: '1'\n    workflow_filename: release.yml\n")
        code, _, err = run_cli(capsys, "serve", "--db", db, "publishers", "load",
                               str(tmp_path / team / "publishers.yaml"))
        assert code == 0, err
    # Loading a file again replaces its own entries, not the other team's.
    assert run_cli(capsys, "serve", "--db", db, "publishers", "load",
                   str(tmp_path / "a" / "publishers.yaml"))[0] == 0
    code, out, _ = run_cli(capsys, "serve", "--db", db, "publishers", "list", "--format",
                           "json")
    rows = json.loads(out)
    assert sorted(r["repository_owner"] for r in rows) == ["a-org", "b-org"]


def test_links_are_url_encoded(client: TestClient, index: Index) -> None:
    """A name stored by an older version (before names were checked) links to itself."""
    from tppolicy.server.storage import StoredFile

    index.storage.create_project("sampleproject")
    index.storage.add_file(StoredFile("sampleproject-1.0-py3-none-#x?y%2e.whl", "sampleproject",
                                      "1.0", "bdist_wheel", None, "0" * 64, 1, 0.0, None))
    page = client.get("/simple/sampleproject/").text
    assert 'href="../../files/sampleproject/sampleproject-1.0-py3-none-%23x%3Fy%252e.whl' \
        '#sha256=' in page


# ------------------------------------------------------------------ the same kinds, elsewhere
def test_a_huge_version_is_a_400_not_a_500(client: TestClient) -> None:
    """packaging raises ValueError (not InvalidVersion) past 4300 digits."""
    token = credential(client)
    refused(upload(client, token, version="1" * 5000, filename="sampleproject-1.0.tar.gz",
                   data=sdist(), filetype="sdist"), 400, "Invalid version")


def test_requires_python_is_a_specifier_set(client: TestClient, index: Index) -> None:
    token = credential(client)
    for value in ('>=3.9"><script>', ">=3.9\n", "x" * 1000):
        refused(upload(client, token, requires_python=value), 400, "requires_python")
    assert index.storage.files("sampleproject") == []
    assert upload(client, token, requires_python=">=3.9, <4").status_code == 200


def test_refused_file_names_are_logged_on_one_line(client: TestClient,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    token = credential(client)
    _, data = wheel()
    with caplog.at_level("INFO", logger="tppolicy.server"):
        raw_upload(client, token, b"x\nFORGED upload accepted.whl", data)
    lines = [r.getMessage() for r in caplog.records if "upload refused" in r.getMessage()]
    assert lines and all("\n" not in line for line in lines)


@pytest.mark.parametrize("exp", [2**63, 2**64 + 5, 10**30])
def test_a_huge_exp_is_not_a_503(client: TestClient, exp: int) -> None:
    """Issue 12 item 9's server side: the token id's expiry overflowed SQLite's
    integer (503). The id is now held as long as any column can say."""
    answer = mint(client, exp=exp)
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 200:  # accepted by the verifier: still used once only
        token = github_token(exp=exp, jti="same")
        client.post("/_/oidc/mint-token", json={"token": token})
        assert error(client.post("/_/oidc/mint-token", json={"token": token}))[0] == \
            "invalid-reuse-token"


def test_a_huge_exp_is_not_a_503_with_redis(make_index: Any, redis_server: Any) -> None:
    index: Index = make_index(redis=redis_server.url)
    index.storage.put_publisher("release", {**GH_ROW, "projects": ["sampleproject"]})
    index.sync(force=True)
    answer = index.mint(json.dumps({"token": github_token(exp=2**63)}).encode())
    assert answer.status in (200, 422), answer.body


def test_text_logs_keep_each_message_on_one_line(client: TestClient,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The text format escapes what a message holds (a backstop: the index quotes
    client text itself, as the refusal of a claim value with a newline shows)."""
    import logging

    from tppolicy.server.logs import TextFormatter

    record = logging.LogRecord("tppolicy.server", logging.INFO, __file__, 1,
                               "upload refused %s", ("x\nFORGED\u202e",), None)
    assert TextFormatter().format(record).endswith("upload refused x\\nFORGED\\u202e")

    with caplog.at_level("INFO", logger="tppolicy.server"):
        mint(client, environment="pypi\n2026-01-01T00:00:00Z INFO tppolicy.server: FORGED")
    formatter = TextFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name == "tppolicy.server"]
    assert any("FORGED" in line for line in lines)
    assert all("\n" not in line for line in lines)


def test_loading_the_file_again_keeps_what_was_learned(make_index: Any, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """`--publishers FILE` loads the file at each start: a trust-on-first-use
    publisher's learned repository_id was overwritten by the file's row (and the next
    token taught another value)."""
    path = tmp_path / "publishers.yaml"
    path.write_text("publishers:\n  - name: tofu\n    provider: github\n"
                    "    projects: [sampleproject]\n    repository_owner: octo-org\n"
                    "    repository_name: sampleproject\n    repository_owner_id: '65'\n"
                    "    workflow_filename: release.yml\n    environment: pypi\n"
                    "    trust_on_first_use: true\n")
    db = str(tmp_path / "index.db")
    assert run_cli(capsys, "serve", "--db", db, "publishers", "load", str(path))[0] == 0
    index: Index = make_index(db=db)
    assert index.mint(json.dumps({"token": github_token(repository_id="74")}).encode()
                      ).status == 200
    assert run_cli(capsys, "serve", "--db", db, "publishers", "load", str(path))[0] == 0
    stored = index.storage.publisher("tofu")
    assert stored is not None and stored.row["repository_id"] == "74"
    index.sync(force=True)
    answer = index.mint(json.dumps({"token": github_token(repository_id="99999")}).encode())
    assert answer.status == 422, answer.body


def test_a_row_written_behind_the_admin_commands_creates_no_look_alike(
        client: TestClient, index: Index) -> None:
    index.storage.create_project("sampleproject")
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["sampleproject", "Sample_Pr0ject"]})
    index.sync(force=True)
    assert not index.storage.project_exists("Sample_Pr0ject")
    token = credential(client)
    refused(upload(client, token, "Sample_Pr0ject", data=sdist("sample_pr0ject"),
                   filename="sample_pr0ject-1.0.tar.gz", filetype="sdist"), 400, "too similar")
