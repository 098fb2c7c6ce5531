"""The index's logic, without HTTP: token exchange, upload checks, the simple index.

`Index` joins one `tppolicy.Engine` (which publisher does a token speak for?) and one
`Storage` (what the index holds). The engine's publishers are loaded from storage and
follow it: a publisher added with `tppolicy serve publishers add` while the server
runs is seen within `reload_interval` seconds. Everything here is synchronous and
thread-safe; the ASGI layer (`app.py`) runs it in worker threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import orjson

from tppolicy.decide.decision import CANNOT_EVALUATE, RuleResult
from tppolicy.decide.engine import (
    INVALID_PAYLOAD,
    INVALID_PENDING_PUBLISHER,
    INVALID_PUBLISHER,
    INVALID_REUSE_TOKEN,
    INVALID_TOKEN,
    Candidate,
    CheckResult,
    CreateProject,
    Engine,
    ultranormalize_name,
)
from tppolicy.decide.index import Record
from tppolicy.errors import ConfigError

from .attestations import INVALID as ATTESTATIONS_INVALID
from .attestations import AttestationRefused, Prepared
from .attestations import prepare as prepare_attestations
from .attestations import verify as verify_attestations
from .auth import (
    CREDENTIAL_TTL,
    AuthFailure,
    KeysNotCached,
    ServerKeyCache,
    authenticate,
    new_credential,
)
from .database import DatabaseUnavailable, SQLiteDatabase, Tx, Unavailable
from .metrics import Metrics
from .names import (
    check_filename,
    check_project_name,
    check_requires_python,
    check_row,
    escape,
)
from .ratelimit import RateLimit
from .simple import (
    metadata_is_readable,
    project_html,
    project_json,
    root_html,
    root_json,
    wheel_metadata,
)
from .storage import (
    Credential,
    MintScope,
    PendingMint,
    PublisherRow,
    SQLiteJtiStore,
    Storage,
    StoredFile,
    normalize,
)

log = logging.getLogger("tppolicy.server")


@dataclass(frozen=True, slots=True)
class PreparedMint:
    """An exchange `Index.prepare_at_once` allowed: what `commit_at_once` stores."""

    pending: PendingMint
    provider: str


class FileStoreUnavailable(Unavailable):
    """The file store cannot be written (full, read-only, missing mount): the upload
    fails with 503 and nothing is recorded. The message (with the path) is for the log."""

    def __init__(self, error: OSError) -> None:
        super().__init__(f"the file store cannot be written: {error}")


# With the SQL lookup, expired pending publishers are deleted at most this often (s).
EXPIRY_INTERVAL = 600.0
MAX_MINT_BODY = 64 * 1024
DEFAULT_MAX_UPLOAD = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, JSON-ready body, and for errors the reason phrase
    (twine prints it; uv prints the JSON `code`)."""

    status: int
    body: Any
    reason: str | None = None


def mint_error(code: str, description: str) -> Answer:
    return Answer(422, {"message": "Token request failed",
                        "errors": [{"code": code, "description": description}]})


_TITLES = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           413: "Request Entity Too Large", 503: "Service Unavailable"}


def upload_error(status: int, message: str) -> Answer:
    """PyPI's JSON error shape: uv shows `code`, twine the reason phrase."""
    one_line = " ".join(message.split())
    return Answer(status, {"message": one_line, "code": f"{status} {one_line}",
                           "title": _TITLES.get(status, "Error")}, reason=one_line)


def _clause(text: str) -> str:
    """`text` as one clause of a description's "; "-separated list: without the full stop
    that ends a sentence (a fix's), so that no ".;" or ".)" is written."""
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


def describe_refusal(result: CheckResult, fixes: Mapping[str, str] | None = None) -> str:
    """The engine's reasons in PyPI's words, within the engine's disclosure rules
    (a near miss is named only to a token sharing the publisher's identity), each failed
    rule followed by its fix (`fixes`, by rule: what `tppolicy check` says to change), as
    one list of clauses separated by "; "."""
    shown = result.disclosed()
    failed = [r for r in shown.reasons if not r.passed]
    fixes = dict(fixes or {}) if shown.closest is not None else {}

    def detail(r: RuleResult) -> list[str]:
        clauses = [f"{r.rule}: {r.message}" if r.message else r.rule]
        fix = fixes.pop(r.rule, None)
        return [*clauses, f"fix: {fix}"] if fix else clauses

    clauses = [clause for r in failed for clause in detail(r)]
    # fixes of failed lookups (lookup.FIELD): after the rules'
    clauses += [f"fix: {text}" for text in fixes.values()]
    details = "; ".join(_clause(c) for c in clauses)
    if result.error == INVALID_PAYLOAD:
        if any(r.code == "unknown-issuer" for r in failed):
            return f"unknown trusted publishing issuer ({details})"
        return f"malformed JWT ({details})"
    if result.error == INVALID_TOKEN:
        return f"malformed or invalid token ({details})"
    if result.error == INVALID_REUSE_TOKEN:
        return "invalid token: already used"
    if result.error == INVALID_PENDING_PUBLISHER:
        return "valid token, but project already exists" + (
            f" ({details})" if details else "")
    if len(failed) == 1 and failed[0].rule == "publisher" and failed[0].message:
        return failed[0].message  # "valid token, but no corresponding github publisher"
    closest = f"closest publisher '{shown.closest}': " if shown.closest else ""
    # the other publishers of the token's identity that fail a check, as check lists them
    clauses += [f"also for this identity: publisher '{label}': "
                + "; ".join(_clause(f"{r.rule}: {r.message}") for r in reasons)
                for label, reasons in shown.also if reasons]
    details = "; ".join(_clause(c) for c in clauses)
    return f"valid token, but no corresponding publisher ({closest}{details})"


def refusal_fixes(engine: Engine, result: CheckResult,
                  request: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What to change, by failed check, for a near miss the token's holder may be told
    of (its publisher shares the token's identity): the provider files' fixes, as
    `tppolicy check` prints them, the disclosable ones only. Never fails the answer."""
    decision = result.decision
    if (decision.allowed or result.disclosed().closest is None or decision.record is None
            or result.claims is None):
        return {}
    from tppolicy.tools.explain import record_fixes

    try:
        provider = engine.checked_provider(decision.record.provider)
        if provider is None:
            return {}
        fixes = record_fixes(provider, decision.record, decision, result.claims,
                             request=request)
    except Exception:  # a fix is advice: its failure must not change the answer
        log.exception("cannot work out the fixes of a refusal")
        return {}
    return {fix.check: fix.text for fix in fixes if fix.disclosable}


def too_similar(name: str, existing: str) -> str:
    """PyPI's refusal of a look-alike project name."""
    return (f"The name {name!r} is too similar to an existing project ({existing!r}): "
            "names equal once case, '.', '_', '-' are ignored and l, i, o read as 1, 1, 0 "
            "are one project")


def row_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A publisher row as stored: the publishers-file fields, without None values."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in row.items() if v is not None}


# The upload form's digests other than sha256_digest, and how each is computed.
_OTHER_DIGESTS: dict[str, Any] = {
    "md5_digest": lambda: hashlib.md5(usedforsecurity=False),
    "blake2_256_digest": lambda: hashlib.blake2b(digest_size=32),
}


class Index:
    """The index without HTTP: the token exchange (`mint`, `burn`), upload credentials
    (`authenticate`), uploads (`upload`) and the simple index (`simple_project`), over one
    `Storage` and one `Engine`. `build_index` makes one from `Settings`."""

    def __init__(self, storage: Storage, engine: Engine, *,
                 credential_ttl: float = CREDENTIAL_TTL,
                 max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
                 reload_interval: float = 2.0, metrics: Metrics | None = None,
                 providers: Mapping[str, Any] | None = None) -> None:
        self.storage = storage
        self.engine = engine
        self._providers = providers  # the engine's providers (attestation identities)
        self.metrics = metrics or Metrics()
        self.mint_limit: RateLimit | None = None  # mint-token per client address
        self.credential_ttl = credential_ttl
        self.max_upload_bytes = max_upload_bytes
        self.reload_interval = reload_interval
        self._loaded: dict[str, str] = {}  # publisher id -> its stored row, as JSON
        self._generation = -1
        self._next_check = 0.0
        self._next_expiry = 0.0  # of expired pending publishers (the SQL lookup)
        self._lock = threading.RLock()
        self._at_once: bool | None = None  # can mint_at_once answer? (known at first use)
        self._thread = threading.local()  # per thread: its connection never waits
        self._checking = False  # a check claimed by `claim_sync` is running
        # Set by the app's follower of the publishers (on the event loop): starts, in a
        # worker thread, a check `prepare_at_once` claimed (found due, none running).
        self.on_check_due: Callable[[], None] | None = None
        self.sync(force=True)

    # ------------------------------------------------------------ publishers
    def sync(self, force: bool = False, *, claimed: bool = False) -> None:
        """Follow the publishers table (other processes change it); expire pending
        publishers (30 days) in both places. `claimed`: the caller claimed this check
        with `claim_sync` (it runs whether due or not)."""
        now = time.monotonic()
        if not claimed:
            if not force and now < self._next_check:
                return
            self._next_check = now + self.reload_interval
        with self._lock:
            generation = self.storage.generation()
            if generation != self._generation or force:
                self._register_issuers()
            if self.engine.lookup is not None:  # publishers stay in the database
                if generation != self._generation or force:
                    self._generation = generation
                    self.storage.fill_lookup_keys()
                self._expire_stored(force)
                return
            if generation != self._generation or force:
                self._generation = generation
                self._reload()
            for record in self.engine.expire_pending():
                log.info("pending publisher %s expired (30 days)", record.label)
                self.storage.delete_publisher(record.id)
                self._loaded.pop(record.id, None)

    def sync_due_in(self) -> float:
        """Seconds until the next check of the publishers is due (negative: overdue)."""
        return self._next_check - time.monotonic()

    def claim_sync(self, ahead: float) -> bool:
        """On the event loop, before handing `sync(claimed=True)` to a worker thread: is
        a check due within `ahead` seconds, and none claimed still running? Then its
        deadline moves on now, not when the worker thread starts it (which may take long
        while the loop is busy): the fast path (`prepare_at_once`), which answers only
        while the last check began less than `reload_interval` ago, never sees it passed
        while a check is on its way (the exchanges arriving in that gap took the worker
        threads, about 16 an interval at full speed). The claimer calls `release_sync`
        once the check ended."""
        now = time.monotonic()
        if self._checking or now < self._next_check - ahead:
            return False
        self._next_check = now + self.reload_interval
        self._checking = True
        return True

    def _check_under_way(self, now: float) -> bool:
        """The check is due: may the fast path answer meanwhile? Yes while a check
        claimed on time (`claim_sync`) runs, for at most one more interval (a worker
        thread of a busy process may take long to start it); else, with the app's
        follower, the check is claimed here and started, and this exchange goes on with
        the publishers as they are, as those arriving a moment earlier did. No without
        a follower, or past that bound (a long reload): `mint` checks first, in a worker
        thread, and waits for the reload. A change is thus used within two intervals at
        worst, one as a rule."""
        if self._checking:
            return now < self._next_check + self.reload_interval
        start = self.on_check_due
        if start is None or not self.claim_sync(0.0):
            return False
        start()
        return True

    def release_sync(self) -> None:
        """The check claimed by `claim_sync` ended (done or failed)."""
        self._checking = False

    def _expire_stored(self, force: bool) -> None:
        """With the SQL lookup: pending publishers older than the engine's pending_ttl
        (30 days) are deleted from the database, at most every `EXPIRY_INTERVAL` seconds
        (the lookup ignores them meanwhile)."""
        now = time.monotonic()
        ttl = self.engine.pending_ttl
        if not ttl or (not force and now < self._next_expiry):
            return
        self._next_expiry = now + EXPIRY_INTERVAL
        for publisher_id in self.storage.delete_expired_pending(self.engine.clock() - ttl):
            log.info("pending publisher %s expired (30 days)", escape(publisher_id))

    def _reload(self) -> None:
        rows = {p.id: p for p in self.storage.publishers()}
        for publisher_id in [i for i in self._loaded if i not in rows]:
            self.engine.remove_publisher(publisher_id)
            del self._loaded[publisher_id]
        added = []
        for publisher_id, stored in rows.items():
            text = json.dumps(stored.row, sort_keys=True)
            if self._loaded.get(publisher_id) == text:
                continue
            problems = check_row(publisher_id, stored.row, stored.added_by)
            if problems:  # written by something else than the admin commands
                log.error("publisher %s is not valid and is not served: %s",
                          escape(publisher_id), "; ".join(problems))
                self.engine.remove_publisher(publisher_id)
                self._loaded.pop(publisher_id, None)
                continue
            try:
                self.engine.add_publisher(stored.row, id=publisher_id, added_by=stored.added_by,
                                          created=stored.created)
            except ConfigError as exc:
                log.error("publisher %s is not valid and is not served: %s", publisher_id,
                          exc.render())
                self.engine.remove_publisher(publisher_id)
                continue
            self._loaded[publisher_id] = text
            added.append(stored)
        if len(added) >= 1000:  # a start-up or a large change: laid out as a bulk load
            self.engine.settle(len(added))
        for stored in added:
            for project in stored.row.get("projects") or ():
                # A normal publisher speaks for existing projects: the operator who
                # configured it created them (other owners' colliding pending
                # publishers are voided, as on PyPI).
                if not isinstance(project, str) or self.storage.project_exists(project):
                    continue
                similar = self.storage.similar_project(project)
                if similar is not None:  # a row the admin commands would have refused
                    log.error("publisher %s: project %s is not created: %s",
                              escape(stored.id), project, too_similar(project, similar))
                    continue
                if self.storage.create_project(project, created_by=stored.added_by):
                    self._project_created(project, stored.added_by)

    def _register_issuers(self) -> None:
        """Custom issuers registered in the database (by any replica or command)."""
        for issuer, provider in self.storage.issuers():
            if self.engine.verifier.issuers.get(issuer) == provider:
                continue
            try:
                self.engine.register_issuer(issuer, provider)
            except ConfigError as exc:
                log.error("custom issuer %s is not trusted: %s", escape(issuer), exc.render())

    def _sync_pending(self) -> None:
        """Pending publishers the engine dropped (converted, voided, project existed)
        are dropped from storage too."""
        if self.engine.lookup is not None:  # the database is the only copy
            return
        for publisher_id in self.storage.pending_ids():
            record = self.engine.get(publisher_id)
            if record is None:
                self.storage.delete_publisher(publisher_id)
                self._loaded.pop(publisher_id, None)

    def listen(self, stop: threading.Event) -> bool:
        """Follow the publishers table by notification (PostgreSQL LISTEN/NOTIFY): a
        publisher changed on any replica is used here within a moment, not after
        `reload_interval`. False when the database cannot notify (SQLite: polling)."""
        from .storage import PUBLISHERS_CHANNEL

        def changed() -> None:
            try:
                self.sync(force=True)
            except DatabaseUnavailable as exc:
                log.warning("cannot reload the publishers: %s", exc)
            except Exception:
                log.exception("cannot reload the publishers")

        return self.storage.database.listen(PUBLISHERS_CHANNEL, changed, stop)

    def _project_created(self, name: str, created_by: str | None) -> None:
        if self.engine.lookup is not None:
            for publisher_id in self.storage.void_pending(name, created_by):
                log.info("pending publisher %s voided: project %s was created",
                         escape(publisher_id), name)
            return
        voided = self.engine.project_created(name, created_by=created_by)
        for record in voided:
            log.info("pending publisher %s voided: project %s was created", record.label, name)
            self.storage.delete_publisher(record.id)
            self._loaded.pop(record.id, None)

    def health(self) -> str | None:
        """None when the index can serve, else what is wrong (the database)."""
        try:
            self.storage.generation()
        except Exception as exc:  # sqlite3.Error, OSError: whatever stops the database
            return f"the database does not answer ({type(exc).__name__})"
        return None

    # ------------------------------------------------------------ mint-token
    def audience(self) -> Answer:
        return Answer(200, {"audience": self.engine.audience})

    def _can_mint_at_once(self) -> bool:
        """Can `mint_at_once` ever answer: the database a local SQLite file that also
        holds the used token ids, the keys in the server's cache, nothing else to write
        (decision records, hooks) and the publishers in memory?"""
        engine = self.engine
        replay = engine.replay
        return (isinstance(self.storage.database, SQLiteDatabase)
                and isinstance(replay, SQLiteJtiStore) and replay.storage is self.storage
                and isinstance(engine.verifier.keys, ServerKeyCache)
                and engine.lookup is None and engine.records is None
                and engine.on_decision is None)

    def mint_at_once(self, body: bytes) -> Answer | None:
        """`mint`, on the calling thread (the event loop: no hand-off to a worker
        thread), for the usual exchange only: a token whose key is cached, refused or
        allowed for a publisher with nothing to create or learn, written by SQLite
        without waiting for another writer. None when this call cannot answer without
        blocking or writing more (a key to fetch, the database busy, the publishers to
        reload, a pending publisher's first use, trust on first use): nothing was
        written, call `mint` in a worker thread. (`prepare_at_once`, then
        `commit_at_once` of a group of one.)"""
        prepared = self.prepare_at_once(body)
        if not isinstance(prepared, PreparedMint):
            return prepared
        try:
            answers = self.commit_at_once([prepared])
        except (sqlite3.OperationalError, DatabaseUnavailable):
            return None  # rolled back: the token is as unused as before
        return answers[0]

    def purge_due(self) -> bool:
        """Are expired credentials or token ids to be purged (`commit_at_once` leaves
        them to `purge_expired`, in a worker thread)?"""
        replay = self.engine.replay
        return self.storage.purge_due(replay if isinstance(replay, SQLiteJtiStore) else None)

    def purge_expired(self) -> None:
        """Purge expired credentials and token ids, where due."""
        replay = self.engine.replay
        self.storage.purge_expired(replay if isinstance(replay, SQLiteJtiStore) else None)

    def prepare_at_once(self, body: bytes) -> Answer | PreparedMint | None:
        """The CPU part of `mint_at_once`, writing nothing: a refusal's answer, or an
        exchange allowed whose jti claim and credential `commit_at_once` writes (with
        others), or None (call `mint` in a worker thread)."""
        if self._at_once is None:
            self._at_once = self._can_mint_at_once()
        if not self._at_once:
            return None
        now = time.monotonic()
        if now >= self._next_check and not self._check_under_way(now):
            return None
        if len(body) > MAX_MINT_BODY:
            return None
        try:  # orjson: what it refuses (or reads otherwise) is left to `mint`
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str):
            return None
        keys = self.engine.verifier.keys
        assert isinstance(keys, ServerKeyCache)
        try:
            with keys.cached_only(), self.storage.mint_scope(deferred=True) as scope:
                result = self.engine.check_token(token)
        except KeysNotCached:
            return None
        publisher = result.publisher
        if publisher is not None and result.action is None and not result.learned:
            jti = (result.claims or {}).get("jti")
            pending = PendingMint(tuple(scope.claims), new_credential(), publisher.id,
                                  publisher.label, tuple(result.projects),
                                  time.time() + self.credential_ttl,
                                  jti if isinstance(jti, str) else None)
            return PreparedMint(pending, publisher.provider)
        if result.allowed or result.error == INVALID_PENDING_PUBLISHER or any(
                r.code == CANNOT_EVALUATE for r in result.decision.reasons):
            # more to write than a credential, pending publishers to drop, or a read
            # failed: in a worker thread (nothing was written)
            return None
        return self._refused(result, token)

    def commit_at_once(self, group: list[PreparedMint]) -> list[Answer]:
        """Store the prepared exchanges' claims and credentials in ONE transaction on this
        thread's connection, which never waits for another writer (group commit); their
        answers, in order: the credential, or a refusal for a token found used. Raises
        (nothing stored) if the transaction fails: `sqlite3.OperationalError` when the
        database is busy; call `mint` for each in a worker thread then."""
        storage = self.storage
        if not getattr(self._thread, "never_waits", False):
            database = storage.database
            assert isinstance(database, SQLiteDatabase)
            database.never_wait()
            self._thread.never_waits = True
        replay = self.engine.replay
        assert isinstance(replay, SQLiteJtiStore)
        minted = storage.commit_mints([p.pending for p in group], replay)
        # Committed: from here nothing may raise, or the credentials stored would never
        # be answered (and each token, made again, found used).
        answers = []
        for prepared, ok in zip(group, minted, strict=True):
            pending = prepared.pending
            if ok:
                code, detail, projects = "allowed", "minted a credential", pending.projects
                answers.append(Answer(200, {"success": True, "token": pending.credential,
                                            "expires": int(pending.expires)}))
            else:
                code, detail, projects = INVALID_REUSE_TOKEN, "invalid token: already used", ()
                answers.append(mint_error(INVALID_REUSE_TOKEN, detail))
            try:
                self._decided(code, prepared.provider, pending.publisher if ok else None,
                              projects, detail)
            except Exception:  # a log handler or a metric: the answer stands
                log.exception("cannot log or count a token exchange")
        return answers

    def mint(self, body: bytes) -> Answer:
        """`POST /_/oidc/mint-token`: a CI's OIDC token for a short-lived credential."""
        if len(body) > MAX_MINT_BODY:
            return mint_error(INVALID_PAYLOAD, f"the request body is larger than "
                              f"{MAX_MINT_BODY} bytes")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return mint_error(INVALID_PAYLOAD, "the request body is not JSON: send "
                              '{"token": "<the OIDC token>"}')
        if not isinstance(payload, dict) or "token" not in payload:
            return mint_error(INVALID_PAYLOAD, 'token: field required (send {"token": '
                              '"<the OIDC token>"})')
        token = payload["token"]
        if not isinstance(token, str):
            return mint_error(INVALID_PAYLOAD, "token: input should be a valid string")
        self.sync()
        # The jti claim (made by the engine's replay store) and the credential are ONE
        # transaction, committed before the answer; a failure rolls both back.
        with self.storage.mint_scope() as scope:
            result = self.engine.check_token(token)
            publisher = result.publisher
            minted = None
            if result.allowed and publisher is not None and result.action is None \
                    and not result.learned:
                minted = self._store_credential(publisher, result.projects, result, scope)
        if minted is not None and publisher is not None:
            self._decided("allowed", publisher.provider, publisher.label,
                          tuple(result.projects), "minted a credential")
            return minted
        if result.error == INVALID_PENDING_PUBLISHER:
            with self._lock:
                self._sync_pending()
        if not result.allowed or result.publisher is None:
            return self._refused(result, token)
        # A first use or trust on first use: the scope committed the token's claim alone;
        # if nothing is minted now (refused, or the credential cannot be stored), the
        # claim is taken back so the token stays usable, as on the usual path.
        try:
            answer = self._mint_first_use(result)
        except BaseException:
            scope.take_back()
            raise
        if answer.status != 200:
            scope.take_back()
        return answer

    def _mint_first_use(self, result: CheckResult) -> Answer:
        """`mint` for a pending publisher's first use or trust on first use: the
        project is created or what was learned stored, then the credential."""
        assert result.publisher is not None
        publisher, projects = result.publisher, result.projects
        if result.action is not None:
            converted = self._first_use(result)
            if isinstance(converted, Answer):
                self._decided(INVALID_PENDING_PUBLISHER, publisher.provider, publisher.label,
                              (), "valid token, but project already exists")
                return converted
            publisher, projects = converted, converted.projects
        elif result.learned:
            learned = self._learn(publisher, result.learned)
            if isinstance(learned, Answer):
                return learned
            publisher, projects = learned, learned.projects
        answer = self._store_credential(publisher, projects, result, None)
        self._decided("allowed", publisher.provider, publisher.label, tuple(projects),
                      "minted a credential")
        return answer

    def _refused(self, result: CheckResult, token: str) -> Answer:
        code = result.error or INVALID_PUBLISHER
        description = describe_refusal(result, self._fixes(result))
        self._decided(code, self._provider_of(result, token), result.decision.closest, (),
                      description)
        return mint_error(code, description)

    def _store_credential(self, publisher: Record, projects: Any, result: CheckResult,
                          scope: MintScope | None) -> Answer:
        """Mint a credential for `publisher` and store it (in `scope`'s transaction, if
        given: the answer may be sent only once the scope has committed)."""
        credential = new_credential()
        expires = time.time() + self.credential_ttl
        jti = (result.claims or {}).get("jti")
        self.storage.add_credential(credential, publisher_id=publisher.id,
                                    publisher=publisher.label, projects=tuple(projects),
                                    expires=expires, jti=jti if isinstance(jti, str) else None,
                                    scope=scope)
        return Answer(200, {"success": True, "token": credential, "expires": int(expires)})

    def _decided(self, code: str, provider: str | None, publisher: str | None,
                 projects: tuple[str, ...], detail: str) -> None:
        """A token exchange's outcome: logged with its code and publisher (never the
        token), and counted."""
        self.metrics.decision(code, provider)
        if log.isEnabledFor(logging.INFO):  # the arguments are not built for nothing
            log.info("mint %s: publisher %s, provider %s%s: %s", code, publisher or "-",
                     provider or "unknown",
                     f", projects {', '.join(projects)}" if projects else "", detail,
                     extra={"event": "mint", "code": code, "provider": provider,
                            "publisher": publisher, "projects": list(projects)})

    def _fixes(self, result: CheckResult) -> dict[str, str]:
        """What to change, by failed check (see `refusal_fixes`)."""
        return refusal_fixes(self.engine, result)

    def _provider_of(self, result: CheckResult, token: str) -> str | None:
        """The provider a refused token speaks for: its publisher's, else its issuer's
        (read from the verified claims, or unverified from the token, and only when the
        issuer is one the engine knows: an unknown one is not a label)."""
        if result.publisher is not None:
            return result.publisher.provider
        issuer = (result.claims or {}).get("iss") or _unverified_issuer(token)
        known = self.engine.verifier.issuers
        return known.get(issuer) if isinstance(issuer, str) else None

    def _learn(self, publisher: Record, learned: Mapping[str, Any]) -> Record | Answer:
        """Trust on first use: what the publisher learned from the first token it allowed
        is stored with that use, atomically (across threads and processes); a token that
        disagrees with what another token taught first is refused."""
        applied: list[Record] = []

        def apply(stored: PublisherRow) -> None:
            applied.append(self.engine.add_publisher(stored.row, id=stored.id,
                                                     added_by=stored.added_by,
                                                     created=stored.created))

        with self._lock:
            try:
                stored = self.storage.learn_publisher(publisher.id, learned, apply)
            except ConfigError as exc:  # a learned value the provider refuses: fail closed
                log.error("publisher %s cannot take what it learned: %s",
                          escape(publisher.label), exc.render())
                return mint_error(INVALID_PUBLISHER, "valid token, but no corresponding "
                                  "publisher (the values it would learn are not valid)")
            if stored is None:
                return mint_error(INVALID_PUBLISHER, "valid token, but no corresponding "
                                  "publisher (it was removed)")
            if isinstance(stored, tuple):
                field_name, held, offered = stored
                log.warning("publisher %s: a token with %s=%r refused: it learned %r first",
                            escape(publisher.label), field_name, offered, held)
                return mint_error(INVALID_PUBLISHER, f"valid token, but no corresponding "
                                  f"publisher (closest publisher '{publisher.label}': "
                                  f"{field_name}: token has {offered!r}, publisher learned "
                                  f"{held!r} from the first token it allowed)")
            self._loaded[publisher.id] = json.dumps(stored.row, sort_keys=True)
            if applied:
                log.info("publisher %s learned %s on its first use", escape(publisher.label),
                         ", ".join(f"{k}={v!r}" for k, v in learned.items()))
                return applied[0]
            record = self.engine.get(publisher.id)
            return record if record is not None else publisher

    def _first_use(self, result: CheckResult) -> Record | Answer:
        """A pending publisher's first use: create the project, make the publisher a
        normal one (as PyPI, before minting), in one transaction that holds the
        project's name, so replicas racing on it (the same pending publisher, or other
        owners' pending publishers for the same name) give one winner."""
        action = result.action
        assert action is not None
        refused = mint_error(INVALID_PENDING_PUBLISHER, "valid token, but project already "
                             "exists")
        with self._lock:
            try:
                with self.storage.transaction() as tx:
                    # names too similar to each other race as one (PyPI's look-alike rule)
                    self.storage.database.lock(tx, "project:" +
                                               ultranormalize_name(action.project))
                    similar = self.storage.similar_project(action.project)
                    if similar is not None and not self.storage.project_exists(action.project):
                        # PyPI: creating the project fails, the exchange too
                        # (invalid-payload).
                        return mint_error(INVALID_PAYLOAD, too_similar(action.project, similar))
                    stored = self.storage.publisher(action.pending_id, db=tx)
                    if stored is None or stored.pending_project is None:
                        converted_elsewhere = True  # by another replica (or removed)
                    else:
                        converted_elsewhere = False
                        if not self.storage.create_project(action.project,
                                                           created_by=action.added_by, db=tx):
                            creator = self.storage.project_creator(action.project, db=tx)
                            if creator is None or creator != action.added_by:
                                log.info("project %s already existed at a pending "
                                         "publisher's first use", action.project)
                                return refused
                        if self.engine.lookup is not None:  # in the database only
                            return self._convert_stored(tx, action, stored)
                        converted = self.engine.convert_pending(action)
                        self.storage.delete_publisher(action.pending_id, db=tx)
                        twin = self.storage.publisher(converted.id, db=tx) \
                            if converted.id != action.pending_id else None
                        base = twin.row if twin is not None else stored.row
                        row = row_of({**base, "projects": list(converted.projects),
                                      "pending_project": None})
                        self.storage.put_publisher(converted.id, row,
                                                   added_by=converted.added_by,
                                                   created=converted.created, db=tx)
            except KeyError:  # this process converted it a moment ago
                converted_elsewhere = True
            except ConfigError as exc:  # it would become a normal publisher's twin: the
                # project's creation is rolled back, nothing changed (fail closed)
                log.warning("pending publisher %s not converted: %s", action.pending_id,
                            exc.render())
                return mint_error(INVALID_PUBLISHER, "valid token, but the pending publisher "
                                  "would become a twin of another publisher once its "
                                  "project is created: the project is not created")
            except BaseException:
                self._forget()  # the engine may be ahead of the database: reload it all
                raise
            if converted_elsewhere:
                self.sync(force=True)
                record = self.engine.get(action.pending_id) if self.engine.lookup is None \
                    else self._stored_record(action.pending_id)
                if record is None or action.project not in record.projects:
                    return refused
                return record
            self._loaded.pop(action.pending_id, None)
            self._loaded[converted.id] = json.dumps(row, sort_keys=True)
            self._sync_pending()  # other owners' colliding pending publishers were voided
            log.info("project %s created by pending publisher %s", action.project,
                     converted.label)
            return converted

    def _convert_stored(self, tx: Tx, action: CreateProject,
                        stored: PublisherRow) -> Record | Answer:
        """A pending publisher's first use with the SQL lookup: the row becomes a normal
        publisher of the project; other owners' colliding pending publishers go."""
        row = row_of({**stored.row, "projects": [action.project], "pending_project": None})
        self.storage.put_publisher(stored.id, row, added_by=stored.added_by,
                                   created=stored.created, db=tx)
        for publisher_id in self.storage.void_pending(action.project, stored.added_by, db=tx):
            log.info("pending publisher %s voided: project %s was created",
                     escape(publisher_id), action.project)
        record = self.engine.record_of(Candidate(stored.id, row, stored.added_by,
                                                 stored.created))
        if record is None:
            return mint_error(INVALID_PUBLISHER, "valid token, but no corresponding publisher "
                              "(its row is not valid)")
        log.info("project %s created by pending publisher %s", action.project, record.label)
        return record

    def _stored_record(self, publisher_id: str) -> Record | None:
        stored = self.storage.publisher(publisher_id)
        if stored is None:
            return None
        return self.engine.record_of(Candidate(stored.id, stored.row, stored.added_by,
                                               stored.created))

    def _forget(self) -> None:
        """The next sync reloads every publisher from the database."""
        for publisher_id in list(self._loaded):
            self.engine.remove_publisher(publisher_id)
        self._loaded.clear()
        self._generation = -1
        self._next_check = 0.0

    def burn(self, body: bytes) -> Answer:
        """`POST /_/oidc/burn-token`: revoke a minted credential (uv does, after its
        uploads). 202 whatever the outcome, as PyPI."""
        try:
            payload = json.loads(body) if len(body) <= MAX_MINT_BODY else None
        except (ValueError, RecursionError):
            payload = None
        token = payload.get("token") if isinstance(payload, dict) else None
        if isinstance(token, str) and token:
            self.storage.revoke_credential(token)
        return Answer(202, {"success": True})

    # ------------------------------------------------------------ upload
    def authenticate(self, header: str | None) -> Credential | Answer:
        credential = authenticate(self.storage, header)
        if isinstance(credential, AuthFailure):
            self.refused_upload(credential.status, credential.message, None, None)
            return upload_error(credential.status, credential.message)
        return credential

    def refused_upload(self, status: int, message: str, publisher: str | None,
                       filename: str | None) -> None:
        """Log and count an upload refused before or by `upload`."""
        self.metrics.uploads.labels(status=str(status)).inc()
        # The file name as sent: escaped and cut, so it cannot forge or flood log lines.
        filename = escape(filename[:300]) if filename else None
        log.info("upload refused (%d) %s: publisher %s: %s", status, filename or "-",
                 publisher or "-", message,
                 extra={"event": "upload", "code": status, "publisher": publisher,
                        "file": filename})

    def upload(self, credential: Credential, form: Mapping[str, str], content: IO[bytes],
               filename: str) -> Answer:
        """`POST /legacy/` with `:action=file_upload`, after authentication."""
        answer = self._upload(credential, form, content, filename)
        if answer.status == 200:
            self.metrics.uploads.labels(status="200").inc()
            log.info("upload accepted: %s by publisher %s", filename, credential.publisher,
                     extra={"event": "upload", "code": 200,
                            "publisher": credential.publisher, "file": filename})
        else:
            message = answer.body.get("message", "") if isinstance(answer.body, dict) else ""
            self.refused_upload(answer.status, message, credential.publisher, filename)
        return answer

    def _upload(self, credential: Credential, form: Mapping[str, str], content: IO[bytes],
                filename: str) -> Answer:
        action = form.get(":action")
        if action != "file_upload":
            return upload_error(400, f"Unknown :action {escape(str(action))!r}: only "
                                "file_upload is supported")
        name, version = form.get("name", ""), form.get("version", "")
        if not name or not version:
            return upload_error(400, "Invalid distribution: 'name' and 'version' are required")
        problem = check_project_name(name)
        if problem is not None:
            return upload_error(400, f"Invalid distribution name: {problem}")
        project = normalize(name)
        allowed = {normalize(p) for p in credential.projects}
        if project not in allowed:
            return upload_error(403, f"The given token isn't allowed to upload to project "
                                f"'{name}': it was minted for trusted publisher "
                                f"'{escape(credential.publisher)}', which may upload to "
                                f"{', '.join(sorted(credential.projects))}")
        refusal = self._live_link(credential, name)
        if refusal is not None:
            return refusal
        checked = check_filename(filename, name, version)
        if isinstance(checked, str):
            return upload_error(400, checked)
        kind, release = checked
        problem = check_requires_python(form.get("requires_python") or "")
        if problem is not None:
            return upload_error(400, problem)
        filetype = form.get("filetype", "")
        if filetype and filetype != kind:
            return upload_error(400, f"Invalid filetype {escape(filetype)!r} for {filename!r} "
                                f"(expected {kind})")
        prepared = None
        if form.get("attestations") is not None:
            try:
                prepared = self._attestations(credential, form["attestations"])
            except AttestationRefused as exc:
                return upload_error(exc.status, exc.message)
        stored_file = self._store(project, filename, content, form, release, prepared)
        if isinstance(stored_file, Answer):
            return stored_file
        return Answer(200, "OK")

    def _live_link(self, credential: Credential, name: str) -> Answer | None:
        """As PyPI at upload: the publisher that minted the credential still exists and
        may still upload to the project (removal and narrowing also revoke credentials;
        this holds even for a credential that escaped that, e.g. minted concurrently)."""
        stored = self.storage.publisher(credential.publisher_id)
        if stored is None or stored.pending_project is not None:
            return upload_error(403, f"Invalid API Token: trusted publisher "
                                f"'{escape(credential.publisher)}' that minted it was removed")
        projects = {normalize(p) for p in stored.row.get("projects") or ()
                    if isinstance(p, str)}
        if normalize(name) not in projects:
            return upload_error(403, f"The given token isn't allowed to upload to project "
                                f"'{name}': trusted publisher '{escape(credential.publisher)}' "
                                "may no longer upload to it")
        return None

    def _attestations(self, credential: Credential, text: str) -> Prepared:
        """The upload's attestations, parsed, with the identity they must carry: that
        of the publisher the engine selected when it minted the credential."""
        record = self.engine.get(credential.publisher_id)
        if record is None:
            raise AttestationRefused(400, f"{ATTESTATIONS_INVALID}the trusted publisher "
                                     f"'{escape(credential.publisher)}' that minted this token no "
                                     "longer exists")
        if self._providers is None:
            from tppolicy.language.providers import load_providers

            self._providers = load_providers()
        provider = self._providers.get(record.provider)
        if provider is None:
            raise AttestationRefused(503, "The index cannot verify attestations now (no "
                                     f"provider '{record.provider}')")
        return prepare_attestations(text, provider, record.field_values(provider))

    def _store(self, project: str, filename: str, content: IO[bytes],
               form: Mapping[str, str], release: str | None = None,
               prepared: Prepared | None = None) -> Answer | StoredFile:
        target = self.storage.file_path(project, filename)
        digest = hashlib.sha256()
        # As PyPI: every digest the form gives is checked, not only sha256_digest (an
        # md5_digest or blake2_256_digest that did not match was accepted).
        others = {name: factory() for name, factory in _OTHER_DIGESTS.items()
                  if form.get(name)}
        size = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
        except OSError as exc:
            raise FileStoreUnavailable(exc) from None
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := content.read(1024 * 1024):
                    size += len(chunk)
                    if size > self.max_upload_bytes:
                        return upload_error(413, f"File too large: the limit is "
                                            f"{self.max_upload_bytes} bytes")
                    digest.update(chunk)
                    for other in others.values():
                        other.update(chunk)
                    try:
                        out.write(chunk)
                    except OSError as exc:  # a full disk, an I/O error
                        raise FileStoreUnavailable(exc) from None
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise FileStoreUnavailable(exc) from None
            sha256 = digest.hexdigest()
            claimed = form.get("sha256_digest")
            if (claimed and claimed.lower() != sha256) or any(
                    str(form.get(name)).lower() != other.hexdigest()
                    for name, other in others.items()):
                return upload_error(400, "The digest supplied does not match a digest "
                                    "calculated from the uploaded file.")
            if size == 0:
                return upload_error(400, "Invalid distribution file: it is empty")
            if filename.endswith(".whl") and not zipfile.is_zipfile(temp):
                return upload_error(400, "Invalid distribution file: a wheel is a zip file")
            if filename.endswith(".tar.gz"):
                with open(temp, "rb") as handle:
                    if handle.read(2) != b"\x1f\x8b":
                        return upload_error(400, "Invalid distribution file: not gzip")
            provenance = None
            if prepared is not None:  # verified before anything is stored
                try:
                    provenance = verify_attestations(prepared, filename, sha256)
                except AttestationRefused as exc:
                    return upload_error(exc.status, exc.message)
            metadata = wheel_metadata(temp) if filename.endswith(".whl") else None
            if metadata is not None and not metadata_is_readable(metadata):
                metadata = None
            existing = self.storage.get_file(filename)
            if existing is not None:
                if existing.sha256 == sha256:
                    # an identical re-upload is a no-op, as on PyPI; it may bring the
                    # provenance the first upload did not have
                    if provenance is not None and self.storage.provenance(filename) is None:
                        self.storage.put_provenance(filename, project, provenance)
                    return existing
                return upload_error(400, f"File already exists ({filename!r}, with sha256 hash "
                                    f"{existing.sha256}). A file name is never reused.")
            with self._lock:
                if not self.storage.project_exists(project):
                    similar = self.storage.similar_project(project)
                    if similar is not None:
                        return upload_error(400, too_similar(form.get("name") or project,
                                                             similar))
                    self.storage.create_project(form.get("name") or project)
                    self._project_created(project, None)
            metadata_sha256 = hashlib.sha256(metadata).hexdigest() if metadata else None
            stored = StoredFile(filename, project, form.get("version", ""),
                                "bdist_wheel" if filename.endswith(".whl") else "sdist",
                                form.get("requires_python") or None, sha256, size, time.time(),
                                None, metadata_sha256)

            def place() -> None:
                try:
                    if metadata is not None:
                        _write_atomically(self.storage.metadata_path(project, filename),
                                          metadata)
                    os.replace(temp, target)
                except OSError as exc:  # the transaction rolls back: nothing recorded
                    raise FileStoreUnavailable(exc) from None

            # The row and the files together: they are put in place inside the
            # transaction that claims the name (see Storage.add_release_file).
            conflict = self.storage.add_release_file(stored, release, place=place,
                                                      provenance=provenance)
            if conflict == "sdist":
                return upload_error(400, f"Only one sdist may be uploaded per release: "
                                    f"{project} {form.get('version', '')} has one")
            if conflict is not None:
                again = self.storage.get_file(filename)
                if again is None or again.sha256 != sha256:
                    return upload_error(400, f"File already exists ({filename!r}).")
                return again
            return stored
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    # ------------------------------------------------------------ simple index
    def simple_root(self, as_json: bool = False) -> str | dict[str, Any]:
        """`/simple/`: PEP 503 HTML, or PEP 691 JSON."""
        names = self.storage.projects()
        return root_json(names) if as_json else root_html(names)

    def simple_project(self, project: str,
                       as_json: bool = False) -> str | dict[str, Any] | None:
        """`/simple/<project>/` (None: no such project), with core metadata (PEP 658,
        PEP 714) and provenance (PEP 740) where the index has them."""
        files = self.storage.files(project)
        if not files:
            return None
        name = self.storage.project_name(normalize(project)) or project
        attested = self.storage.with_provenance(project)
        if as_json:
            return project_json(name, files, attested)
        return project_html(name, files, attested)

    def provenance(self, project: str, version: str, filename: str) -> str | None:
        """PEP 740 provenance of a file (JSON text), or None."""
        from packaging.version import InvalidVersion, Version

        stored = self.storage.get_file(filename)
        if stored is None or stored.project != normalize(project):
            return None
        try:
            if Version(stored.version) != Version(version):
                return None
        except InvalidVersion:
            return None
        return self.storage.provenance(filename)

    def file_path(self, project: str, filename: str) -> str | None:
        """A distribution's path, or its core metadata's (`<wheel>.metadata`)."""
        stored = self.storage.get_file(filename)
        if stored is None and filename.endswith(".metadata"):
            stored = self.storage.get_file(filename.removesuffix(".metadata"))
            if stored is None or not stored.metadata_sha256 or \
                    stored.project != normalize(project):
                return None
            path = self.storage.metadata_path(project, stored.filename)
            return str(path) if path.is_file() else None
        if stored is None or stored.project != normalize(project):
            return None
        path = self.storage.file_path(project, filename)
        return str(path) if path.is_file() else None


def _unverified_issuer(token: str) -> str | None:
    import base64
    import binascii

    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > MAX_MINT_BODY:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    return issuer if isinstance(issuer, str) else None


def _write_atomically(path: os.PathLike[str] | str, data: bytes) -> None:
    directory = os.path.dirname(os.fspath(path))
    fd, temp = tempfile.mkstemp(prefix=".metadata-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
