"""Lint: what a reviewer of a publishers file or a policy file needs to be told.

Every finding has a stable code (``TPP001``...), a level, a location (file, line, column:
from the YAML node or the policy file's syntax tree), a message and a fix. The input must be
valid first: an invalid file raises the same `TppolicyError` as `tppolicy check` would.

The checks work on publishers whatever file they come from (a YAML publishers file, or
``publisher`` blocks of a policy file), plus the rules of ``provider`` blocks in policy files.
`CODES` documents every code; ``docs/tools.md`` holds the same table.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from tppolicy.decide.load import compile_publishers_text
from tppolicy.decide.names import canonicalize_name, ultranormalize_name
from tppolicy.decide.policy import Policy
from tppolicy.errors import ConfigError, Diagnostic, PolicyCheckError, Span, TppolicyError
from tppolicy.language import ast as A
from tppolicy.language.bind import bind_expr, bind_rules, fold, guard_of
from tppolicy.language.check import (
    CheckedPolicy,
    CheckedProvider,
    CheckedPublisher,
    PublisherStream,
    check_policy,
)
from tppolicy.language.interpret import Interpreter
from tppolicy.language.ops import EvalError
from tppolicy.language.providers import POLICY_SUFFIX, load_providers
from tppolicy.language.texts import advice_for
from tppolicy.readers.source import (
    decode_source,
    open_source,
    outside_link,
    read_opened,
    read_source,
)
from tppolicy.text import char_name, invisible, lookalike

if TYPE_CHECKING:  # (YAML's modules: imported where a publishers file is read)
    from tppolicy.decide.publishers import PublisherEntry
    from tppolicy.decide.recognize import CompiledReading
    from tppolicy.readers.yaml import YamlDocument

__all__ = ["CODES", "Finding", "LintCode", "LintConfig", "find_config", "lint_file",
           "lint_policy_text", "lint_publishers_text", "load_config", "pep503", "select_findings",
           "suppressions", "to_sarif", "ultranormalize", "unknown_selectors"]

LEVELS = ("error", "warning", "note")  # `note`s are shown but do not fail a lint run
# What lint says of one rule of a publisher (`_verdict`): kind, rule name, message, span.
_Verdict: TypeAlias = "tuple[str, str, str | None, Span | None]"
# A provider rule as lint decides it (`_Lint._rule_plan`).
# `_Lint.run`'s first_projects
_FirstProjects: TypeAlias = "Callable[[set[str]], dict[str, tuple[str, str]]]"
# `_Lint._rule_groups`: the plan, the shared rules' fields, their positions, the other
# rules' positions, the values seen per shared position
_Groups: TypeAlias = ("tuple[list[_Plan], tuple[str, ...], tuple[int, ...], tuple[int, ...], "
                      "dict[int, set[tuple[Any, ...]]]]")
_Plan: TypeAlias = ("tuple[A.Rule, tuple[A.Rule, ...], tuple[A.Expr, ...], tuple[str, ...], "
                    "tuple[str, ...]]")


@dataclass(frozen=True, slots=True)
class LintCode:
    """One kind of finding: its stable code, a short name, its level and what to do."""

    code: str
    name: str
    level: str
    summary: str
    fix: str


CODES: dict[str, LintCode] = {c.code: c for c in (
    LintCode("TPP001", "no-environment", "warning",
             "a publisher accepts any environment (its provider's `workflows` block names the "
             "environment: GitHub, GitLab; PyPI: an environment is \"strongly recommended\")",
             "name the deployment environment in the publisher and in the publishing job "
             "(`environment: pypi`), and protect it (required reviewers, deployment tags)"),
    LintCode("TPP002", "workflow-path", "warning",
             "a workflow is given as a path, or a path the CI never reports",
             "give what the token carries: a GitHub workflow's file name (release.yml); a "
             "GitLab pipeline file's path from the repository root (.gitlab-ci.yml, "
             "ci/release.yml) with '/' separators"),
    LintCode("TPP003", "extension-lookalike", "warning",
             "two publishers differ only in the workflow file's extension (.yml / .yaml)",
             "keep the publisher whose file exists in the repository and remove the other"),
    LintCode("TPP004", "duplicate-project", "warning",
             "a project is listed twice: in one publisher, or in two publishers of the same "
             "identity",
             "list each project once; merge publishers of the same identity"),
    LintCode("TPP005", "whitespace", "warning",
             "a value has surrounding whitespace, an invisible character, or a space in a "
             "workflow file name",
             "remove the whitespace: tokens never carry it, so the value never matches"),
    LintCode("TPP006", "confusable-character", "warning",
             "a value holds a non-ASCII character that looks like an ASCII one",
             "retype the value in ASCII"),
    LintCode("TPP007", "case-variants", "warning",
             "publishers spell the same identity field in different cases",
             "use the spelling the CI uses (the token's claim): PyPI compares it exactly"),
    LintCode("TPP008", "mixed-case-identity", "note",
             "an owner, repository, namespace or project name has capital letters; PyPI "
             "compares it exactly",
             "check that it is spelled exactly as GitHub or GitLab spells it (as in the "
             "token's claims)"),
    LintCode("TPP009", "pending-name-collision", "warning",
             "a pending publisher's project collides with another project or pending project "
             "under PyPI's normalization (PEP 503, or ultranormalization: case, '.', '_', '-', "
             "l/i=1, o=0)",
             "use a normal publisher for an existing project; give a new project a name that "
             "no other project is too similar to"),
    LintCode("TPP010", "never-true", "error",
             "a rule's `require` can never be true: the publisher can never be used",
             "fix the rule or the publisher's fields"),
    LintCode("TPP011", "always-true", "warning",
             "a rule always passes although its provider's rule is not optional",
             "restore the provider's rule (compile the publishers file again)"),
    LintCode("TPP012", "missing-rule", "warning",
             "a publisher block leaves out a rule its provider would check",
             "restore the provider's rule (compile the publishers file again)"),
    LintCode("TPP013", "rule-differs-from-provider", "note",
             "a publisher block's rule differs from its provider's rule for its fields",
             "make sure the hand-written rule is intended, or compile the publishers file "
             "again"),
    LintCode("TPP014", "constraint-advice", "warning",
             "a publisher sets an optional constraint in a way its provider file advises "
             "against (the provider's `advise` items: the message says the risk)",
             "tighten the field as the message says, or suppress the finding where the "
             "setting is intended"),
)}


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding."""

    code: str
    message: str
    span: Span
    fix: str
    publisher: str | None = None

    @property
    def level(self) -> str:
        return CODES[self.code].level

    @property
    def name(self) -> str:
        return CODES[self.code].name

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "level": self.level,
                "file": self.span.source,
                "line": self.span.line, "column": self.span.column,
                "end_line": self.span.end_line, "end_column": self.span.end_column,
                "publisher": self.publisher, "message": self.message, "fix": self.fix}


# ------------------------------------------------------------------ normalization
pep503 = canonicalize_name  # PEP 503: the name under which an index stores a project
ultranormalize = ultranormalize_name  # PyPI's: names too similar to be told apart are equal


# ------------------------------------------------------------------------ model
_NO_SPANS: Mapping[str, Span] = MappingProxyType({})
@dataclass
class _Pub:
    """A publisher as lint sees it, wherever it was written."""

    checked: CheckedPublisher
    # the head of the entry or block, or what finds it when a finding first asks (a
    # stream's publishers: most are never asked)
    head: Span | Callable[[], Span]
    field_spans: Mapping[str, Span] = field(default_factory=dict)
    project_spans: Sequence[Span] = field(default_factory=list)
    pending_span: Span | None = None
    explicit_rules: bool = False  # a policy file's publisher block with its own rules
    rule_spans: Mapping[str, Span] = field(default_factory=lambda: _NO_SPANS)  # shared
    literals: Sequence[A.Literal] = ()  # string literals in its rules
    # the checked publisher's, read by every check (kept here: not looked up each time)
    label: str = field(init=False)
    provider: CheckedProvider = field(init=False)
    fields: Mapping[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        checked = self.checked
        self.label = checked.label
        self.provider = checked.provider
        self.fields = checked.fields

    @property
    def span(self) -> Span:
        """The head of the entry or block."""
        head = self.head
        if not isinstance(head, Span):
            head = self.head = head()
        return head

    def at(self, name: str) -> Span:
        return self.field_spans.get(name, self.span)


class _Lint:
    def __init__(self, source: str, lines: Sequence[str],
                 templates: Mapping[str, CheckedProvider]) -> None:
        self.source = source
        self.lines = lines
        self.templates = templates
        self.findings: list[Finding] = []
        # per provider rule (kept with it): the fields each require reads, in order
        self.rule_fields: dict[int, tuple[A.Rule, list[str]]] = {}
        # per provider (kept with it): `_rule_plan`; per (rule, the values of the fields
        # that can change its verdict): the rule and its verdict
        self.plans: dict[int, tuple[CheckedProvider, list[_Plan]]] = {}
        self.verdicts: dict[Any, tuple[A.Rule, _Verdict | None]] = {}
        # per (rule plan, the values of the fields its shared rules read): their verdicts
        self.raw_verdicts: dict[Any, tuple[_Groups, tuple[_Verdict | None, ...],
                                           tuple[tuple[int, _Verdict], ...]]] = {}
        self.rule_groups: dict[int, tuple[CheckedProvider, _Groups]] = {}
        # `_control_value` per node: the fields it reads; per node and their values: it
        self.control_fields: dict[int, tuple[A.Expr, tuple[str, ...],
                                             tuple[str, Any, bool] | None]] = {}
        self.control_values: dict[Any, tuple[A.Expr, A.Expr]] = {}
        # per provider's advice (kept with it): the fields its conditions read (None: an
        # item without a condition); per (advice, their values) giving no advice: it
        self.advice_fields: dict[int, tuple[Any, tuple[str, ...] | None]] = {}
        self.advice_none: dict[Any, Any] = {}
        # per provider (kept with it): its `workflows` environment item, the fields that
        # item reads, the defaults, and whether it is empty with every field at default
        self.environments: dict[int, tuple[CheckedProvider, A.Expr | None, tuple[str, ...],
                                           dict[str, Any], bool]] = {}
        self.environment_values: dict[Any, tuple[CheckedProvider, Any]] = {}
        # per provider (kept with it): `_workflow_plan`; per (value, file_only,
        # from_root): `_workflow_problem`'s answer, when it does not read the project
        self.workflow_plans: dict[int, tuple[CheckedProvider,
                                             tuple[tuple[str, bool, bool], ...]]] = {}
        self.workflow_problems: dict[tuple[str, bool, bool], tuple[str, str]] = {}
        self.defaults: dict[int, tuple[CheckedProvider, dict[str, Any]]] = {}  # `_defaults`
        # per provider (kept with it): its `exact_case` fields and reasons
        self.exact_cases: dict[int, tuple[CheckedProvider, tuple[tuple[str, str], ...]]] = {}

    def add(self, code: str, span: Span, message: str, fix: str | None = None,
            publisher: str | None = None) -> None:
        self.findings.append(Finding(code, message, span, fix or CODES[code].fix, publisher))

    def run(self, pubs: Iterable[_Pub], first_projects: _FirstProjects | None = None,
            redo: Callable[[_Pub], _Pub] | None = None) -> None:
        """Lint publishers, one at a time: each is checked, then only a compact summary of
        it is kept for the checks across publishers (`_Across`). `first_projects(names)`:
        for each ultranormalized name, the first normal publisher's project of that name
        and the publisher's label (by default from the publishers seen; a stream's reader
        reads the file again). `redo(pub)`: for a publisher with findings of its own, the
        publisher as the whole read sees it, linted again instead (a compiled policy's
        block recognized without the parser: its findings are the parser's)."""
        seen: list[_Pub] = []
        across = _Across(self)
        for pub in pubs:
            before = len(self.findings)
            self.one(pub)
            if redo is not None and len(self.findings) > before:
                del self.findings[before:]
                pub = redo(pub)
                self.one(pub)
            across.add(pub)
            if first_projects is None:
                seen.append(pub)
        across.finish(first_projects or (lambda names: _first_projects(seen, names)))

    def one(self, pub: _Pub) -> None:
        """The checks of one publisher alone."""
        self.no_environment(pub)
        self.workflow_path(pub)
        self.characters(pub)
        self.mixed_case(pub)
        self.rules(pub)
        self.advice(pub)

    # ----------------------------------------------------------------- TPP014
    def advice(self, pub: _Pub) -> None:
        """The provider file's `advise` items that hold for the publisher's fields."""
        provider = pub.provider
        if not provider.advice:
            template = self.templates.get(provider.name)
            if template is None or not set(pub.fields) <= set(template.fields):
                return
            provider = template
        defaults = self._defaults(provider)
        fields = pub.fields
        # Whether any item's condition holds depends on the fields the conditions read
        # only (publishers share them: most leave these constraints at their defaults).
        known = self.advice_fields.get(id(provider.advice))
        if known is None or known[0] is not provider.advice:
            names: set[str] | None = set()
            for item in provider.advice:
                if item.condition is None or names is None:
                    names = None
                else:
                    names |= A.fields_read(item.condition)
            known = self.advice_fields[id(provider.advice)] = (
                provider.advice, tuple(sorted(names)) if names is not None else None)
        key: Any = None
        if known[1] is not None:
            # the values of {**defaults, **fields}, without making it
            key = (id(provider.advice), tuple([
                fields[n] if n in fields else defaults.get(n, _ABSENT) for n in known[1]]))
            if self.advice_none.get(key) is provider.advice:
                return
        found = advice_for(provider.advice, {**defaults, **fields})
        for name, text in found:
            self.add("TPP014", pub.at(name), f"'{pub.label}', {name}: {text}",
                     publisher=pub.label)
        if key is not None and not found:
            if len(self.advice_none) >= 4096:  # bounded
                self.advice_none.clear()
            self.advice_none[key] = provider.advice

    def _defaults(self, provider: CheckedProvider) -> dict[str, Any]:
        """The provider's fields' defaults (kept with it)."""
        known = self.defaults.get(id(provider))
        if known is None or known[0] is not provider:
            known = self.defaults[id(provider)] = (provider, {
                name: decl.default.value for name, decl in provider.fields.items()
                if decl.default is not None})
        return known[1]

    # ----------------------------------------------------------------- TPP001
    def no_environment(self, pub: _Pub) -> None:
        """The environment is the provider file's: its `workflows` block's `environment`
        item, and the claims its rules compare with the fields that item reads."""
        provider = pub.provider
        known = self.environments.get(id(provider))
        if known is None or known[0] is not provider:
            item = provider.workflow.get("environment")
            read_ = A.fields_read(item) if item is not None else set()
            defaults_ = {name: decl.default.value for name, decl in provider.fields.items()
                         if decl.default is not None}
            known = self.environments[id(provider)] = (
                provider, item, tuple(sorted(read_)), defaults_,
                item is not None and bool(read_) and read_ <= defaults_.keys()
                and provider.workflow_values(defaults_)["environment"] == "")
        _, environment, read, defaults, optional = known
        # Only where a publisher may leave it out: empty with its fields at their defaults.
        if environment is None or not optional:
            return
        if pub.explicit_rules:
            source = provider if provider.rules else self.templates.get(provider.name)
            claims = {name for rule in (source.rules if source is not None else ())
                      for req in rule.requires if A.fields_read(req.condition) & set(read)
                      for name in A.claims_read(req.condition)}
            reads = {name for rule in pub.checked.rules for req in rule.requires
                     for name in A.claims_read(req.condition)}
            if not claims or claims & reads:
                return
            message = (f"{provider.name} publisher '{pub.label}' accepts any environment: "
                       f"none of its rules reads the {' or '.join(sorted(claims))} claim, so "
                       "any job of the workflow may publish")
        elif self._environment(provider, read, defaults, pub.fields) == "":
            message = (f"{provider.name} publisher '{pub.label}' accepts any environment: "
                       "any job of the workflow may publish, without the environment's "
                       "protection rules")
        else:
            return
        self.add("TPP001", pub.at(read[0]), message, publisher=pub.label)

    def _environment(self, provider: CheckedProvider, read: tuple[str, ...],
                     defaults: Mapping[str, Any], fields: Mapping[str, Any]) -> Any:
        """The `workflows` block's environment for the fields (with `defaults` for those
        left out), kept per the values of the fields its item reads (`read`, sorted)."""
        key = (id(provider), tuple([fields[name] if name in fields
                                    else defaults.get(name, _ABSENT) for name in read]))
        known = self.environment_values.get(key)
        if known is None or known[0] is not provider:
            known = (provider, provider.workflow_values({**defaults, **fields})["environment"])
            if len(self.environment_values) >= 4096:  # bounded
                self.environment_values.clear()
            self.environment_values[key] = known
        return known[1]

    # ----------------------------------------------------------------- TPP002
    def workflow_path(self, pub: _Pub) -> None:
        """The fields naming workflow files are the provider file's: its `workflows`
        block's `file`, `caller` and `reusable` items (a GitHub Actions `file` is a file
        name; the others are paths)."""
        provider = pub.provider
        known = self.workflow_plans.get(id(provider))
        if known is None or known[0] is not provider:
            known = self.workflow_plans[id(provider)] = (provider, self._workflow_plan(provider))
        fields = pub.fields
        for name, file_only, from_root in known[1]:
            value = fields.get(name)
            if not isinstance(value, str) or not value:
                continue
            # What is wrong with a value is kept per value, unless it depends on the
            # project's name (a GitLab path may start with it): that is asked each time.
            memo = (value, file_only, from_root)
            found = self.workflow_problems.get(memo)
            if found is None:
                asked: list[bool] = []
                project: Callable[[], str | None] = _no_project
                if from_root:
                    def project(provider: CheckedProvider = provider, pub: _Pub = pub,
                                asked: list[bool] = asked) -> str | None:
                        asked.append(True)
                        return _repository(provider, {**self._defaults(provider),
                                                      **pub.fields}).rsplit("/", 1)[-1] or None
                found = self._workflow_problem(value, file_only, project)
                if not asked:
                    if len(self.workflow_problems) >= 4096:  # bounded
                        self.workflow_problems.clear()
                    self.workflow_problems[memo] = found
            problem, fix = found
            if problem:
                self.add("TPP002", pub.at(name), f"{name} {value!r}: {problem}", fix,
                         publisher=pub.label)

    @staticmethod
    def _workflow_plan(provider: CheckedProvider) -> tuple[tuple[str, bool, bool], ...]:
        """Per `workflows` item naming a workflow file (`file`, `caller`, `reusable`)
        that reads one field: the field, whether it is a file name only (a GitHub
        Actions `file`), and whether it is a path from the repository's root that may
        start with the project's name (a GitLab CI `file`)."""
        if provider.workflows is None:
            return ()
        plan = []
        for item in ("file", "caller", "reusable"):
            name = provider.workflow_field(item)
            if name is not None:
                plan.append((name, item == "file" and provider.workflows == "github_actions",
                             item == "file" and provider.workflows == "gitlab_ci"))
        return tuple(plan)

    def _workflow_problem(self, value: str, file_only: bool,
                          project_of: Callable[[], str | None]) -> tuple[str, str]:
        """What is wrong with a workflow's `value`, and the fix ("" and "" if nothing);
        `project_of()`: the project's name (a GitLab path may start with it)."""
        if file_only and "%" not in value and "\\" not in value and "/" not in value \
                and not value.lower().startswith((".github", "workflows")):
            return "", ""  # a file name, as the token carries it (the common case)
        base = re.split(r"[\\/]", value)[-1]
        lowered = value.lower()
        if "%2f" in lowered or "%5c" in lowered:
            return ("holds an encoded path separator, which the token never does",
                    "write the path without URL encoding")
        if "/" not in value and "\\" not in value and lowered.startswith(
                (".github", "workflows")) and file_only:
            return ("looks like a piece of the path .github/workflows/ glued to the file name",
                    f"give only the file name as it is in .github/workflows/, e.g. {base!r} "
                    "without the directory")
        if "\\" in value:
            if file_only:
                return ("is a Windows path: the token carries the file name only",
                        f"write only the file name: {base}")
            return ("uses '\\' as separator: the token's path uses '/'",
                    f"write {value.replace(chr(92), '/')!r}")
        if file_only:
            return "", ""
        segments = value.split("/")
        if lowered.startswith(".github/"):
            return ("is a GitHub Actions workflow: a GitLab pipeline runs .gitlab-ci.yml or the "
                    "CI/CD configuration file set in the project's settings",
                    "give the GitLab pipeline file (e.g. .gitlab-ci.yml), or use a github "
                    "publisher for this workflow")
        if any(s in (".", "..") for s in segments):
            clean = "/".join(s for s in segments if s not in (".", ".."))
            return ("has '.' or '..' segments, which the token's path never has",
                    f"write the path from the repository root, e.g. {clean!r}")
        if len(segments) > 1 and (project := project_of()) is not None \
                and segments[0].lower() == project.lower():
            rest = "/".join(segments[1:])
            return (f"starts with the project's name {segments[0]!r}: the path is relative to "
                    "the repository root", f"write {rest!r}")
        return "", ""

    # -------------------------------------------------------- TPP005, TPP006
    def characters(self, pub: _Pub) -> None:
        # A value of printable ASCII without surrounding spaces (and without a space, in
        # a workflow's name) has nothing for either check: its span is not even asked.
        # All of a publisher's values at once first: joined by "|", they are printable
        # ASCII without a space next to a "|" or at an end only if each value is so.
        strings = [v for v in pub.fields.values() if isinstance(v, str)]
        joined = "|".join(strings)
        if joined.isascii() and joined.isprintable() and " |" not in joined \
                and "| " not in joined and joined == joined.strip() and not pub.literals \
                and (" " not in joined or not any(
                    "workflow" in name and isinstance(value, str) and " " in value
                    for name, value in pub.fields.items())):
            return
        values: list[tuple[str, str, Span]] = [
            (name, value, pub.at(name)) for name, value in pub.fields.items()
            if isinstance(value, str) and not (
                value.isascii() and value.isprintable() and value == value.strip()
                and not ("workflow" in name and " " in value))]
        values += [("a rule's literal", lit.value, lit.span) for lit in pub.literals
                   if isinstance(lit.value, str)]
        for name, value, span in values:
            self._whitespace(pub, name, value, span)
            self._confusable(pub, name, value, span)

    def _whitespace(self, pub: _Pub, name: str, value: str, span: Span) -> None:
        where = name if name.startswith("a ") else f"{name}"
        # printable ASCII holds no invisible character (a space is not one)
        hidden = [] if value.isascii() and value.isprintable() else [
            c for c in value if invisible(c)]
        if value != value.strip():
            self.add("TPP005", span, f"{where} {value!r} has surrounding whitespace",
                     f"write {value.strip()!r}", publisher=pub.label)
        elif hidden:
            chars = ", ".join(dict.fromkeys(char_name(c) for c in hidden))
            clean = "".join(c for c in value if not invisible(c))
            self.add("TPP005", span, f"{where} {value!r} holds invisible characters: {chars}",
                     f"write {clean!r}", publisher=pub.label)
        elif "workflow" in name and " " in value:
            self.add("TPP005", span, f"{where} {value!r} has a space in it: workflow file "
                     "names rarely do", "check the file's name in the repository",
                     publisher=pub.label)

    def _confusable(self, pub: _Pub, name: str, value: str, span: Span) -> None:
        if value.isascii():
            return
        found = [(c, lookalike(c)) for c in dict.fromkeys(value) if not c.isascii()]
        suspects = [(c, ascii_) for c, ascii_ in found if ascii_ is not None]
        if not suspects:
            return
        chars = ", ".join(f"{char_name(c)} (looks like {a!r})" for c, a in suspects)
        fixed = "".join(lookalike(c) or c if not c.isascii() else c for c in value)
        self.add("TPP006", span, f"{name} {value!r} holds characters that look like ASCII: "
                 f"{chars}", f"retype it in ASCII: {fixed!r}", publisher=pub.label)

    # ----------------------------------------------------------------- TPP008
    def mixed_case(self, pub: _Pub) -> None:
        """Fields the provider file declares `exact_case`: the CI spells them in one case
        (its own) and the rules compare them exactly."""
        provider = pub.provider
        known = self.exact_cases.get(id(provider))
        if known is None or known[0] is not provider:
            known = self.exact_cases[id(provider)] = (provider,
                                                      tuple(provider.exact_case.items()))
        fields = pub.fields
        for name, reason in known[1]:
            value = fields.get(name)
            if isinstance(value, str) and value != value.lower():
                self.add("TPP008", pub.at(name),
                         f"{name} {value!r} has capital letters: {reason}",
                         publisher=pub.label)

    # --------------------------------------------------- TPP010 .. TPP013
    def rules(self, pub: _Pub) -> None:
        if self._shared_rules(pub):
            self.rule_verdicts(pub)
            return
        template = self._template_rules(pub)
        own = {rule.name: rule for rule in pub.checked.rules}
        # Rules bound from the provider's are folded already (binding folds): fold only a
        # publisher's own.
        bound = pub.checked.own_rules is None
        for rule in pub.checked.rules:
            span = pub.rule_spans.get(rule.name) or self._rule_span(pub, rule, template)
            conditions = [req.condition if bound else fold(req.condition)
                          for req in rule.requires]
            never = [req for req, condition in zip(rule.requires, conditions, strict=True)
                     if isinstance(condition, A.Literal) and condition == A.Literal(False)]
            if never:
                req = never[0]
                where = req.span if req.span.source == self.source and req.span.line else span
                self.add("TPP010", where, f"rule '{rule.name}' of '{pub.label}' can never pass"
                         + (f" ({req.message})" if req.message else "")
                         + ": no token can use this publisher", publisher=pub.label)
                continue
            if _always_true(rule):
                expected = template.get(rule.name) if template is not None else None
                if expected is not None and not _always_true(expected):
                    self.add("TPP011", span, f"rule '{rule.name}' of '{pub.label}' always "
                             f"passes; the {pub.provider.name} provider's rule would check "
                             f"{_describe_rule(expected)}", publisher=pub.label)
                elif not self._optional(pub, rule.name):
                    self.add("TPP011", span, f"rule '{rule.name}' of '{pub.label}' always "
                             "passes: it checks nothing of the token", publisher=pub.label)
                continue
            if pub.explicit_rules and template is not None:
                expected = template.get(rule.name)
                if expected is not None and expected != rule:
                    self.add("TPP013", span, f"rule '{rule.name}' of '{pub.label}' differs from "
                             f"the {pub.provider.name} provider's rule for its fields, which "
                             f"checks {_describe_rule(expected)}", publisher=pub.label)
        if pub.explicit_rules and template is not None:
            for name, expected in template.items():
                if name not in own and not _always_true(expected):
                    self.add("TPP012", pub.span, f"publisher '{pub.label}' has no rule "
                             f"'{name}'; its {pub.provider.name} provider would check "
                             f"{_describe_rule(expected)}", publisher=pub.label)

    def _shared_rules(self, pub: _Pub) -> bool:
        """Are the publisher's rules its provider's, bound to its fields (a publishers
        file's entry, or a policy file's publisher block without rules)?"""
        provider = pub.provider
        return (not pub.explicit_rules and pub.checked.own_rules is None and bool(provider.rules)
                and pub.fields.keys() >= provider.fields.keys())

    def rule_verdicts(self, pub: _Pub) -> None:
        """TPP010 and TPP011 for a publisher whose rules are its provider's: each rule's
        verdict is decided once per distinct values of what can change it (`_controls`),
        not once per publisher: binding every publisher's rules was most of a large
        file's lint time. The rules reading only fields with defaults (constraints most
        publishers leave alone) are looked up together, by those fields' values."""
        values = pub.fields
        provider = pub.provider
        group = self.rule_groups.get(id(provider))
        groups = group[1] if group is not None and group[0] is provider \
            else self._rule_groups(provider)
        plan, shared_names, shared, solo, distinct = groups
        raw = (id(groups), tuple([values[name] for name in shared_names]))  # all are there
        known = self.raw_verdicts.get(raw)
        if known is None or known[0] is not groups:
            verdicts = tuple([self._rule_verdict(plan[i], values) for i in shared])
            known = (groups, verdicts, tuple([
                (i, verdict) for i, verdict in zip(shared, verdicts, strict=True)
                if verdict is not None]))
            if len(self.raw_verdicts) >= 1024:  # bounded
                self.raw_verdicts.clear()
            self.raw_verdicts[raw] = known
            # A rule whose fields take many values (a field most publishers set apart,
            # such as google's sub) would make every look-up miss: it is then looked up
            # alone, after the first 64 values of its fields.
            for i in shared:
                seen = distinct[i]
                seen.add(tuple([values[name] for name in plan[i][4]]))
                if len(seen) > 64:
                    self._solo(provider, i)
        found = known[2]
        for i in solo:
            verdict = self._rule_verdict(plan[i], values)
            if verdict is not None:
                found = (*found, (i, verdict))
        if not found:
            return
        found = tuple(sorted(found, key=lambda item: item[0]))  # in the rules' order
        for i, (kind, name, message, where) in found:
            rule = plan[i][0]
            if kind == "never":
                at = where if where is not None and where.source == self.source and where.line \
                    else self._rule_span(pub, rule, None)
                self.add("TPP010", at,
                         f"rule '{name}' of '{pub.label}' can never pass"
                         + (f" ({message})" if message else "")
                         + ": no token can use this publisher", publisher=pub.label)
            elif not self._optional(pub, name):
                self.add("TPP011", self._rule_span(pub, rule, None), f"rule '{name}' of "
                         f"'{pub.label}' always passes: it checks nothing of the token",
                         publisher=pub.label)

    def _rule_verdict(self, step: _Plan, values: Mapping[str, Any]) -> _Verdict | None:
        """`_verdict` of one rule of a `_rule_plan` bound to these values, kept per the
        values of its guards' fields and what its controls fold to."""
        rule, single, controls, guards, _ = step
        key: Any = (id(rule), tuple([values.get(name, _ABSENT) for name in guards]),
                    tuple([self._control_key(node, values) for node in controls]))
        try:
            known = self.verdicts.get(key)
        except TypeError:  # pragma: no cover - an unfolded value not hashable
            known = key = None
        if known is None or known[0] is not rule:
            known = (rule, _verdict(bind_rules(single, values)))
            if key is not None:
                if len(self.verdicts) >= 4096:  # bounded
                    self.verdicts.clear()
                self.verdicts[key] = known
        return known[1]

    def _rule_groups(self, provider: CheckedProvider) -> _Groups:
        """The provider's `_rule_plan`; the fields read by the rules looked up together
        (at first those reading only fields with defaults); the positions of those rules
        in the plan, and of the others; per position, the values its fields were seen
        with (while looked up together)."""
        known = self.rule_groups.get(id(provider))
        if known is None or known[0] is not provider:
            plan = self._rule_plan(provider)
            defaulted = {name for name, decl in provider.fields.items()
                         if decl.default is not None}
            shared = tuple(i for i, step in enumerate(plan) if set(step[4]) <= defaulted)
            known = self.rule_groups[id(provider)] = (
                provider, self._groups(plan, shared, {i: set() for i in shared}))
        return known[1]

    def _solo(self, provider: CheckedProvider, position: int) -> None:
        """Look the rule at `position` of the provider's plan up alone from now on."""
        plan, _, shared, _, distinct = self.rule_groups[id(provider)][1]
        shared = tuple(i for i in shared if i != position)
        self.rule_groups[id(provider)] = (provider, self._groups(
            plan, shared, {i: seen for i, seen in distinct.items() if i != position}))

    @staticmethod
    def _groups(plan: list[_Plan], shared: tuple[int, ...],
                distinct: dict[int, set[tuple[Any, ...]]]) -> _Groups:
        names = tuple(sorted({name for i in shared for name in plan[i][4]}))
        solo = tuple(i for i in range(len(plan)) if i not in shared)
        return (plan, names, shared, solo, distinct)

    def _control_key(self, node: A.Expr, values: Mapping[str, Any]) -> Any:
        """What a control (`_controls`) folds to once bound to `values`: (type, value) of
        a literal, else the bound expression. `bind_expr(node, values)` as far as its
        value goes, without binding an operand that a short circuit leaves out (as
        binding folds it); kept per node and the values of the fields it reads (a short
        circuit's operands each on their own: most publishers share the
        fields a left operand reads, e.g. `publisher.reusable_workflow == ""`, and then
        the right one, reading their distinct names, is never bound)."""
        value = self._control_value(node, values)
        if isinstance(value, A.Literal):
            return (type(value.value), value.value)
        return value  # left unfolded (it fails at run time): compared whole

    def _control_value(self, node: A.Expr, values: Mapping[str, Any]) -> A.Expr:
        """The bound value of `_control_key`, kept as it says."""
        if isinstance(node, (A.Or, A.And)):
            left = self._control_value(node.left, values)
            if isinstance(left, A.Literal) and left.value is isinstance(node, A.Or):
                return left  # `true or ...`, `false and ...`
        elif isinstance(node, A.Conditional):
            condition = self._control_value(node.condition, values)
            if isinstance(condition, A.Literal) and isinstance(condition.value, bool):
                return self._control_value(
                    node.then if condition.value else node.otherwise, values)
        read = self.control_fields.get(id(node))
        if read is None or read[0] is not node:
            read = self.control_fields[id(node)] = (
                node, tuple(sorted(A.fields_read(node))), _field_test(node))
        test = read[2]
        if test is not None:  # `publisher.NAME == "..."`: what binding folds it to
            value = values.get(test[0], _ABSENT)
            if value.__class__ is test[1].__class__:
                return _TRUE if (value == test[1]) is not test[2] else _FALSE
        try:
            key: Any = (id(node), tuple([(type(v), v) for v in
                                         [values.get(name, _ABSENT) for name in read[1]]]))
            known = self.control_values.get(key)
        except TypeError:  # pragma: no cover - field values are str, int or bool
            return bind_expr(node, values)
        if known is None or known[0] is not node:
            if len(self.control_values) >= 4096:  # bounded
                self.control_values.clear()
            known = self.control_values[key] = (node, bind_expr(node, values))
        return known[1]

    def _rule_plan(self, provider: CheckedProvider) -> list[_Plan]:
        """Per rule of the provider: the rule, itself as a tuple (what `bind_rules`
        takes), the expressions whose values can change its verdict (`_controls`), and
        for an optional rule the fields its guards read (whether it is off)."""
        known = self.plans.get(id(provider))
        if known is None or known[0] is not provider:
            plan: list[_Plan] = []
            for rule in provider.rules:
                controls: list[A.Expr] = []
                guards: set[str] = set()
                for req in rule.requires:
                    controls += _controls(req.condition)
                    guard = guard_of(req.condition) if rule.optional else None
                    guards |= A.fields_read(guard) if guard is not None else set()
                read = guards.union(*(A.fields_read(node) for node in controls))
                plan.append((rule, (rule,), tuple(controls), tuple(sorted(guards)),
                             tuple(sorted(read))))
            known = self.plans[id(provider)] = (provider, plan)
        return known[1]

    def _template(self, pub: _Pub) -> CheckedProvider | None:
        """The provider whose rules this publisher's rules come from, if one has rules."""
        provider = pub.provider if pub.provider.rules else self.templates.get(pub.provider.name)
        if provider is None or not provider.rules:
            return None
        added = set(provider.fields) - set(pub.provider.fields)
        if not set(pub.provider.fields) <= set(provider.fields) or any(
                provider.fields[name].default is None for name in added):
            return None  # another provider of the same name: nothing to compare with
        return provider  # the same, or a newer one whose added fields have defaults

    def _template_rules(self, pub: _Pub) -> dict[str, A.Rule] | None:
        """The provider's rules bound with this publisher's fields."""
        provider = self._template(pub)
        if provider is None:
            return None
        defaults = {name: decl.default.value for name, decl in provider.fields.items()
                    if decl.default is not None and name not in pub.fields}
        if provider is pub.provider and not defaults and pub.checked.own_rules is None:
            rules = pub.checked.rules  # the same rules bound to the same fields
        else:
            rules = bind_rules(provider.rules, {**defaults, **pub.fields})
        return {rule.name: rule for rule in rules}

    def _optional(self, pub: _Pub, name: str) -> bool:
        """A rule made trivial by a field left at its default (e.g. environment "")."""
        provider = self._template(pub)
        template = next((r for r in provider.rules if r.name == name), None) if provider else None
        if provider is None or template is None:
            return False
        read = {field for req in template.requires for field in A.fields_read(req.condition)}
        for field_name in read:
            decl = provider.fields.get(field_name)
            if decl is not None and decl.default is not None and (
                    pub.fields.get(field_name) == decl.default.value):
                return True
        return False

    def _rule_span(self, pub: _Pub, rule: A.Rule,
                   template: Mapping[str, A.Rule] | None) -> Span:
        """For a compiled publisher: the first field its provider's rule reads."""
        provider = self._template(pub)
        provider_rule = next((r for r in provider.rules if r.name == rule.name),
                             None) if provider else None
        if provider_rule is not None:
            names = self.rule_fields.get(id(provider_rule))
            if names is None or names[0] is not provider_rule:
                names = self.rule_fields[id(provider_rule)] = (provider_rule, [
                    name for req in provider_rule.requires
                    for name in sorted(A.fields_read(req.condition))])
            for name in names[1]:
                if name in pub.field_spans:
                    return pub.field_spans[name]
        return pub.span

    # ------------------------------------------------------------- providers
    def provider_rules(self, provider: CheckedProvider) -> None:
        for rule in provider.rules:
            for req in rule.requires:
                if fold(req.condition) == A.Literal(False):
                    self.add("TPP010", req.span, f"rule '{rule.name}' of provider "
                             f"'{provider.name}' can never pass: no token can use any of its "
                             "publishers")
                    break
            else:
                if _always_true(rule):
                    self.add("TPP011", rule.span, f"rule '{rule.name}' of provider "
                             f"'{provider.name}' always passes, whatever the publisher's fields",
                             "make the rule read the token's claims, or remove it")


_ABSENT = object()
_TOKEN_NODES = (A.Claim, A.Request, A.NameRef)  # open whatever the publisher's fields
_SHORT_CIRCUITS = (A.And, A.Or, A.Conditional)  # fold away an operand on a literal one


_TRUE, _FALSE = A.Literal(True), A.Literal(False)


def _no_project() -> str | None:
    return None


def _repository(provider: CheckedProvider, fields: Mapping[str, Any]) -> str:
    """`provider.workflow_values(fields)["repository"]`, its `workflows` block's
    repository alone evaluated: "" when it fails or is not a string."""
    expr = provider.workflow.get("repository")
    if expr is None:
        return ""
    try:
        value = Interpreter({}, {}, fields).value(expr)
    except (EvalError, TypeError, ValueError, RecursionError):
        return ""
    return value if type(value) is str else ""


def _field_test(node: A.Expr) -> tuple[str, Any, bool] | None:
    """For `publisher.NAME == LITERAL` or `!=` (either way round, a string, integer or
    boolean literal): the field's name, the literal's value, and whether it is `!=`.
    Bound to a value of the literal's type, binding folds it to whether they are equal
    (or not); `_control_value` decides it so."""
    if not isinstance(node, A.Compare) or node.op not in ("==", "!="):
        return None
    left, right = node.left, node.right
    if isinstance(right, A.FieldRef):
        left, right = right, left
    if isinstance(left, A.FieldRef) and isinstance(right, A.Literal) \
            and right.value.__class__ in (str, int, bool):
        return (left.name, right.value, node.op == "!=")
    return None


def _reads_token(expr: A.Expr) -> bool:
    return any(isinstance(node, _TOKEN_NODES) for node in A.walk(expr))


def _rigid(expr: A.Expr) -> bool:
    """Does `expr` read the token however the fields are bound? A claim does, and so does
    any expression over one but a short circuit (`and`, `or`, `if`), which a literal
    operand can fold away. Binding never folds a rigid expression to a literal."""
    if isinstance(expr, _TOKEN_NODES):
        return True
    if isinstance(expr, _SHORT_CIRCUITS):
        return False
    return any(_rigid(kid) for kid in A.children(expr))


def _controls(condition: A.Expr) -> list[A.Expr]:
    """The parts of `condition` whose bound values can change what it folds to: the
    token-free parts that read publisher fields and whose value can reach the top. A part
    under an expression with a rigid operand (`claims.repository == publisher.owner + "/"
    + publisher.name`) cannot: that expression stays open whatever its value, and only a
    short circuit folds an open expression. So two publishers whose controls fold alike
    get rules alike for lint: the same requires folded to `true` or `false`."""
    found: list[A.Expr] = []
    stack: list[A.Expr] = [condition]
    while stack:
        node = stack.pop()
        if not _reads_token(node):
            if A.fields_read(node):
                found.append(node)
            continue
        kids = A.children(node)
        if isinstance(node, _SHORT_CIRCUITS) or not any(_rigid(kid) for kid in kids):
            stack.extend(reversed(kids))
    return found


def _verdict(bound: tuple[A.Rule, ...]) -> _Verdict | None:
    """What lint says of a provider's rule bound to a publisher's fields (one rule, or
    none when the publisher does not use it): ("never", its name, the first never-true
    require's message and span), ("always", its name, None, None), or None."""
    if not bound:
        return None
    rule = bound[0]
    for req in rule.requires:
        if isinstance(req.condition, A.Literal) and req.condition == A.Literal(False):
            return ("never", rule.name, req.message, req.span)
    if _always_true(rule):
        return ("always", rule.name, None, None)
    return None


def _always_true(rule: A.Rule) -> bool:
    return all(fold(req.condition) == A.Literal(True) for req in rule.requires)


def _describe_rule(rule: A.Rule | None) -> str:
    from tppolicy.language.printer import format_expr

    if rule is None:
        return "nothing"
    parts = [format_expr(fold(req.condition)) for req in rule.requires]
    text = " and ".join(parts)
    return text if len(text) <= 160 else text[:157] + "..."


def _workflow_field(pub: _Pub) -> tuple[str, str]:
    for name, value in pub.fields.items():
        if "workflow" in name and isinstance(value, str):
            return name, value
    for name, value in pub.fields.items():
        if isinstance(value, str) and value.endswith((".yml", ".yaml")):
            return name, value
    return "", ""


# per (provider name, field names in a publisher's order): the names in sorted order
# and a digest begun with the provider's name and those names (`_identity_digest`)
_SORTED_NAMES: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, ...], Any]] = {}


def _identity_digest(pub: _Pub, *, normalize_extension: bool) -> bytes:
    """A digest of the publisher's provider and fields, by name (with `normalize_extension`
    a value ending in .yaml read as ending in .yml): equal for publishers alike so."""
    fields = pub.fields
    memo = (pub.provider.name, tuple(fields))
    known = _SORTED_NAMES.get(memo)
    if known is None:
        if len(_SORTED_NAMES) >= 256:  # bounded
            _SORTED_NAMES.clear()
        order = tuple(sorted(memo[1]))
        # the repr of (provider, names) is a whole tuple's: where it ends in the digested
        # text is known, so the values' repr after it stands for the values alone
        known = _SORTED_NAMES[memo] = (order, hashlib.blake2b(
            repr((memo[0], order)).encode("utf-8", "surrogatepass"), digest_size=16))
    order, begun = known
    values = [fields[name] for name in order]
    if normalize_extension:
        values = [value[:-5] + ".yml" if value.__class__ is str and value.endswith(".yaml")
                  else value for value in values]
    digest = begun.copy()
    digest.update(repr(values).encode("utf-8", "surrogatepass"))
    return bytes(digest.digest())


def _at(spans: Sequence[Span], position: int, default: Span) -> Span:
    return spans[position] if position < len(spans) else default

def _digest(*parts: Any) -> bytes:
    """16 bytes standing for `parts` (str, int, bool, None and tuples of them): a
    summary kept for a publisher instead of its values."""
    return hashlib.blake2b(repr(parts).encode("utf-8", "surrogatepass"),
                           digest_size=16).digest()


def _first_projects(pubs: Iterable[_Pub], names: set[str]) -> dict[str, tuple[str, str]]:
    """For each ultranormalized name, the first normal publisher's project of that name
    and that publisher's label."""
    found: dict[str, tuple[str, str]] = {}
    for pub in pubs:
        if pub.checked.pending:
            continue
        for project in pub.checked.projects:
            ultra = ultranormalize(project)
            if ultra in names and ultra not in found:
                found[ultra] = (project, pub.label)
    return found


class _Bloom:
    """A set of names that may answer "present" for one never added (about one time in
    3 000 with 25 000 added; more beyond), never "absent" for one added: 128 KiB
    whatever the number added. Its bits come from the name's `hash` (the process's own:
    no digest to make per name)."""

    _BITS = 1 << 20

    def __init__(self) -> None:
        self._bits = bytearray(self._BITS // 8)

    def add(self, name: str) -> None:
        number, mask, bits = hash(name), self._BITS - 1, self._bits
        for position in (number & mask, (number >> 20) & mask, (number >> 40) & mask):
            bits[position >> 3] |= 1 << (position & 7)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        number, mask, bits = hash(name), self._BITS - 1, self._bits
        return all(bits[position >> 3] & (1 << (position & 7))
                   for position in (number & mask, (number >> 20) & mask, (number >> 40) & mask))


class _Across:
    """The checks across publishers (TPP003, TPP004, TPP007, TPP009), fed one publisher at
    a time. Of each publisher it keeps digests of what later ones are compared with, its
    label and the few values a finding quotes: some hundred bytes, not the publisher."""

    def __init__(self, lint: _Lint) -> None:
        self.lint = lint
        # TPP003: identity with .yaml read as .yml -> (the identity as written, None when
        # the same, label, the fields ending in .yaml as written)
        self.identities: dict[bytes, tuple[bytes | None, str, tuple[tuple[str, str], ...]]] = {}
        # TPP004: (provider, lookup keys, project) -> (label, the prefer fields' values...)
        self.projects: dict[bytes, tuple[Any, ...]] = {}
        # TPP007: (provider, key field, value in lower case) -> (the value if it is not
        # in lower case, label)
        self.spellings: dict[bytes, tuple[str | None, str]] = {}
        self.slots: dict[tuple[str, str, str], bytes] = {}  # `_spelling_slot`'s
        # TPP009: the ultranormalized names of the normal publishers' projects (a filter:
        # a name it may hold is looked for in the publishers); the pending publishers
        self.ultras = _Bloom()
        self.pending: list[tuple[str, str, Span]] = []

    def add(self, pub: _Pub) -> None:
        self.extension_lookalike(pub)
        self.duplicate_projects(pub)
        self.case_variants(pub)
        ast = pub.checked.ast
        name = ast.pending_project
        if name is not None:
            self.pending.append((name, pub.label, pub.pending_span or pub.span))
        else:
            ultras = self.ultras
            for project in ast.projects:
                ultras.add(ultranormalize(project))

    # ----------------------------------------------------------------- TPP003
    def extension_lookalike(self, pub: _Pub) -> None:
        # Two publishers alike but for .yml / .yaml both have a value ending in one: a
        # publisher without one is neither of such a pair (and is not kept).
        fields = pub.fields
        endings = [v for v in fields.values()
                   if isinstance(v, str) and v.endswith((".yml", ".yaml"))]
        if not endings:
            return
        yaml = any(v.endswith(".yaml") for v in endings)
        raw = _identity_digest(pub, normalize_extension=False)
        key = _identity_digest(pub, normalize_extension=True) if yaml else raw
        other = self.identities.get(key)
        if other is None:
            yaml_values = tuple([(name, value) for name, value in fields.items()
                                 if isinstance(value, str) and value.endswith(".yaml")]) \
                if yaml else ()
            self.identities[key] = (raw if raw != key else None, pub.label, yaml_values)
            return
        other_raw, other_label, other_yaml = other
        if (other_raw or key) == raw:
            return
        name, value = _workflow_field(pub)
        # The other's value: as written if it ends in .yaml, else the same as this
        # one's once .yaml is read as .yml (their identities are alike so).
        theirs = dict(other_yaml).get(name)
        if theirs is None:
            theirs = pub.fields.get(name)
            if isinstance(theirs, str) and theirs.endswith(".yaml"):
                theirs = theirs.removesuffix(".yaml") + ".yml"
        self.lint.add("TPP003", pub.at(name),
                      f"'{pub.label}' is '{other_label}' with {name} {value!r} instead of "
                      f"{theirs!r}: only one of the files can be the workflow, so one of "
                      "the two publishers is a typo that never matches",
                      f"check the file's name in the repository and remove the publisher "
                      f"for the other one ('{pub.label}' or '{other_label}')",
                      publisher=pub.label)

    # ----------------------------------------------------------------- TPP004
    def duplicate_projects(self, pub: _Pub) -> None:
        checked = pub.checked
        if checked.ast.pending_project is not None:
            return
        seen: dict[str, int] = {}
        for position, project in enumerate(checked.ast.projects):
            key = pep503(project)
            if key in seen:
                span = _at(pub.project_spans, position, pub.span)
                first = pub.checked.projects[seen[key]]
                same = "" if first == project else f" (the same project as {first!r})"
                self.lint.add("TPP004", span, f"'{pub.label}' lists the project {project!r} "
                              f"twice{same}", f"remove the second {project!r}",
                              publisher=pub.label)
                continue
            seen[key] = position
        provider, fields = pub.provider, pub.fields
        prefers = tuple([fields.get(prefer.label) for prefer in provider.prefers])
        mine = (pub.label, *prefers)
        # the provider and lookup keys once; then each project (a PEP 503 name: no "\0")
        identity = repr((provider.name, checked.key_values)) + "\0"
        for key, position in seen.items():
            slot = hashlib.blake2b((identity + key).encode("utf-8", "surrogatepass"),
                                   digest_size=16).digest()
            first_seen = self.projects.setdefault(slot, mine)
            if first_seen is mine:
                continue
            first_label, first_prefers = first_seen[0], first_seen[1:]
            project = pub.checked.projects[position]
            span = _at(pub.project_spans, position, pub.span)
            note = ""
            for prefer, theirs, value in zip(pub.provider.prefers, first_prefers, prefers,
                                             strict=True):
                name = prefer.label
                if "" in (theirs, value) and (theirs, value) != ("", ""):
                    loose, strict = ((first_label, pub.label) if theirs == ""
                                     else (pub.label, first_label))
                    strict_value = value if theirs == "" else theirs
                    note = (f"; '{loose}' accepts any {name}, so the {name} "
                            f"{strict_value!r} of '{strict}' does not protect {project!r}")
                    break
            self.lint.add("TPP004", span,
                          f"{project!r} is also published by '{first_label}', a publisher of "
                          f"the same identity (the token's lookup keys match both){note}",
                          f"keep {project!r} in one publisher of this identity",
                          publisher=pub.label)

    # ----------------------------------------------------------------- TPP007
    def case_variants(self, pub: _Pub) -> None:
        lower_first = (None, pub.label)  # shared by this publisher's slots
        provider, fields = pub.provider, pub.fields
        for key in provider.keys:
            name = key.label
            value = fields.get(name)
            if not isinstance(value, str) or not value:
                continue
            lower = value.lower()
            if value.isascii() and lower == value.upper():
                continue  # no letter (an id): no other spelling of it
            slot = self._spelling_slot(provider.name, name, lower)
            first = self.spellings.setdefault(
                slot, (value, pub.label) if value != lower else lower_first)
            first_value = lower if first[0] is None else first[0]
            if first_value != value:
                self.lint.add("TPP007", pub.at(name),
                              f"{name} {value!r} is spelled {first_value!r} in '{first[1]}': "
                              f"the CI sends one spelling and {pub.provider.name} publishers "
                              "compare it exactly, so one of them never matches",
                              "use the spelling of the token's claims in both publishers",
                              publisher=pub.label)

    def _spelling_slot(self, provider: str, name: str, lower: str) -> bytes:
        """The digest standing for (provider, key field, value in lower case), kept per
        the three (owners, workflow files... repeat)."""
        memo = (provider, name, lower)
        slot = self.slots.get(memo)
        if slot is None:
            if len(self.slots) >= 4096:  # bounded
                self.slots.clear()
            # provider and field names are identifiers (no "\0"): the text stands for
            # the three
            slot = self.slots[memo] = hashlib.blake2b(
                "\0".join(memo).encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return slot

    # ----------------------------------------------------------------- TPP009
    def finish(self, first_projects: _FirstProjects) -> None:
        """TPP009: each pending project against every normal publisher's project (the
        first too similar one, by look-up), then against the pending ones before it."""
        hits = {ultranormalize(name) for name, _, _ in self.pending}
        hits = {ultra for ultra in hits if ultra in self.ultras}
        existing = first_projects(hits) if hits else {}
        earlier: dict[str, tuple[str, str]] = {}  # the first pending project, by ultra
        for name, label, span in self.pending:
            ultra = ultranormalize(name)
            if ultra in existing:
                project, other = existing[ultra]
                if pep503(project) == pep503(name):
                    self.lint.add("TPP009", span,
                                  f"pending project {name!r} already exists ('{other}' "
                                  f"publishes {project!r}): PyPI deletes this pending publisher "
                                  "at its first use (invalid-pending-publisher: project "
                                  "already exists)",
                                  f"make '{label}' a normal publisher with projects: "
                                  f"[{project}]", publisher=label)
                else:
                    self.lint.add("TPP009", span,
                                  f"pending project {name!r} is too similar to the project "
                                  f"{project!r} of '{other}' (both are "
                                  f"{ultra!r} once ultranormalized): PyPI refuses "
                                  "to create it", "choose a name that no existing project is "
                                  "too similar to", publisher=label)
            elif ultra in earlier:
                first, other = earlier[ultra]
                same = pep503(first) == pep503(name)
                what = ("the same project" if same else
                        f"a project too similar to it (both are {ultra!r} "
                        "once ultranormalized)")
                self.lint.add("TPP009", span,
                              f"pending project {name!r} collides with the pending project "
                              f"{first!r} of '{other}', {what}: whichever publishes first "
                              "creates its project and the other pending publisher then fails",
                              "keep one pending publisher per new project; once the project "
                              "exists, add the others as normal publishers", publisher=label)
            earlier.setdefault(ultra, (name, label))



# ------------------------------------------------------------- publishers files
def _yaml_spans(document: YamlDocument) -> dict[tuple[Any, ...], Span]:
    """The span of every value of `publishers[i]` (and of the entry itself) in a YAML file."""
    import yaml

    span = document.head_span
    spans: dict[tuple[Any, ...], Span] = {}
    root = document.root
    if not isinstance(root, yaml.MappingNode):
        return spans
    for key, value in root.value:
        if key.value != "publishers" or not isinstance(value, yaml.SequenceNode):
            continue
        for i, entry in enumerate(value.value):
            spans[(i,)] = span(entry)
            if not isinstance(entry, yaml.MappingNode):
                continue
            for k, v in entry.value:
                spans[(i, str(k.value))] = span(v)
                if isinstance(v, yaml.SequenceNode):
                    for j, item in enumerate(v.value):
                        spans[(i, str(k.value), j)] = span(item)
    return spans


def lint_publishers_text(text: str, source: str = "<publishers>", *,
                         providers: Mapping[str, CheckedProvider] | None = None,
                         issuers: Mapping[str, str] | None = None) -> tuple[Finding, ...]:
    """Lint a publishers file (YAML). Raises `ConfigError` if the file is invalid.

    A plain file is read as a stream, one publisher at a time (`iter_plain_publishers`):
    memory for one publisher and a summary of each (`_Across`), not for the file. Any
    other, or one with a problem, is read whole, and every problem is reported."""
    from tppolicy.readers.yaml import NotPlain

    providers = load_providers() if providers is None else providers
    try:
        return _lint_stream(text, source, providers, issuers)
    except (NotPlain, TppolicyError):
        return _lint_whole(text, source, providers, issuers)


def _lint_stream(text: str, source: str, providers: Mapping[str, CheckedProvider],
                 issuers: Mapping[str, str] | None) -> tuple[Finding, ...]:
    """`lint_publishers_text` of a plain file, read as a stream; `NotPlain` or a
    `TppolicyError` (without the words of every problem) when it must be read whole."""
    from tppolicy.decide.policy import Policy
    from tppolicy.decide.publishers import iter_plain_publishers
    from tppolicy.decide.recognize import iter_lines

    Policy(CheckedPolicy(dict(providers), ()), issuers)  # registered issuers, as compiling
    asts = {name: provider.ast for name, provider in providers.items()}

    def pubs() -> Iterator[_Pub]:
        checker = PublisherStream(source, providers)
        # The entry's fields are every field of its provider, in its order: checked as
        # values, without a binding per field (making and checking those was a fifth of
        # a large file's lint time). The checker's words for a problem are not shown (a
        # problem sends the file to `_lint_whole`, which reports every problem).
        for entry in iter_plain_publishers(text, source, asts, issuers, positions=True):
            checked = checker.check_fields(A.Publisher(
                entry.name, entry.provider, entry.projects, entry.pending_project, (), (),
                entry.span), entry.fields, entry.index)
            where = _EntrySpans(entry)
            yield _Pub(checked, where.head, _FieldSpans(where.positions, checked.fields),
                       where, where.pending())

    def first_projects(names: set[str]) -> dict[str, tuple[str, str]]:
        """Read the file again for pending publishers' collisions (rare)."""
        return _first_projects(pubs(), names)

    lint = _Lint(source, (), providers)
    lint.run(pubs(), first_projects)
    return _sorted(_unsuppressed(lint.findings, iter_lines(text)))


class _EntrySpans(Sequence[Span]):
    """A streamed entry's head span and its projects' spans (this sequence), made when a
    finding first asks for one: most publishers have none."""

    def __init__(self, entry: PublisherEntry) -> None:
        self._entry = entry
        self.positions: Mapping[Any, Span] = entry.positions or {}

    def head(self) -> Span:
        """The span of the entry's name, else of its provider, else of the entry."""
        where = self.positions
        return where.get("name") or where.get("provider") or where.get(()) or self._entry.span

    def pending(self) -> Span | None:
        """The span of the entry's pending_project, if it has one."""
        return self.positions.get("pending_project") if "pending_project" in self.positions \
            else None

    def __getitem__(self, position: Any) -> Any:
        if isinstance(position, slice):  # pragma: no cover - not asked by lint
            return [self[i] for i in range(len(self))[position]]
        if not 0 <= position < len(self._entry.projects):
            raise IndexError(position)
        return self.positions.get(("projects", position)) or self.head()

    def __len__(self) -> int:
        return len(self._entry.projects)


class _FieldSpans(Mapping[str, Span]):
    """The spans of a publisher's fields among an entry's positions (computed when a
    finding asks for one)."""

    def __init__(self, positions: Mapping[Any, Span], fields: Mapping[str, Any]) -> None:
        self._positions = positions
        self._fields = fields

    def __getitem__(self, name: str) -> Span:
        if name not in self._fields:
            raise KeyError(name)
        return self._positions[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fields and name in self._positions

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._fields if name in self._positions)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _lint_whole(text: str, source: str, providers: Mapping[str, CheckedProvider],
                issuers: Mapping[str, str] | None) -> tuple[Finding, ...]:
    """`lint_publishers_text` of a file read whole (`compose_yaml`)."""
    from tppolicy.readers.yaml import compose_yaml

    document = compose_yaml(text, source, ConfigError)
    policy = compile_publishers_text(text, source, providers=providers, issuers=issuers,
                                     document=document)
    spans = _yaml_spans(document)
    pubs = []
    for checked in policy.publishers:
        i = checked.index
        entry = spans.get((i,), checked.ast.span)
        head = spans.get((i, "name")) or spans.get((i, "provider")) or entry
        field_spans = {name: spans[(i, name)] for name in checked.fields if (i, name) in spans}
        count = len(checked.ast.projects)
        pubs.append(_Pub(
            checked, head, field_spans,
            [spans.get((i, "projects", j), head) for j in range(count)],
            spans.get((i, "pending_project"))))
    lines = text.splitlines()
    lint = _Lint(source, lines, providers)
    lint.run(pubs)
    return _sorted(_unsuppressed(lint.findings, lines))


# ----------------------------------------------------------------- policy files
def _find_literal(text_lines: Sequence[str], within: Span, value: str) -> Span | None:
    quoted = '"' + value + '"'
    for number in range(within.line, min(within.end_line, len(text_lines)) + 1):
        column = text_lines[number - 1].find(quoted)
        if column >= 0:
            return Span(within.source, number, column + 1, number, column + 1 + len(quoted))
    return None


def _head(span: Span, lines: Sequence[str]) -> Span:
    line = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
    return Span(span.source, span.line, span.column, span.line, max(len(line) + 1,
                                                                   span.column + 1))


def _string_literals(rules: Iterable[A.Rule]) -> list[A.Literal]:
    return [node for rule in rules for req in rule.requires for node in A.walk(req.condition)
            if isinstance(node, A.Literal) and isinstance(node.value, str)]


def lint_policy_text(text: str, source: str = "<policy>", *,
                     providers: Mapping[str, CheckedProvider] | None = None
                     ) -> tuple[Finding, ...]:
    """Lint a policy file (provider and publisher blocks). Raises `PolicySyntaxError` or
    `PolicyCheckError` if the file is invalid.

    A publisher block with its own rules (as `tppolicy compile` prints them) is compared
    with its provider's rules bound with its fields: the provider of the same name in the
    file if it has rules, else the shipped (or `providers`) one. A compiled policy whose
    blocks are all as `compile` printed them is read without the parser
    (`_lint_compiled`), with the same findings.
    """
    from tppolicy.language.parse import parse_policy  # lark: not for publishers files

    providers = load_providers() if providers is None else providers
    fast = _lint_compiled(text, source, providers)
    if fast is not None:
        return fast
    parsed = parse_policy(text, source)
    checked: CheckedPolicy = check_policy(parsed, providers, text)
    Policy(checked, source_text=text)  # publishers the lookup cannot tell apart: as check
    lines = text.splitlines()
    pubs = [_policy_pub(pub, lines) for pub in checked.publishers]
    lint = _Lint(source, lines, providers)
    for provider_ast in parsed.providers:
        lint.provider_rules(checked.providers[provider_ast.name])
    lint.run(pubs)
    return _sorted(_unsuppressed(lint.findings, lines))


def _policy_pub(pub: CheckedPublisher, lines: Sequence[str]) -> _Pub:
    """A policy file's publisher block as lint sees it (`lines`: the file's)."""
    ast = pub.ast
    head = _head(ast.span, lines)
    spans = {b.name: b.span for b in ast.bindings}
    project_spans = [_find_literal(lines, ast.span, p) or head for p in ast.projects]
    pending_span = (_find_literal(lines, ast.span, ast.pending_project)
                    if ast.pending_project is not None else None)
    return _Pub(pub, head, spans, project_spans, pending_span, explicit_rules=bool(ast.rules),
                rule_spans={r.name: _head(r.span, lines) for r in ast.rules},
                literals=_string_literals(ast.rules))


def _lint_compiled(text: str | bytes, source: str, providers: Mapping[str, CheckedProvider]
                   ) -> tuple[Finding, ...] | None:
    """`lint_policy_text` of a compiled policy whose publisher blocks are all as `compile`
    printed them (`CompiledReading`), or None: `_lint_reading`."""
    from tppolicy.decide.recognize import CompiledReading

    reading = CompiledReading.of(text, source, providers)
    return None if reading is None else _lint_reading(reading, source, providers)


def _lint_reading(reading: CompiledReading, source: str,
                  providers: Mapping[str, CheckedProvider]) -> tuple[Finding, ...] | None:
    """The findings of a compiled policy's reading, or None (read the file whole). Each
    block is linted as the publishers file's entry it was compiled from (its rules are
    its provider's, bound); one with a finding of its own is parsed and linted again as
    the whole read does, so its findings (and their positions) are the parser's; a
    block's positions for the checks across publishers are the parser's too, parsed when
    a finding asks for one. The checks of a block's rule literals find nothing a block's
    fields do not (its literals are its values, and the shipped provider's own, which are
    checked here once)."""
    from tppolicy.decide.recognize import Unrecognized

    for provider in reading.shipped.values():
        for literal in _string_literals(provider.rules):
            value = literal.value
            if not (isinstance(value, str) and value.isascii() and value.isprintable()
                    and value == value.strip()):
                return None  # a literal of the provider's lint may word: read whole
    headers = PublisherStream(source, reading.headers)
    index = [0]

    def pubs() -> Iterator[_Pub]:
        for position, block in enumerate(reading.blocks()):
            index[0] = position
            spans = _BlockSpans(block.text, source, block.line)
            ast = block.checked.ast
            pending = ast.pending_project
            # its head's and projects' positions found when a finding first asks (most
            # blocks have none)
            yield _Pub(block.checked, spans.head, spans, _ProjectSpans(spans, ast.projects),
                       None if pending is None else _find_literal(spans.lines, spans.span,
                                                                  pending))

    def redo(pub: _Pub) -> _Pub:
        spans = pub.field_spans
        assert isinstance(spans, _BlockSpans)
        return _policy_pub(headers.check(spans.parsed(), index[0]), spans.lines)

    def first_projects(names: set[str]) -> dict[str, tuple[str, str]]:
        """Read the blocks again for pending publishers' collisions (rare)."""
        return _first_projects(pubs(), names)

    lint = _Lint(source, (), providers)
    for name in reading.headers:
        lint.provider_rules(reading.headers[name])
    try:
        lint.run(pubs(), first_projects, redo=redo)
        return _sorted(_unsuppressed(lint.findings, reading.lines()))
    except (Unrecognized, TppolicyError):
        return None


class _BlockSpans(Mapping[str, Span]):
    """A recognized block's positions, as the parser gives them: its fields' (this
    mapping: from the block parsed alone, at its own lines, when a finding first asks),
    and its lines and span, for its head's and its projects' (found as `_policy_pub`
    finds them)."""

    def __init__(self, text: str, source: str, line: int) -> None:
        self._text = text  # the block's
        self._source = source
        self._line = line
        self._ast: A.Publisher | None = None
        self._lines: _BlockLines | None = None

    @property
    def lines(self) -> _BlockLines:
        """The file's lines as `_BlockLines` gives them (made when first asked)."""
        if self._lines is None:
            self._lines = _BlockLines(self._text.split("\n"), self._line)
        return self._lines

    @property
    def span(self) -> Span:
        """The parser's span of a publisher block: its first line to its brace."""
        line = self._line
        return Span(self._source, line, 1, line + self._text.count("\n"), 2)

    def parsed(self) -> A.Publisher:
        """The block as the parser reads it, at its place in the file."""
        if self._ast is None:
            from tppolicy.language.parse import parse_policy

            text = "\n" * (self._line - 1) + self._text
            self._ast = parse_policy(text, self._source).publishers[0]
        return self._ast

    def head(self) -> Span:
        return _head(self.span, self.lines)

    def __getitem__(self, name: str) -> Span:
        for binding in self.parsed().bindings:
            if binding.name == name:
                return binding.span
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (binding.name for binding in self.parsed().bindings)

    def __len__(self) -> int:
        return len(self.parsed().bindings)


class _ProjectSpans(Sequence[Span]):
    """A recognized block's projects' positions (`_policy_pub`'s), found when first
    asked."""

    def __init__(self, spans: _BlockSpans, projects: tuple[str, ...]) -> None:
        self._spans = spans
        self._projects = projects
        self._found: list[Span] | None = None

    def __getitem__(self, position: Any) -> Any:
        if self._found is None:
            spans = self._spans
            head = spans.head()
            self._found = [_find_literal(spans.lines, spans.span, p) or head
                           for p in self._projects]
        return self._found[position]

    def __len__(self) -> int:
        return len(self._projects)


class _BlockLines(Sequence[str]):
    """The file's lines as `_head` and `_find_literal` read them, holding one block's: the
    lines before it are empty."""

    def __init__(self, block: list[str], line: int) -> None:
        self.block = block
        self._first = line - 1

    def __getitem__(self, position: Any) -> Any:
        if isinstance(position, slice):  # pragma: no cover - not asked by lint
            return [self[i] for i in range(len(self))[position]]
        at = position - self._first
        return self.block[at] if 0 <= at < len(self.block) else ""

    def __len__(self) -> int:
        return self._first + len(self.block)


def lint_file(path: str | Path, *, providers: Mapping[str, CheckedProvider] | None = None,
              issuers: Mapping[str, str] | None = None) -> tuple[Finding, ...]:
    """Lint one file: a policy file if it ends in `.tpp`, else a publishers file (YAML)."""
    path = Path(path)
    is_policy = path.suffix == POLICY_SUFFIX
    error = PolicyCheckError if is_policy else ConfigError
    if is_policy:  # a compiled policy's blocks are read from the file, one at a time
        from tppolicy.decide.recognize import CompiledReading

        providers = load_providers() if providers is None else providers
        source = str(path)
        with open_source(path, error) as handle:
            reading = CompiledReading.of_file(
                handle, lambda opened: read_opened(opened, source, error), source, providers)
            fast = None if reading is None else _lint_reading(reading, source, providers)
            if fast is not None:
                return fast
            del reading
            handle.seek(0)
            raw = read_opened(handle, source, error)
        text = decode_source(raw, str(path), error)
        del raw
        return lint_policy_text(text, str(path), providers=providers)
    text = read_source(path, error)
    return lint_publishers_text(text, str(path), providers=providers, issuers=issuers)


# ------------------------------------------------- suppression, selection, config
_SUPPRESSION = re.compile(r"(?:^|\s)#\s*tppolicy:\s*ignore(?:\[([^\]]*)\])?")


def suppressions(lines: Iterable[str]) -> dict[int, frozenset[str] | None]:
    """The lines (1-based) whose findings a `# tppolicy: ignore[CODE, ...]` comment
    suppresses, with the codes (None: every code, for a bare `# tppolicy: ignore`). A
    comment after a value suppresses on its own line; a comment alone on its line, on the
    next line that is not blank or a comment."""
    found: dict[int, frozenset[str] | None] = {}
    pending: list[frozenset[str] | None] = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        match = _SUPPRESSION.search(line)
        codes: frozenset[str] | None = None
        if match is not None and match.group(1) is not None:
            codes = frozenset(c.strip().upper() for c in match.group(1).split(",") if c.strip())
        if stripped.startswith("#") or not stripped:
            if match is not None:
                pending.append(codes)
            continue
        targets = [*pending, codes] if match is not None else pending
        for target in targets:
            previous = found.get(number, frozenset())
            found[number] = None if target is None or previous is None else previous | target
        pending = []
    return found


def _unsuppressed(findings: Iterable[Finding], lines: Iterable[str]) -> list[Finding]:
    findings = list(findings)
    if not findings:  # nothing to suppress: the lines are not read
        return []
    table = suppressions(lines)
    kept = []
    for finding in findings:
        codes = table.get(finding.span.line, frozenset())
        if codes is None or finding.code in codes:
            continue
        kept.append(finding)
    return kept


def _matches(selector: str, code: LintCode) -> bool:
    """A selector is a code, a prefix of codes (TPP00, TPP) or a code's name."""
    return code.code.startswith(selector.upper()) or selector.lower() == code.name


def unknown_selectors(selectors: Iterable[str]) -> list[str]:
    """The selectors that match no code (a typo in --select, --ignore or the config)."""
    return [s for s in selectors if not any(_matches(s, c) for c in CODES.values())]


def select_findings(findings: Iterable[Finding], select: Sequence[str] = (),
                    ignore: Sequence[str] = ()) -> tuple[Finding, ...]:
    """The findings whose code is selected (every code when `select` is empty) and not
    ignored; selectors as `unknown_selectors` reads them."""
    kept = []
    for finding in findings:
        code = CODES[finding.code]
        if select and not any(_matches(s, code) for s in select):
            continue
        if any(_matches(s, code) for s in ignore):
            continue
        kept.append(finding)
    return tuple(kept)


@dataclass(frozen=True, slots=True)
class LintConfig:
    """`[tool.tppolicy.lint]` of a pyproject.toml: `select` and `ignore` lists of codes,
    code prefixes or names."""

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    path: Path | None = None


def find_config(start: Path) -> Path | None:
    """The nearest pyproject.toml with a `[tool.tppolicy]` table, from `start` up to the
    root of its git checkout (or the file system's root)."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            if outside_link(candidate) is not None:
                return candidate  # not read here: load_config refuses it, saying why
            try:
                if "tool.tppolicy" in candidate.read_text("utf-8"):
                    return candidate
            except (OSError, UnicodeDecodeError):
                return None
        if (folder / ".git").exists():
            return None
    return None


def load_config(path: Path) -> LintConfig:
    """Read `[tool.tppolicy.lint]` from a pyproject.toml; `ConfigError` (with the file)
    for bad TOML, an unknown key, a value that is not a list of strings, or a selector
    that matches no code."""
    import tomllib

    source = str(path)

    def fail(message: str, hint: str | None = None) -> ConfigError:
        return ConfigError([Diagnostic(message, Span(source, 0, 0, 0, 0),
                                       path="tool.tppolicy.lint", hint=hint)])

    text = read_source(path, ConfigError)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Diagnostic(f"invalid TOML: {exc}", Span(source, 0, 0, 0, 0))]
                          ) from None
    tool = data.get("tool", {}).get("tppolicy", {})
    table = tool.get("lint", {}) if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise fail("expected a table", "[tool.tppolicy.lint] with select = [...], ignore = [...]")
    values: dict[str, tuple[str, ...]] = {}
    for key, value in table.items():
        if key not in ("select", "ignore"):
            raise fail(f"unknown key {key!r}", "the keys are: select, ignore")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"{key!r} must be a list of codes", f'{key} = ["TPP001", "TPP008"]')
        unknown = unknown_selectors(value)
        if unknown:
            raise fail(f"{key!r}: {', '.join(map(repr, unknown))} matches no code",
                       f"the codes are TPP001 to TPP{len(CODES):03d} (tppolicy lint --help)")
        values[key] = tuple(value)
    return LintConfig(values.get("select", ()), values.get("ignore", ()), path)


def _sorted(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    unique = dict.fromkeys(findings)
    return tuple(sorted(unique, key=lambda f: (f.span.source, f.span.line, f.span.column,
                                               f.code)))


# ------------------------------------------------------------------------ SARIF
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_SARIF_LEVELS = {"error": "error", "warning": "warning", "note": "note"}


def _sarif_uri(source: str) -> str:
    path = Path(source)
    return path.as_uri() if path.is_absolute() else path.as_posix()


def _sarif_location(span: Span) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _sarif_uri(span.source)}}
    if span.line > 0:
        region: dict[str, Any] = {"startLine": span.line, "startColumn": max(span.column, 1)}
        if span.end_line >= span.line:
            region["endLine"] = span.end_line
            region["endColumn"] = max(span.end_column, 1)
        physical["region"] = region
    return {"physicalLocation": physical}


def _fingerprint(finding: Finding) -> str:
    """What identifies a finding across commits: its code, file, publisher and message,
    not its line (a line moves when lines are added above it)."""
    import hashlib

    key = "\0".join((finding.code, Path(finding.span.source).as_posix(),
                     finding.publisher or "", finding.message))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def to_sarif(findings: Sequence[Finding], *, version: str,
             errors: Sequence[Diagnostic] = ()) -> dict[str, Any]:
    """A SARIF 2.1.0 log of one lint run: every code as a rule, every finding as a result.

    `errors` are inputs that could not be linted (invalid files): they become tool execution
    notifications and mark the run as unsuccessful.
    """
    codes = list(CODES)
    rules = [{
        "id": c.code,
        "name": c.name,
        "shortDescription": {"text": c.summary},
        "fullDescription": {"text": f"{c.summary}."},
        "help": {"text": f"Fix: {c.fix}.", "markdown": f"**Fix:** {c.fix}."},
        "defaultConfiguration": {"level": _SARIF_LEVELS[c.level]},
        "properties": {"tags": ["tppolicy", "trusted-publishing"]},
    } for c in CODES.values()]
    results = [{
        "ruleId": f.code,
        "ruleIndex": codes.index(f.code),
        "level": _SARIF_LEVELS[f.level],
        "message": {"text": f"{f.message}. Fix: {f.fix}."},
        "locations": [_sarif_location(f.span)],
        "partialFingerprints": {"tppolicyFinding/v1": _fingerprint(f)},
    } for f in findings]
    invocation: dict[str, Any] = {"executionSuccessful": not errors}
    if errors:
        invocation["toolExecutionNotifications"] = [{
            "level": "error",
            "message": {"text": d.message + (f" (hint: {d.hint})" if d.hint else "")},
            **({"locations": [_sarif_location(d.span)]} if d.span is not None else {}),
        } for d in errors]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "tppolicy",
                "version": version,
                "semanticVersion": version,
                "rules": rules,
            }},
            "invocations": [invocation],
            "results": results,
        }],
    }
