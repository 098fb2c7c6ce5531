"""tppolicy: decide whether a CI job's OIDC token may publish to a package index.

Trusted publishers are kept in a YAML file, compiled through provider files written
in a small policy language, and evaluated against a token's claims::

    import tppolicy

    engine = tppolicy.Engine(publishers="publishers.yaml", audience="pypi")
    result = engine.check_token(token)          # verify, select, decide, use up the jti
    if result.allowed:
        print(result.publisher, result.projects)

The public API is the names in `tppolicy.__all__` (each documented: `help(tppolicy.NAME)`)
and the `tppolicy.server` package; `TOKEN_ERROR_CODES` maps each stable code of a refused
token (`TokenError.code`) to its meaning. Every other module (`tppolicy.language`,
`tppolicy.decide`, `tppolicy.token`, `tppolicy.tools`, `tppolicy.cli`, `tppolicy.readers`)
is internal and may change in any release.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tppolicy.decide.decision import Decision, RuleResult
from tppolicy.decide.policy import Policy
from tppolicy.errors import (
    ClaimsError,
    ConfigError,
    Diagnostic,
    PolicyCheckError,
    PolicySyntaxError,
    Span,
    TppolicyError,
)
from tppolicy.language.check import CheckedProvider as Provider

if TYPE_CHECKING:
    from tppolicy.decide.engine import (
        CheckResult,
        CreateProject,
        DecisionSink,
        Engine,
        JsonLinesSink,
        ProjectCatalog,
    )
    from tppolicy.decide.index import Record as PublisherRecord
    from tppolicy.decide.names import ultranormalize_name
    from tppolicy.token.keys import FetchError, HttpFetcher, KeyCache
    from tppolicy.token.replay import (
        MappedReplayStore,
        MemoryReplayStore,
        ReplayStore,
        SQLiteReplayStore,
    )
    from tppolicy.token.verify import CODES as TOKEN_ERROR_CODES
    from tppolicy.token.verify import TokenError, VerifiedToken, Verifier
from tppolicy.decide.load import (
    compile_publishers_file,
    compile_publishers_text,
    load_policy_file,
    load_policy_text,
)
from tppolicy.language.providers import load_providers
from tppolicy.version import __version__ as __version__

# Loaded on first use: the verifier stack (cryptography, PyJWT) and the engine cost
# more than the rest of `tppolicy check --claims` together (start-up target 0.3 s).
_LAZY = {
    "CheckResult": ("decide.engine", "CheckResult"),
    "CreateProject": ("decide.engine", "CreateProject"),
    "DecisionSink": ("decide.engine", "DecisionSink"),
    "Engine": ("decide.engine", "Engine"),
    "JsonLinesSink": ("decide.engine", "JsonLinesSink"),
    "ProjectCatalog": ("decide.engine", "ProjectCatalog"),
    "PublisherRecord": ("decide.index", "Record"),
    "ultranormalize_name": ("decide.names", "ultranormalize_name"),
    "FetchError": ("token.keys", "FetchError"),
    "HttpFetcher": ("token.keys", "HttpFetcher"),
    "KeyCache": ("token.keys", "KeyCache"),
    "MappedReplayStore": ("token.replay", "MappedReplayStore"),
    "MemoryReplayStore": ("token.replay", "MemoryReplayStore"),
    "ReplayStore": ("token.replay", "ReplayStore"),
    "SQLiteReplayStore": ("token.replay", "SQLiteReplayStore"),
    "TOKEN_ERROR_CODES": ("token.verify", "CODES"),
    "TokenError": ("token.verify", "TokenError"),
    "VerifiedToken": ("token.verify", "VerifiedToken"),
    "Verifier": ("token.verify", "Verifier"),
}

__all__ = (
    "TOKEN_ERROR_CODES",
    "CheckResult",
    "ClaimsError",
    "ConfigError",
    "CreateProject",
    "Decision",
    "DecisionSink",
    "Diagnostic",
    "Engine",
    "FetchError",
    "HttpFetcher",
    "JsonLinesSink",
    "KeyCache",
    "MappedReplayStore",
    "MemoryReplayStore",
    "Policy",
    "PolicyCheckError",
    "PolicySyntaxError",
    "ProjectCatalog",
    "Provider",
    "PublisherRecord",
    "ReplayStore",
    "RuleResult",
    "SQLiteReplayStore",
    "Span",
    "TokenError",
    "TppolicyError",
    "VerifiedToken",
    "Verifier",
    "compile_publishers_file",
    "compile_publishers_text",
    "format_policy",
    "load_policy_file",
    "load_policy_text",
    "load_providers",
    "ultranormalize_name",
)


def format_policy(policy: Policy) -> str:
    """The policy in the language, as `tppolicy compile` prints it."""
    from tppolicy.language.printer import format_policy as _format

    return _format(policy.to_policy_file())


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(import_module(f"{__name__}.{module}"), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
