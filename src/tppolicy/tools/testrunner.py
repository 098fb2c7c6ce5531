"""Policy tests: case tables kept next to the policies, run like a test runner.

A test file (``*.tptest.yaml``) is a mapping:

``publishers``
    the publishers, inline (a list, as in a publishers file) or the path of a publishers file
    relative to the test file; or ``policy``: the path of a policy file (``*.tpp``).
``issuers``
    optional registered custom issuers, ``{URL: PROVIDER}``.
``audience``
    optional, the default audience of the cases (``pypi``).
``claims``
    named claim sets: each a mapping of claims, or the path of a JSON claims file.
``cases``
    a list; each case has ``claims`` (a set's name, or a mapping), optional ``set`` (claims to
    add or replace), ``unset`` (claims to remove), ``audience``, ``request`` (request values,
    such as ``{version: 1.2.3}``: ``request.NAME`` in the rules), then the expectation:
    ``allowed`` (required), ``publisher``, ``pending`` and ``learned`` (allowed cases: the
    values learned on first use, by field), ``failing`` (the rules that fail, denied cases)
    and ``reason_contains``; ``fix`` (denied cases): a fix `tppolicy check` gives for a failed
    rule contains it (what to change, from the provider file). ``name`` names the case.
    Instead of ``claims``, a case may give ``token``: the path of a signed token (a compact
    JWT), verified with the keys of ``jwks`` and decided on as ``tppolicy check --token``
    does; a refused token fails the rule ``token``.
``jwks``
    the signing keys of the issuers of the token fixtures, ``{ISSUER: JWKS file}``. Keys are
    never fetched.
``now``
    the time (seconds since 1970) at which tokens are verified; by default each token's own
    ``iat``, so that a recorded token stays valid.

`discover` finds the files, `run_files` runs them and records which rule of which publisher
was seen passing and failing (rule coverage). Nothing here prints.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tppolicy.decide.decision import Decision, RuleResult
from tppolicy.decide.load import (
    claims_selection,
    compile_publishers_text,
    load_policy_file,
    stream_publishers,
)
from tppolicy.decide.policy import Policy
from tppolicy.decide.reasons import show
from tppolicy.errors import ClaimsError, ConfigError, Diagnostic, Span, TppolicyError, shorten
from tppolicy.language import ast as A
from tppolicy.language.bind import fold
from tppolicy.language.check import CheckedProvider, CheckedPublisher
from tppolicy.limits import MAX_SOURCE_BYTES
from tppolicy.readers.claims import parse_claims
from tppolicy.readers.source import LinkTree, read_source
from tppolicy.readers.yaml import compose_yaml

if TYPE_CHECKING:
    from tppolicy.decide.publishers import PublisherEntry

__all__ = ["DEFAULT_PATTERN", "CaseResult", "PolicyTestError", "Report", "RuleCoverage",
           "discover", "run_files"]

DEFAULT_PATTERN = "*.tptest.yaml"
_TOP_KEYS = ("publishers", "policy", "issuers", "audience", "claims", "jwks", "now", "cases")
_CASE_KEYS = ("name", "claims", "set", "unset", "token", "audience", "allowed", "publisher",
              "pending", "failing", "reason_contains", "request", "learned", "fix")
_SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "site-packages"})


class PolicyTestError(TppolicyError):
    """A test file that cannot be read or does not follow the format."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case: where it is, what it expected, what happened."""

    file: str
    line: int
    name: str
    passed: bool
    expected: str
    actual: str
    problems: tuple[str, ...] = ()
    decision: Decision | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "name": self.name, "passed": self.passed,
                "expected": self.expected, "actual": self.actual,
                "problems": list(self.problems),
                "decision": self.decision.to_json() if self.decision is not None else None}


@dataclass(frozen=True, slots=True)
class RuleCoverage:
    """Whether some case saw this rule of this publisher pass, and some case see it fail.

    None: that outcome cannot happen, because the rule folds to a constant for this
    publisher (`rule environment: true` when the publisher names no environment never
    fails); it does not count in the percentage.
    """

    policy: str
    publisher: str
    rule: str
    passed: bool | None
    failed: bool | None

    @property
    def outcomes(self) -> int:
        return (self.passed is not None) + (self.failed is not None)

    @property
    def covered(self) -> int:
        return (self.passed is True) + (self.failed is True)

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "publisher": self.publisher, "rule": self.rule,
                "passed": self.passed, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class Report:
    files: tuple[str, ...]
    results: tuple[CaseResult, ...]
    coverage: tuple[RuleCoverage, ...]
    errors: tuple[TppolicyError, ...] = ()

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)

    @property
    def coverage_percent(self) -> float:
        """Covered (rule, outcome) pairs: each rule counts twice, passing and failing."""
        outcomes = sum(c.outcomes for c in self.coverage)
        if not outcomes:
            return 100.0
        return 100.0 * sum(c.covered for c in self.coverage) / outcomes

    def to_json(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "passed": self.passed,
            "failed": self.failed,
            "errors": [{"file": d.span.source if d.span else None,
                        "line": d.span.line if d.span else 0, "message": d.message,
                        "hint": d.hint} for e in self.errors for d in e.diagnostics],
            "cases": [r.to_json() for r in self.results],
            "coverage": {"percent": round(self.coverage_percent, 2),
                     "covered": sum(c.covered for c in self.coverage),
                     "outcomes": sum(c.outcomes for c in self.coverage),
                         "rules": [c.to_json() for c in self.coverage]},
        }


# -------------------------------------------------------------------- discovery
def _skipped(directory: Path) -> bool:
    return (directory.name.startswith(".") or directory.name in _SKIPPED_DIRS
            or (directory / "pyvenv.cfg").is_file())


def discover(paths: Iterable[str | os.PathLike[str]],
             pattern: str = DEFAULT_PATTERN) -> list[Path]:
    """Test files: files given as they are, folders searched recursively for `pattern`,
    skipping hidden folders and virtual environments. Sorted, without duplicates."""
    found: dict[Path, None] = {}
    for entry in paths:
        path = Path(entry)
        if not path.is_dir():
            found[path] = None
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not _skipped(Path(root) / d))
            for name in sorted(files):
                candidate = Path(root) / name
                # regular files only: opening a FIFO waits for a writer, for ever
                if candidate.match(pattern) and candidate.is_file():
                    found[candidate] = None
    return list(found)


# ---------------------------------------------------------------------- parsing
@dataclass
class _Case:
    line: int
    name: str
    spec: dict[str, Any]
    claims: dict[str, Any] | None
    token: str | None = None


@dataclass
class _TestFile:
    path: Path
    policy_label: str
    policy: Policy
    cases: list[_Case]
    audience: str
    jwks: dict[str, bytes] = field(default_factory=dict)
    now: float | None = None
    # What the other front (`Engine`) is built from: the publishers file or the inline rows
    # (None for a test file naming a compiled policy, which only `Policy` reads).
    publishers: Path | list[Mapping[str, Any]] | None = None
    issuers: dict[str, str] = field(default_factory=dict)
    # For a publishers file read as a stream (`policy` then holds only the publishers the
    # cases' decisions read): each publisher's rules and their possible outcomes, gathered
    # as the publishers went by; and the rows of the kept publishers, with their ids, for
    # the other front. None: from `policy`'s publishers, and the other front reads
    # `publishers` whole.
    rules: list[_PublisherRules] | None = None
    rows: list[tuple[str, dict[str, Any]]] | None = None


class _Reader:
    def __init__(self, path: Path, text: str, root: Path) -> None:
        self.path = path
        self.source = str(path)
        self.text = text
        self.root = root
        self.diagnostics: list[Diagnostic] = []

    def inside(self, node: yaml.Node | None, relative: str, what: str) -> Path | None:
        """The file `relative` names (from the test file's folder) if it lies inside the
        tree (`self.root`), links resolved; else reported and None. A test file must not
        make tppolicy read (and echo) files elsewhere, such as /proc/self/environ."""
        target = self.path.parent / relative
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            self.error(node, f"cannot read the {what} {relative!r}: {exc}")
            return None
        if not resolved.is_relative_to(self.root):
            self.error(node, f"the {what} {relative!r} is outside the tree of the test files "
                       f"({self.root})", "name a file inside it; run tppolicy test from (or "
                       "give --root) a folder holding the test files and what they name")
            return None
        return target

    def read_bytes(self, node: yaml.Node | None, relative: str, what: str) -> bytes | None:
        """A file named by the test file, inside the tree and at most MAX_SOURCE_BYTES."""
        target = self.inside(node, relative, what)
        if target is None:
            return None
        try:
            with target.open("rb") as handle:
                data = handle.read(MAX_SOURCE_BYTES + 1)
        except OSError as exc:
            self.error(node, f"cannot read the {what} {relative!r}: {exc.strerror or exc}")
            return None
        if len(data) > MAX_SOURCE_BYTES:
            self.error(node, f"the {what} {relative!r} is larger than the limit of "
                       f"{MAX_SOURCE_BYTES} bytes")
            return None
        return data

    def span(self, node: yaml.Node | None) -> Span:
        if node is None:
            return Span(self.source, 0, 0, 0, 0)
        start, end = node.start_mark, node.end_mark
        if end.line > start.line:
            return Span(self.source, start.line + 1, start.column + 1, start.line + 1,
                        start.column + 2)
        return Span(self.source, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def error(self, node: yaml.Node | None, message: str, hint: str | None = None,
              path: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(message, self.span(node), path, hint))

    def fail(self) -> PolicyTestError:
        return PolicyTestError(self.diagnostics, self.text)


def _mapping(node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    assert isinstance(node, yaml.MappingNode)
    return {str(k.value): (k, v) for k, v in node.value}


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()



def _unknown_keys(reader: _Reader, keys: Mapping[str, tuple[yaml.Node, yaml.Node]],
                  allowed: Sequence[str], where: str) -> None:
    for name, (key_node, _) in keys.items():
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            reader.error(key_node, f"unknown key {name!r} in {where}",
                         f"did you mean {close[0]!r}?" if close
                         else f"the keys are: {', '.join(allowed)}")


def _load_json(reader: _Reader, node: yaml.Node, relative: str) -> dict[str, Any] | None:
    data = reader.read_bytes(node, relative, "claims file")
    if data is None:
        return None
    try:
        return parse_claims(data.decode("utf-8"), relative)
    except UnicodeDecodeError as exc:
        reader.error(node, f"the claims file {relative!r} is not UTF-8 ({exc.reason})")
    except ClaimsError as exc:  # the same reader as `tppolicy check --claims`
        for problem in exc.diagnostics:
            reader.error(node, f"the claims file {relative!r} is invalid: {problem.span}: "
                         f"{shorten(problem.message)}", problem.hint)
    return None


def _claim_sets(reader: _Reader, node: yaml.Node | None) -> dict[str, dict[str, Any]]:
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        reader.error(node, "'claims' must map names to claims (a mapping, or a JSON file's path)")
        return {}
    sets: dict[str, dict[str, Any]] = {}
    for name, (_, value) in _mapping(node).items():
        if isinstance(value, yaml.ScalarNode) and isinstance(_construct(value), str):
            loaded = _load_json(reader, value, _construct(value))
            if loaded is not None:
                sets[name] = loaded
        elif isinstance(value, yaml.MappingNode):
            sets[name] = _construct(value)
        else:
            reader.error(value, f"claims {name!r} must be a mapping of claims or the path of a "
                         "JSON claims file")
    return sets


def _check_case(reader: _Reader, node: yaml.Node, index: int,
                sets: Mapping[str, dict[str, Any]]) -> _Case | None:
    if not isinstance(node, yaml.MappingNode):
        reader.error(node, f"cases[{index}] must be a mapping")
        return None
    keys = _mapping(node)
    errors_before = len(reader.diagnostics)
    _unknown_keys(reader, keys, _CASE_KEYS, f"cases[{index}]")
    spec = {name: _construct(value) for name, (_, value) in keys.items()}
    name = spec.get("name")
    label = name if isinstance(name, str) and name else f"cases[{index}]"
    token: str | None = None
    if "token" in keys:
        token = _read_token(reader, keys["token"][1], spec["token"])
        for other in ("claims", "set", "unset"):
            if other in keys:
                reader.error(keys[other][0], f"{label}: a token case has no {other!r}",
                             "a signed token cannot be changed: record another token")
    elif "claims" not in keys:
        reader.error(node, f"{label}: missing 'claims'", "name a claims set, or give a mapping")
    if "allowed" not in keys:
        reader.error(node, f"{label}: missing 'allowed'", "allowed: true or allowed: false")
    elif not isinstance(spec["allowed"], bool):
        reader.error(keys["allowed"][1], f"{label}: 'allowed' must be true or false")
    for key, kind, check in (("set", "a mapping", dict), ("unset", "a list of claim names", list),
                             ("failing", "a list of rule names", list),
                             ("publisher", "a string", str), ("pending", "true or false", bool),
                             ("reason_contains", "a string", str), ("audience", "a string", str),
                             ("name", "a string", str), ("request", "a mapping", dict),
                             ("learned", "a mapping", dict), ("fix", "a string", str)):
        if key in spec and not isinstance(spec[key], check):
            reader.error(keys[key][1], f"{label}: {key!r} must be {kind}")
    for key in ("unset", "failing"):
        if isinstance(spec.get(key), list) and not all(isinstance(v, str) for v in spec[key]):
            reader.error(keys[key][1], f"{label}: {key!r} must hold strings")
    if spec.get("allowed") is True and "failing" in spec and spec["failing"]:
        reader.error(keys["failing"][0], f"{label}: an allowed case has no failing rules")
    if spec.get("allowed") is True and "fix" in spec:
        reader.error(keys["fix"][0], f"{label}: 'fix' applies to denied cases",
                     "an allowed token needs no fix: remove 'fix' or expect allowed: false")
    if spec.get("allowed") is False:
        for key in ("publisher", "pending", "learned"):
            if key in spec:
                reader.error(keys[key][0], f"{label}: {key!r} applies to allowed cases",
                             "for a denied case, say which rules fail with 'failing'")
    claims: dict[str, Any] | None = None
    raw = spec.get("claims")
    if isinstance(raw, str):
        if raw in sets:
            claims = copy.deepcopy(sets[raw])
        else:
            close = difflib.get_close_matches(raw, list(sets), n=1)
            reader.error(keys["claims"][1], f"{label}: no claims set named {raw!r}",
                         f"did you mean {close[0]!r}?" if close else
                         f"the claims sets are: {', '.join(sets) or 'none'}")
    elif isinstance(raw, dict):
        claims = copy.deepcopy(raw)
    elif "claims" in spec:
        reader.error(keys["claims"][1], f"{label}: 'claims' must name a claims set or be a "
                     "mapping of claims")
    if len(reader.diagnostics) > errors_before:
        return None
    if token is not None:
        return _Case(node.start_mark.line + 1, label, spec, None, token)
    assert claims is not None
    claims.update(spec.get("set") or {})
    for claim in spec.get("unset") or []:
        claims.pop(claim, None)
    return _Case(node.start_mark.line + 1, label, spec, claims)


def _read_token(reader: _Reader, node: yaml.Node, value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        reader.error(node, "'token' must be the path of a token file (a compact JWT)")
        return None
    data = reader.read_bytes(node, value, "token file")
    if data is None:
        return None
    return data.decode("utf-8", "replace").strip()


def _jwks(reader: _Reader, node: yaml.Node) -> dict[str, bytes]:
    value = _construct(node)
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        reader.error(node, "'jwks' must map issuer URLs to JWKS files",
                     '"https://token.actions.githubusercontent.com": github-jwks.json')
        return {}
    documents = {}
    for issuer, relative in value.items():
        data = reader.read_bytes(node, relative, "JWKS file")
        if data is not None:
            documents[issuer] = data
    return documents


def _publishers_text(text: str, key: yaml.Node, value: yaml.Node) -> str:
    """The inline publishers as a publishers file whose lines keep their numbers."""
    if key.start_mark.column == 0 and value.end_mark is not None:
        body = text[key.start_mark.index:value.end_mark.index]
        return "\n" * key.start_mark.line + body + "\n"
    return yaml.safe_dump({"publishers": _construct(value)}, sort_keys=False)


def tree_root(path: Path, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder whose files a test file may name: `root` if given, else the current
    folder when the test file is inside it, else the test file's own folder."""
    if root is not None:
        return Path(root).resolve()
    here = Path.cwd().resolve()
    folder = path.parent.resolve()
    # A test file named through the current folder (sub/x.tptest.yaml) has the current
    # folder's tree, even when a folder on its way is a link elsewhere: the link is then
    # out of the tree (the tree was the link's target, and the file was read).
    written = Path(os.path.abspath(path.parent))
    inside = written.is_relative_to(Path.cwd()) or written.is_relative_to(here)
    return here if inside or folder.is_relative_to(here) else folder


def _load_file(path: Path, providers: Mapping[str, CheckedProvider] | None,
               issuers: Mapping[str, str] | None,
               tree: str | os.PathLike[str] | None = None) -> _TestFile:
    folder = tree_root(path, tree)
    # A link among the test files to a file elsewhere (/etc/passwd, a secret) is not read:
    # its first line would be echoed in the report, as the files a test file names.
    text = read_source(path, PolicyTestError, what="test file", tree=LinkTree(
        (folder,), "the tree of the test files",
        "copy the file into the tree, or give --root a folder holding it"))
    reader = _Reader(path, text, folder)
    root = compose_yaml(text, str(path), PolicyTestError).root
    try:  # every value below is constructed again node by node: refuse bad tags once here
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        raise PolicyTestError([Diagnostic(f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
                                          Span(str(path), line, column, line, column + 1))],
                              text) from None
    if not isinstance(root, yaml.MappingNode):
        reader.error(root, "a test file is a mapping with 'publishers' (or 'policy'), "
                     "'claims' and 'cases'")
        raise reader.fail()
    keys = _mapping(root)
    _unknown_keys(reader, keys, _TOP_KEYS, "a test file")
    if ("publishers" in keys) == ("policy" in keys):
        reader.error(root, "a test file needs exactly one of 'publishers' and 'policy'",
                     "publishers: [...] inline, publishers: FILE.yaml, or policy: FILE.tpp")
    file_issuers = dict(issuers or {})
    if "issuers" in keys:
        value = _construct(keys["issuers"][1])
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            reader.error(keys["issuers"][1], "'issuers' must map issuer URLs to provider names")
        else:
            file_issuers.update(value)
    audience = "pypi"
    if "audience" in keys:
        value = _construct(keys["audience"][1])
        if isinstance(value, str):
            audience = value
        else:
            reader.error(keys["audience"][1], "'audience' must be a string")
    jwks = _jwks(reader, keys["jwks"][1]) if "jwks" in keys else {}
    now: float | None = None
    if "now" in keys:
        value = _construct(keys["now"][1])
        if isinstance(value, int | float) and not isinstance(value, bool):
            now = float(value)
        else:
            reader.error(keys["now"][1], "'now' must be a number of seconds since 1970")
    sets = _claim_sets(reader, keys.get("claims", (None, None))[1])
    cases: list[_Case] = []
    cases_node = keys.get("cases", (None, None))[1]
    if cases_node is None:
        reader.error(root, "missing 'cases'", "cases: [{claims: NAME, allowed: true}, ...]")
    elif not isinstance(cases_node, yaml.SequenceNode) or not cases_node.value:
        reader.error(cases_node, "'cases' must be a non-empty list")
    else:
        for index, node in enumerate(cases_node.value):
            case = _check_case(reader, node, index, sets)
            if case is not None:
                cases.append(case)
    if reader.diagnostics:
        raise reader.fail()
    if "publishers" in keys:
        key, value = keys["publishers"]
        if isinstance(value, yaml.ScalarNode) and isinstance(_construct(value), str):
            inside = reader.inside(value, _construct(value), "publishers file")
            if inside is None:
                raise reader.fail()
            target = inside
            publishers_text = read_source(target, ConfigError)
            publishers_source = str(target)
            label = str(target)
            source: Path | list[Mapping[str, Any]] | None = target
        else:
            publishers_text = _publishers_text(text, key, value)
            publishers_source = str(path)
            label = f"{path}#publishers"
            rows = _construct(value)
            source = rows if isinstance(rows, list) else None
        streamed = _streamed(publishers_text, publishers_source, cases, providers, file_issuers,
                             with_rows=isinstance(source, Path))
        if streamed is not None:
            policy, rules, kept_rows = streamed
            return _TestFile(path, label, policy, cases, audience, jwks, now, source,
                             file_issuers, rules, kept_rows)
        policy = compile_publishers_text(publishers_text, publishers_source,
                                         providers=providers, issuers=file_issuers)
    else:
        key, value = keys["policy"]
        target_name = _construct(value)
        if not isinstance(target_name, str):
            reader.error(value, "'policy' must be the path of a policy file")
            raise reader.fail()
        inside = reader.inside(value, target_name, "policy file")
        if inside is None:
            raise reader.fail()
        target = inside
        policy = load_policy_file(target, providers=providers, issuers=file_issuers)
        label = str(target)
        source = None
    return _TestFile(path, label, policy, cases, audience, jwks, now, source, file_issuers)


def _cases_claims(cases: Iterable[_Case]) -> Iterator[Mapping[str, Any]]:
    """The claims the cases decide on: a token case's as its payload says (a token whose
    payload cannot be read is refused before any publisher is looked at)."""
    for case in cases:
        if case.claims is not None:
            yield case.claims
        elif case.token is not None:
            from tppolicy.token.verify import TokenError, split_token

            try:
                claims = split_token(case.token)[1]
            except TokenError:
                continue
            if isinstance(claims, Mapping):
                yield claims


def _streamed(text: str, source: str, cases: list[_Case],
              providers: Mapping[str, CheckedProvider] | None, issuers: Mapping[str, str], *,
              with_rows: bool) -> tuple[Policy, list[_PublisherRules],
                                        list[tuple[str, dict[str, Any]]] | None] | None:
    """A publishers file read once (`stream_publishers`), holding only what the run needs:
    the policy of the publishers the cases' decisions read, every publisher's rules and
    their possible outcomes (for the coverage), and (`with_rows`) the kept publishers' rows
    with their ids (for the other front). None: read the file whole."""
    from tppolicy.language.providers import load_providers

    providers = load_providers() if providers is None else providers
    try:
        claims = list(_cases_claims(cases))
    except Exception:  # a token no reader expected: the whole file's policy decides on it
        return None
    try:
        keep = claims_selection(claims, providers=providers, issuers=issuers)
    except TppolicyError:  # registered issuers refused: the whole file's policy says so
        return None
    rules: list[_PublisherRules] = []
    rows: list[tuple[str, dict[str, Any]]] = []

    def consume(entry: PublisherEntry, publisher: CheckedPublisher, publisher_id: str) -> bool:
        rules.append(_rules_of(publisher, None))  # bound, judged, and the binding dropped
        if not keep(publisher):
            return False
        if with_rows:
            rows.append((publisher_id, entry.as_row()))
        return True

    policy = stream_publishers(text, source, consume, providers=providers, issuers=issuers)
    if policy is None:
        return None
    return policy, rules, rows if with_rows else None


# ----------------------------------------------------------------------- coverage
_UNKNOWN, _NOT_SEEN, _SEEN = 0, 1, 2  # an outcome: cannot happen, not seen yet, seen
_FALSE, _TRUE = A.Literal(False), A.Literal(True)


class _PublisherRules:
    """One publisher's rules (those not met before under its name) and, for each, whether
    passing and failing were seen: an outcome each (`_UNKNOWN`, `_NOT_SEEN`, `_SEEN`),
    coded as 3 * passing + failing in one byte. Ten thousand publishers' rules take a
    byte each, not a list each."""

    __slots__ = ("names", "policy", "publisher", "states")

    def __init__(self, publisher: str, names: tuple[str, ...], states: bytearray) -> None:
        self.policy = ""
        self.publisher = publisher
        self.names = names
        self.states = states


# The rule names of the publishers seen, one tuple for each list (a provider's publishers
# share it), with whether the names are distinct.
_NAMES: dict[tuple[str, ...], tuple[tuple[str, ...], bool]] = {}


def _shared_names(names: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    known = _NAMES.get(names)
    if known is None:
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        known = _NAMES[names] = (names, len(set(names)) == len(names))
    return known


def _rules_of(publisher: CheckedPublisher,
              folded: Callable[[A.Expr], A.Expr] | None) -> _PublisherRules:
    """Whether each rule of the publisher can pass and can fail. A publisher's bound
    rules are folded already (binding folds them: folding again gives the same); rules a
    policy file writes are folded by `folded`."""
    names: list[str] = []
    states = bytearray()
    fold_own = publisher.own_rules is not None and folded is not None
    literal = A.Literal
    for publisher_rule in publisher.rules:
        can_pass, can_fail = True, False
        for req in publisher_rule.requires:
            value = folded(req.condition) if fold_own and folded is not None else req.condition
            # (a node of another class is never equal to a literal)
            if isinstance(value, literal):
                can_pass = can_pass and value != _FALSE
                can_fail = can_fail or value != _TRUE
            else:
                can_fail = True
        names.append(publisher_rule.name)
        states.append(3 * (_NOT_SEEN if can_pass else _UNKNOWN)
                      + (_NOT_SEEN if can_fail else _UNKNOWN))
    return _PublisherRules(publisher.label, _shared_names(tuple(names))[0], states)


class _Universe:
    """Every (policy, publisher, rule) of the run, in the order first met, with the
    outcomes seen: what `RuleCoverage` reports. A (policy, publisher, rule) met again (a
    publishers file two test files name) keeps its first entry."""

    def __init__(self) -> None:
        self._rules: list[_PublisherRules] = []
        self._index: dict[tuple[str, str], list[_PublisherRules]] = {}

    def add(self, policy: str, rules: _PublisherRules) -> None:
        """A publisher's rules, but those of its name met before."""
        known = self._index.get((policy, rules.publisher))
        if known is None and _shared_names(rules.names)[1]:
            rules.policy = policy
            self._rules.append(rules)
            self._index[(policy, rules.publisher)] = [rules]
            return
        seen = {name for entry in known or () for name in entry.names}
        names: list[str] = []
        states = bytearray()
        for name, state in zip(rules.names, rules.states, strict=True):
            if name not in seen:
                seen.add(name)
                names.append(name)
                states.append(state)
        if names:
            entry = _PublisherRules(rules.publisher, _shared_names(tuple(names))[0], states)
            entry.policy = policy
            self._rules.append(entry)
            self._index[(policy, rules.publisher)] = [*(known or ()), entry]

    def seen(self, policy: str, publisher: str, rule: str, passed: bool) -> None:
        """A case saw this rule pass (or fail)."""
        for entry in self._index.get((policy, publisher), ()):
            if rule in entry.names:
                position = entry.names.index(rule)
                passing, failing = divmod(entry.states[position], 3)
                if passed and passing != _UNKNOWN:
                    passing = _SEEN
                elif not passed and failing != _UNKNOWN:
                    failing = _SEEN
                entry.states[position] = 3 * passing + failing
                return

    def coverage(self) -> Iterator[RuleCoverage]:
        """The rows, in the order first met."""
        for entry in self._rules:
            for name, state in zip(entry.names, entry.states, strict=True):
                passing, failing = divmod(state, 3)
                yield RuleCoverage(entry.policy, entry.publisher, name,
                                   None if passing == _UNKNOWN else passing == _SEEN,
                                   None if failing == _UNKNOWN else failing == _SEEN)


# ----------------------------------------------------------------------- running
def _summary(decision: Decision) -> str:
    if decision.allowed:
        kind = "pending publisher" if decision.pending else "publisher"
        return f"allowed by {kind} {decision.publisher!r}"
    failing = sorted({r.rule for r in decision.failed})
    closest = f", closest publisher {decision.closest!r}" if decision.closest else ""
    return f"denied (failing: {', '.join(failing) or 'nothing'}{closest})"


def _expected(spec: Mapping[str, Any]) -> str:
    if spec["allowed"]:
        text = "allowed"
        if "publisher" in spec:
            kind = "pending publisher" if spec.get("pending") else "publisher"
            text += f" by {kind} {spec['publisher']!r}"
        elif spec.get("pending"):
            text += " by a pending publisher"
        return text
    if "failing" in spec:
        return f"denied (failing: {', '.join(sorted(set(spec['failing']))) or 'nothing'})"
    return "denied"


def _judge(spec: Mapping[str, Any], decision: Decision) -> list[str]:
    problems = []
    failing = sorted({r.rule for r in decision.failed})
    if decision.allowed is not spec["allowed"]:
        reasons = "; ".join(f"{r.rule}: {r.message}" for r in decision.failed)
        problems.append(f"expected {'allowed' if spec['allowed'] else 'denied'}, got "
                        f"{_summary(decision)}" + (f": {reasons}" if reasons else ""))
        return problems
    if decision.allowed:
        if "publisher" in spec and decision.publisher != spec["publisher"]:
            problems.append(f"expected publisher {spec['publisher']!r}, got "
                            f"{decision.publisher!r}")
        if decision.pending is not spec.get("pending", False):
            problems.append(f"expected pending {show(spec.get('pending', False))}, got "
                            f"{show(decision.pending)}")
        if "learned" in spec and dict(decision.learned) != spec["learned"]:
            problems.append(f"expected learned {spec['learned']!r}, got "
                            f"{dict(decision.learned)!r}")
    elif "failing" in spec and failing != sorted(set(spec["failing"])):
        reasons = "; ".join(f"{r.rule}: {r.message}" for r in decision.failed)
        problems.append(f"expected failing rules [{', '.join(sorted(set(spec['failing'])))}], "
                        f"got [{', '.join(failing)}]" + (f": {reasons}" if reasons else ""))
    if "reason_contains" in spec:
        messages = [r.message for r in decision.failed] + list(decision.notes)
        if not any(spec["reason_contains"] in m for m in messages):
            problems.append(f"expected a reason containing {spec['reason_contains']!r}, got: "
                            + (" | ".join(messages) or "no reasons"))
    return problems


def _judge_fix(test: _TestFile, case: _Case, decision: Decision, audience: str) -> list[str]:
    """A denied case's `fix`: one of the fixes `tppolicy check` gives contains it."""
    from tppolicy.tools.explain import decision_fixes

    claims: Mapping[str, Any] | None = case.claims
    if claims is None and case.token is not None:
        from tppolicy.token.verify import TokenError, split_token

        try:
            claims = split_token(case.token)[1]
        except TokenError:
            claims = None
    wanted = case.spec["fix"]
    texts = [fix.text for fix in decision_fixes(
        test.policy, decision, claims or {}, request=case.spec.get("request"),
        audience=audience).values()]
    if any(wanted in text for text in texts):
        return []
    return [f"expected a fix containing {wanted!r}, got: " + (" | ".join(texts) or "no fix")]


def _exercised(decision: Decision) -> Iterator[tuple[str, str, bool]]:
    """(publisher, rule, passed) for every publisher rule this decision ran."""
    publisher = decision.publisher if decision.allowed else decision.closest
    if publisher is None:
        return
    for reason in decision.reasons:
        if reason.rule.startswith("lookup."):
            continue
        yield publisher, reason.rule, reason.passed


def _offline(url: str) -> bytes:
    from tppolicy.token.keys import FetchError

    raise FetchError(f"policy tests never fetch keys ({url}): give the issuer's keys with "
                     "'jwks'")


def _decide_token(test: _TestFile, token: str, audience: str,
                  request: Mapping[str, Any] | None = None) -> Decision:
    """Verify a token fixture offline, at `now` (default: its own iat), and decide."""
    from tppolicy.token.keys import FetchError, KeyCache
    from tppolicy.token.verify import TokenError, Verifier, split_token

    now = test.now
    if now is None:
        try:
            issued = split_token(token)[1].get("iat")
        except TokenError:
            issued = None
        now = float(issued) if isinstance(issued, int | float) else 0.0
    keys = KeyCache(fetch=_offline)
    for issuer, document in test.jwks.items():
        try:
            keys.add_static(issuer, document, f"the JWKS of {issuer}")
        except FetchError as exc:
            return Decision(False, None, None, (), False, (RuleResult(
                "token", False, None, None, f"unusable JWKS for {issuer}: {exc}"),))
    at = now
    verifier = Verifier.for_policy(test.policy, keys=keys, audience=audience,
                                   clock=lambda: at)
    return test.policy.evaluate_token(token, verifier, None, explain=True, request=request)


class _EngineFront:
    """The server's front (`Engine.check_claims`) over the same publishers, one engine per
    audience, to compare its decisions with `Policy.evaluate`'s."""

    def __init__(self, test: _TestFile,
                 providers: Mapping[str, CheckedProvider] | None) -> None:
        self.test = test
        self.providers = providers
        self.engines: dict[str, Any] = {}
        self.problem: str | None = None

    def check(self, claims: Mapping[str, Any], audience: str,
              request: Mapping[str, Any] | None) -> Any:
        from tppolicy.decide.engine import Engine

        engine = self.engines.get(audience)
        if engine is None:
            engine = self._kept(audience)
            if engine is None:
                # A fixed clock: pending publishers never expire in a table.
                engine = Engine(publishers=self.test.publishers, audience=audience,
                                issuers=self.test.issuers, providers=self.providers,
                                clock=lambda: 0.0)
            self.engines[audience] = engine
        return engine.check_claims(claims, request)

    def _kept(self, audience: str) -> Any:
        """An engine of the publishers the policy kept (`_TestFile.rows`), with their
        ids: it decides on the cases' claims as the whole file's engine does. None: no
        rows, or rows it refuses (the whole file's engine says why)."""
        from tppolicy.decide.engine import Engine

        if self.test.rows is None:
            return None
        try:
            engine = Engine(audience=audience, issuers=self.test.issuers,
                            providers=self.providers, clock=lambda: 0.0)
            for publisher_id, row in self.test.rows:
                engine.add_publisher(row, id=publisher_id)
        except TppolicyError:
            return None
        return engine


def _disagreement(decision: Decision, result: Any) -> list[str]:
    """How `Engine.check_claims`'s answer differs from `Policy.evaluate`'s decision: allowed,
    publisher, pending, learned values, the first failing rule (where the engine discloses
    rules: not a near miss it keeps private) and the PyPI error code (when both carry one)."""
    engine_publisher = result.publisher.label if result.publisher is not None else None
    ours = (decision.allowed, decision.publisher, decision.pending)
    theirs = (result.allowed, engine_publisher, result.pending)
    problems = []
    if ours != theirs:
        problems.append(f"the two fronts disagree: Policy.evaluate {_summary(decision)}, "
                        f"Engine.check_claims {'allowed' if result.allowed else 'denied'}"
                        + (f" by {engine_publisher!r}" if engine_publisher else "")
                        + (" (pending)" if result.pending else ""))
        return problems
    if decision.allowed:
        if dict(decision.learned) != dict(result.learned):
            problems.append(f"the two fronts learn differently: Policy.evaluate "
                            f"{dict(decision.learned)!r}, Engine.check_claims "
                            f"{dict(result.learned)!r}")
        return problems
    first = next((r.rule for r in decision.reasons if not r.passed), None)
    engine_first = next((r.rule for r in result.reasons if not r.passed), None)
    if engine_first not in (None, "publisher") and engine_first != first:
        problems.append(f"the two fronts fail a different first rule: Policy.evaluate "
                        f"{first!r}, Engine.check_claims {engine_first!r}")
    code = getattr(decision, "error", None) or getattr(decision, "code", None)
    if isinstance(code, str) and result.error is not None and code != result.error:
        problems.append(f"the two fronts give different codes: Policy.evaluate {code!r}, "
                        f"Engine.check_claims {result.error!r}")
    return problems


def run_files(paths: Iterable[str | os.PathLike[str]], *,
              providers: Mapping[str, CheckedProvider] | None = None,
              issuers: Mapping[str, str] | None = None,
              root: str | os.PathLike[str] | None = None, fronts: bool = True) -> Report:
    """Run every case of every test file. Invalid files are reported in `Report.errors`;
    the other files still run. The files a test file names must be inside `root` (see
    `tree_root`).

    With `fronts` (the default), each claims case of a test file naming publishers is also
    decided by `Engine.check_claims` (the server's front) over the same publishers, and a
    disagreement with `Policy.evaluate` (allowed, publisher, pending, learned values, first
    failing rule, code) fails the case."""
    results: list[CaseResult] = []
    errors: list[TppolicyError] = []
    files: list[str] = []
    universe = _Universe()
    # Whether each condition folds to a constant: rules a policy file writes are folded
    # here, once per condition.
    constant: dict[int, tuple[A.Expr, A.Expr]] = {}

    def folded(condition: A.Expr) -> A.Expr:
        known = constant.get(id(condition))
        if known is None:
            known = constant[id(condition)] = (condition, fold(condition))
        return known[1]

    for entry in paths:
        path = Path(entry)
        files.append(str(path))
        try:
            test = _load_file(path, providers, issuers, root)
        except TppolicyError as exc:
            errors.append(exc)
            continue
        front = _EngineFront(test, providers) if fronts and test.publishers is not None else None
        for rules in (test.rules if test.rules is not None
                      else (_rules_of(p, folded) for p in test.policy.publishers)):
            universe.add(test.policy_label, rules)
        test.rules = None
        for case in test.cases:
            audience = case.spec.get("audience", test.audience)
            if case.token is not None:
                decision = _decide_token(test, case.token, audience, case.spec.get("request"))
            else:
                assert case.claims is not None
                decision = test.policy.evaluate(case.claims, audience=audience, explain=True,
                                                request=case.spec.get("request"))
            problems = _judge(case.spec, decision)
            if "fix" in case.spec and not decision.allowed:
                problems.extend(_judge_fix(test, case, decision, audience))
            if front is not None and case.claims is not None:
                try:
                    engine_result = front.check(case.claims, audience, case.spec.get("request"))
                except TppolicyError as exc:
                    problems.append(f"Engine.check_claims refused what Policy.evaluate "
                                    f"decided: {exc}")
                else:
                    problems.extend(_disagreement(decision, engine_result))
            results.append(CaseResult(str(path), case.line, case.name, not problems,
                                      _expected(case.spec), _summary(decision), tuple(problems),
                                      decision))
            for publisher_label, rule, passed in _exercised(decision):
                universe.seen(test.policy_label, publisher_label, rule, passed)
    coverage = tuple(universe.coverage())
    return Report(tuple(files), tuple(results), coverage, tuple(errors))


# -------------------------------------------------------------- CI report formats
def to_junit_xml(report: Report) -> str:
    """The report as JUnit XML (one testsuite per test file, one testcase per case; an
    invalid test file is a testsuite with one errored testcase), for CI test reports."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="tppolicy test", tests=str(len(report.results)),
                      failures=str(report.failed), errors=str(len(report.errors)))
    by_file: dict[str, list[CaseResult]] = {name: [] for name in report.files}
    for result in report.results:
        by_file.setdefault(result.file, []).append(result)
    # A valid test file has at least one case: the files without results are the invalid
    # ones, in the order their errors were reported.
    invalid = dict(zip([name for name, results in by_file.items() if not results],
                       report.errors, strict=False))
    for name, results in by_file.items():
        problem = invalid.get(name)
        suite = ET.SubElement(root, "testsuite", name=name,
                              tests=str(len(results) + (problem is not None)),
                              failures=str(sum(not r.passed for r in results)),
                              errors=str(int(problem is not None)))
        for result in results:
            case = ET.SubElement(suite, "testcase", name=result.name, classname=name,
                                 file=result.file, line=str(result.line))
            if not result.passed:
                failure = ET.SubElement(case, "failure", type="tppolicy.test",
                                        message=shorten("; ".join(result.problems)))
                failure.text = (f"expected: {result.expected}\nactual:   {result.actual}\n"
                                + "\n".join(result.problems))
        if problem is not None:
            case = ET.SubElement(suite, "testcase", name="the test file is valid",
                                 classname=name, file=name)
            element = ET.SubElement(case, "error", type="tppolicy.invalid",
                                    message=shorten(problem.diagnostics[0].message
                                                    if problem.diagnostics else "invalid"))
            element.text = problem.render()
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
    # A character XML 1.0 cannot carry (a NUL of a test file's excerpt, a lone surrogate)
    # made the whole report unreadable to CI: written as an escape instead.
    return _NOT_XML.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100
                        else f"\\u{ord(m[0]):04x}", text)


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def _annotation_value(text: str, *, property_: bool = False) -> str:
    """GitHub workflow-command escaping: '%', CR and LF always; ':' and ',' in properties.
    Other control characters (an escape colours the log) as %XX too, shown as written."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    text = _CONTROLS.sub(lambda m: f"%{ord(m.group(0)):02X}", text)
    if property_:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def github_annotations(report: Report) -> list[str]:
    """GitHub Actions workflow commands (`::error file=...,line=...::message`): one for each
    failing case and for each problem of an invalid test file, shown on the pull request."""
    lines: list[str] = []

    def command(file: str, line: int, title: str, message: str) -> str:
        where = f"file={_annotation_value(file, property_=True)}"
        if line > 0:
            where += f",line={line}"
        return (f"::error {where},title={_annotation_value(title, property_=True)}::"
                f"{_annotation_value(shorten(message))}")

    for result in report.results:
        if not result.passed:
            lines.append(command(result.file, result.line, f"tppolicy test: {result.name}",
                                 f"{'; '.join(result.problems)}\nexpected: {result.expected}"
                                 f"\nactual: {result.actual}"))
    for error in report.errors:
        for d in error.diagnostics:
            source = d.span.source if d.span is not None else ""
            line = d.span.line if d.span is not None else 0
            message = d.message + (f" (hint: {d.hint})" if d.hint else "")
            lines.append(command(source, line, "tppolicy test: invalid test file", message))
    return lines
