"""Fuzzing what faces the network: the token exchange (`/_/oidc/mint-token`,
`/_/oidc/burn-token`) and the upload (`/legacy/`) of the real ASGI app, in process,
with hypothesis. Inputs: arbitrary bodies, headers, JSON, tokens (garbage, mutated,
and correctly signed with arbitrary claims), multipart forms written byte by byte,
file names, credentials. Whatever comes in: no 5xx, no exception out of the app
(the test client re-raises them), no traceback in a body, PyPI's error shapes.

The budget is bounded: TPPOLICY_FUZZ_EXAMPLES examples per target (default 150;
CI runs the default, a deeper run sets e.g. 5000)."""

from __future__ import annotations

import base64
import gc
import json
import os
import string
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tokens import b64url, rsa_key
from tppolicy.server import Index, create_app

from .conftest import GH_ROW, TestClient, github_claims
from .test_app import PLUGIN_CLAIMS, PLUGIN_ROW, credential, wheel

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("TPPOLICY_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) |
    st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)
# Claim values a real token never carries, and some it does.
CLAIM_VALUES = (JSON | st.integers(2**62, 2**80) | st.just("") |
                st.text(alphabet=string.printable + "\u017f\u212a\u0131\u202e\u200b\x00",
                        max_size=60))
CLAIM_NAMES = st.sampled_from(sorted({*github_claims(), "nbf", "iat", "exp", "aud", "iss",
                                      "jti", "repository_id", "environment", "ref"}))
TEXT = st.text(max_size=80) | st.text(alphabet=string.printable, max_size=300)
FILE_NAMES = (TEXT | st.builds(
    lambda stem, tail: stem + tail,
    st.text(alphabet="sampleproject-_.+!#?%/\\\n\t\x00\u3000ABC0123456789", max_size=60),
    st.sampled_from([".whl", ".tar.gz", ".zip", "", "-py3-none-any.whl"])))


@pytest.fixture(scope="module")
def key() -> Any:
    return rsa_key()  # the key of the JWKS file the index trusts (conftest's jwks_file)


@pytest.fixture
def fuzz_client(make_index: Any) -> Iterator[tuple[TestClient, Index]]:
    index: Index = make_index()
    index.storage.put_publisher("release", {**GH_ROW, "name": "release", "trust_on_first_use":
                                            True, "projects": ["sampleproject"]})
    index.storage.put_publisher("plugin", PLUGIN_ROW, added_by="alice")
    index.sync(force=True)
    with TestClient(create_app(index), base_url="http://127.0.0.1") as client:
        yield client, index


@pytest.fixture
def tried(request: pytest.FixtureRequest) -> Iterator[list[int]]:
    """Counts the inputs a fuzz test sent; shown with `pytest -s`."""
    count = [0]
    yield count
    print(f"\n{request.node.name}: {count[0]} inputs sent, no 5xx")


def assert_sound(answer: Any) -> None:
    """No 5xx, no traceback, and PyPI's shapes for JSON errors."""
    assert answer.status_code < 500, (answer.status_code, answer.text[:500])
    assert "Traceback" not in answer.text
    if answer.status_code == 422:
        body = answer.json()
        assert body["message"] == "Token request failed"
        assert isinstance(body["errors"][0]["code"], str)
    elif answer.status_code in (400, 403, 413) and answer.headers.get(
            "content-type", "").startswith("application/json"):
        body = answer.json()
        assert body["code"].startswith(f"{answer.status_code} ")


# ------------------------------------------------------------------ mint-token
def test_fuzz_mint_bodies(fuzz_client: tuple[TestClient, Index],
                          tried: list[int]) -> None:
    client, _ = fuzz_client

    @FUZZ
    @given(body=st.binary(max_size=2000) | JSON.map(lambda v: json.dumps(v).encode()) |
           st.builds(lambda t: json.dumps({"token": t}).encode(), JSON | TEXT),
           content_type=st.sampled_from(["application/json", "text/plain", "",
                                         "multipart/form-data; boundary=x", "\x7f"]),
           path=st.sampled_from(["/_/oidc/mint-token", "/_/oidc/github/mint-token",
                                 "/_/oidc/burn-token"]))
    def run(body: bytes, content_type: str, path: str) -> None:
        tried[0] += 1
        assert_sound(client.post(path, content=body, headers={"Content-Type": content_type}))

    run()


def test_fuzz_mint_signed_tokens(fuzz_client: tuple[TestClient, Index], key: Any,
                                 tried: list[int]) -> None:
    """Correctly signed tokens with arbitrary claims: the verifier and every rule see
    values no CI sends (huge exp, non-strings, control characters, nesting)."""
    client, _ = fuzz_client

    @FUZZ
    @given(changes=st.dictionaries(CLAIM_NAMES, CLAIM_VALUES, max_size=6),
           drop=st.lists(CLAIM_NAMES, max_size=3), pending=st.booleans(),
           header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jku", "x5u"]),
                                  JSON, max_size=2))
    def run(changes: dict[str, Any], drop: list[str], pending: bool,
            header: dict[str, Any]) -> None:
        tried[0] += 1
        claims = github_claims(**(PLUGIN_CLAIMS if pending else {}))
        claims.update(changes)
        for name in drop:
            claims.pop(name, None)
        token = sign_raw(key, {"alg": "RS256", "kid": key.kid, **header}, claims)
        assert_sound(client.post("/_/oidc/mint-token", json={"token": token}))

    run()


def sign_raw(key: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWT signed with `key` whatever the header and claims hold (PyJWT refuses to
    encode some, e.g. a non-string `iss`; a forger's token need not come from it)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signing_input = (b64url(json.dumps(header)) + "." + b64url(json.dumps(claims))).encode()
    signature = key.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + b64url(signature)


def test_fuzz_mint_mutated_tokens(fuzz_client: tuple[TestClient, Index], key: Any,
                                  tried: list[int]) -> None:
    client, _ = fuzz_client
    valid = key.sign(github_claims())

    @FUZZ
    @given(position=st.integers(0, len(valid)), cut=st.integers(0, 40),
           insert=st.text(alphabet=string.ascii_letters + string.digits + "-_.=+/\x00 ",
                          max_size=40))
    def run(position: int, cut: int, insert: str) -> None:
        tried[0] += 1
        token = valid[:position] + insert + valid[position + cut:]
        assert_sound(client.post("/_/oidc/mint-token", json={"token": token}))

    run()


# ------------------------------------------------------------------ upload
def _auth(token: str) -> str:
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


def test_fuzz_upload_forms(fuzz_client: tuple[TestClient, Index],
                           tried: list[int]) -> None:
    """Form fields and file names through a client library (httpx's encoding)."""
    client, index = fuzz_client
    token = credential(client, repository_id="74")
    _, data = wheel()

    @FUZZ
    @given(filename=FILE_NAMES,
           fields=st.dictionaries(st.sampled_from([":action", "name", "version", "filetype",
                                                   "sha256_digest", "requires_python",
                                                   "metadata_version", "x"]), TEXT,
                                  max_size=6),
           content=st.sampled_from([b"", b"\x1f\x8b", b"PK"]) | st.binary(max_size=300) |
           st.just(data),
           name=st.sampled_from(["sampleproject", "SampleProject", "other", "sample_project"]),
           version=st.sampled_from(["1.0", "1.0.0", "v1", "1" * 5000, "", "1.0+local"]))
    def run(filename: str, fields: dict[str, str], content: bytes, name: str,
            version: str) -> None:
        tried[0] += 1
        form = {":action": "file_upload", "name": name, "version": version, **fields}
        try:
            answer = client.post("/legacy/", data=form, headers={"Authorization": _auth(token)},
                                 files={"content": (filename, content)})
        except UnicodeEncodeError:  # the client library refuses it: nothing was sent
            return
        assert_sound(answer)
        for stored in index.storage.files("sampleproject"):  # what was stored is sane
            assert stored.filename.isprintable() and len(stored.filename) <= 255
            assert "#" not in stored.filename and "?" not in stored.filename

    run()


def test_fuzz_upload_raw_multipart(fuzz_client: tuple[TestClient, Index],
                                   tried: list[int]) -> None:
    """Multipart bodies written byte by byte: broken boundaries, headers, encodings,
    file names no client library would send."""
    client, _ = fuzz_client
    token = credential(client, repository_id="74")
    part_name = st.sampled_from([b"content", b":action", b"name", b"version", b"filetype",
                                 b"x"]) | st.binary(max_size=20)

    @st.composite
    def multipart(draw: st.DrawFn) -> tuple[bytes, bytes]:
        boundary = draw(st.sampled_from([b"b0undary", b"", b"x" * 100])) or b"b"
        parts = []
        for _ in range(draw(st.integers(0, 5))):
            name = draw(part_name)
            filename = draw(st.none() | st.binary(max_size=60))
            disposition = b'form-data; name="' + name + b'"'
            if filename is not None:
                disposition += b'; filename="' + filename + b'"'
            headers = b"Content-Disposition: " + disposition + b"\r\n" + draw(
                st.sampled_from([b"", b"Content-Type: application/octet-stream\r\n",
                                 b"Content-Transfer-Encoding: base64\r\n",
                                 b"Content-Disposition: form-data\r\n"]))
            parts.append(b"--" + boundary + b"\r\n" + headers + b"\r\n" +
                         draw(st.binary(max_size=200)) + b"\r\n")
        ending = draw(st.sampled_from([b"--" + boundary + b"--\r\n", b"", b"--" + boundary]))
        return boundary, b"".join(parts) + ending

    @FUZZ
    @given(body=multipart(), content_type=st.sampled_from(["multipart/form-data; boundary=",
                                                           "multipart/form-data", "text/plain",
                                                           "application/x-www-form-urlencoded"]),
           authorization=st.sampled_from(["ok", "none", "garbage"]) | st.text(max_size=60))
    def run(body: tuple[bytes, bytes], content_type: str, authorization: str) -> None:
        tried[0] += 1
        boundary, payload = body
        headers = {"Content-Type": content_type + (boundary.decode("latin-1")
                                                   if content_type.endswith("=") else "")}
        if authorization == "ok":
            headers["Authorization"] = _auth(token)
        elif authorization == "garbage":
            headers["Authorization"] = "Basic " + base64.b64encode(payload[:50]).decode()
        elif authorization != "none":
            try:
                authorization.encode("ascii")  # what the client library sends
            except UnicodeEncodeError:
                return
            headers["Authorization"] = authorization
        # A file the parser leaves open warns only when collected, which may be in a later
        # test: collect now, so the input that leaked it is the one that fails.
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", ResourceWarning)
            assert_sound(client.post("/legacy/", content=payload, headers=headers))
            gc.collect()
        assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []

    run()


def test_fuzz_upload_credentials(fuzz_client: tuple[TestClient, Index],
                                 tried: list[int]) -> None:
    client, _ = fuzz_client
    _, data = wheel()
    form = {":action": "file_upload", "name": "sampleproject", "version": "1.0"}

    @FUZZ
    @given(user=TEXT, password=TEXT | st.builds(lambda t: "tpp-" + t, TEXT),
           scheme=st.sampled_from(["Basic", "basic", "Bearer", "", "Basic  "]))
    def run(user: str, password: str, scheme: str) -> None:
        tried[0] += 1
        raw = f"{user}:{password}".encode("utf-8", "surrogatepass")
        header = f"{scheme} {base64.b64encode(raw).decode()}"
        answer = client.post("/legacy/", data=form, headers={"Authorization": header},
                             files={"content": ("sampleproject-1.0-py3-none-any.whl", data)})
        assert_sound(answer)
        assert answer.status_code == 403

    run()
