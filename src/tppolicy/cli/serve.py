"""`tppolicy serve`: a reference index server with trusted publishing (extra
`tppolicy[server]`), and its publishers (`tppolicy serve --db FILE publishers ...`)."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from tppolicy.errors import ConfigError, Diagnostic, Span

from ._common import (
    EXIT_ALLOWED,
    EXIT_DENIED,
    EXIT_INTERNAL,
    Parser,
    UsageError,
    add_provider_options,
    exit_codes,
    positive_int,
    registered_issuers,
    seconds,
)

NAME = "serve"
HELP = "run an index server with trusted publishing (PyPI's protocol)"

_DESCRIPTION = """\
Run an index server speaking PyPI's protocol: GET /_/oidc/audience, POST
/_/oidc/mint-token (a CI's OIDC token for a 15-minute upload token), POST /legacy/
(twine, uv publish), and a PEP 503 simple index at /simple/ for pip. State lives in
one SQLite file (--db FILE; distributions in a folder beside it) or in PostgreSQL
(--db postgresql://USER@HOST:PORT/DB --files SHARED-DIR --redis URL: replicas on
several hosts act as one index; see docs/deploy.md).

  tppolicy serve --db index.db --publishers publishers.yaml \\
      --jwks https://token.actions.githubusercontent.com=github-jwks.json

Publishers in the database:
  tppolicy serve --db index.db publishers list
  tppolicy serve --db index.db publishers add github repository_owner=octo-org \\
      repository_name=sampleproject repository_owner_id=65 \\
      workflow_filename=release.yml environment=pypi --project sampleproject
  tppolicy serve --db index.db publishers remove ID
  tppolicy serve --db index.db publishers load publishers.yaml
"""


def _issuer_source(value: str) -> tuple[str, str]:
    issuer, sep, source = value.partition("=")
    if not sep or not issuer.startswith("https://") or not source:
        raise argparse.ArgumentTypeError(
            f"expected ISSUER=FILE or ISSUER=https-URL, such as "
            f"https://token.actions.githubusercontent.com=jwks.json, got {value!r}")
    return issuer, source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = _DESCRIPTION
    parser.epilog = exit_codes(
        "the server stopped (Ctrl-C, SIGTERM) or a maintenance command\n     succeeded",
        "a publishers, JWKS or certificate file that cannot be read or\n     is invalid",
        denied="schema: the database lacks migrations, or is newer than this tppolicy")
    parser.add_argument("--db", metavar="FILE|URL", default=None,
                        help="the SQLite file (default tppolicy-index.db; with --demo, a "
                        "fresh one in a new temporary directory), or PostgreSQL: "
                        "postgresql://USER@HOST:PORT/DB (replicas on several hosts; "
                        "the password from ~/.pgpass or PGPASSWORD)")
    parser.add_argument("--lookup", choices=("memory", "sql"), default="memory",
                        help="where the server finds a token's publishers: memory (each "
                        "process holds them all, reloaded on change; default) or sql (one "
                        "indexed query per token: for very many publishers)")
    parser.add_argument("--files", metavar="DIR", help="where distributions are stored "
                        "(default: DB-files beside the database)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                        "(default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks "
                        "a free one, printed at start)")
    parser.add_argument("--audience", default="pypi", help="the audience tokens must name "
                        "(default pypi)")
    parser.add_argument("--publishers", metavar="FILE", action="append", default=[],
                        help="load a publishers file (YAML) into the database at start; "
                        "entries replace those of the same name; repeatable")
    parser.add_argument("--jwks", metavar="ISSUER=FILE|URL", action="append", default=[],
                        type=_issuer_source, help="an issuer's keys from a JWKS file (read "
                        "again on refresh: rewrite it to rotate keys) or an https JWKS URL, "
                        "instead of OIDC discovery; repeatable")
    parser.add_argument("--jwks-cooldown", metavar="SECONDS", type=seconds(0, 86400),
                        default=60.0, help="refresh an issuer's keys at most this often "
                        "(default 60, at most 86400)")
    parser.add_argument("--fetch-timeout", metavar="SECONDS", type=seconds(0, 300),
                        default=5.0, help="deadline of each key fetch (default 5, at most 300)")
    parser.add_argument("--redis", metavar="URL", help="redis://HOST:PORT/DB: share the used "
                        "token ids and the issuers' keys between replicas")
    parser.add_argument("--ssl-certfile", metavar="FILE", help="serve HTTPS with this "
                        "certificate (uv reaches the token endpoints over https only)")
    parser.add_argument("--ssl-keyfile", metavar="FILE", help="the certificate's private key")
    parser.add_argument("--credential-ttl", metavar="SECONDS", type=seconds(0, 86400),
                        default=900.0, help="lifetime of minted upload tokens (default 900: "
                        "15 minutes; at most 86400, a day)")
    parser.add_argument("--max-upload-bytes", metavar="N", type=positive_int,
                        default=100 * 1024 * 1024, help="largest distribution accepted "
                        "(default 100 MiB)")
    parser.add_argument("--record", metavar="FILE", help="append every token decision to FILE "
                        "as one JSON line (never the token)")
    parser.add_argument("--reload-interval", metavar="SECONDS", type=seconds(0, 3600),
                        default=2.0,
                        help="how often publishers changed in the database are picked up "
                        "(default 2)")
    parser.add_argument("--log-level", default="info",
                        choices=("critical", "error", "warning", "info", "debug"),
                        help="for uvicorn's lines and the index's own (mint, upload, "
                        "refusal), on standard error (default info)")
    parser.add_argument("--log-format", default="text", choices=("text", "json"),
                        help="text lines, or one JSON object a line (default text)")
    parser.add_argument("--mint-rate-limit", metavar="COUNT/PERIOD",
                        help="limit mint-token per client address, such as 30/minute, "
                        "100/hour or 5/10s (default: no limit); more get HTTP 429")
    parser.add_argument("--demo", action="store_true",
                        help="NOT FOR PRODUCTION: a first try with a built-in test issuer on "
                        "the same port (tokens that pass as GitHub's), its own HTTPS "
                        "certificate and a demo publisher; prints what to run with uv")
    add_provider_options(parser)

    commands = parser.add_subparsers(dest="serve_command", metavar="COMMAND")
    publishers = commands.add_parser("publishers", help="manage the database's publishers")
    actions = publishers.add_subparsers(dest="publishers_command", metavar="ACTION",
                                        required=True)
    listing = actions.add_parser("list", help="list the publishers")
    listing.add_argument("--format", choices=("human", "json"), default="human")
    add = actions.add_parser("add", help="add (or replace, by --id) one publisher")
    add.add_argument("provider", help="github, gitlab, google, activestate, ...")
    add.add_argument("fields", metavar="FIELD=VALUE", nargs="*",
                     help="the provider's fields, named as in publishers files (before, "
                     "after or among the options)")
    if isinstance(add, Parser):
        add.intermixed = "fields"
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--project", action="append", help="a project it may publish; "
                        "repeatable")
    target.add_argument("--pending-project", metavar="NAME", help="a pending publisher: the "
                        "first upload creates this project")
    add.add_argument("--name", help="a display name (also the id unless --id)")
    add.add_argument("--id", help="the publisher's id (default: the name, or a new id)")
    add.add_argument("--added-by", metavar="USER", help="who added it (pending publishers "
                     "of the same user survive the creation of a colliding project)")
    remove = actions.add_parser("remove", help="remove a publisher by id")
    remove.add_argument("id")
    load = actions.add_parser("load", help="add the publishers of a publishers file (YAML)")
    load.add_argument("file")
    issuers = commands.add_parser("issuers", help="custom issuers (self-managed GitLab, "
                                  "GitHub Enterprise...) registered in the database")
    issuer_actions = issuers.add_subparsers(dest="issuers_command", metavar="ACTION",
                                            required=True)
    issuer_actions.add_parser("list", help="list the registered issuers")
    add_issuer = issuer_actions.add_parser("add", help="trust ISSUER for PROVIDER on every "
                                           "replica (from its next sync)")
    add_issuer.add_argument("issuer_url", metavar="ISSUER", help="the issuer URL (https://...)")
    add_issuer.add_argument("provider", help="a provider allowing custom issuers (gitlab...)")
    add_issuer.add_argument("--added-by", metavar="USER")
    schema = commands.add_parser("schema", help="the database schema's version; --upgrade "
                                 "applies the missing migrations (serving does too)")
    schema.add_argument("--upgrade", action="store_true", help="apply the missing "
                        "migrations now (exit 0), instead of listing them (exit 1 if any)")


def _has_module(name: str) -> bool:
    import importlib

    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"tppolicy serve needs the server extra ({exc.name} is missing): "
                         "pip install 'tppolicy[server]'") from None
    if getattr(args, "redis", None) and not _has_module("redis"):
        raise UsageError("--redis needs the redis extra (redis is missing): "
                         "pip install 'tppolicy[redis]'")
    from tppolicy.language.providers import load_providers

    demo = None
    if args.demo:
        if args.serve_command is not None:
            raise UsageError("--demo runs a demo index; it has no publishers commands")
        demo = _start_demo(args)
    elif args.db is None:
        args.db = "tppolicy-index.db"
    providers = load_providers(args.providers)
    issuers = registered_issuers(args, providers)
    if args.serve_command == "publishers":
        return _publishers(args, out, providers, issuers)
    if args.serve_command == "schema":
        return _schema(args, out)
    if args.serve_command == "issuers":
        return _issuers(args, out, providers, issuers)
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise UsageError("--ssl-certfile and --ssl-keyfile go together")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a port number")
    for option in ("credential_ttl", "jwks_cooldown", "fetch_timeout", "reload_interval"):
        if getattr(args, option) <= 0:
            raise UsageError(f"--{option.replace('_', '-')} must be positive")
    for _, source in args.jwks:
        if not source.startswith("https://"):
            _check_jwks_file(source)
    if args.mint_rate_limit is not None:
        from tppolicy.server.ratelimit import parse_rate

        try:
            parse_rate(args.mint_rate_limit)
        except ValueError as exc:
            raise UsageError(f"--mint-rate-limit: {exc}") from None
    for name in (args.ssl_certfile, args.ssl_keyfile):
        if name is not None and not Path(name).is_file():
            raise ConfigError([Diagnostic("no such file", Span(name, 0, 0, 0, 0))])
    from tppolicy.server import Settings, build_index, serve
    from tppolicy.server.database import check_target, is_url, redact

    try:
        check_target(args.db)
    except ValueError as exc:
        raise UsageError(f"--db {redact(args.db)}: {exc}") from None
    if is_url(args.db) and not str(args.db).startswith("sqlite:") and args.files is None:
        raise UsageError("--db with a PostgreSQL URL needs --files DIR: the distributions' "
                         "folder, the same (shared) folder for every replica")
    storage_settings = _settings(args, issuers)
    if demo is not None:
        storage = _storage(args)
        try:
            storage.put_publisher(str(demo.publisher["name"]), demo.publisher)
        finally:
            storage.close()
    for path in args.publishers:
        _load_file(args, path, providers, issuers)
    with _database_errors(args):
        index = build_index(Settings(**storage_settings))
    try:
        started = serve(index, host=args.host, port=args.port, ssl_certfile=args.ssl_certfile,
                        ssl_keyfile=args.ssl_keyfile, log_level=args.log_level,
                        log_format=args.log_format, demo=demo,
                        announce=None if demo is None else
                        (lambda url: out.write(demo.instructions(url)) and out.flush()))
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: "
                         f"{exc.strerror or exc}") from None
    return EXIT_ALLOWED if started else EXIT_INTERNAL


def _start_demo(args: argparse.Namespace) -> Any:
    """The demo's key, certificate and database (a new temporary directory)."""
    import tempfile

    from tppolicy.server.demo import GITHUB_ISSUER, Demo

    directory = Path(tempfile.mkdtemp(prefix="tppolicy-demo-"))
    demo = Demo.create(directory)
    if args.db is None:
        args.db = str(directory / "index.db")
    if args.ssl_certfile is None and args.ssl_keyfile is None:
        args.ssl_certfile, args.ssl_keyfile = str(demo.cert), str(demo.key)
    args.jwks = [(i, s) for i, s in args.jwks if i != GITHUB_ISSUER]
    args.jwks.append((GITHUB_ISSUER, str(demo.jwks)))
    return demo


def _check_jwks_file(source: str) -> None:
    """A --jwks file is read again on each refresh, but a file that cannot serve (unreadable,
    not UTF-8, not a JWKS document, no usable key) is refused at start: exit 3, not a server
    that refuses every token of that issuer."""
    from tppolicy.readers.source import read_source
    from tppolicy.token.keys import FetchError, parse_jwks

    text = read_source(Path(source), ConfigError)
    hint = "a JWKS file is the JSON object an issuer's jwks_uri serves: {\"keys\": [...]}"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([Diagnostic(
            f"not a usable JWKS file: invalid JSON: {exc.msg}",
            Span(source, exc.lineno, exc.colno, exc.lineno, exc.colno + 1), hint=hint)],
            text) from None
    except (ValueError, RecursionError):
        pass  # parse_jwks says what is wrong
    try:
        parse_jwks(text, source)
    except FetchError as exc:
        message = str(exc).removeprefix(f"{source}: ")
        raise ConfigError([Diagnostic(f"not a usable JWKS file: {message}",
                                      Span(source, 0, 0, 0, 0), hint=hint)]) from None


def _settings(args: argparse.Namespace, issuers: dict[str, str]) -> dict[str, Any]:
    return {"db": args.db, "files": args.files, "audience": args.audience,
            "jwks": dict(args.jwks), "jwks_cooldown": args.jwks_cooldown,
            "fetch_timeout": args.fetch_timeout, "redis": args.redis, "issuers": issuers,
            "providers": tuple(args.providers), "record": args.record,
            "credential_ttl": args.credential_ttl, "max_upload_bytes": args.max_upload_bytes,
            "reload_interval": args.reload_interval,
            "mint_rate_limit": args.mint_rate_limit, "lookup": args.lookup}


@contextlib.contextmanager
def _database_errors(args: argparse.Namespace) -> Iterator[None]:
    """Opening the database: a bad --db is a usage error, an unreachable or unreadable
    database invalid input (exit 3), never a traceback."""
    import sqlite3

    from tppolicy.server.database import DatabaseUnavailable, check_target, redact
    from tppolicy.server.migrations import SchemaTooNew

    try:
        check_target(args.db)
    except ValueError as exc:
        raise UsageError(f"--db {redact(args.db)}: {exc}") from None
    try:
        yield
    except ValueError as exc:  # psycopg missing, or a malformed URL
        raise UsageError(f"--db {redact(args.db)}: {exc}") from None
    except (sqlite3.Error, OSError, DatabaseUnavailable, SchemaTooNew) as exc:
        raise ConfigError([Diagnostic(f"cannot open the database: {exc}",
                                      Span(redact(args.db), 0, 0, 0, 0))]) from None


def _storage(args: argparse.Namespace) -> Any:
    from tppolicy.server.storage import Storage

    with _database_errors(args):
        return Storage(args.db, args.files)


def _issuers(args: argparse.Namespace, out: TextIO, providers: Any,
             issuers: dict[str, str]) -> int:
    """`serve --db DB issuers list|add`: custom issuers kept in the database."""
    from tppolicy.server.names import escape

    storage = _storage(args)
    try:
        if args.issuers_command == "add":
            _validator(providers, issuers).register_issuer(args.issuer_url, args.provider)
            storage.add_issuer(args.issuer_url, args.provider, args.added_by)
            out.write(f"registered issuer {escape(args.issuer_url)} for {args.provider}\n")
            return EXIT_ALLOWED
        for issuer, provider in storage.issuers():
            out.write(f"{escape(issuer)}\t{escape(provider)}\n")
        return EXIT_ALLOWED
    finally:
        storage.close()


def _schema(args: argparse.Namespace, out: TextIO) -> int:
    """`serve --db DB schema [--upgrade]`: where the schema stands, or upgrade it."""
    from tppolicy.server.database import open_database
    from tppolicy.server.migrations import MIGRATIONS, current_version, migrate

    with _database_errors(args):
        database = open_database(args.db)
        try:
            if args.upgrade:
                applied = migrate(database)
                for migration in MIGRATIONS:
                    if migration.version in applied:
                        out.write(f"applied {migration.version}: {migration.description}\n")
            version = current_version(database)
        finally:
            database.close()
    latest = max(m.version for m in MIGRATIONS)
    out.write(f"schema version {version} (this tppolicy: {latest})\n")
    if version > latest:
        out.write("the database is newer than this tppolicy: upgrade tppolicy\n")
        return EXIT_DENIED
    missing = [m for m in MIGRATIONS if m.version > version]
    for migration in missing:
        out.write(f"missing {migration.version}: {migration.description}\n")
    if missing:
        out.write("apply with: tppolicy serve --db DB schema --upgrade (or start the "
                  "server)\n")
    return EXIT_DENIED if missing else EXIT_ALLOWED


def _key_rows(storage: Any, providers: Any, issuers: dict[str, str]) -> None:
    """Rows written by the commands carry their lookup and identity keys (the SQL
    publisher lookup)."""
    from tppolicy.server.lookup import key_rows

    key_rows(storage, _validator(providers, issuers))


def _validator(providers: Any, issuers: dict[str, str]) -> Any:
    from tppolicy.decide.engine import Engine

    return Engine(providers=providers, issuers=issuers)


def _publishers(args: argparse.Namespace, out: TextIO, providers: Any,
                issuers: dict[str, str]) -> int:
    from tppolicy.server.names import check_row, escape

    storage = _storage(args)
    _key_rows(storage, providers, issuers)
    try:
        if args.publishers_command == "list":
            rows = storage.publishers()
            if args.format == "json":
                out.write(json.dumps([{"id": r.id, **r.row, "added_by": r.added_by,
                                       "created": r.created} for r in rows], indent=2) + "\n")
            else:
                # One line per publisher whatever the rows hold: a newline, a tab or an
                # invisible character is shown escaped, never written as it is.
                for r in rows:
                    target = (f"pending {r.row['pending_project']}" if r.pending_project
                              else ", ".join(map(str, r.row.get("projects") or ())))
                    fields = " ".join(f"{k}={v}" for k, v in r.row.items()
                                      if k not in ("provider", "name", "projects",
                                                   "pending_project"))
                    columns = (r.id, r.provider, target, fields)
                    out.write("\t".join(escape(str(c)) for c in columns) + "\n")
            return EXIT_ALLOWED
        if args.publishers_command == "remove":
            if not storage.delete_publisher(args.id):
                raise ConfigError([Diagnostic(f"no publisher with id {escape(args.id)!r} "
                                              "(see `publishers list`)")])
            out.write(f"removed publisher {escape(args.id)}\n")
            return EXIT_ALLOWED
        if args.publishers_command == "load":
            count = _load_file(args, args.file, providers, issuers, storage)
            out.write(f"loaded {count} publishers from {args.file}\n")
            return EXIT_ALLOWED
        row = _row(args, providers)
        engine = _validator(providers, issuers)
        record = engine.add_publisher(row, id=args.id or args.name or None)
        publisher_id = record.id if (args.id or args.name) else _new_id(storage)
        problems = check_row(publisher_id, row, args.added_by)
        problems += _name_collisions(storage, row)
        problems += _twins(storage, providers, issuers, [(publisher_id, row)])
        if problems:
            raise ConfigError([Diagnostic(p) for p in problems])
        storage.put_publisher(publisher_id, row, added_by=args.added_by)
        out.write(f"added publisher {publisher_id}\n")
        return EXIT_ALLOWED
    finally:
        storage.close()


def _twins(storage: Any, providers: Any, issuers: dict[str, str],
           rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Rows that a stored publisher would always be chosen before (the rule `tppolicy
    check` and the engine apply, `Decider.shadowing`): the server would not serve them.
    Checked against the stored rows of the same lookup keys, other than those `rows`
    replace (same id)."""
    from tppolicy.server.names import escape

    engine = _validator(providers, issuers)
    storage.fill_lookup_keys()
    writing = {publisher_id for publisher_id, _ in rows}
    seen: set[str] = set()
    for _, row in rows:
        try:
            provider, key = engine.lookup_key(row)
        except ConfigError:
            continue  # reported by the row's own checks
        for pending in (False, True):
            for stored in storage.lookup_candidates(provider, key, pending):
                if stored.id not in writing and stored.id not in seen:
                    seen.add(stored.id)
                    with contextlib.suppress(ConfigError):  # not served anyway
                        engine.add_publisher(stored.row, id=stored.id)
    problems: list[str] = []
    for publisher_id, row in rows:
        try:
            engine.add_publisher(row, id=publisher_id)
        except ConfigError as exc:
            problems += [f"{escape(publisher_id)}: {d.message}" + (f" ({d.hint})" if d.hint
                                                                   else "")
                         for d in exc.diagnostics]
    return problems


def _name_collisions(storage: Any, row: dict[str, Any]) -> list[str]:
    """PyPI's project name checks against the projects the index holds: a pending
    publisher's project must not exist yet, and no new name may be too similar to an
    existing project (`sample_project`, `SampIeproject` beside `sampleproject`)."""
    from tppolicy.server.core import too_similar

    problems = []
    pending = row.get("pending_project")
    if isinstance(pending, str) and storage.project_exists(pending):
        problems.append(f"pending_project: the project {pending!r} exists already (a "
                        "pending publisher creates a project: give --project instead)")
    for name in [pending] if pending is not None else row.get("projects") or ():
        similar = storage.similar_project(name) if isinstance(name, str) else None
        if similar is not None:
            problems.append(too_similar(name, similar))
    return problems


def _new_id(storage: Any) -> str:
    import secrets

    while True:
        candidate = "p-" + secrets.token_hex(4)
        if storage.publisher(candidate) is None:
            return candidate


def _row(args: argparse.Namespace, providers: Any) -> dict[str, Any]:
    from tppolicy.server.names import escape

    if "=" in args.provider:
        # The provider after a FIELD=VALUE: the one word without "=" is the provider.
        words = [args.provider, *args.fields]
        names = [w for w in words if "=" not in w]
        if len(names) != 1:
            raise UsageError(f"expected the provider ({', '.join(sorted(providers))}) and "
                             f"FIELD=VALUE words, got '{' '.join(map(escape, words))}'")
        args.provider = names[0]
        args.fields = [w for w in words if w is not names[0]]
    provider = providers.get(args.provider)
    if provider is None:
        from tppolicy.language.check import did_you_mean

        hint = did_you_mean(args.provider, providers)
        raise UsageError(f"unknown provider {args.provider!r}"
                         f"{f' ({hint})' if hint else ''}; known: {', '.join(sorted(providers))}")
    row: dict[str, Any] = {"provider": args.provider}
    for item in args.fields:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected FIELD=VALUE (FIELD one of {args.provider}'s fields: "
                             f"{', '.join(sorted(provider.fields))}), got '{escape(item)}'")
        if key in row:
            raise UsageError(f"{escape(key)} given twice: {escape(key)}={escape(str(row[key]))} "
                             f"and {escape(item)}; give each field once")
        declared = provider.fields.get(key)
        if declared is not None and declared.type == "int":
            try:
                row[key] = int(value)
            except ValueError:
                raise UsageError(f"{key}: expected an integer, got {value!r}") from None
        elif declared is not None and declared.type == "bool":
            if value not in ("true", "false"):
                raise UsageError(f"{key}: expected true or false, got {value!r}")
            row[key] = value == "true"
        else:
            row[key] = value
    if args.name:
        row["name"] = args.name
    if args.pending_project:
        row["pending_project"] = args.pending_project
    else:
        row["projects"] = list(args.project)
    return row


def _load_file(args: argparse.Namespace, path: str, providers: Any, issuers: dict[str, str],
               storage: Any = None) -> int:
    """The publishers of a YAML file into the database (validated as a whole first):
    an entry replaces the one with the same name; entries without a name get ids
    from the file's name, a digest of its absolute path (two teams' `publishers.yaml`
    never share an id) and their position."""
    import hashlib

    from tppolicy.decide.publishers import load_publishers_file
    from tppolicy.server.names import check_row, escape

    entries = load_publishers_file(path, {n: p.ast for n, p in providers.items()}, issuers)
    where = hashlib.sha256(str(Path(path).resolve()).encode("utf-8", "surrogatepass"))
    prefix = f"{Path(path).stem}-{where.hexdigest()[:8]}"
    rows = [(entry.name or f"{prefix}-{position}", entry.as_row())
            for position, entry in enumerate(entries)]
    _validator(providers, issuers).add_publishers([r for _, r in rows], source=path)
    own = storage is None
    if storage is None:
        storage = _storage(args)
        _key_rows(storage, providers, issuers)
    try:
        problems = [f"{escape(publisher_id)}: {p}" for publisher_id, row in rows
                    for p in check_row(publisher_id, row, None)]
        problems += _twins(storage, providers, issuers, rows)
        with storage.transaction() as db:
            for publisher_id, row in rows:
                existing = storage.publisher(publisher_id)
                if existing is not None:
                    row = _keep_learned(existing.row, row, providers)
                if existing is not None and (existing.row == row or _converted(existing.row,
                                                                                row)):
                    continue  # unchanged (keeps its creation time), or already used
                if row.get("pending_project") is not None and storage.project_exists(
                        row["pending_project"]):
                    continue  # its project exists (it was used, or created otherwise)
                problems.extend(f"{escape(publisher_id)}: {p}"
                                for p in _name_collisions(storage, row))
                if not problems:
                    storage.put_publisher(publisher_id, row, db=db)
            if problems:
                raise ConfigError([Diagnostic(p, Span(path, 0, 0, 0, 0)) for p in problems])
    finally:
        if own:
            storage.close()
    return len(rows)


def _keep_learned(stored: dict[str, Any], row: dict[str, Any],
                  providers: Any) -> dict[str, Any]:
    """`row` with what the stored publisher learned on its first use (trust on first
    use) kept: loading the same file again, as `--publishers` does at each start, must
    not forget it (the next token would teach another value)."""
    provider = providers.get(row.get("provider"))
    if provider is None or row.get("trust_on_first_use") is not True:
        return row
    kept = dict(row)
    for learn in provider.learns:
        if kept.get(learn.name) in (None, "") and stored.get(learn.name) not in (None, ""):
            kept[learn.name] = stored[learn.name]
    return kept


def _converted(stored: dict[str, Any], pending: dict[str, Any]) -> bool:
    """Is `stored` what the pending publisher `pending` became on its first use?"""
    project = pending.get("pending_project")
    if project is None or stored.get("pending_project") is not None:
        return False
    same = {k: v for k, v in stored.items() if k != "projects"} == \
        {k: v for k, v in pending.items() if k != "pending_project"}
    return same and project in (stored.get("projects") or ())
