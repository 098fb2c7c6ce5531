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


def _huge_kb() -> int:
    """The process's memory backed by 2 MB pages, in KB (/proc/self/smaps_rollup)."""
    with open("/proc/self/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


def _rows(count: int) -> list[dict[str, object]]:
    return [{"provider": "github", "name": f"pub-{i}", "projects": [f"project-{i}"],
             "repository_owner": f"org{i // 50}", "repository_name": f"repo{i}",
             "repository_owner_id": str(100000 + i // 50),
             "workflow_filename": "release.yml", "environment": "pypi"} for i in range(count)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_a_large_bulk_load_backs_the_publishers_with_huge_pages() -> None:
    """`Engine(huge_pages=None)` collapses after a bulk load leaving HUGE_PAGES_FROM
    publishers or more; a smaller one, or huge_pages=False, is left as it is. The
    decisions are the same either way."""
    from tppolicy import Engine
    from tppolicy.decide import engine as engine_module

    probe = bytearray(48 << 20)
    for position in range(0, len(probe), 4096):
        probe[position] = 1
    if memory.collapse_to_huge_pages() == 0:
        pytest.skip("this kernel does not collapse memory into huge pages")
    del probe
    rows = _rows(30_000)  # about 60 MB of publishers: regions past MIN_REGION
    small = Engine(publishers=rows[:1000])
    assert small.huge_pages is None and len(small) < engine_module.HUGE_PAGES_FROM
    before = _huge_kb()
    never = Engine(publishers=rows, huge_pages=False)
    assert _huge_kb() <= before + 4096  # nothing collapsed for it (a few MB of noise)
    always = Engine(publishers=rows, huge_pages=True)
    assert _huge_kb() > before + 16 * 1024  # its tens of MB now in 2 MB pages
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": "pypi",
              "repository": "org10/repo512", "repository_owner": "org10",
              "repository_owner_id": "100010", "sub": "repo:org10/repo512:environment:pypi",
              "job_workflow_ref": "org10/repo512/.github/workflows/release.yml@refs/tags/v1",
              "ref": "refs/tags/v1", "sha": "a" * 40, "event_name": "push",
              "environment": "pypi", "jti": "j", "exp": 2, "iat": 1}
    assert always.check_claims(claims).allowed and never.check_claims(claims).allowed
    assert always.check_claims(claims).decision == never.check_claims(claims).decision
