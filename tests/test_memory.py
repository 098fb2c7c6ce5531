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


def _rows(count: int) -> list[dict[str, object]]:
    return [{"provider": "github", "name": f"pub-{i}", "projects": [f"project-{i}"],
             "repository_owner": f"org{i // 50}", "repository_name": f"repo{i}",
             "repository_owner_id": str(100000 + i // 50),
             "workflow_filename": "release.yml", "environment": "pypi"} for i in range(count)]


def test_a_bulk_load_collapses_when_the_engine_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Engine(huge_pages=None)` collapses after a bulk load of 1 000 rows or more leaving
    HUGE_PAGES_FROM publishers or more; True after every bulk load, False never. The real
    collapse runs each time (counted on the way: how much memory it moves depends on the
    process's history, so the count is what is asserted); decisions are the same."""
    from tppolicy import Engine
    from tppolicy.decide import engine as engine_module

    calls: list[int] = []
    real = memory.collapse_to_huge_pages

    def counted(min_region: int = memory.MIN_REGION) -> int:
        calls.append(1)
        return real(min_region)

    monkeypatch.setattr(memory, "collapse_to_huge_pages", counted)
    monkeypatch.setattr(engine_module, "HUGE_PAGES_FROM", 2500)
    rows = _rows(3000)
    Engine(publishers=rows[:2000])  # below HUGE_PAGES_FROM
    assert calls == []
    never = Engine(publishers=rows, huge_pages=False)
    assert calls == []
    default = Engine(publishers=rows)
    assert len(calls) == 1
    default.add_publishers(_rows(3100)[3000:])  # 100 rows: not a bulk load that counts
    assert len(calls) == 1
    always = Engine(publishers=rows[:10], huge_pages=True)
    assert len(calls) == 2
    one_by_one = Engine(huge_pages=None)
    for row in rows:
        one_by_one.add_publisher(row)
    assert len(calls) == 2
    one_by_one.settle(len(rows))  # as tppolicy serve does after loading its database
    assert len(calls) == 3
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": "pypi",
              "repository": "org0/repo7", "repository_owner": "org0",
              "repository_owner_id": "100000", "sub": "repo:org0/repo7:environment:pypi",
              "job_workflow_ref": "org0/repo7/.github/workflows/release.yml@refs/tags/v1",
              "ref": "refs/tags/v1", "sha": "a" * 40, "event_name": "push",
              "environment": "pypi", "jti": "j", "exp": 2, "iat": 1}
    decisions = [e.check_claims(claims).decision for e in (never, default, always, one_by_one)]
    assert decisions[0].allowed and all(d == decisions[0] for d in decisions)
