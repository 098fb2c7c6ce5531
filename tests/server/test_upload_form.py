"""Every temporary file the multipart parser makes is closed, whatever the body.

Regression: a body that stops inside a file part (no closing boundary) parsed into a
form without that file, so closing the form left its SpooledTemporaryFile open
("ResourceWarning: Unclosed file", found by test_fuzz.py::test_fuzz_upload_raw_multipart).
"""

from __future__ import annotations

import base64
import gc
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from tppolicy.server import Index, create_app

from .conftest import GH_ROW, TestClient
from .test_app import credential, upload, wheel

BOUNDARY = b"b0undary"
FILE_PART = (b"--" + BOUNDARY + b"\r\n"
             b'Content-Disposition: form-data; name="content"; filename="a.whl"\r\n\r\n')
FIELD_PART = (b"--" + BOUNDARY + b"\r\n"
              b'Content-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n')


@pytest.fixture
def client(make_index: Any) -> Iterator[TestClient]:
    index: Index = make_index()
    index.storage.put_publisher("release", {**GH_ROW, "name": "release", "trust_on_first_use":
                                            True, "projects": ["sampleproject"]})
    index.sync(force=True)
    with TestClient(create_app(index), base_url="http://127.0.0.1") as test_client:
        yield test_client


def _post(client: TestClient, body: bytes) -> tuple[Any, list[str]]:
    """POST `body` to the upload API with a valid credential; the answer and the
    ResourceWarnings raised meanwhile (collected at once, not whenever the GC runs)."""
    token = credential(client, repository_id="74")
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        answer = client.post("/legacy/", content=body, headers={
            "Authorization": auth,
            "Content-Type": "multipart/form-data; boundary=" + BOUNDARY.decode()})
        gc.collect()
    return answer, [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("body", [
    FILE_PART + b"abc",                              # cut inside the file's data
    FILE_PART + b"abc\r\n",                          # data ended, no boundary after it
    FIELD_PART + FILE_PART + b"abc\r\n--" + BOUNDARY,  # a boundary but not the last one
    FILE_PART + b"\x00" * 5000,                      # a longer cut file
    # what the fuzz test found (--hypothesis-seed=4): an empty file name, no data
    b'--b0undary\r\nContent-Disposition: form-data; name="content"; filename=""\r\n\r\n\r\n',
], ids=["cut-in-data", "no-boundary", "no-closing-boundary", "long", "fuzz-seed-4"])
def test_a_cut_file_part_is_refused_and_its_file_closed(client: TestClient,
                                                        body: bytes) -> None:
    answer, unclosed = _post(client, body)
    assert unclosed == []
    assert answer.status_code == 400, answer.text
    assert "closing boundary" in answer.text


@pytest.mark.parametrize("body", [
    FILE_PART + b"abc\r\n" + FILE_PART + b"def\r\n--" + BOUNDARY + b"--\r\n",  # two files
    FILE_PART + b"abc\r\n--" + BOUNDARY + b"\r\nContent-Disposition: form-data\r\n\r\nx",
    FILE_PART + b"abc\r\n--" + BOUNDARY + b"X",      # a broken boundary after a file
], ids=["two-files", "part-without-name", "broken-boundary"])
def test_a_malformed_form_closes_every_file(client: TestClient, body: bytes) -> None:
    answer, unclosed = _post(client, body)
    assert 400 <= answer.status_code < 500, answer.text
    assert unclosed == []


def test_a_whole_form_still_uploads(client: TestClient) -> None:
    token = credential(client, repository_id="74")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        answer = upload(client, token)
        gc.collect()
    assert answer.status_code == 200, answer.text
    assert [w for w in seen if issubclass(w.category, ResourceWarning)] == []


def test_the_closing_boundary_without_a_line_end_is_whole(client: TestClient) -> None:
    """`--BOUNDARY--` with nothing after it ends the body (RFC 2046 needs no CRLF)."""
    filename, data = wheel()
    body = (FIELD_PART + b"--" + BOUNDARY + b"\r\n" + b"".join(
        b'Content-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value + b"\r\n--" +
        BOUNDARY + b"\r\n" for name, value in [(b"name", b"sampleproject"),
                                                (b"version", b"1.0"),
                                                (b"filetype", b"bdist_wheel")]) +
        b'Content-Disposition: form-data; name="content"; filename="' + filename.encode() +
        b'"\r\n\r\n' + data + b"\r\n--" + BOUNDARY + b"--")
    answer, unclosed = _post(client, body)
    assert answer.status_code == 200, answer.text
    assert unclosed == []
