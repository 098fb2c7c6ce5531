"""What a decision is: allowed or not, for which publisher and projects, and, rule by
rule, why. Every front (`Policy`, `Engine`, the CLI, the server) returns this one type
(the engine wraps it with what a server needs: see `tppolicy.decide.engine.CheckResult`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tppolicy.text import show

if TYPE_CHECKING:
    from tppolicy.token.verify import TokenError

# PyPI's error codes for a refused exchange (warehouse/oidc/views.py).
INVALID_PAYLOAD = "invalid-payload"
INVALID_TOKEN = "invalid-token"
INVALID_PUBLISHER = "invalid-publisher"
INVALID_PENDING_PUBLISHER = "invalid-pending-publisher"
INVALID_REUSE_TOKEN = "invalid-reuse-token"

# The code of the reason of a decision that failed (an exception while deciding): its
# message carries the exception's text, which only the operator sees.
CANNOT_EVALUATE = "cannot-evaluate"
# The code of the reason of a denial because the replay store failed (an exception from
# its `claim`: Redis down, a SQLite file locked or read-only): its message carries the
# exception's text, which only the operator sees.
REPLAY_FAILED = "replay-store-failed"
# The code of the reason of a denial of a token whose `jti` no replay store can hold.
BAD_JTI = "bad-jti"

# Token refusals that PyPI answers with `invalid-payload` (the rest are `invalid-token`).
_PAYLOAD_TOKEN_CODES = frozenset({"malformed", "token-too-large", "unknown-issuer"})


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's outcome: what the publisher expected and what the token had."""

    rule: str
    passed: bool
    expected: Any = None
    actual: Any = None
    message: str = ""
    code: str | None = None  # for a refused token: a stable code (see tppolicy.token.verify.CODES)
    # an `identity rule` (who the publisher is): a failure's expected value is not
    # disclosed to the token's holder, even when the publisher shares its identity
    identity: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON-ready mapping."""
        result = {"rule": self.rule, "passed": self.passed, "expected": self.expected,
                  "actual": self.actual, "message": self.message}
        if self.code is not None:
            result["code"] = self.code
        return result


class _NothingLearned(Mapping[str, Any]):
    """The empty `Decision.learned` of almost every decision: one shared, immutable
    mapping (an empty dict per cached decision cost 64 bytes a publisher)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and not other

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"


NOTHING_LEARNED: Mapping[str, Any] = _NothingLearned()


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, for which publisher and projects, and the reasons.

    For a denial, `publisher` is None, `code` is PyPI's error code (`invalid-publisher`,
    `invalid-token`, ...) and `closest` names the publisher the token came closest to
    matching (its `reasons` say what differed). The decision keeps every rule's result
    for the operator; `disclosed()` is what may be shown to the token's holder.
    `learned` holds the values an allowed publisher learned from the token (trust on
    first use: the ids to pin in it, by field name). `record` is the publisher chosen
    (allowed, or the closest for a denial).
    """

    allowed: bool
    provider: str | None
    publisher: str | None
    projects: tuple[str, ...]
    pending: bool
    reasons: tuple[RuleResult, ...]
    closest: str | None = None
    issuer: str | None = None
    notes: tuple[str, ...] = field(default=())
    learned: Mapping[str, Any] = NOTHING_LEARNED
    code: str | None = None
    # The closest publisher shares the token's identity (repository, service account...),
    # so the holder may be told how it differs (NuGet's rule: who else trusts what stays
    # private).
    shared: bool = False
    # For a near miss: the other publishers sharing the token's identity (at most
    # NEAR_MISSES), each with its failed reasons (label, reasons).
    also: tuple[tuple[str, tuple[RuleResult, ...]], ...] = field(default=(), compare=False)
    # The publisher's `tppolicy.decide.index.Record` (typed loosely: the index builds
    # decisions, so this module cannot name its type without an import cycle).
    record: Any = field(default=None, compare=False, repr=False)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        """The reasons that did not pass."""
        return tuple(r for r in self.reasons if not r.passed)

    def disclosed(self) -> Decision:
        """This decision as the token's holder may see it: a near miss is explained only
        when the publisher shares the token's identity (otherwise the reasons say only
        that no publisher corresponds), and a failure to decide without its cause."""
        if self.allowed:
            return self
        if self.reasons and self.reasons[0].code == CANNOT_EVALUATE:
            return replace(self, reasons=(RuleResult(
                "claims", False, None, None, "cannot evaluate these claims",
                CANNOT_EVALUATE),))
        if self.reasons and self.reasons[0].code == REPLAY_FAILED:
            return replace(self, closest=None, record=None, also=(), reasons=(RuleResult(
                "jti", False, None, None, "the index cannot record the token's use now; "
                "try again later", REPLAY_FAILED),))
        if self.closest is None:
            if any(r.rule == "publisher" and not r.passed for r in self.reasons):
                # not which providers' publishers there are
                return replace(self, reasons=(no_publisher(self.provider),))
            return self
        if self.shared:
            return replace(self, reasons=_shown(self.reasons), also=tuple(
                (label, _shown(reasons)) for label, reasons in self.also))
        return replace(self, closest=None, record=None, reasons=(no_publisher(self.provider),),
                       also=())

    def to_json(self) -> dict[str, Any]:
        """The decision as a JSON-ready mapping (never the token)."""
        return {
            "allowed": self.allowed,
            "provider": self.provider,
            "issuer": self.issuer,
            "publisher": self.publisher,
            "projects": list(self.projects),
            "pending": self.pending,
            "closest_publisher": self.closest,
            "reasons": [r.to_json() for r in self.reasons],
            "notes": list(self.notes),
            **({"code": self.code} if self.code is not None else {}),
            **({"learned": dict(self.learned)} if self.learned else {}),
        }


def no_publisher(provider: str | None) -> RuleResult:
    """The reason of a denial when no publisher (that may be named) corresponds."""
    what = f"{provider} publisher" if provider else "publisher"
    return RuleResult("publisher", False, None, None, f"valid token, but no corresponding {what}")


def denial(provider: str | None, issuer: str | None, reasons: tuple[RuleResult, ...],
           code: str) -> Decision:
    """A denial without a closest publisher."""
    return Decision(False, provider, None, (), False, reasons, issuer=issuer, code=code)


def token_code(error: TokenError) -> str:
    """PyPI's error code for a token the verifier refused."""
    return INVALID_PAYLOAD if error.code in _PAYLOAD_TOKEN_CODES else INVALID_TOKEN


def token_reason(error: TokenError) -> RuleResult:
    """A refused token as the reason of a denial, with the verifier's stable code."""
    return RuleResult("token", False, error.expected, error.actual, error.message, error.code)


def token_denial(error: TokenError) -> Decision:
    """The decision on a token the verifier refused."""
    return denial(None, None, (token_reason(error),), token_code(error))


def _shown(reasons: tuple[RuleResult, ...]) -> tuple[RuleResult, ...]:
    """Reasons of a publisher sharing the token's identity, as its holder may see them."""
    return tuple(_undisclosed(r) if r.identity and not r.passed else r for r in reasons)


def _undisclosed(reason: RuleResult) -> RuleResult:
    """A failed identity rule as the token's holder may see it: what the token had, never
    what the publisher pins (a re-created account's old id, another owner's id...)."""
    if reason.actual is None:  # not "token has nothing" (issue 16)
        return replace(reason, expected=None, message=(
            f"token has no {reason.rule}, which the publisher pins (the publisher's value is "
            "not disclosed: it identifies who may publish)"))
    return replace(reason, expected=None, message=(
        f"token has {show(reason.actual)}, which is not the {reason.rule} the publisher pins (the "
        "publisher's value is not disclosed: it identifies who may publish)"))

