"""Huge pages for a large loaded engine: best effort, never changes what memory holds."""

from __future__ import annotations

import mmap
import sys

import pytest

from tppolicy.decide import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_collapsing_keeps_every_byte_and_reports_what_it_did() -> None:
    data = bytearray(48 << 20)
    for position in range(0, len(data), 4096):
        data[position] = position % 251
    collapsed = memory.collapse_to_huge_pages()
    assert collapsed >= 0 and collapsed % memory.HUGE_PAGE == 0
    assert all(data[p] == p % 251 for p in range(0, len(data), 4096))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_a_sparse_region_is_left_alone() -> None:
    """Collapsing fills a region's untouched pages: a mapping mostly untouched (a
    reservation) is not in the regions collapsed."""
    with mmap.mmap(-1, 256 << 20) as sparse:
        sparse[0] = 1
        address = _address(sparse)
        assert not any(low <= address < high for low, high in memory._regions())


def _address(region: mmap.mmap) -> int:
    import ctypes

    view = ctypes.c_char.from_buffer(region)
    address = ctypes.addressof(view)
    del view  # the mmap cannot close while exported
    return address


def test_elsewhere_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory.collapse_to_huge_pages() == 0
