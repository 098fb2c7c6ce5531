"""A wheel's METADATA (PEP 658) is read only from a wheel whose zip directory is of a
sane size: `zipfile` builds an object per entry holding the interpreter lock, and a 51 MB
wheel of 600 000 empty entries took it 237 s and 350 MB, the server stalled meanwhile."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from tppolicy.server import simple

METADATA = b"Name: pkg\nVersion: 1.0\n"


def _wheel(path: Path, entries: int) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pkg-1.0.dist-info/METADATA", METADATA)
        for number in range(entries):
            archive.writestr(zipfile.ZipInfo(f"{number:x}"), b"")
    path.write_bytes(buffer.getvalue())
    return path


def test_a_wheel_of_too_many_entries_is_not_parsed(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simple, "MAX_WHEEL_ENTRIES", 1000)
    assert simple.wheel_metadata(str(_wheel(tmp_path / "a.whl", 999))) == METADATA
    assert simple.zip_directory(str(tmp_path / "a.whl"))[0] == 1000  # type: ignore[index]
    assert simple.wheel_metadata(str(_wheel(tmp_path / "b.whl", 1000))) is None


def test_an_end_record_understating_its_entries_does_not_get_past(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`zipfile` reads the directory by its size, whatever count the end record gives:
    a record saying 1 entry for a directory of thousands is bounded by its size."""
    monkeypatch.setattr(simple, "MAX_WHEEL_DIRECTORY_BYTES", 64 * 1024)
    path = _wheel(tmp_path / "c.whl", 3000)
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)
    path.write_bytes(bytes(data))
    assert len(zipfile.ZipFile(path).infolist()) == 3001  # zipfile still reads them all
    assert simple.wheel_metadata(str(path)) is None


def test_a_zip64_directory_is_measured(tmp_path: Path) -> None:
    """Past 65 535 entries the counts are in the zip64 end record."""
    path = _wheel(tmp_path / "d.whl", 70_000)
    entries, size = simple.zip_directory(str(path)) or (0, 0)
    assert entries == 70_001 and size > 70_000 * 46
    assert simple.wheel_metadata(str(path)) is None
