"""What an evaluation returns: the decision and, rule by rule, why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tppolicy.token.verify import TokenError


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's outcome: what the publisher expected and what the token had."""

    rule: str
    passed: bool
    expected: Any = None
    actual: Any = None
    message: str = ""
    code: str | None = None  # for a refused token: a stable code (see tppolicy.token.verify.CODES)

    def to_json(self) -> dict[str, Any]:
        result = {"rule": self.rule, "passed": self.passed, "expected": self.expected,
                  "actual": self.actual, "message": self.message}
        if self.code is not None:
            result["code"] = self.code
        return result


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, for which publisher and projects, and the reasons.

    For a denial, `publisher` is None and `closest` names the publisher the token
    came closest to matching (its `reasons` say what differed). `learned` holds the
    values an allowed publisher learned from the token (trust on first use: the ids to
    pin in it, by field name).
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
    learned: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.reasons if not r.passed)

    def to_json(self) -> dict[str, Any]:
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
            **({"learned": dict(self.learned)} if self.learned else {}),
        }


def token_reason(error: TokenError) -> RuleResult:
    """A refused token as the reason of a denial, with the verifier's stable code."""
    return RuleResult("token", False, error.expected, error.actual, error.message, error.code)
