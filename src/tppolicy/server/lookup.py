"""The SQL publisher lookup: the engine asks the server's database for the publishers
a token may speak for, instead of holding every publisher in each process.

    engine = Engine(..., lookup=SqlPublisherLookup(storage))
    key_rows(storage, engine)   # each row stored with its lookup and identity keys

Each publisher row carries its lookup key (the values its provider file declares as
`identity` and `key`, one string; `Engine.lookup_key`), indexed with the provider
(`publishers_lookup`, migration 4): a check is one index lookup, whatever the number
of publishers, and a publisher added by any replica or command is used by the next
check, with no reload. Each row also carries its identity key (`Engine.identity_key`,
migration 6): a token that no row's lookup key matches is told about the publishers of
its identity (the closest one, what each expects), as with the engine's own index.
"""

from __future__ import annotations

from collections.abc import Sequence

from tppolicy.decide.engine import Candidate, Engine

from .names import check_row
from .storage import Storage


def key_rows(storage: Storage, engine: Engine) -> None:
    """Rows written through `storage` carry their lookup key and identity key, as
    `engine` computes them."""
    storage.keyer = lambda row: engine.lookup_key(row)[1]
    storage.identity_keyer = lambda row: engine.identity_key(row)[1]


class SqlPublisherLookup:
    """`tppolicy.decide.engine.IdentityLookup` on the server's schema."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.queries = 0  # lookups made (for tests and metrics)

    def candidates(self, provider: str, key: str, pending: bool) -> Sequence[Candidate]:
        self.queries += 1
        return [Candidate(row.id, row.row, row.added_by, row.created)
                for row in self.storage.lookup_candidates(provider, key, pending)
                # rows written by something else than the admin commands: not served
                if not check_row(row.id, row.row, row.added_by)]

    def same_identity(self, provider: str, identity: str, limit: int) -> Sequence[Candidate]:
        self.queries += 1
        return [Candidate(row.id, row.row, row.added_by, row.created)
                for row in self.storage.identity_candidates(provider, identity, limit)
                if not check_row(row.id, row.row, row.added_by)]
