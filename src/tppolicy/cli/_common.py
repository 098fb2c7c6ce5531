"""What the subcommands share: exit codes, options, reading inputs."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tppolicy.decide.policy import Policy
from tppolicy.errors import ClaimsError, Diagnostic, OutputError, Span
from tppolicy.limits import MAX_SOURCE_BYTES

EXIT_ALLOWED, EXIT_DENIED, EXIT_USAGE, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3, 4

EPILOG = """exit codes:
  0  allowed (check) or success
  1  denied (check)
  2  usage error
  3  invalid input (policy, publishers or claims file) or an output file that
     cannot be written
  4  internal error (a bug; --debug shows the traceback)
"""



def exit_codes(success: str, invalid: str, denied: str | None = None) -> str:
    """The `exit codes:` block of a subcommand's --help: what 0 (and 1, if it has one) and
    3 mean for it; 2 and 4 are every command's."""
    lines = ["exit codes:", f"  0  {success}"]
    if denied is not None:
        lines.append(f"  1  {denied}")
    lines += ["  2  usage error", f"  3  invalid input: {invalid}",
              "  4  internal error (a bug; --debug shows the traceback)", ""]
    return "\n".join(lines)


# `--upload-version` of check and explain: one meaning, one help.
UPLOAD_VERSION_HELP = ("the version being uploaded (request.version: a publisher's "
                       "version_tag must be the token's tag for it)")


class UsageError(Exception):
    """Options that do not fit together: exit 2."""


class Parser(argparse.ArgumentParser):
    """The parser of `tppolicy` and its subcommands: a usage error exits 2, and no option
    or argument may be an empty string (`--job ''`, `--path ''`, `--pattern ''` acted as if
    not given, or crashed).

    `intermixed`, when set to a positional's dest (a `nargs="*"` list), lets that
    positional's words come anywhere among the options, as a user expects of
    `serve publishers add github --project p FIELD=VALUE`."""

    intermixed: str | None = None

    def error(self, message: str) -> NoReturn:
        """Print the usage and `message`, exit 2."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def parse_known_args(  # type: ignore[override]
            self, args: Sequence[str] | None = None,
            namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """argparse's parsing, then: an empty value is a usage error naming its option."""
        parsed, rest = super().parse_known_args(args, namespace)
        if self.intermixed is not None and rest:
            # argparse fills the positionals from the first run of words only: in `add
            # github --project p FIELD=VALUE` the last word was left over (exit 2). Words
            # left over that are not options join the intermixed list, in order.
            # (After a "--", every word is one of them.)
            end = rest.index("--") if "--" in rest else len(rest)
            words = [w for w in rest[:end] if not w.startswith("-") or w == "-"]
            words += rest[end + 1:]
            values = list(getattr(parsed, self.intermixed, None) or ())
            setattr(parsed, self.intermixed, values + words)
            rest = [w for w in rest[:end] if w.startswith("-") and w != "-"]
        for action in self._actions:
            if action.nargs == 0 or not action.dest or action.dest == argparse.SUPPRESS:
                continue
            value = getattr(parsed, action.dest, None)
            values = value if isinstance(value, list) else [value]
            if any(v == "" for v in values):
                name = "/".join(action.option_strings) or action.metavar or action.dest
                self.error(f"argument {name}: expected a value, got an empty string")
        return parsed, rest


def denial_headline(decision: Any, provider: str | None) -> str:
    """What follows "DENIED" on a denial's first line, by its first failing reason: a
    token refused before any publisher was compared (its signature, issuer or audience)
    is not told that no publisher matches it."""
    failing = [reason for reason in decision.reasons if not reason.passed]
    rule = failing[0].rule if failing else None
    if rule == "token":
        return ": the token was refused"
    where = f" ({provider})" if provider else ""
    if rule == "iss":  # no provider trusts the issuer (explain may guess one from the claims)
        return ": the token's issuer is not one accepted here"
    if rule == "aud":
        return f"{where}: the token was requested for another audience"
    return f"{where}: no trusted publisher matches this token"


def output_error(path: str, exc: OSError) -> OutputError:
    """An output file that cannot be written (exit 3): the path and the reason."""
    return OutputError([Diagnostic(f"cannot write the file: {exc.strerror or exc}",
                                   Span(str(path), 0, 0, 0, 0),
                                   hint="check that the folder exists and is writable")])


def refuse_link(path: str) -> None:
    """`OutputError` if the output file `path` is a symbolic link (other than one of
    /dev or /proc: /dev/stdout): a link planted where a command writes (`compile -o
    policy.tpp` in a checked-out tree) made it overwrite, or append to, the file the link
    names, anywhere the user may write (~/.bashrc)."""
    import os

    if os.path.islink(path) and not os.path.abspath(path).startswith(("/dev/", "/proc/")):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        raise OutputError([Diagnostic(
            f"the output file is a symbolic link (to {target}): tppolicy does not write "
            "through links", Span(str(path), 0, 0, 0, 0),
            hint="remove the link, or name the file it points to")])


def write_output(path: str, text: str) -> None:
    """Write `text` to the file `path` (UTF-8), never through a symbolic link;
    `OutputError` if it cannot be."""
    write_output_parts(path, [text])


def write_output_parts(path: str, parts: Iterable[str]) -> None:
    """`write_output` of the text `parts` make, written one by one (never joined)."""
    refuse_link(path)
    try:
        with open(path, "w", encoding="utf-8") as f:
            for part in parts:
                f.write(part)
    except OSError as exc:
        raise output_error(path, exc) from None


def _issuer(value: str) -> tuple[str, str]:
    issuer, sep, provider = value.rpartition("=")
    if not sep or not issuer.startswith("https://") or not provider:
        raise argparse.ArgumentTypeError(
            f"expected URL=PROVIDER such as https://gitlab.example.com=gitlab, got {value!r}")
    return issuer, provider


def add_provider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--issuer", metavar="URL=PROVIDER", action="append", type=_issuer,
                        default=[], help="register an extra issuer for a provider that allows "
                        "custom issuers (e.g. a self-managed GitLab); repeatable")
    parser.add_argument("--providers", metavar="PATH", action="append", default=[],
                        help="extra provider file or folder of *.tpp files; repeatable")


def load_providers(args: argparse.Namespace) -> Mapping[str, Any]:
    from tppolicy.language.providers import load_providers as load

    return load(args.providers)


def registered_issuers(args: argparse.Namespace, providers: Mapping[str, Any]) -> dict[str, str]:
    issuers = dict(args.issuer)
    for issuer, provider in issuers.items():
        if provider not in providers:
            raise UsageError(f"--issuer {issuer}={provider}: unknown provider '{provider}'")
        if not providers[provider].ast.custom_issuers:
            raise UsageError(f"--issuer {issuer}={provider}: provider '{provider}' does not "
                             "allow custom issuers")
    return issuers


def load_policy(args: argparse.Namespace, claims: Mapping[str, Any] | None = None) -> Policy:
    """From --publishers (YAML) or --policy (compiled policy text). With `claims` (a
    decision on them is all the policy is for), the policy holds only the publishers that
    decision reads (`compile_publishers_for_claims`, `load_policy_for_claims`)."""
    from tppolicy.decide.load import (
        compile_publishers_file,
        compile_publishers_for_claims,
        load_policy_file,
    )

    providers = load_providers(args)
    issuers = registered_issuers(args, providers)
    if getattr(args, "publishers", None) is not None:
        if claims is not None:
            from tppolicy.errors import ConfigError
            from tppolicy.readers.source import read_source

            source = args.publishers
            text = read_source(Path(source), ConfigError, what="publishers file")
            return compile_publishers_for_claims(text, str(source), claims,
                                                 providers=providers, issuers=issuers)
        return compile_publishers_file(args.publishers, providers=providers, issuers=issuers)
    return load_policy_file(args.policy, providers=providers, issuers=issuers, claims=claims)


def read_claims(name: str) -> dict[str, Any]:
    """A claims file: one JSON object with unique keys, or what `python -m id -d`
    prints (the JOSE header, then the claims, as two JSON objects)."""
    from tppolicy.readers.claims import parse_claims
    from tppolicy.readers.source import decode_source, read_source

    # As every other reader: one size limit, the bad byte's line and column.
    if name != "-":
        return parse_claims(read_source(Path(name), ClaimsError, what="claims file"), name)
    label = "<stdin>"
    raw = _read_stdin(label, MAX_SOURCE_BYTES + 1)
    if len(raw) > MAX_SOURCE_BYTES:
        raise ClaimsError([Diagnostic(
            f"the input is larger than the limit of {MAX_SOURCE_BYTES} bytes",
            Span(label, 0, 0, 0, 0), hint="claims are a small JSON object")])
    return parse_claims(decode_source(raw, label, ClaimsError, what="input"), label)


def _read_stdin(label: str, limit: int) -> bytes:
    """At most `limit` bytes of standard input (also when an embedder replaced `sys.stdin`
    by a text stream without a byte buffer)."""
    try:
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:
            return str(sys.stdin.read(limit)).encode("utf-8", "surrogateescape")
        return bytes(buffer.read(limit))
    except OSError as exc:
        raise ClaimsError([Diagnostic(f"cannot read: {exc.strerror or exc}",
                                      Span(label, 0, 0, 0, 0))]) from None


# Room for whitespace around a token in its file (a line break, an editor's indentation).
TOKEN_FILE_SLACK = 4096


def read_token(name: str, max_bytes: int) -> str:
    """A compact JWT from a file or standard input (-), surrounding whitespace removed.

    At most `max_bytes` + `TOKEN_FILE_SLACK` bytes are read: a longer input is refused as
    invalid input (`ClaimsError`) without being read whole; a shorter one that is still
    too long is left to the verifier's size check (a denial, `token-too-large`).
    """
    label = "<stdin>" if name == "-" else name
    cap = max_bytes + TOKEN_FILE_SLACK
    if name == "-":
        data = _read_stdin(label, cap + 1)
    else:
        from tppolicy.readers.source import refuse_outside_link

        refuse_outside_link(Path(name), ClaimsError, what="token file")
        try:
            with open(name, "rb") as handle:
                data = handle.read(cap + 1)
        except OSError as exc:
            raise ClaimsError([Diagnostic(f"cannot read: {exc.strerror or exc}",
                                          Span(label, 0, 0, 0, 0))]) from None
    if len(data) > cap:
        what = "input" if name == "-" else "file"
        raise ClaimsError([Diagnostic(
            f"the {what} holds more than {cap} bytes; a token is at most {max_bytes} bytes",
            Span(label, 0, 0, 0, 0),
            hint=f"is this the right {what}? It should hold one compact JWT (three "
            "base64url parts joined by dots); --max-token-bytes raises the limit")])
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        # Not ASCII: the verifier refuses it with its own reason ("malformed").
        return data.decode("utf-8", "replace").strip()


def seconds(low: float, high: float, *, zero: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds from `low` (0 only with `zero`) to
    `high`. NaN and infinity are refused: `--leeway inf` accepted tokens expired years
    ago, `--credential-ttl inf` minted credentials that never expire."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number of seconds, got {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high or (value == 0 and not zero):
            least = f"{low:g}" if zero or low > 0 else "more than 0"
            raise argparse.ArgumentTypeError(
                f"expected seconds from {least} to {high:g}, got {text!r}")
        return value

    return parse


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {text!r}")
    return value


# The largest clock leeway accepted (--leeway): PyPI allows 30 s; an hour covers any clock.
MAX_LEEWAY = 3600.0
# The largest --max-token-bytes: a token file is read up to it (and /dev/zero is endless).
MAX_TOKEN_LIMIT = 1024 * 1024


def token_limit(text: str) -> int:
    """An argparse type: --max-token-bytes, from 1 to `MAX_TOKEN_LIMIT`."""
    value = positive_int(text)
    if value > MAX_TOKEN_LIMIT:
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_TOKEN_LIMIT} bytes (a token is a few KB), got {text!r}")
    return value


def _jwks_option(value: str) -> tuple[str | None, str]:
    issuer, sep, path = value.rpartition("=")
    if sep and issuer.startswith("https://"):
        return issuer, path
    return None, value


def add_token_options(parser: argparse.ArgumentParser, *, replay: bool = True) -> None:
    """--jwks, --leeway, --max-token-bytes, --fetch-timeout and --replay-db; without
    `replay`, --replay-db is still parsed (for its usage error) but not shown in --help."""
    from tppolicy.limits import DEFAULT_LEEWAY, MAX_TOKEN_BYTES

    parser.add_argument("--jwks", metavar="[ISSUER=]FILE", action="append", type=_jwks_option,
                        default=[], help="use the keys in a JWKS file instead of fetching them; "
                        "without ISSUER= for the token's issuer (which must still be known); "
                        "repeatable")
    parser.add_argument("--leeway", metavar="SECONDS", type=seconds(0, MAX_LEEWAY, zero=True),
                        default=DEFAULT_LEEWAY, help="clock leeway for exp, nbf and iat "
                        f"(default {DEFAULT_LEEWAY}, at most {MAX_LEEWAY:g})")
    parser.add_argument("--max-token-bytes", metavar="N", type=token_limit,
                        default=MAX_TOKEN_BYTES,
                        help=f"refuse longer tokens before parsing (default {MAX_TOKEN_BYTES}, "
                        "at most 1048576)")
    parser.add_argument("--fetch-timeout", metavar="SECONDS", type=seconds(0, 300),
                        default=5.0,
                        help="timeout of each request for discovery and JWKS documents "
                        "(default 5)")
    parser.add_argument("--replay-db", metavar="FILE", help="SQLite file recording used token "
                        "ids (jti): a token allowed once is refused the next time"
                        if replay else argparse.SUPPRESS)


def build_verifier(args: argparse.Namespace, policy: Policy, token: str) -> Any:
    """The verifier for `check --token`: offline keys from --jwks, else discovery."""
    from tppolicy.readers.source import read_source
    from tppolicy.token.keys import DEFAULT_MAX_DOCUMENT, FetchError, HttpFetcher, KeyCache
    from tppolicy.token.verify import TokenError, Verifier, split_token

    keys = KeyCache(fetch=HttpFetcher(timeout=args.fetch_timeout))
    for issuer, path in args.jwks:
        if issuer is None:
            try:
                issuer = split_token(token, args.max_token_bytes)[1].get("iss")
            except TokenError:
                issuer = None  # the verifier will say what is wrong with the token
            if not isinstance(issuer, str):
                continue
        # At most what a fetched JWKS document may hold: /dev/zero is not read forever.
        document = read_source(Path(path), ClaimsError, max_bytes=DEFAULT_MAX_DOCUMENT,
                               what="JWKS file")
        try:
            keys.add_static(issuer, document, path)
        except FetchError as exc:
            raise ClaimsError([Diagnostic(f"not a usable JWKS file: {exc}",
                                          Span(path, 0, 0, 0, 0))]) from None
    return Verifier.for_policy(policy, keys=keys, audience=args.audience, leeway=args.leeway,
                               max_bytes=args.max_token_bytes)
