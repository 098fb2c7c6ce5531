"""Explain a decision to the person who owns the configuration: every publisher of the
token's provider ranked by how close it came, rule by rule, and the fix in plain words.

This is the answer to PyPI's "valid token, but no corresponding publisher". The person
running it owns the publishers, so identity mismatches (another repository, owner, namespace,
account) are shown too; each check and fix says whether a *server* could disclose it to
whoever presented the token, following NuGet's rule: once the token's identity (repository,
owner, namespace, account) matches a publisher, the differences in workflow, environment,
ref and the like are disclosable; identity mismatches are not (they would tell a stranger
which repositories a project trusts).

Nothing here prints. `advise` builds an `Advice`; the CLI renders it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tppolicy.decide.decision import Decision, RuleResult, token_reason
from tppolicy.decide.policy import Policy
from tppolicy.decide.reasons import Explainer, show
from tppolicy.language import ast as A
from tppolicy.language.check import CheckedProvider, CheckedPublisher
from tppolicy.language.compile import lookup_value
from tppolicy.language.interpret import Interpreter, claim_value
from tppolicy.language.ops import EvalError, describe_type

if TYPE_CHECKING:
    from tppolicy.token.verify import Verifier

__all__ = ["Advice", "Candidate", "Check", "Fix", "advise", "advise_token"]

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

# Checks about *who* the token is: a server must not disclose their mismatches. For the
# shipped providers, rules as well as lookup keys (the provider files mark only the keys).
IDENTITY: Mapping[str, frozenset[str]] = {
    "github": frozenset({"repository", "repository_owner", "repository_owner_id",
                         "lookup.repository_owner", "lookup.repository_name",
                         "lookup.repository_owner_id"}),
    "gitlab": frozenset({"sub", "project_path", "lookup.namespace", "lookup.project",
                         "lookup.issuer_url"}),
    "google": frozenset({"email", "sub", "lookup.email"}),
    "activestate": frozenset({"sub", "organization", "project", "actor_id",
                              "lookup.organization", "lookup.activestate_project_name",
                              "lookup.actor_id"}),
}


@dataclass(frozen=True, slots=True)
class Check:
    """One row of a candidate's table: a rule of the publisher, or one of its lookup keys."""

    name: str  # the rule's name, or lookup.FIELD
    kind: str  # rule | lookup | token
    passed: bool
    expected: Any
    actual: Any
    message: str
    identity: bool = False
    disclosable: bool = True
    expectation: str = ""  # the expected value in words, for a table

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "passed": self.passed,
                "expected": self.expected, "expectation": self.expectation,
                "actual": self.actual, "message": self.message,
                "identity": self.identity, "disclosable": self.disclosable}


@dataclass(frozen=True, slots=True)
class Fix:
    """What to change, where (the workflow, the publisher, the token request...), and why."""

    check: str
    where: str  # workflow | publisher | token | operator | nothing
    text: str
    disclosable: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "where": self.where, "text": self.text,
                "disclosable": self.disclosable}


@dataclass(frozen=True, slots=True)
class Candidate:
    publisher: str
    provider: str
    projects: tuple[str, ...]
    pending: bool
    chosen: bool  # the publisher that allowed the token
    checks: tuple[Check, ...]
    fixes: tuple[Fix, ...] = ()

    @property
    def rules(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.kind == "rule")

    @property
    def keys(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.kind == "lookup")

    @property
    def identity_matches(self) -> bool:
        return all(c.passed for c in self.checks if c.identity)

    def to_json(self, rank: int) -> dict[str, Any]:
        return {"rank": rank, "publisher": self.publisher, "provider": self.provider,
                "projects": list(self.projects), "pending": self.pending,
                "chosen": self.chosen,
                "rules_passed": sum(c.passed for c in self.rules), "rules": len(self.rules),
                "keys_matched": sum(c.passed for c in self.keys), "keys": len(self.keys),
                "identity_matches": self.identity_matches,
                "checks": [c.to_json() for c in self.checks],
                "fixes": [f.to_json() for f in self.fixes]}


@dataclass(frozen=True, slots=True)
class Advice:
    allowed: bool
    decision: Decision
    audience: str
    provider: str | None
    issuer: str | None
    provider_guessed: bool = False  # unknown issuer: the provider whose claims the token has
    token_checks: tuple[Check, ...] = ()  # before any publisher: iss, aud, claims
    token_fixes: tuple[Fix, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "publisher": self.decision.publisher,
            "provider": self.provider,
            "provider_guessed": self.provider_guessed,
            "issuer": self.issuer,
            "audience": self.audience,
            "token_checks": [c.to_json() for c in self.token_checks],
            "token_fixes": [f.to_json() for f in self.token_fixes],
            "candidates": [c.to_json(rank) for rank, c in enumerate(self.candidates, 1)],
            "notes": list(self.notes),
            "decision": self.decision.to_json(),
        }


# ------------------------------------------------------------------------ checks
def _token_checks(provider: CheckedProvider | None, claims: Mapping[str, Any],
                  audience: str, issuer_known: bool, known: list[str]) -> list[Check]:
    checks: list[Check] = []
    issuer = claims.get("iss")
    if not issuer_known:
        if issuer is None:
            message = "token has no 'iss' claim"
        elif not isinstance(issuer, str):
            message = f"the 'iss' claim is {describe_type(issuer)}, expected a string"
        else:
            message = f"unknown issuer {issuer!r}: no provider trusts it"
        checks.append(Check("iss", "token", False, known, issuer, message))
    else:
        checks.append(Check("iss", "token", True, issuer, issuer, "a known issuer"))
    aud = claims.get("aud")
    if aud.__class__ is str and aud == audience:
        checks.append(Check("aud", "token", True, audience, aud, "the expected audience"))
    else:
        if aud is None:
            message = "token has no 'aud' claim"
        elif isinstance(aud, list):
            message = f"token's audience is a list {show(aud)}; it must be the single " \
                      f"string {audience!r}"
        elif not isinstance(aud, str):
            message = f"the 'aud' claim is {describe_type(aud)}, expected a string"
        else:
            message = f"token has audience {aud!r}, expected {audience!r}"
        checks.append(Check("aud", "token", False, audience, aud, message))
    if provider is not None:
        for spec in (*provider.required_claims, *provider.optional_claims):
            try:
                value = claim_value(claims, spec.name, spec.type)
            except EvalError as exc:
                checks.append(Check(f"claims.{spec.name}", "token", False, spec.type,
                                    claims.get(spec.name), str(exc)))
                continue
            if value is None and spec.category != "optional":
                checks.append(Check(f"claims.{spec.name}", "token", False, spec.type, None,
                                    f"missing claim '{spec.name}'"))
    return checks


def _candidate(publisher: CheckedPublisher, claims: Mapping[str, Any],
               decision: Decision) -> Candidate:
    provider = publisher.provider
    identity = IDENTITY.get(provider.name)
    # Other providers: the lookup keys their file marks `identity` (all keys if none is),
    # and the rules named after those fields.
    marked = [k for k in provider.keys if k.identity] or list(provider.keys)
    key_labels = {f"lookup.{k.label}" for k in marked} | {k.label for k in marked}
    explainer = Explainer(claims, provider.claim_types)
    interpreter = Interpreter(claims, provider.claim_types)
    raw: list[tuple[str, str, RuleResult]] = []
    words: dict[str, str] = {}
    for key, wanted in zip(provider.keys, publisher.key_values, strict=True):
        name = f"lookup.{key.label}"
        try:
            actual = interpreter.value(key.claims_side)
        except EvalError as exc:
            raw.append((name, "lookup", RuleResult(name, False, wanted, None,
                                                   f"cannot read {key.label} from the token: "
                                                   f"{exc}")))
            continue
        if lookup_value(actual) == lookup_value(wanted):
            raw.append((name, "lookup", RuleResult(name, True, wanted, actual,
                                                   f"token has {show(actual)}")))
        else:
            raw.append((name, "lookup", RuleResult(name, False, wanted, actual,
                                                   f"token has {show(actual)}, publisher "
                                                   f"expects {show(wanted)}")))
    for rule in publisher.rules:
        result = explainer.rule(rule)
        if result.passed and result.actual is None and claims.get(rule.name) is not None:
            # a rule named after the claim it checks: show what the token had
            result = RuleResult(rule.name, True, result.expected, claims[rule.name],
                                result.message)
        raw.append((rule.name, "rule", result))
        words[rule.name] = _expectation(rule, result)

    def is_identity(name: str) -> bool:
        return name in identity if identity is not None else name in key_labels

    identity_ok = all(r.passed for name, _, r in raw if is_identity(name))
    checks = tuple(
        Check(name, kind, r.passed, r.expected, r.actual, r.message, is_identity(name),
              not is_identity(name) and identity_ok,
              words.get(name) or ("" if r.expected is None else show(r.expected)))
        for name, kind, r in raw)
    chosen = decision.allowed and decision.publisher == publisher.label
    return Candidate(publisher.label, provider.name, publisher.projects, publisher.pending,
                     chosen, checks)


def _expectation(rule: A.Rule, result: RuleResult) -> str:
    """What the rule expects, in words: "'pypi' (ignoring case)", "anything but 'x'"."""
    if not result.passed:
        found = re.search(r"publisher expects (.+)$", result.message)
        if found:
            return found.group(1)
        return "" if result.expected is None else show(result.expected)
    last = rule.requires[-1].condition if rule.requires else None
    if isinstance(last, A.Compare) and last.op == "!=" and result.expected is not None:
        return f"anything but {show(result.expected)}"
    if result.expected is None:
        return ""
    lowered = isinstance(last, A.Compare) and any(
        isinstance(side, A.Call) and side.function == "lower" for side in (last.left, last.right))
    return show(result.expected) + (" (ignoring case)" if lowered else "")


def _rank(candidates: list[tuple[int, Candidate]]) -> list[Candidate]:
    def score(item: tuple[int, Candidate]) -> tuple[Any, ...]:
        position, c = item
        identity = sum(x.passed for x in c.checks if x.identity)
        passed = sum(x.passed for x in c.checks)
        return (not c.chosen, -identity, -passed, c.pending, position)

    return [c for _, c in sorted(candidates, key=score)]


def _guess_provider(policy: Policy, claims: Mapping[str, Any]) -> CheckedProvider | None:
    """For an unknown issuer: the provider all of whose required claims the token has."""
    best: tuple[int, CheckedProvider] | None = None
    for provider in policy.providers.values():
        names = [s.name for s in provider.required_claims]
        if names and all(name in claims for name in names) and (
                best is None or len(names) > best[0]):
            best = (len(names), provider)
    return best[1] if best else None


# ------------------------------------------------------------------------- fixes
def _lower_equal(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a != b and a.lower() == b.lower()


def _extension_twins(a: Any, b: Any) -> bool:
    if not (isinstance(a, str) and isinstance(b, str)) or a == b:
        return False

    def stem(s: str) -> str:
        return re.sub(r"\.ya?ml$", "", s)

    return stem(a) == stem(b) and a.endswith((".yml", ".yaml")) and b.endswith((".yml", ".yaml"))


def _strip_ref(value: str, claims: Mapping[str, Any], ref: str) -> str:
    for suffix in (claims.get(ref), claims.get("sha")):
        if isinstance(suffix, str) and suffix and value.endswith("@" + suffix):
            return value[:-len(suffix) - 1]
    return value.split("@", 1)[0]


class _Advisor:
    def __init__(self, publisher: CheckedPublisher, claims: Mapping[str, Any],
                 candidate: Candidate) -> None:
        self.publisher = publisher
        self.fields = publisher.fields
        self.claims = claims
        self.candidate = candidate
        self.failed = {c.name: c for c in candidate.checks if not c.passed}
        self.fixes: list[Fix] = []
        self.done: set[str] = set()

    def add(self, check: str, where: str, text: str, covers: tuple[str, ...] = ()) -> None:
        if check in self.done:
            return
        row = self.failed.get(check)
        disclosable = row.disclosable if row is not None else True
        self.fixes.append(Fix(check, where, text, disclosable))
        self.done.update((check, *covers))

    def run(self) -> tuple[Fix, ...]:
        specific: dict[str, Callable[[], None]] = {
            "github": self.github, "gitlab": self.gitlab, "google": self.google,
            "activestate": self.activestate,
        }
        handler = specific.get(self.publisher.provider.name)
        if handler is not None:
            handler()
        for name, check in self.failed.items():
            if name not in self.done:
                self.add(name, "publisher or workflow",
                         f"{name}: {check.message}. Change the publisher or the CI job so that "
                         "they agree.")
        return tuple(self.fixes)

    # ------------------------------------------------------------------ GitHub
    def github(self) -> None:
        claims, fields = self.claims, self.fields
        owner, name = fields.get("repository_owner"), fields.get("repository_name")
        token_repo = claims.get("repository")
        token_owner = claims.get("repository_owner")
        wanted_repo = f"{owner}/{name}"
        if "event_name" in self.failed:
            self.add("event_name", "workflow",
                     "The job was triggered by pull_request_target, which PyPI refuses: such "
                     "runs use the base repository's permissions on code from a pull request. "
                     "Publish from a workflow triggered by push (tags), release or "
                     "workflow_dispatch.")
        owner_failed = {"repository_owner", "lookup.repository_owner"} & set(self.failed)
        repo_failed = {"repository", "lookup.repository_name"} & set(self.failed)
        id_failed = {"repository_owner_id", "lookup.repository_owner_id"} & set(self.failed)
        if id_failed and not owner_failed:
            self.add(sorted(id_failed)[-1], "publisher",
                     f"Possible resurrection: the token's owner is called {owner!r} but its id "
                     f"is {show(claims.get('repository_owner_id'))}, not "
                     f"{show(fields.get('repository_owner_id'))} as when the publisher was "
                     f"made. The account or organization {owner!r} may have been deleted and "
                     "its name taken by someone else: do not trust this token. Only if you are "
                     "sure the owner is yours and the publisher's id is wrong, look the id up "
                     f"(https://api.github.com/users/{owner}) and fix repository_owner_id.",
                     covers=tuple(id_failed))
        if owner_failed:
            check = sorted(owner_failed)[0]
            actual = token_owner if isinstance(token_owner, str) else (
                token_repo.split("/")[0] if isinstance(token_repo, str) else token_owner)
            if _lower_equal(actual, owner):
                self.add(check, "publisher",
                         f"Fix the owner's case: GitHub spells it {actual!r}, the publisher "
                         f"{owner!r}, and PyPI's lookup compares it exactly. Write "
                         f"repository_owner: {actual} in the publisher.",
                         covers=tuple(owner_failed))
            else:
                self.add(check, "publisher",
                         f"The token comes from another owner: {show(actual)}, not {owner!r}. "
                         "If the repository was transferred, update the publisher's "
                         "repository_owner and repository_owner_id (the new owner's id); "
                         "otherwise this token is not from your repository.",
                         covers=(*owner_failed, *id_failed))
        if repo_failed:
            check = sorted(repo_failed)[0]
            if _lower_equal(token_repo, wanted_repo):
                self.add(check, "publisher",
                         f"Fix the repository's case: GitHub spells it {token_repo!r}, the "
                         f"publisher {wanted_repo!r}, and PyPI's lookup compares it exactly. "
                         "Use GitHub's spelling in the publisher.", covers=tuple(repo_failed))
            elif not owner_failed:
                self.add(check, "publisher",
                         f"The token comes from the repository {show(token_repo)}, the "
                         f"publisher is for {wanted_repo!r}. If the repository was renamed, "
                         "update the publisher's repository_name; otherwise add a publisher "
                         "for this repository.", covers=tuple(repo_failed))
            else:
                self.done.update(repo_failed)
        self.github_workflow()
        self.environment(ignoring_case=True)

    def github_workflow(self) -> None:
        failed = {"job_workflow_ref", "lookup.workflow_filename"} & set(self.failed)
        if not failed:
            return
        check = "lookup.workflow_filename" if "lookup.workflow_filename" in failed else (
            "job_workflow_ref")
        claims = self.claims
        ref = claims.get("job_workflow_ref")
        wanted = self.fields.get("workflow_filename")
        if not isinstance(ref, str) or not ref:
            return
        path = _strip_ref(ref, claims, "ref")
        parts = path.split("/")
        ran_repo = "/".join(parts[:2])
        ran_file = parts[-1]
        repo = claims.get("repository")
        publisher_repo = f"{self.fields.get('repository_owner')}/" \
                         f"{self.fields.get('repository_name')}"
        # A workflow of the token's own repository, which is not the publisher's: the
        # repository's fix (another repository, or its case) says it all.
        repo_covered = ran_repo != publisher_repo and ran_repo == repo and bool(
            {"repository", "lookup.repository_name", "repository_owner",
             "lookup.repository_owner"} & self.done)
        if isinstance(repo, str) and ran_repo.lower() != repo.lower():
            self.add(check, "workflow",
                     f"The job ran the reusable workflow {path!r}, called from {repo!r}. PyPI "
                     "checks the workflow that runs the job (job_workflow_ref) and cannot "
                     "accept a reusable workflow from another repository "
                     "(pypi/warehouse#11096). Run the publishing step in a job of a workflow "
                     f"in {repo!r} itself.", covers=tuple(failed))
        elif repo_covered and ran_file == wanted:
            self.done.update(failed)
        elif _lower_equal(ran_file, wanted):
            self.add(check, "publisher",
                     f"Fix the workflow filename's case: the file is {ran_file!r}, the "
                     f"publisher says {wanted!r}, and file names are compared exactly. Write "
                     f"workflow_filename: {ran_file} in the publisher (or rename the file).",
                     covers=tuple(failed))
        elif _extension_twins(ran_file, wanted):
            self.add(check, "publisher",
                     f"The workflow file is {ran_file!r}, the publisher says {wanted!r}: "
                     f"write workflow_filename: {ran_file} in the publisher.",
                     covers=tuple(failed))
        elif ran_file != wanted:
            self.add(check, "workflow or publisher",
                     f"The token comes from the workflow {ran_file!r}, the publisher is for "
                     f"{wanted!r}. Publish from a job in .github/workflows/{wanted}, or add a "
                     f"publisher for {ran_file} (each workflow that publishes needs its own).",
                     covers=tuple(failed))
        elif path == f"{publisher_repo}/.github/workflows/{wanted}":
            self.add(check, "workflow",
                     f"job_workflow_ref {ref!r} does not end in the token's ref "
                     f"({show(claims.get('ref'))}) or sha ({show(claims.get('sha'))}): "
                     "the token does not say which version of the workflow ran.",
                     covers=tuple(failed))

    def environment(self, *, ignoring_case: bool) -> None:
        if "environment" not in self.failed:
            return
        wanted = self.fields.get("environment")
        actual = self.claims.get("environment")
        if actual is None or actual == "":
            self.add("environment", "workflow",
                     f"The job ran without a deployment environment, but the publisher "
                     f"requires {wanted!r}. Add `environment: {wanted}` to the publishing job, "
                     "or remove the environment from the publisher (not recommended: the "
                     "environment's protection rules guard the release).")
        elif not ignoring_case and _lower_equal(actual, wanted):
            self.add("environment", "workflow or publisher",
                     f"GitLab environment names are case-sensitive: the job ran in {actual!r}, "
                     f"the publisher says {wanted!r}. Spell them the same in both.")
        else:
            self.add("environment", "workflow or publisher",
                     f"Rename the environment: the job ran in {show(actual)}, the publisher "
                     f"expects {wanted!r}. Set `environment: {wanted}` in the publishing job, "
                     f"or change the publisher's environment to {show(actual)}.")

    # ------------------------------------------------------------------ GitLab
    def gitlab(self) -> None:
        claims, fields = self.claims, self.fields
        wanted = f"{fields.get('namespace')}/{fields.get('project')}"
        token_path = claims.get("project_path")
        identity = {"sub", "project_path", "lookup.namespace", "lookup.project"} & set(
            self.failed)
        if identity:
            self.add(sorted(identity)[0], "publisher",
                     f"The token comes from the GitLab project {show(token_path)}, the "
                     f"publisher is for {wanted!r}. If the project was moved or renamed, "
                     "update the publisher's namespace and project; otherwise add a publisher "
                     "for this project. GitLab publishers have no id to catch a deleted "
                     "namespace taken over by someone else (pypi/warehouse#15643): check who "
                     "owns it now.", covers=tuple(identity))
        if "lookup.issuer_url" in self.failed:
            self.add("lookup.issuer_url", "publisher",
                     f"The token comes from the GitLab instance {show(claims.get('iss'))}, the "
                     f"publisher is for {fields.get('issuer_url')!r} (issuer_url).")
        failed = {"ci_config_ref_uri", "lookup.workflow_filepath"} & set(self.failed)
        uri = claims.get("ci_config_ref_uri")
        if failed and isinstance(uri, str) and "//" in uri:
            check = sorted(failed)[0]
            config = _strip_ref(uri, claims, "ref_path")
            location, _, path = config.partition("//")
            host, _, project_path = location.partition("/")
            wanted_path = fields.get("workflow_filepath")
            if _lower_equal(project_path, wanted):
                self.add(check, "publisher",
                         f"GitLab namespace case mismatch: the pipeline's ci_config_ref_uri "
                         f"names {project_path!r}, the publisher {wanted!r}. PyPI compares it "
                         "exactly with the publisher's spelling (pypi/warehouse#18797): write "
                         "the namespace and project in the publisher as GitLab spells them.",
                         covers=tuple(failed))
            elif _lower_equal(path, wanted_path):
                self.add(check, "publisher",
                         f"Fix the pipeline file's case: it is {path!r}, the publisher says "
                         f"{wanted_path!r}, and the path is compared exactly.",
                         covers=tuple(failed))
            elif path != wanted_path:
                self.add(check, "workflow or publisher",
                         f"The pipeline ran from {path!r}, the publisher is for "
                         f"{wanted_path!r} (the top-level pipeline file, from the repository "
                         "root). Change workflow_filepath, or publish from that file.",
                         covers=tuple(failed))
            elif isinstance(fields.get("issuer_url"), str) and host != str(
                    fields["issuer_url"]).removeprefix("https://"):
                self.add(check, "publisher",
                         f"The pipeline ran on {host!r}, the publisher is for "
                         f"{fields['issuer_url']!r}.", covers=tuple(failed))
        self.environment(ignoring_case=False)

    # ------------------------------------------------------------------ Google
    def google(self) -> None:
        claims, fields = self.claims, self.fields
        if {"email", "lookup.email"} & set(self.failed):
            self.add("email" if "email" in self.failed else "lookup.email", "publisher",
                     f"The token is for the service account {show(claims.get('email'))}, the "
                     f"publisher for {fields.get('email')!r}. Run the build as that service "
                     "account, or add a publisher for this one.", covers=("lookup.email",))
        if "email_verified" in self.failed:
            self.add("email_verified", "token",
                     "The token's email_verified claim is "
                     f"{show(claims.get('email_verified'))}: PyPI needs a token whose email is "
                     "verified. Request the service account's ID token with its email "
                     "included (e.g. `gcloud auth print-identity-token --audiences=pypi "
                     "--include-email`).")
        if "sub" in self.failed:
            self.add("sub", "publisher",
                     f"The token's subject (the service account's unique id) is "
                     f"{show(claims.get('sub'))}, the publisher pins {fields.get('sub')!r}. "
                     "The account was probably deleted and re-created under the same email, "
                     "which makes it another principal: check who controls it before updating "
                     "the publisher's sub.")

    # ------------------------------------------------------------- ActiveState
    def activestate(self) -> None:
        claims, fields = self.claims, self.fields
        if "builder" in self.failed:
            self.add("builder", "workflow",
                     f"The token was issued to the builder {show(claims.get('builder'))}, not "
                     "'pypi-publisher': publish with ActiveState's PyPI publisher builder.")
        if {"actor_id", "lookup.actor_id"} & set(self.failed):
            self.add("actor_id" if "actor_id" in self.failed else "lookup.actor_id", "publisher",
                     f"The build was started by another ActiveState user (actor id "
                     f"{show(claims.get('actor_id'))}, the publisher expects "
                     f"{fields.get('actor_id')!r}, user {fields.get('actor')!r}).",
                     covers=("lookup.actor_id",))
        place = {"sub", "organization", "project", "lookup.organization",
                 "lookup.activestate_project_name"} & set(self.failed)
        if place:
            self.add(sorted(place)[0], "publisher",
                     f"The token comes from {show(claims.get('organization'))}/"
                     f"{show(claims.get('project'))}, the publisher is for "
                     f"{fields.get('organization')!r}/"
                     f"{fields.get('activestate_project_name')!r}.", covers=tuple(place))


def _token_fixes(checks: list[Check], claims: Mapping[str, Any], audience: str,
                 provider: CheckedProvider | None, guessed: bool) -> list[Fix]:
    fixes: list[Fix] = []
    for check in checks:
        if check.passed:
            continue
        if check.name == "iss":
            fixes.append(Fix("iss", _issuer_where(claims), _issuer_fix(claims, provider,
                                                                         guessed, check)))
        elif check.name == "aud":
            aud = claims.get("aud")
            if isinstance(aud, str) and aud in ("pypi", "testpypi"):
                index = "TestPyPI" if aud == "testpypi" else "PyPI"
                text = (f"The token was requested for {index} (audience {aud!r}), but it is "
                        f"checked for {audience!r}. PyPI and TestPyPI have separate "
                        f"publishers and audiences: request the token for {audience!r}, or "
                        f"run with --audience {aud} to check it against {index}.")
            elif isinstance(aud, list):
                text = (f"The token's audience is a list; PyPI accepts only the single string "
                        f"{audience!r}. Request the token for that one audience.")
            else:
                text = (f"The token was requested for audience {show(aud)}, expected "
                        f"{audience!r}. Request it for {audience!r} (PyPI: 'pypi', TestPyPI: "
                        f"'testpypi'; e.g. `python -m id {audience}`), or run with "
                        f"--audience {aud} if you are checking for another index.")
            fixes.append(Fix("aud", "token", text))
        elif check.name.startswith("claims."):
            claim = check.name.removeprefix("claims.")
            name = provider.name if provider else "this provider's"
            fixes.append(Fix(check.name, "token",
                             f"{check.message}: every {name} token carries it with type "
                             f"{check.expected}. Pass the token's complete decoded claims "
                             f"(`python -m id -d {audience}` prints them) and check that "
                             f"'{claim}' is there."))
    return fixes


def _issuer_where(claims: Mapping[str, Any]) -> str:
    return "operator" if isinstance(claims.get("iss"), str) else "token"


def _issuer_fix(claims: Mapping[str, Any], provider: CheckedProvider | None, guessed: bool,
                check: Check) -> str:
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        return (f"{check.message}: these do not look like the claims of an OIDC token. Pass "
                "the decoded claims of the token the CI job received.")
    ghe_slug = issuer.startswith(GITHUB_ISSUER + "/")
    ghes = issuer.endswith("/_services/token")
    if ghe_slug or ghes or (provider is not None and guessed and provider.name == "github"):
        what = ("an enterprise's unique issuer (GitHub Enterprise Cloud's custom issuer "
                "setting adds the enterprise's slug)" if ghe_slug else
                "GitHub Enterprise Server" if ghes else "an unknown GitHub issuer")
        return (f"The token comes from {what}: {issuer!r}. PyPI accepts only GitHub.com's "
                f"issuer {GITHUB_ISSUER!r} and does not support GitHub Enterprise "
                "(pypi/warehouse#18970). Publish from a repository on GitHub.com"
                + (", or turn the enterprise's custom issuer off" if ghe_slug else "") + ".")
    if provider is not None and guessed and provider.ast.custom_issuers:
        return (f"The token looks like a {provider.name} token from an instance that is not "
                f"registered: {issuer!r}. Register it with --issuer {issuer}={provider.name} "
                "(on PyPI: an organization's custom issuer, for self-managed GitLab), and name "
                "it in the publisher's issuer_url.")
    known = ", ".join(check.expected) if isinstance(check.expected, list) else ""
    return (f"No provider trusts the issuer {issuer!r} (known: {known}). Is this a token from "
            "a CI system PyPI supports (GitHub Actions, GitLab CI/CD, Google Cloud, "
            "ActiveState)?")


# ------------------------------------------------------------------------ advise
def advise(policy: Policy, claims: Mapping[str, Any], *, audience: str = "pypi",
           fixes_for: int = 3) -> Advice:
    """Explain the decision on `claims`: checks of the token itself, every publisher of its
    provider ranked by how close it came, and fixes for the first `fixes_for` of them."""
    decision = policy.evaluate(claims, audience=audience, explain=True)
    issuers = policy.issuers
    issuer = claims.get("iss")
    name = issuers.get(issuer) if isinstance(issuer, str) else None
    guessed = False
    provider: CheckedProvider | None
    if name is not None:
        provider = policy.providers[name]
    else:
        provider = _guess_provider(policy, claims)
        guessed = provider is not None
    token_checks = _token_checks(provider, claims, audience, name is not None, sorted(issuers))
    candidates: list[tuple[int, Candidate]] = []
    if provider is not None:
        for position, publisher in enumerate(policy.publishers):
            if publisher.provider.name == provider.name:
                candidates.append((position, _candidate(publisher, claims, decision)))
    ranked = _rank(candidates)
    by_label = {p.label: p for p in policy.publishers}
    if not decision.allowed:
        with_fixes = []
        for rank, candidate in enumerate(ranked):
            if rank < fixes_for and not candidate.chosen:
                fixes = _Advisor(by_label[candidate.publisher], claims, candidate).run()
                candidate = Candidate(candidate.publisher, candidate.provider,
                                      candidate.projects, candidate.pending, candidate.chosen,
                                      candidate.checks, fixes)
            with_fixes.append(candidate)
        ranked = with_fixes
    token_fixes = _token_fixes(token_checks, claims, audience, provider, guessed)
    return Advice(decision.allowed, decision, audience, provider.name if provider else None,
                  issuer if isinstance(issuer, str) else None, guessed, tuple(token_checks),
                  tuple(token_fixes), tuple(ranked), decision.notes)


def advise_token(policy: Policy, token: str, verifier: Verifier, *,
                 fixes_for: int = 3) -> Advice:
    """`advise` for a signed token: verified first (no replay store: explaining a token
    does not use it up). A refused token is denied with its reason, and the publishers are
    still ranked on its unverified claims when they can be read."""
    from tppolicy.token.verify import TokenError, split_token

    try:
        verified = verifier.verify(token)
    except TokenError as refusal:
        reason = token_reason(refusal)
        check = Check("token", "token", False, refusal.expected, refusal.actual,
                      f"the token was refused ({refusal.code}): {refusal.message}")
        fix = Fix("token", "token", _refusal_fix(refusal.code, refusal.message))
        try:
            claims: dict[str, Any] | None = split_token(token, verifier.max_bytes)[1]
        except TokenError:
            claims = None
        denial = Decision(False, None, None, (), False, (reason,))
        if claims is None:
            return Advice(False, denial, verifier.audience, None, None,
                          token_checks=(check,), token_fixes=(fix,))
        advice = advise(policy, claims, audience=verifier.audience, fixes_for=fixes_for)
        candidates = advice.candidates
        if advice.allowed:  # the claims would pass: give the closest publishers no fixes
            candidates = tuple(replace(c, chosen=False) for c in candidates)
        return replace(advice, allowed=False, decision=replace(
            denial, provider=advice.provider, issuer=advice.issuer),
            token_checks=(check, *advice.token_checks),
            token_fixes=(fix, *advice.token_fixes), candidates=candidates)
    return advise(policy, verified.claims, audience=verifier.audience, fixes_for=fixes_for)


def _refusal_fix(code: str, message: str) -> str:
    if code == "expired":
        return (f"{message}. CI tokens live for minutes: explain a fresh one (decode it in the "
                "job, or save it as an artifact), or pass its decoded claims with --claims.")
    return (f"The token was refused before any publisher was looked at: {message}. The "
            "publishers below are ranked on its claims as they are, unverified.")
