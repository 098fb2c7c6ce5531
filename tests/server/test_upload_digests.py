"""Every digest an upload form gives is checked against the file, as PyPI checks them:
an `md5_digest` or `blake2_256_digest` that did not match was accepted (only
`sha256_digest` was compared)."""

from __future__ import annotations

import hashlib

import pytest

from tppolicy.server import Index

from .conftest import TestClient
from .test_app import credential, upload, wheel

MISMATCH = "The digest supplied does not match a digest calculated from the uploaded file."


@pytest.mark.parametrize("field", ["md5_digest", "blake2_256_digest", "sha256_digest"])
def test_a_digest_that_does_not_match_is_refused(client: TestClient, index: Index,
                                                 field: str) -> None:
    answer = upload(client, credential(client), extra={field: "00" * 16})
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"] == MISMATCH
    assert index.storage.get_file(wheel()[0]) is None


def test_matching_digests_in_any_case_are_accepted(client: TestClient) -> None:
    _, data = wheel()
    digests = {"md5_digest": hashlib.md5(data, usedforsecurity=False).hexdigest().upper(),
               "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest()}
    answer = upload(client, credential(client), extra=digests)
    assert answer.status_code == 200, answer.text
