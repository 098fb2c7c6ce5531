"""An upload while the file store cannot be written (full disk, read-only or missing
mount): 503, nothing recorded, one log line; never a 500 with a traceback."""

from __future__ import annotations

import shutil

import pytest

from tppolicy.server import Index

from .conftest import TestClient
from .test_app import credential, upload


def test_an_unwritable_file_store_answers_503_and_records_nothing(
        index: Index, client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    token = credential(client)
    files = index.storage.files_dir
    shutil.rmtree(files, ignore_errors=True)
    files.write_bytes(b"")  # the store's folder is a plain file: no write can succeed
    answer = upload(client, token)
    assert answer.status_code == 503, answer.text
    assert "cannot store files" in answer.text
    assert str(files) not in answer.text  # the index's paths stay private
    assert index.storage.files("sampleproject") == []
    assert all(r.exc_info is None for r in caplog.records)
