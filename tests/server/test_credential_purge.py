"""Expired credentials are purged a day after expiry, at most once a minute per process."""

from __future__ import annotations

from pathlib import Path

from tppolicy.server.storage import CREDENTIAL_PURGE_AFTER, CREDENTIAL_PURGE_INTERVAL, Storage


def _count(storage: Storage) -> int:
    return int(storage.database.query("SELECT COUNT(*) FROM credentials")[0][0])


def test_expired_credentials_are_purged_once_a_minute(tmp_path: Path) -> None:
    now = [1_000_000.0]
    storage = Storage(tmp_path / "index.db", clock=lambda: now[0])
    try:
        def mint(name: str, expires: float) -> None:
            storage.add_credential(name, publisher_id="p", publisher="p", projects=("a",),
                                   expires=expires, jti=None)

        mint("second", now[0] + 900)  # the first mint purges (nothing to purge yet)
        mint("old", now[0] - CREDENTIAL_PURGE_AFTER - 10)
        assert _count(storage) == 2  # within the minute: not purged yet
        now[0] += CREDENTIAL_PURGE_INTERVAL
        mint("third", now[0] + 900)
        assert _count(storage) == 2  # "old" is gone, the live ones stay
        assert storage.credential("old") is None
        assert storage.credential("second") is not None
    finally:
        storage.close()
