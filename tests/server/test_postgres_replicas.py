"""Several `tppolicy serve` processes on one PostgreSQL, one Redis and one files folder
act as one index: publishers, used tokens, credentials, files and revocations are
shared; racing steps have one winner; a replica killed mid-request leaves nothing
half-written; a PostgreSQL restart gives 503s, then recovery without restarting the
replicas. Real servers only (PostgreSQL cluster, redis-server, uvicorn processes)."""

from __future__ import annotations

import hashlib
import io
import signal
import socket
import ssl
import threading
import time
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tppolicy.server.storage import Storage

from .conftest import RedisServer, ServerProcess, github_token
from .pg_cluster import PostgresCluster

# Replicas, restarts and races on a real PostgreSQL: the slow group (.ci/run runs it).
pytestmark = pytest.mark.slow

httpx = pytest.importorskip("httpx")

GH_FIELDS = ["repository_owner=octo-org", "repository_owner_id=65",
             "workflow_filename=release.yml"]


def repo_claims(repository: str) -> dict[str, Any]:
    """A GitHub token's claims from another repository of octo-org."""
    ref = f"octo-org/{repository}/.github/workflows/release.yml@refs/tags/v1.2.0"
    return {"repository": f"octo-org/{repository}", "workflow_ref": ref,
            "job_workflow_ref": ref, "sub": f"repo:octo-org/{repository}:environment:pypi"}


FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # the same bytes whenever a wheel is built


def wheel(project: str, version: str, salt: str = "") -> tuple[str, bytes]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(f"{project.replace('-', '_')}/__init__.py",
                                         FIXED_TIME), f"# {salt}\n")
    return f"{project.replace('-', '_')}-{version}-py3-none-any.whl", buffer.getvalue()


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at once (one thread each, released together); their results."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(position: int) -> None:
        barrier.wait()
        results[position] = calls[position]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


class Replicas:
    """Replicas of one index and a client for them."""

    def __init__(self, make: Callable[..., ServerProcess], url: str, files: Path,
                 redis_url: str, count: int, *extra: str) -> None:
        self.url = url
        self.servers = [make("--files", str(files), "--redis", redis_url, *extra, db=url)
                        for _ in range(count)]
        ca = self.servers[0].tls.ca
        self.client = httpx.Client(verify=ssl.create_default_context(cafile=str(ca)),
                                   timeout=30)

    def close(self) -> None:
        self.client.close()

    def mint(self, server: ServerProcess, token: str) -> tuple[int, dict[str, Any]]:
        answer = self.client.post(server.url + "/_/oidc/mint-token", json={"token": token})
        return answer.status_code, answer.json()

    def upload(self, server: ServerProcess, credential: str, project: str, version: str,
               salt: str = "") -> Any:
        filename, data = wheel(project, version, salt)
        fields = {":action": "file_upload", "protocol_version": "1", "name": project,
                  "version": version, "filetype": "bdist_wheel",
                  "sha256_digest": hashlib.sha256(data).hexdigest()}
        return self.client.post(server.url + "/legacy/", data=fields,
                                auth=("__token__", credential),
                                files={"content": (filename, data)})


@pytest.fixture
def replicas(server_process: Any, pg_url: str, redis_server: RedisServer,
             tmp_path: Path) -> Any:
    made: list[Replicas] = []

    def make(count: int, *extra: str) -> Replicas:
        group = Replicas(server_process, pg_url, tmp_path / "files", redis_server.url, count,
                         *extra)
        made.append(group)
        return group

    yield make
    for group in made:
        group.close()


def add_publisher(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> None:
    code, _, err = run_cli(capsys, "serve", "--db", url, "publishers", "add", "github", *argv)
    assert code == 0, err


@pytest.mark.parametrize("lookup", ["memory", "sql"])
def test_replicas_act_as_one_index(replicas: Any, capsys: pytest.CaptureFixture[str],
                                   lookup: str) -> None:
    # Polling every 60 s: only PostgreSQL's NOTIFY (memory), or the lookup per token
    # (sql), can make a new publisher visible.
    group = replicas(3, "--reload-interval", "60", "--lookup", lookup)
    a, b, c = group.servers
    claims = repo_claims("late-arrival")
    status, body = group.mint(b, github_token(**claims))
    assert status == 422  # no such publisher yet
    add_publisher(capsys, group.url, *GH_FIELDS, "repository_name=late-arrival",
                  "--project", "late-arrival", "--name", "late")
    started = time.monotonic()  # committed (and notified) when the command returned
    seen_after = None
    while time.monotonic() - started < 20:
        status, body = group.mint(b, github_token(**claims))
        if status == 200:
            seen_after = time.monotonic() - started
            break
        time.sleep(0.02)
    assert seen_after is not None, body  # the publisher added by the CLI reached b
    print(f"{lookup}: publisher visible on another replica after {seen_after:.3f} s")

    token = github_token()
    status, minted = group.mint(a, token)
    assert status == 200
    status, body = group.mint(b, token)  # the same token at another replica
    assert status == 422 and body["errors"][0]["code"] == "invalid-reuse-token"
    credential = minted["token"]
    assert group.upload(b, credential, "sampleproject", "1.0").status_code == 200
    for server in (a, b, c):
        page = group.client.get(server.url + "/simple/sampleproject/")
        assert page.status_code == 200 and "sampleproject-1.0-py3-none-any.whl" in page.text
        file = group.client.get(server.url + "/files/sampleproject/"
                                "sampleproject-1.0-py3-none-any.whl")
        assert file.status_code == 200 and file.content == wheel("sampleproject", "1.0")[1]
    assert group.client.post(c.url + "/_/oidc/burn-token",
                             json={"token": credential}).status_code == 202
    for server in (a, b):
        refused = group.upload(server, credential, "sampleproject", "1.1")
        assert refused.status_code == 403 and "revoked" in refused.text


@pytest.mark.parametrize("lookup", ["memory", "sql"])
def test_racing_replicas_convert_a_pending_project_once(
        replicas: Any, pg_url: str, capsys: pytest.CaptureFixture[str], lookup: str) -> None:
    rounds = 4
    for round_ in range(rounds):  # before the replicas start: each holds them all at once
        # two owners' pending publishers for the same new project name
        for owner in ("alice", "bob"):
            add_publisher(capsys, pg_url, *GH_FIELDS, f"repository_name={owner}-{round_}",
                          "--pending-project", f"contested-{round_}", "--added-by", owner,
                          "--id", f"{owner}-{round_}")
    group = replicas(2, "--lookup", lookup)
    a, b = group.servers
    for round_ in range(rounds):
        project = f"contested-{round_}"
        tokens = {"alice": github_token(**repo_claims(f"alice-{round_}")),
                  "bob": github_token(**repo_claims(f"bob-{round_}"))}
        first, second = race(partial(group.mint, a, tokens["alice"]),
                             partial(group.mint, b, tokens["bob"]))
        answers = {"alice": first, "bob": second}
        statuses = sorted(status for status, _ in answers.values())
        assert statuses == [200, 422], answers
        winner = next(owner for owner, (status, _) in answers.items() if status == 200)
        loser = "bob" if winner == "alice" else "alice"
        # A loser checked after the winner's commit finds its pending publisher voided
        # already: no publisher at all. With the SQL lookup it reads the database; in
        # memory, the NOTIFY of the voiding can reach its replica first (seen under load).
        assert answers[loser][1]["errors"][0]["code"] in (
            "invalid-pending-publisher", "invalid-publisher")
        storage = Storage(group.url, files="unused")
        try:
            assert storage.project_creator(project) == winner
            holders = [p.id for p in storage.publishers()
                       if project in (p.row.get("projects") or ())]
            assert holders == [f"{winner}-{round_}"]
            assert storage.publisher(f"{loser}-{round_}") is None  # voided
        finally:
            storage.close()


def test_racing_uploads_of_one_file_name_give_one_winner(replicas: Any, tmp_path: Path) -> None:
    group = replicas(2)
    a, b = group.servers
    credentials = [group.mint(a, github_token())[1]["token"],
                   group.mint(b, github_token())[1]["token"]]
    for round_ in range(6):
        version = f"2.{round_}"
        from_a, from_b = race(
            partial(group.upload, a, credentials[0], "sampleproject", version, "from-a"),
            partial(group.upload, b, credentials[1], "sampleproject", version, "from-b"))
        results = {"from-a": from_a, "from-b": from_b}
        statuses = sorted(r.status_code for r in results.values())
        assert statuses == [200, 400], {k: (r.status_code, r.text) for k, r in results.items()}
        winner = next(salt for salt, r in results.items() if r.status_code == 200)
        filename, data = wheel("sampleproject", version, winner)
        served = group.client.get(b.url + f"/files/sampleproject/{filename}")
        assert served.status_code == 200 and served.content == data
        assert hashlib.sha256(data).hexdigest() in group.client.get(
            a.url + "/simple/sampleproject/").text


def _slow_upload_then_kill(server: ServerProcess, credential: str, filename: str) -> None:
    """Send an upload's headers and half its body, then kill -9 the server."""
    import base64

    host, port = server.url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(server.tls.ca))
    boundary = "killedmidupload"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name=":action"\r\n\r\n'
            f"file_upload\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"name\""
            f"\r\n\r\nsampleproject\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f'name="version"\r\n\r\n3.0\r\n--{boundary}\r\nContent-Disposition: form-data; '
            f'name="content"; filename="{filename}"\r\n\r\n').encode()
    auth = base64.b64encode(f"__token__:{credential}".encode()).decode()
    with socket.create_connection((host, int(port))) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall((f"POST /legacy/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}"
                     f"\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                     f"Content-Length: {len(head) + 4_000_000}\r\n\r\n").encode() + head)
        tls.sendall(b"PK" + b"\0" * 2_000_000)
        time.sleep(0.5)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        server.process = None


def test_a_replica_killed_mid_upload_and_mid_mint_leaves_nothing_half_written(
        replicas: Any, redis_server: RedisServer) -> None:
    import redis

    group = replicas(2)
    a, b = group.servers
    credential = group.mint(a, github_token())[1]["token"]
    filename = "sampleproject-3.0-py3-none-any.whl"
    _slow_upload_then_kill(a, credential, filename)
    assert group.client.get(b.url + f"/files/sampleproject/{filename}").status_code == 404
    assert group.upload(b, credential, "sampleproject", "3.0").status_code == 200

    # kill -9 with mints in flight: every stored credential had its token's jti claimed
    c = group.servers[1]
    a.start()
    tokens = [github_token() for _ in range(40)]
    done: list[int] = []

    def mint_all() -> None:
        for token in tokens:
            try:
                done.append(group.mint(a, token)[0])
            except httpx.HTTPError:
                done.append(0)

    thread = threading.Thread(target=mint_all)
    thread.start()
    while len(done) < 5:
        time.sleep(0.01)
    a.stop(kill=True)
    thread.join(60)
    assert 0 in done  # some were cut off
    client = redis.Redis.from_url(redis_server.url)
    storage = Storage(group.url, files="unused")
    try:
        rows = storage.database.query("SELECT jti FROM credentials")
        assert rows
        for (jti,) in rows:
            keys = client.keys(f"tppolicy:jti:*{jti}")
            assert keys, f"a credential whose token's jti {jti} is not claimed"
    finally:
        storage.close()
        client.close()
    for token in tokens:  # the survivor refuses every used token, mints for new ones
        status, _ = group.mint(c, token)
        assert status in (200, 422)
    assert group.mint(c, github_token())[0] == 200


def test_postgresql_restarted_under_load(replicas: Any,
                                         postgres_cluster: PostgresCluster) -> None:
    group = replicas(2)
    a, b = group.servers
    credential = group.mint(a, github_token())[1]["token"]
    assert group.upload(b, credential, "sampleproject", "4.0").status_code == 200
    postgres_cluster.stop("fast")
    try:
        status, body = group.mint(a, github_token())
        assert status == 503 and body["errors"][0]["code"] == "server-error"
        refused = group.upload(b, credential, "sampleproject", "4.1")
        assert refused.status_code == 503 and "database is unavailable" in refused.text
        assert group.client.get(a.url + "/simple/sampleproject/").status_code == 503
        assert group.client.get(b.url + "/_/health").status_code == 503
    finally:
        postgres_cluster.start()
    deadline = time.monotonic() + 30
    recovered: set[str] = set()
    while time.monotonic() < deadline and len(recovered) < 2:
        for server in (a, b):
            if server.url not in recovered and group.mint(server, github_token())[0] == 200:
                recovered.add(server.url)
        time.sleep(0.2)
    assert len(recovered) == 2  # both replicas, neither restarted
    assert group.upload(a, credential, "sampleproject", "4.1").status_code == 200


def test_a_custom_issuer_registered_through_the_database_is_trusted_by_every_replica(
        replicas: Any, jwks_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import uuid

    from tests.conftest import load_claims
    from tests.tokens import rsa_key

    custom = "https://gitlab.example.org"
    group = replicas(2, "--jwks", f"{custom}={jwks_file}")
    a, b = group.servers
    code, _, err = run_cli(capsys, "serve", "--db", group.url, "publishers", "add", "gitlab",
                           "namespace=octo-group/python", "project=sampleproject",
                           "workflow_filepath=ci/release.yml", "environment=production",
                           f"issuer_url={custom}", "--project", "self-hosted-project",
                           "--name", "self-hosted")
    assert code == 0, err
    base = load_claims("gitlab-release")
    now = int(time.time())

    def token() -> str:
        return rsa_key().sign({**base, "iss": custom, "aud": "pypi", "iat": now, "nbf": now,
                               "exp": now + 300, "jti": str(uuid.uuid4()),
                               "ci_config_ref_uri": base["ci_config_ref_uri"].replace(
                                   "gitlab.com", "gitlab.example.org")})

    status, body = group.mint(b, token())
    assert status == 422 and "unknown" in body["errors"][0]["description"]
    code, _, err = run_cli(capsys, "serve", "--db", group.url, "issuers", "add", custom,
                           "github")
    assert code == 3 and "not a provider allowing custom issuers" in err
    code, out, _ = run_cli(capsys, "serve", "--db", group.url, "issuers", "add", custom,
                           "gitlab", "--added-by", "octo-group")
    assert code == 0 and "registered issuer" in out
    code, out, _ = run_cli(capsys, "serve", "--db", group.url, "issuers", "list")
    assert out == f"{custom}\tgitlab\n"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # NOTIFY: b trusts it at once, polling 0.2 s anyway
        status, body = group.mint(b, token())
        if status == 200:
            break
        time.sleep(0.05)
    assert status == 200, body
    assert group.mint(a, token())[0] == 200
