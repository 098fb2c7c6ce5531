"""Would this CI workflow produce a token the publishers accept? A static check, before
anything is pushed (`tppolicy check-workflow`).

A GitHub Actions workflow is checked against the publishers of the `github` and
`github_enterprise` providers that name its file; a GitLab CI/CD pipeline file against
the `gitlab` publishers whose `workflow_filepath` is its path. For each such publisher,
the job that publishes (a job using pypa/gh-action-pypi-publish or running an upload
tool, a job granted an OIDC token, or a job calling a reusable workflow) must get a
token that publisher accepts: the `id-token: write` permission, the publisher's
environment, triggers its event constraints allow, ref filters its ref patterns
accept, the reusable workflow it expects, a runner it accepts. Findings that would
deny are errors; the rest is advice (third-party actions not pinned to a commit, a
publisher without an environment, triggers that publish nothing).

Which publishers a workflow is checked against is the provider file's `workflows` kind
(github_actions, gitlab_ci), and what this module knows of a publisher comes from that
item's block (`workflows github_actions { file: publisher.workflow_filename ... }`): the
workflow file it names, its repository, the calling and the reusable workflow, the
environment, the refs it accepts (globs: the triggers' ref filters are matched against
them, since a filter is a set of refs and the version being uploaded is not known before the
run), the events it accepts, what must be protected. No publisher field name is written
here: a provider file that renames its fields, or a copy under another name, is checked
alike, and messages name the fields the block reads. The job's environment, its runner and
the workflow's triggers are judged by the publisher's own rules (its provider's, bound to
its fields), evaluated on the claims a token of the job would carry (`environment`,
`runner_environment`, `event_name`, and the `job_workflow_ref` of a called reusable
workflow: the claim names of the CI's tokens, which the kind fixes): a provider file that
changes those rules changes this check with it.

The workflow is read with ruamel.yaml (YAML 1.2, as GitHub reads `on:`), which keeps
every key's line and column for the findings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from tppolicy.decide.policy import Policy
from tppolicy.errors import Diagnostic, Span, TppolicyError
from tppolicy.language import ast as A
from tppolicy.language.bind import bind_rules
from tppolicy.language.check import CheckedPublisher
from tppolicy.language.interpret import Interpreter
from tppolicy.language.ops import EvalError, Glob
from tppolicy.limits import MAX_WORKFLOW_BYTES
from tppolicy.memo import ByIdentity
from tppolicy.readers.source import LinkTree, read_source

__all__ = ["CODES", "WorkflowCheck", "WorkflowError", "WorkflowFinding", "WorkflowReport",
           "check_workflow_file", "check_workflow_text", "open_workflow_file"]

# The `workflows` kinds a provider file declares: its publishers' workflows are read so.
GITHUB_ACTIONS, GITLAB_CI = "github_actions", "gitlab_ci"
ERROR, ADVICE = "error", "advice"


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    name: str
    level: str  # the level when it denies for sure; some codes are advice in some cases
    summary: str


CODES: dict[str, Code] = {c.code: c for c in (
    Code("TPW001", "no-publisher", ERROR,
         "no publisher names this workflow file (the field its provider's `workflows` block "
         "gives as `file`: github's workflow_filename, gitlab's workflow_filepath)"),
    Code("TPW002", "no-publishing-job", ERROR,
         "no job of the workflow publishes: none uploads, asks for an OIDC token or calls a "
         "reusable workflow"),
    Code("TPW003", "no-id-token", ERROR,
         "the publishing job cannot get an OIDC token: GitHub needs `permissions: id-token: "
         "write` (the job's own permissions replace the workflow's); GitLab needs `id_tokens` "
         "with the index's audience"),
    Code("TPW004", "environment", ERROR,
         "the publishing job's environment is not the publisher's (or it has none)"),
    Code("TPW005", "pull-request-target", ERROR,
         "the workflow runs on pull_request_target: refused by every GitHub publisher, and "
         "it runs code of pull requests with the repository's permissions"),
    Code("TPW006", "event-refused", ERROR,
         "a trigger the publisher's rules refuse (github: allowed_events / denied_events; an "
         "error when no trigger is accepted)"),
    Code("TPW007", "ref-filter", ERROR,
         "the triggers' tags / branches filters (GitLab: rules) give refs the publisher's "
         "`refs` refuse (github: ref_pattern / version_tag; an error when no trigger gives an "
         "accepted ref)"),
    Code("TPW008", "reusable-workflow", ERROR,
         "the publishing job does not call the reusable workflow the publisher expects, or "
         "calls one the publisher does not accept"),
    Code("TPW009", "runner", ERROR,
         "the publishing job runs on a self-hosted runner; the publisher accepts GitHub-hosted "
         "runners only"),
    Code("TPW010", "unpinned-action", ADVICE,
         "a third-party action, reusable workflow or CI component not pinned to a full commit "
         "SHA: its owner can change what runs with your publishing token"),
    Code("TPW011", "any-environment", ADVICE,
         "the publisher accepts any environment: any job of the workflow may publish, without "
         "an environment's protection rules"),
    Code("TPW012", "workflow-run", ADVICE,
         "the workflow runs on workflow_run (crates.io refuses it): it runs with write "
         "permissions after workflows that pull requests can start"),
    Code("TPW013", "not-checked", ADVICE,
         "a value given by an expression (${{ ... }}) or set elsewhere (in a called workflow) "
         "cannot be checked statically"),
    Code("TPW014", "protection", ADVICE,
         "the publisher requires a protected ref or environment: the workflow cannot show it, "
         "the repository's settings must"),
)}


class WorkflowError(TppolicyError):
    """A workflow file that cannot be read, is not YAML, or is not a workflow."""


@dataclass(frozen=True, slots=True)
class WorkflowFinding:
    code: str
    level: str  # error | advice
    span: Span
    message: str
    fix: str
    publisher: str | None = None
    job: str | None = None

    @property
    def name(self) -> str:
        return CODES[self.code].name

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "level": self.level,
                "file": self.span.source, "line": self.span.line, "column": self.span.column,
                "end_line": self.span.end_line, "end_column": self.span.end_column,
                "publisher": self.publisher, "job": self.job, "message": self.message,
                "fix": self.fix}


@dataclass(frozen=True, slots=True)
class WorkflowReport:
    source: str
    kind: str  # github | gitlab
    findings: tuple[WorkflowFinding, ...]
    publishers: tuple[str, ...]  # the publishers naming this workflow
    jobs: tuple[str, ...]  # the publishing jobs found

    @property
    def errors(self) -> tuple[WorkflowFinding, ...]:
        return tuple(f for f in self.findings if f.level == ERROR)

    def to_json(self) -> dict[str, Any]:
        return {"workflow": self.source, "kind": self.kind, "publishers": list(self.publishers),
                "jobs": list(self.jobs), "findings": [f.to_json() for f in self.findings]}


# ---------------------------------------------------------------- reading YAML
def _load(text: str, source: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    from tppolicy.readers.yaml import check_limits

    # The limits of every YAML reader, first: ruamel.yaml's composer recurses (2 000
    # levels took it seconds to fail) and the checks walk what aliases share.
    check_limits(text, source, WorkflowError)
    try:
        return YAML(typ="rt", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise WorkflowError([Diagnostic(f"invalid YAML: {exc.problem or exc.context}",
                                        Span(source, line, column, line, column + 1))],
                            text) from None
    except RecursionError:  # ruamel.yaml's composer is recursive
        raise WorkflowError([Diagnostic(
            "the YAML is nested too deeply to be read", Span(source, 1, 1, 1, 2),
            hint="a workflow nests a few levels: is this the right file?")], text) from None
    except (YAMLError, ValueError) as exc:
        raise WorkflowError([Diagnostic(f"invalid YAML: {exc}", Span(source, 1, 1, 1, 2))],
                            text) from None
    except Exception as exc:  # ruamel.yaml's own bugs (`!!set` on a scalar): bad input
        raise WorkflowError([Diagnostic(f"invalid YAML: {type(exc).__name__}: {exc}",
                                        Span(source, 1, 1, 1, 2))], text) from None


class _Where:
    """Spans of the nodes of a ruamel.yaml document (lines and columns are 0-based there)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def span(self, line: int, column: int, width: int = 1) -> Span:
        return Span(self.source, line + 1, column + 1, line + 1, column + 1 + max(width, 1))

    def node(self, node: Any) -> Span:
        lc = getattr(node, "lc", None)
        if lc is None or lc.line is None:
            return Span(self.source, 1, 1, 1, 2)
        return self.span(lc.line, lc.col)

    def key(self, mapping: Any, key: object) -> Span:
        mapping = _holder(mapping, key)
        try:
            line, column = mapping.lc.key(key)
        except (AttributeError, KeyError, TypeError):
            return self.node(mapping)
        return self.span(line, column, len(str(key)))

    def value(self, mapping: Any, key: str) -> Span:
        mapping = _holder(mapping, key)
        try:
            line, column = mapping.lc.value(key)
        except (AttributeError, KeyError, TypeError):
            return self.key(mapping, key)
        value = mapping.get(key)
        return self.span(line, column, len(value) if isinstance(value, str) else 1)

    def item(self, sequence: Any, index: int) -> Span:
        try:
            line, column = sequence.lc.item(index)
        except (AttributeError, KeyError, TypeError, IndexError):
            return self.node(sequence)
        value = sequence[index]
        return self.span(line, column, len(value) if isinstance(value, str) else 1)


def _holder(mapping: Any, key: object, depth: int = 0) -> Any:
    """The mapping whose text holds `key`: `mapping` itself, or for a key it has from a
    merge key (`<<: *defaults`) the merged mapping that wrote it (the first, as YAML merges),
    so that a finding points at the key's own line, not at the `<<`."""
    data = getattr(getattr(mapping, "lc", None), "data", None)
    if (data is not None and key in data) or depth > 50:
        return mapping
    from ruamel.yaml.comments import merge_attrib

    for source in getattr(mapping, merge_attrib, None) or ():
        merged = source[1] if isinstance(source, tuple) else source  # ruamel.yaml < 0.19
        if isinstance(merged, Mapping) and key in merged:
            return _holder(merged, key, depth + 1)
    return mapping


def _is_mapping(value: Any) -> TypeGuard[Mapping[Any, Any]]:
    return isinstance(value, Mapping)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _script_lines(value: Any, depth: int = 0) -> list[str]:
    """A GitLab `script`'s lines: GitLab flattens nested lists (up to 10 levels), so
    `script: [[twine upload ...]]` (a list from an anchor or `!reference`) uploads too."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and depth <= 10:
        return [line for item in value for line in _script_lines(item, depth + 1)]
    return []


def _dynamic(value: Any) -> bool:
    return isinstance(value, str) and "${{" in value


_SHA = re.compile(r"[0-9a-f]{40}")
_UPLOADERS = re.compile(
    r"\b(twine\s+upload|uv\s+publish|poetry\s+publish|pdm\s+publish|hatch\s+publish|"
    r"flit\s+publish|maturin\s+(upload|publish)|python3?\s+-m\s+id\b|gh-action-pypi-publish)")
_PUBLISH_ACTIONS = ("pypa/gh-action-pypi-publish",)
_FIRST_PARTY = ("actions", "github")


# ------------------------------------------------------------------- the report
@dataclass
class _Checker:
    source: str
    where: _Where
    providers: Mapping[str, Any]  # the policy's
    audience: str
    findings: list[WorkflowFinding] = field(default_factory=list)
    _seen: set[tuple[Any, ...]] = field(default_factory=set)
    # The providers of the publishers of this workflow kind (any repository), by name.
    used: dict[str, Any] = field(default_factory=dict)

    def add(self, code: str, span: Span, message: str, fix: str, *, level: str | None = None,
            publisher: str | None = None, job: str | None = None) -> None:
        finding = WorkflowFinding(code, level or CODES[code].level, span, message, fix,
                                  publisher, job)
        # Jobs sharing text through a merge key (`<<: *defaults`) find the same thing at
        # the same place: it is reported once (for the first job).
        same = (code, finding.level, span, message, fix, publisher)
        if same in self._seen:
            return
        self._seen.add(same)
        self.findings.append(finding)


@dataclass(frozen=True, slots=True)
class _Pub:
    """A publisher with what its provider's `workflows` block says of it (`w`)."""

    publisher: Any
    w: Mapping[str, Any]

    @property
    def label(self) -> str:
        return str(self.publisher.label)

    def field(self, item: str) -> str:
        """The name of the publisher field the `workflows` item is computed from, for
        messages; the item's name when it reads several fields."""
        return self.publisher.provider.workflow_field(item) or item


def _file_field(checker: _Checker, kind: str) -> str:
    """For messages without a publisher at hand: the field(s) naming the workflow file in
    the providers of this kind that the policy's publishers use (else in all of them)."""
    pool = list(checker.used.values()) or [
        p for p in checker.providers.values() if p.workflows == kind]
    return " / ".join(sorted({p.workflow_field("file") or "file" for p in pool})) or "file"


def _errors(found: list[WorkflowFinding]) -> int:
    return sum(f.level == ERROR for f in found)


class WorkflowCheck:
    """One workflow's check, told of the publishers one at a time (`offer`, in the
    policy's order), then `report`: a publishers file read as a stream is checked without
    holding its publishers. Raises `WorkflowError` for a workflow that cannot be read."""

    def __init__(self, text: str, source: str, providers: Mapping[str, Any], *,
                 path: str | None = None, audience: str = "pypi",
                 repository: str | None = None, job: str | None = None) -> None:
        document = _load(text, source)
        if not _is_mapping(document):
            raise WorkflowError([Diagnostic("a workflow is a YAML mapping",
                                            Span(source, 1, 1, 1, 2))], text)
        if "iss" in document and ("aud" in document or "sub" in document):
            raise WorkflowError([Diagnostic(
                "this is a token's claims (it has 'iss' and 'sub' or 'aud'), not a workflow "
                "file", Span(source, 1, 1, 1, 2),
                hint="decide on claims with `tppolicy check --publishers FILE --claims "
                     f"{source}`; check-workflow reads .github/workflows/*.yml or "
                     ".gitlab-ci.yml")], text)
        relative = (path or source).replace(os.sep, "/")
        self._checker = _Checker(source, _Where(source), providers, audience)
        self._repository = repository
        self._run: _GitHub | _GitLab
        if _is_github(document, relative):
            self._kind = GITHUB_ACTIONS
            self._run = _GitHub(self._checker, document, relative, repository, job)
        else:
            self._kind = GITLAB_CI
            self._run = _GitLab(self._checker, document, relative, repository, job)
        self._run.start()

    def offer(self, publisher: Any) -> None:
        """The policy's next publisher (a `CheckedPublisher`): compared with the workflow
        if its provider file's `workflows` kind is this workflow's (and it is of the
        repository asked for), then not held."""
        provider = publisher.provider
        if provider.workflows != self._kind:
            return
        self._checker.used.setdefault(provider.name, provider)
        values = provider.workflow_values(publisher.fields)
        if self._repository is not None and \
                values["repository"].lower() != self._repository.lower():
            return
        self._run.offer(_Pub(publisher, values))

    def report(self) -> WorkflowReport:
        """The findings, once every publisher was offered."""
        return self._run.finish()


def _checked(check: WorkflowCheck, policy: Policy) -> WorkflowReport:
    for publisher in policy.publishers:
        check.offer(publisher)
    return check.report()


def check_workflow_text(text: str, source: str, policy: Policy, *, path: str | None = None,
                        audience: str = "pypi", repository: str | None = None,
                        job: str | None = None) -> WorkflowReport:
    """Check a workflow's text. `path` is its path from the repository root (a GitHub
    workflow's file name is its last part; a GitLab pipeline's path is compared whole)."""
    return _checked(WorkflowCheck(text, source, policy.providers, path=path, audience=audience,
                                  repository=repository, job=job), policy)


def check_workflow_file(file: str | os.PathLike[str], policy: Policy, *,
                        path: str | None = None, audience: str = "pypi",
                        repository: str | None = None, job: str | None = None
                        ) -> WorkflowReport:
    """Check a workflow file. Without `path`, its path from the root of the git checkout
    holding it (else the path as given)."""
    return _checked(open_workflow_file(file, policy.providers, path=path, audience=audience,
                                       repository=repository, job=job), policy)


def open_workflow_file(file: str | os.PathLike[str], providers: Mapping[str, Any], *,
                       path: str | None = None, audience: str = "pypi",
                       repository: str | None = None, job: str | None = None
                       ) -> WorkflowCheck:
    """A workflow file read, to be checked against publishers offered one at a time
    (`WorkflowCheck`). Without `path`, its path from the root of the git checkout holding
    it (else the path as given)."""
    source = os.fsdecode(file)
    # A link to a file outside its git checkout (or, outside any, the current folder) is
    # not read: checked in CI, a pull request's link to /proc/self/environ had its first
    # line echoed in the error (GitHub does not run a linked workflow either).
    here = Path(source).absolute()
    checkout = next((parent for parent in here.parents if (parent / ".git").exists()),
                    Path.cwd())
    text = read_source(Path(source), WorkflowError, max_bytes=MAX_WORKFLOW_BYTES,
                       what="workflow file",
                       tree=LinkTree((checkout,), "the checkout", "name the file itself"))
    return WorkflowCheck(text, source, providers, path=path or _repository_path(source),
                         audience=audience, repository=repository, job=job)


def _repository_path(source: str) -> str:
    """The file's path from the root of its git checkout, or the path as given."""
    here = Path(source).resolve()
    for parent in here.parents:
        if (parent / ".git").exists():
            return here.relative_to(parent).as_posix()
    return Path(source).as_posix().removeprefix("./")


def _is_github(document: Mapping[Any, Any], relative: str) -> bool:
    if "/.github/workflows/" in f"/{relative}":
        return True
    return "jobs" in document and ("on" in document or True in document)


# ---------------------------------------------------------------- GitHub Actions
@dataclass
class _Job:
    name: str
    body: Mapping[Any, Any]
    calls: str | None  # `uses:` of a reusable workflow


class _GitHub:
    def __init__(self, checker: _Checker, document: Mapping[Any, Any], relative: str,
                 repository: str | None, job: str | None) -> None:
        self.c = checker
        self.where = checker.where
        self.doc = document
        self.filename = relative.rsplit("/", 1)[-1]
        self.repository = repository
        self.only_job = job
        jobs = document.get("jobs")
        self.jobs: Mapping[Any, Any] = jobs if _is_mapping(jobs) else {}
        self.triggers = self._triggers()
        # What the publishers offered (`offer`) leave: the labels of those naming this
        # workflow, the workflow files named, the first publisher's and the first close
        # one's, and each publishing job's findings against the publisher closest so far.
        self.named: list[str] = []
        self.files: set[str] = set()
        self.first: _Pub | None = None
        self.close: _Pub | None = None
        self.publishing: list[_Job] = []
        self.closest: list[list[WorkflowFinding] | None] = []

    def start(self) -> None:
        self._unpinned()
        self.publishing = self._publishing_jobs()
        self.closest = [None] * len(self.publishing)

    def offer(self, publisher: _Pub) -> None:
        """A publisher of this kind (and repository), in the policy's order."""
        self.files.add(publisher.w["file"])
        self.first = self.first or publisher
        if self.close is None and \
                _stem(publisher.w["file"]).lower() == _stem(self.filename).lower():
            self.close = publisher
        if self.filename not in (publisher.w["file"], _file_of(publisher.w["caller"])):
            return
        self.named.append(publisher.label)
        if not self.publishing:
            return
        self._publisher(publisher)
        # Each publishing job is judged on its own, by the publisher it comes closest to
        # (fewest errors, then the first): a job that no publisher accepts is refused
        # whatever the other jobs do.
        for position, job in enumerate(self.publishing):
            found, best = self._job(publisher, job), self.closest[position]
            if best is None or _errors(found) < _errors(best):
                self.closest[position] = found

    def finish(self) -> WorkflowReport:
        if not self.named:
            self._no_publisher()
            return self._report([])
        if not self.publishing:
            where = self.where.key(self.doc, "jobs") if "jobs" in self.doc else \
                self.where.node(self.doc)
            wanted = f"job {self.only_job!r}" if self.only_job else "a publishing job"
            self.c.add("TPW002", where, f"{wanted} is not in this workflow: no job uploads "
                       "(pypa/gh-action-pypi-publish, twine, uv publish...), asks for an OIDC "
                       "token or calls a reusable workflow",
                       "add the job that publishes, with `permissions: id-token: write`")
            return self._report([])
        for found in self.closest:
            self.c.findings.extend(found or [])
        return self._report(self.publishing)

    def _report(self, jobs: list[_Job]) -> WorkflowReport:
        return WorkflowReport(self.c.source, "github", tuple(self.c.findings),
                              tuple(self.named), tuple(j.name for j in jobs))

    # -- what the workflow holds
    def _triggers(self) -> dict[str, Any]:
        on = self.doc.get("on", self.doc.get(True))
        if isinstance(on, str):
            return {on: None}
        if isinstance(on, list):
            return {e: None for e in on if isinstance(e, str)}
        if _is_mapping(on):
            return {str(k): v for k, v in on.items()}
        return {}

    def _on(self) -> Any:
        return self.doc.get("on", self.doc.get(True))

    def _trigger_span(self, event: str) -> Span:
        on = self._on()
        if _is_mapping(on):
            return self.where.key(on, event)
        if isinstance(on, list) and event in on:
            return self.where.item(on, on.index(event))
        return self.where.value(self.doc, "on") if "on" in self.doc else \
            self.where.node(self.doc)

    def _publishing_jobs(self) -> list[_Job]:
        jobs = []
        for name, body in self.jobs.items():
            if not _is_mapping(body):
                continue
            calls = body.get("uses") if isinstance(body.get("uses"), str) else None
            if self.only_job is not None:
                if name == self.only_job:
                    jobs.append(_Job(name, body, calls))
                continue
            if calls is not None or self._publishes(body) or _grants_id_token(body.get(
                    "permissions")):
                jobs.append(_Job(name, body, calls))
        return jobs

    def _publishes(self, body: Mapping[Any, Any]) -> bool:
        steps = body.get("steps")
        for step in steps if isinstance(steps, list) else ():
            if not _is_mapping(step):
                continue
            uses = step.get("uses")
            if isinstance(uses, str) and uses.split("@", 1)[0] in _PUBLISH_ACTIONS:
                return True
            run = step.get("run")
            if isinstance(run, str) and _UPLOADERS.search(run):
                return True
        return False

    # -- findings
    def _no_publisher(self) -> None:
        names = sorted(self.files)
        close = self.close
        chosen = close or self.first
        field_name = chosen.field("file") if chosen is not None else \
            _file_field(self.c, GITHUB_ACTIONS)
        if close is not None:
            fix = (f"a publisher names {close.w['file']!r}: the token carries the file's "
                   f"exact name, so rename the file or the publisher's {field_name} to match")
        elif names:
            fix = (f"the publishers name {', '.join(repr(n) for n in names)}; add a publisher "
                   f"with {field_name}: {self.filename}, or publish from one of those")
        else:
            fix = f"add a GitHub publisher for this repository with {field_name}: " \
                  f"{self.filename}"
        self.c.add("TPW001", self.where.node(self.doc),
                   f"no publisher names the workflow {self.filename!r}"
                   + (f" (repository {self.repository})" if self.repository else ""), fix)

    def _publisher(self, publisher: _Pub) -> None:
        label = publisher.label
        self._events(publisher)
        self._refs(publisher)
        if publisher.w["environment"] == "":
            self.c.add("TPW011", self.where.node(self.doc),
                       f"publisher {label!r} accepts any environment: any job of this workflow "
                       "may publish, without an environment's protection rules",
                       "name an environment in the publisher and in the publishing job "
                       "(`environment: pypi`), and protect it (required reviewers)",
                       publisher=label)
        if publisher.w["ref_protected"]:
            self.c.add("TPW014", self.where.node(self.doc),
                       f"publisher {label!r} requires a protected ref: only tags or branches "
                       "whose creation a ruleset restricts publish",
                       "protect the refs that publish (Settings > Rules > Rulesets)",
                       publisher=label)
        if publisher.w["environment_protected"]:
            self.c.add("TPW014", self.where.node(self.doc),
                       f"publisher {label!r} requires a protected environment: the workflow "
                       "cannot show it", "protect the environment (Settings > Environments: "
                       "required reviewers, deployment branches and tags)", publisher=label)

    def _job(self, pub: _Pub, job: _Job) -> list[WorkflowFinding]:
        found: list[WorkflowFinding] = []
        label, body, publisher = pub.label, job.body, pub.publisher

        def add(code: str, span: Span, message: str, fix: str, level: str | None = None) -> None:
            found.append(WorkflowFinding(code, level or CODES[code].level, span, message, fix,
                                         label, job.name))

        job_span = self.where.key(self.jobs, job.name)
        # The OIDC token: the job's own permissions replace the workflow's.
        if "permissions" in body:
            granted, where, whose = body.get("permissions"), self.where.key(body, "permissions"), \
                "the job's"
        else:
            granted, where, whose = self.doc.get("permissions"), job_span, "the workflow's"
        if not _grants_id_token(granted):
            replaced = "permissions" in body and _grants_id_token(self.doc.get("permissions"))
            add("TPW003", where, f"job {job.name!r} gets no OIDC token: {whose} permissions do "
                "not grant id-token: write" + (" (the workflow's do, but a job's own "
                                               "permissions replace them)" if replaced else ""),
                f"add `id-token: write` to the permissions of job {job.name!r}")
        # The workflow that runs the job, and the one that calls it.
        self._reusable(pub, job, add, job_span)
        # The environment (as the publisher's rules compare it).
        wanted = pub.w["environment"]
        if job.calls is not None:
            if wanted:
                add("TPW013", job_span, f"job {job.name!r} calls {job.calls}: its environment "
                    f"is set there, and must be {wanted!r}",
                    f"check that the publishing job of {job.calls} has `environment: {wanted}`")
        elif wanted:
            _environment(self.where, body, wanted, add, job_span, job.name, publisher, {})
        # The runner, as the publisher's rules judge the token's runner_environment.
        if _refusing(publisher, {"runner_environment": "self-hosted"}, "runner_environment"):
            runs_on = body.get("runs-on")
            labels = runs_on.get("labels") if _is_mapping(runs_on) else runs_on
            if _is_mapping(runs_on) and "group" in runs_on:
                labels = [*_strings(labels), "self-hosted"]  # runner groups: self-hosted
            if any(_dynamic(v) for v in _strings(labels)):
                add("TPW013", self.where.key(body, "runs-on"), f"job {job.name!r} picks its "
                    "runner with an expression: it must be GitHub-hosted",
                    "use a GitHub-hosted runner label such as ubuntu-latest")
            elif "self-hosted" in _strings(labels):
                add("TPW009", self.where.key(body, "runs-on"), f"job {job.name!r} runs on a "
                    f"self-hosted runner; publisher {label!r} accepts GitHub-hosted runners "
                    "only", "run the publishing job on a GitHub-hosted runner (ubuntu-latest), "
                    "or change the publisher's runner constraint")
        return found

    def _reusable(self, pub: _Pub, job: _Job, add: Any, job_span: Span) -> None:
        publisher = pub.publisher
        reusable = pub.w["reusable"]
        calls_span = self.where.key(job.body, "uses") if job.calls is not None else job_span
        called_file = pub.w["file"]
        caller = _file_of(pub.w["caller"])
        if reusable:
            if job.calls is None:
                add("TPW008", job_span, f"job {job.name!r} runs its own steps; the publisher "
                    f"expects it to call {reusable}",
                    f"make the job `uses: {_uses_example(reusable)}`")
            elif not _calls_accepted(publisher, job.calls):
                add("TPW008", calls_span, f"job {job.name!r} calls {job.calls}; the publisher "
                    f"accepts {reusable}", f"call `{_uses_example(reusable)}`, or change the "
                    f"publisher's {pub.field('reusable')}")
            return
        if job.calls is None:
            if caller and self.filename == caller and caller != called_file:
                add("TPW008", job_span, f"job {job.name!r} runs its own steps; the publisher "
                    f"expects this workflow to call .github/workflows/{called_file}",
                    f"make the job `uses: ./.github/workflows/{called_file}`")
            return
        target = job.calls
        if target.startswith("./"):
            name = target.rsplit("/", 1)[-1]
            if name != called_file:
                add("TPW008", calls_span, f"job {job.name!r} calls {target}: the token names "
                    f"that workflow (job_workflow_ref), and the publisher expects "
                    f"{called_file!r}", f"set the publisher's {pub.field('file')}: {name} and "
                    f"{pub.field('caller')}: {self.filename} (the caller), or publish from "
                    "this workflow's own job")
            return
        add("TPW008", calls_span, f"job {job.name!r} calls {target}, a workflow of another "
            "repository: the token names it (job_workflow_ref), and the publisher, as PyPI, "
            "accepts only its repository's workflows",
            f"set the publisher's {pub.field('reusable')}: {_reusable_example(target)} "
            "(docs/constraints.md)")

    def _events(self, pub: _Pub) -> None:
        label, publisher = pub.label, pub.publisher
        events = [e for e in self.triggers if e != "workflow_call"]
        if not events:
            return  # a reusable workflow: its callers' triggers apply
        # Which triggers' runs the publisher's rules refuse (event_name).
        refusing = {e: _refusing(publisher, {"event_name": e}, "event_name") for e in events}
        allowed = list(pub.w["events"])
        refused = [e for e in events if refusing[e]]
        everything = len(refused) == len(events)
        for event in refused:
            span = self._trigger_span(event)
            if event == "pull_request_target":
                self.c.add("TPW005", span, "the workflow runs on pull_request_target: its "
                           "tokens are refused, and it runs pull requests' code with the "
                           "repository's permissions", "remove pull_request_target from a "
                           "publishing workflow; publish on release or push of a tag",
                           publisher=label)
                continue
            why = f"not in {pub.field('events')} ({', '.join(allowed)})" if allowed and \
                event not in allowed else \
                f"rule {', '.join(r.name for r in refusing[event])}"
            self.c.add("TPW006", span, f"runs started by {event} are refused by publisher "
                       f"{label!r}: {why}", f"publish on {', '.join(allowed) or 'another event'}"
                       f", or change the publisher's events", publisher=label,
                       level=ERROR if everything else ADVICE)
        if "workflow_run" in events and not refusing["workflow_run"]:
            self.c.add("TPW012", self._trigger_span("workflow_run"), "the workflow runs on "
                       "workflow_run, which crates.io refuses: it runs with the repository's "
                       "permissions after workflows that pull requests can start",
                       "publish on release or push of a tag; or refuse workflow_run in the "
                       "publisher (github: denied_events: workflow_run)", publisher=label)

    def _refs(self, pub: _Pub) -> None:
        label = pub.label
        patterns = list(pub.w["refs"])
        if not patterns:
            return
        shown = " and ".join(patterns)
        verdicts: dict[str, bool | None] = {}
        try:
            matchers = [Glob(p) for p in patterns]
        except EvalError:  # a pattern over the glob limits: nothing to compare with
            return
        for event, config in self.triggers.items():
            if event == "workflow_call":
                continue
            try:
                verdicts[event] = _refs_accepted(event, config, matchers)
            except EvalError:  # a filter beyond the glob limits: cannot tell
                verdicts[event] = None
        if not verdicts:
            return
        nothing = all(v is False for v in verdicts.values())
        for event, verdict in verdicts.items():
            if verdict is False:
                self.c.add("TPW007", self._trigger_span(event), f"runs started by {event} "
                           f"are for refs publisher {label!r} refuses: it accepts {shown}",
                           _ref_fix(event, patterns), publisher=label,
                           level=ERROR if nothing else ADVICE)

    def _unpinned(self) -> None:
        for job_name, body in self.jobs.items():
            if not _is_mapping(body):
                continue
            uses = body.get("uses")
            if isinstance(uses, str):
                self._pinned(uses, self.where.value(body, "uses"), job_name)
            steps = body.get("steps")
            for step in steps if isinstance(steps, list) else ():
                if _is_mapping(step) and isinstance(step.get("uses"), str):
                    self._pinned(step["uses"], self.where.value(step, "uses"), job_name)

    def _pinned(self, uses: str, span: Span, job: str) -> None:
        if uses.startswith(("./", "docker://")) or "@" not in uses:
            return
        action, ref = uses.rsplit("@", 1)
        if action.split("/", 1)[0].lower() in _FIRST_PARTY or _SHA.fullmatch(ref):
            return
        self.c.add("TPW010", span, f"{action} is used at {ref!r}, not at a commit: whoever "
                   "controls that ref changes what runs with your publishing token",
                   f"pin it to the commit: `uses: {action}@<40-hex commit sha>  # {ref}`",
                   job=job)


def _refusing(publisher: Any, claims: Mapping[str, Any], claim: str) -> list[A.Rule]:
    """The publisher's own rules (its provider's, bound to its fields) that read `claim`
    and refuse these claims: what a token of the job would be told. Rules reading claims
    the workflow cannot show are not evaluated."""
    interpreter = Interpreter(claims, publisher.provider.claim_types)
    refusing = []
    given = claims.keys()
    for rule in _rules_reading(publisher, claim):
        read = _claims_read(rule)
        if claim not in read or not read <= given:
            continue
        try:
            passed = all(interpreter.boolean(req.condition) for req in rule.requires)
        except EvalError:
            passed = False
        if not passed:
            refusing.append(rule)
    return refusing


def _rules_reading(publisher: Any, claim: str) -> tuple[A.Rule, ...]:
    """The publisher's rules that may read `claim` (with others): its own, or those of its
    provider's rules that read it, bound to its fields. A bound rule reads no claim its
    provider's rule does not (binding puts in field values): the others are not bound, such
    as the rules reading the publisher's repository, whose values no other publisher shares."""
    if publisher.own_rules is not None:
        return tuple(publisher.own_rules)
    rules = publisher.provider.rules
    known = _READING.get((id(rules), claim))
    if known is None or known[0] is not rules:
        if len(_READING) >= 256:
            _READING.clear()
        known = _READING[(id(rules), claim)] = (
            rules, tuple(rule for rule in rules if claim in _claims_read(rule)))
    return bind_rules(known[1], publisher.fields)


# Per provider's rules (kept with them, so that the id stays theirs) and claim: those
# reading the claim.
_READING: dict[tuple[int, str], tuple[tuple[A.Rule, ...], tuple[A.Rule, ...]]] = {}


# The claims each rule reads, by rule: a file's publishers share many bound rules, and each
# is asked of per trigger and per job. A few hundred: each entry holds its rule, and a
# publisher's own bound rules (those reading its repository) are asked of only while it is
# compared; thousands held them for publishers long gone.
_READ: ByIdentity[A.Rule, frozenset[str]] = ByIdentity(512)


def _claims_read(rule: A.Rule) -> frozenset[str]:
    return _READ.get(rule, lambda r: frozenset(
        name for req in r.requires for name in A.claims_read(req.condition)))


def _environment(where: _Where, body: Mapping[Any, Any], wanted: str, add: Any,
                 job_span: Span, job: str, publisher: Any, claims: Mapping[str, Any]) -> None:
    """The job's environment (a name, or a mapping with a name) against the publisher's
    rules (GitHub's environment rule ignores case, GitLab's does not: the provider file
    says so)."""
    environment = body.get("environment")
    name = environment.get("name") if _is_mapping(environment) else environment
    span = where.key(body, "environment") if "environment" in body else job_span
    same = isinstance(name, str) and not _refusing(
        publisher, {**claims, "environment": name}, "environment")
    if name is None:
        add("TPW004", span, f"job {job!r} names no environment; the publisher expects "
            f"{wanted!r}", f"add `environment: {wanted}` to job {job!r}")
    elif not isinstance(name, str):
        add("TPW004", span, f"job {job!r} has an environment that is not a name",
            f"write `environment: {wanted}`")
    elif _dynamic(name):
        add("TPW013", span, f"job {job!r} names its environment with an expression "
            f"({name}); the publisher expects {wanted!r}",
            f"make sure it is {wanted!r} when publishing, or write it out")
    elif not same:
        add("TPW004", span, f"job {job!r} runs in environment {name!r}; the publisher "
            f"expects {wanted!r}" + (" (case matters)" if name.lower() == wanted.lower()
                                     else ""),
            f"write `environment: {wanted}` in the job, or change the publisher's "
            f"environment to {name!r}")


def _grants_id_token(permissions: Any) -> bool:
    if permissions == "write-all":
        return True
    return _is_mapping(permissions) and permissions.get("id-token") == "write"


def _file_of(path: str) -> str:
    return path.rsplit("/", 1)[-1] if path else ""


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if name.endswith((".yml", ".yaml")) else name


def _calls_accepted(publisher: Any, uses: str) -> bool:
    """Would the publisher's rules accept the token of a job with `uses: X@REF`, whose
    job_workflow_ref is X@REF with the ref a commit, a tag or a branch (`@v1` is
    refs/tags/v1 or refs/heads/v1)?"""
    if "@" not in uses or uses.startswith("./"):
        return False
    path, ref = uses.rsplit("@", 1)
    candidates = [ref] if _SHA.fullmatch(ref) or ref.startswith("refs/") else [
        f"refs/tags/{ref}", f"refs/heads/{ref}"]
    run = {"ref": "refs/heads/main", "sha": "0" * 40}  # the calling run's
    return any(not _refusing(publisher, {**run, "job_workflow_ref": f"{path}@{candidate}"},
                             "job_workflow_ref")
               for candidate in candidates)


def _uses_example(reusable: str) -> str:
    path, ref = reusable.rsplit("@", 1)
    if _SHA.fullmatch(ref):
        return f"{path}@{ref}"
    ref = ref.removeprefix("refs/tags/").removeprefix("refs/heads/").replace("**", "1") \
        .replace("*", "1")
    return f"{path}@{ref}"


def _reusable_example(uses: str) -> str:
    path, _, ref = uses.partition("@")
    if _SHA.fullmatch(ref):
        return f"{path}@{ref}"
    return f"{path}@refs/tags/{ref}" if ref else path


def _brackets(pattern: str, replace: Callable[[str], str]) -> str:
    """`pattern` with each `[...]` (up to the first `]` after its `[`) replaced by
    `replace(inside)`: what re.sub(r"\\[([^\\]]*)\\]", ...) does, in linear time (the regex
    scanned to the end from every `[` with no `]` after it: a filter of 160 000 `[` took
    165 s)."""
    out: list[str] = []
    done = 0
    while (start := pattern.find("[", done)) >= 0 and (end := pattern.find("]", start)) >= 0:
        out += (pattern[done:start], replace(pattern[start + 1:end]))
        done = end + 1
    out.append(pattern[done:])
    return "".join(out)


def _sample(pattern: str) -> str:
    """A ref name a GitHub filter pattern matches (`v*` → `v1`), or a glob matches."""
    text = _brackets(pattern, lambda inside: (inside.lstrip("!^") or "0")[0])
    return text.replace("**", "1/1").replace("*", "1").replace("?", "1").replace("+", "")


def _filter_glob(pattern: str) -> Glob:
    """A GitHub filter pattern as a (looser) glob: `[...]`, `?` and `+` become wildcards."""
    text = _brackets(pattern, lambda inside: "?")
    return Glob(text.replace("+", "*").replace("?", "*"))


def _compatible(prefix: str, filters: list[str], matchers: list[Glob]) -> bool:
    """Can a ref `prefix + name`, `name` matched by one of the filters, match a publisher
    glob? Filters and globs differ in syntax, so this samples both ways: a filter's sample
    against the globs, and the globs' samples against the filter."""
    for pattern in filters:
        if any(m(prefix + _sample(pattern)) for m in matchers):
            return True
        loose = _filter_glob(pattern)
        for m in matchers:
            if m.pattern.startswith(prefix) and loose(_sample(m.pattern[len(prefix):])):
                return True
    return False


def _refs_accepted(event: str, config: Any, matchers: list[Glob]) -> bool | None:
    """Can runs of this trigger be for a ref the publisher accepts? None: cannot tell."""

    def any_match(refs: Iterable[str]) -> bool:
        return any(m(ref) for m in matchers for ref in refs)

    if event == "push" and _is_mapping(config):
        tags = [p for p in _strings(config.get("tags")) if not p.startswith("!")]
        branches = [p for p in _strings(config.get("branches")) if not p.startswith("!")]
        if tags or branches:
            return (_compatible("refs/tags/", tags, matchers)
                    or _compatible("refs/heads/", branches, matchers))
        if ("branches" in config or "branches-ignore" in config) and (
                "tags" not in config and "tags-ignore" not in config):
            # GitHub: with only branch filters, tag pushes do not run the workflow.
            return any_match(["refs/heads/main"]) or None
        return None
    if event == "release":
        return any_match(["refs/tags/v1.2.3", "refs/tags/1.2.3"]) or _tags_possible(matchers)
    if event in ("schedule",):
        return any_match(["refs/heads/main", "refs/heads/master"])
    if event in ("pull_request",):
        return any_match(["refs/pull/1/merge"])
    return None


def _tags_possible(matchers: list[Glob]) -> bool:
    return any(m.pattern.startswith(("refs/tags/", "refs/**", "refs/*")) for m in matchers)


def _ref_fix(event: str, patterns: list[str]) -> str:
    tags = [p.removeprefix("refs/tags/") for p in patterns if p.startswith("refs/tags/")]
    if tags:
        return f"publish on a push of tags (`on: push: tags: ['{tags[0]}']`) or on release"
    return f"restrict the trigger to the refs the publisher accepts ({', '.join(patterns)})"


# ---------------------------------------------------------------------- GitLab
_GITLAB_KEYWORDS = frozenset({
    "default", "include", "stages", "variables", "workflow", "image", "services", "cache",
    "before_script", "after_script", "pages", "spec",
})


class _GitLab:
    def __init__(self, checker: _Checker, document: Mapping[Any, Any], relative: str,
                 repository: str | None, job: str | None) -> None:
        self.c = checker
        self.where = checker.where
        self.doc = document
        self.relative = relative.removeprefix("./")
        self.repository = repository
        self.only_job = job
        # As `_GitHub`'s: what the publishers offered leave.
        self.named: list[str] = []
        self.files: set[str] = set()
        self.first: _Pub | None = None
        self.publishing: list[tuple[str, Mapping[Any, Any]]] = []
        self.closest: list[list[WorkflowFinding] | None] = []

    def start(self) -> None:
        self._includes()
        self.publishing = self._publishing_jobs()
        self.closest = [None] * len(self.publishing)

    def offer(self, publisher: _Pub) -> None:
        """A publisher of this kind (and repository), in the policy's order."""
        self.files.add(publisher.w["file"])
        self.first = self.first or publisher
        if publisher.w["file"] != self.relative:
            return
        self.named.append(publisher.label)
        if not self.publishing:
            return
        self._publisher(publisher)
        # Each publishing job on its own, by the publisher it comes closest to.
        for position, (name, body) in enumerate(self.publishing):
            found, best = self._job(publisher, name, body), self.closest[position]
            if best is None or _errors(found) < _errors(best):
                self.closest[position] = found

    def finish(self) -> WorkflowReport:
        if not self.named:
            paths = sorted(self.files)
            close = [p for p in paths if self.relative.endswith("/" + p) or p.endswith(
                "/" + self.relative) or p.lower() == self.relative.lower()]
            field_name = self.first.field("file") if self.first is not None else \
                _file_field(self.c, GITLAB_CI)
            fix = (f"a publisher names {close[0]!r}: give the path from the repository root "
                   f"(check-workflow --path), or fix the publisher's {field_name}"
                   if close else
                   f"add a GitLab publisher with {field_name}: {self.relative}")
            self.c.add("TPW001", self.where.node(self.doc), f"no publisher names the pipeline "
                       f"file {self.relative!r}", fix)
            return self._report([])
        if not self.publishing:
            wanted = f"job {self.only_job!r}" if self.only_job else "a publishing job"
            self.c.add("TPW002", self.where.node(self.doc), f"{wanted} is not in this "
                       "pipeline: no job asks for an ID token (id_tokens) or uploads",
                       f"add a job with `id_tokens: PYPI_ID_TOKEN: aud: {self.c.audience}`")
            return self._report([])
        for found in self.closest:
            self.c.findings.extend(found or [])
        return self._report([name for name, _ in self.publishing])

    def _report(self, jobs: list[str]) -> WorkflowReport:
        return WorkflowReport(self.c.source, "gitlab", tuple(self.c.findings),
                              tuple(self.named), tuple(jobs))

    def _jobs(self) -> Iterator[tuple[str, Mapping[Any, Any]]]:
        for name, body in self.doc.items():
            if (isinstance(name, str) and name not in _GITLAB_KEYWORDS
                    and not name.startswith(".") and _is_mapping(body)):
                yield name, body

    def _publishing_jobs(self) -> list[tuple[str, Mapping[Any, Any]]]:
        jobs = []
        for name, body in self._jobs():
            if self.only_job is not None:
                if name == self.only_job:
                    jobs.append((name, body))
                continue
            script = " ".join(_script_lines(body.get("script")))
            if "id_tokens" in body or _UPLOADERS.search(script):
                jobs.append((name, body))
        return jobs

    def _job(self, pub: _Pub, name: str, body: Mapping[Any, Any]) -> list[WorkflowFinding]:
        found: list[WorkflowFinding] = []
        label = pub.label

        def add(code: str, span: Span, message: str, fix: str, level: str | None = None) -> None:
            found.append(WorkflowFinding(code, level or CODES[code].level, span, message, fix,
                                         label, name))

        job_span = self.where.key(self.doc, name)
        tokens = body.get("id_tokens")
        audiences = [a for token in (tokens.values() if _is_mapping(tokens) else ())
                     if _is_mapping(token) for a in _strings(token.get("aud"))]
        if self.c.audience not in audiences:
            where = self.where.key(body, "id_tokens") if "id_tokens" in body else job_span
            add("TPW003", where, f"job {name!r} asks for no ID token with audience "
                f"{self.c.audience!r}" + (f" (it asks for {', '.join(audiences)})"
                                          if audiences else ""),
                f"add `id_tokens: PYPI_ID_TOKEN: aud: {self.c.audience}` to job {name!r}")
        wanted = pub.w["environment"]
        if wanted:
            _environment(self.where, body, wanted, add, job_span, name, pub.publisher, {})
        patterns = list(pub.w["refs"])
        if patterns and not _gitlab_tags_only(body):
            add("TPW007", job_span, f"job {name!r} also runs for branches; publisher "
                f"{label!r} accepts only {' and '.join(patterns)}",
                "run the job for tags only: `rules: - if: $CI_COMMIT_TAG`", level=ADVICE)
        return found

    def _publisher(self, publisher: _Pub) -> None:
        label = publisher.label
        if publisher.w["environment"] == "":
            self.c.add("TPW011", self.where.node(self.doc), f"publisher {label!r} accepts any "
                       "environment: any job of the pipeline may publish",
                       "name an environment in the publisher and in the publishing job, and "
                       "protect it (Settings > CI/CD > Protected environments)", publisher=label)
        for flag, what in (("ref_protected", "ref"), ("environment_protected", "environment")):
            if publisher.w[flag]:
                self.c.add("TPW014", self.where.node(self.doc), f"publisher {label!r} requires "
                           f"a protected {what}: the pipeline cannot show it",
                           f"protect the {what} in the project's settings", publisher=label)

    def _includes(self) -> None:
        include = self.doc.get("include")
        entries = include if isinstance(include, list) else [include] if include else []
        for index, entry in enumerate(entries):
            span = (self.where.item(include, index) if isinstance(include, list)
                    else self.where.value(self.doc, "include"))
            if not _is_mapping(entry):
                continue
            component = entry.get("component")
            if isinstance(component, str) and "@" in component:
                version = component.rsplit("@", 1)[1]
                if not _SHA.fullmatch(version):
                    self.c.add("TPW010", span, f"component {component} is used at "
                               f"{version!r}, not at a commit", "pin it: "
                               f"`component: {component.rsplit('@', 1)[0]}@<40-hex commit sha>`")
            if isinstance(entry.get("project"), str):
                ref = entry.get("ref")
                if not (isinstance(ref, str) and _SHA.fullmatch(ref)):
                    self.c.add("TPW010", span, f"the pipeline includes {entry['project']} at "
                               f"{ref if isinstance(ref, str) else 'its default branch'!r}, "
                               "not at a commit", "pin it: `ref: <40-hex commit sha>`")
            if isinstance(entry.get("remote"), str):
                self.c.add("TPW010", span, f"the pipeline includes {entry['remote']}, which "
                           "its host can change at any time", "copy the file into the project, "
                           "or include it from a project pinned at a commit")


def _gitlab_tags_only(body: Mapping[Any, Any]) -> bool:
    only = body.get("only")
    refs = only.get("refs") if _is_mapping(only) else only
    if _strings(refs) == ["tags"]:
        return True
    rules = body.get("rules")
    for rule in rules if isinstance(rules, list) else ():
        condition = rule.get("if") if _is_mapping(rule) else None
        if not isinstance(condition, str):
            return False
        if rule.get("when") == "never":
            continue
        if "CI_COMMIT_TAG" not in condition:
            return False
    return isinstance(rules, list) and bool(rules)


def check_workflows_streamed(text: str, source: str, workflows: Sequence[str],
                             providers: Mapping[str, Any],
                             issuers: Mapping[str, str] | None = None, *,
                             path: str | None = None, audience: str = "pypi",
                             repository: str | None = None, job: str | None = None
                             ) -> tuple[list[WorkflowReport], list[TppolicyError]] | None:
    """The `workflows` (files) checked against a publishers file read once as a stream:
    each publisher compared with every workflow as it goes by, none held (ten thousand
    publishers take their text's memory, not their policy's). The reports, and the errors
    of the workflows that could not be checked, each as `check_workflow_file` gives them;
    None when the file is to be read whole (`stream_publishers`), which reports its
    problems."""
    from tppolicy.decide.load import stream_publishers

    checks: list[WorkflowCheck | TppolicyError] = []
    for name in workflows:
        try:
            checks.append(open_workflow_file(name, providers, path=path, audience=audience,
                                             repository=repository, job=job))
        except TppolicyError as exc:
            checks.append(exc)

    def consume(entry: object, publisher: CheckedPublisher, publisher_id: str) -> bool:
        for position, check in enumerate(checks):
            if isinstance(check, WorkflowCheck):
                try:
                    check.offer(publisher)
                except TppolicyError as exc:  # as the check of the whole policy reports it
                    checks[position] = exc
        return False

    if stream_publishers(text, source, consume, providers=providers, issuers=issuers) is None:
        return None
    reports: list[WorkflowReport] = []
    errors: list[TppolicyError] = []
    for check in checks:
        if isinstance(check, TppolicyError):
            errors.append(check)
            continue
        try:
            reports.append(check.report())
        except TppolicyError as exc:
            errors.append(exc)
    return reports, errors
