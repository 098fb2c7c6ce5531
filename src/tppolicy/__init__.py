"""tppolicy: decide whether a CI job's OIDC token may publish to a package index.

Trusted publishers are kept in a YAML file, compiled through provider files written
in a small policy language, and evaluated against a token's claims::

    import tppolicy

    engine = tppolicy.Engine(publishers="publishers.yaml", audience="pypi")
    result = engine.check_token(token)          # verify, select, decide, use up the jti
    if result.allowed:
        print(result.publisher, result.projects)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._check import CheckedProvider as Provider
from ._decision import Decision, RuleResult
from ._errors import (
    ClaimsError,
    ConfigError,
    Diagnostic,
    PolicyCheckError,
    PolicySyntaxError,
    Span,
    TppolicyError,
)
from ._evaluate import Policy

if TYPE_CHECKING:
    from ._engine import (
        CheckResult,
        CreateProject,
        DecisionSink,
        Engine,
        JsonLinesSink,
        ProjectCatalog,
        ultranormalize_name,
    )
    from ._index import Record as PublisherRecord
    from ._keys import FetchError, HttpFetcher, KeyCache
    from ._replay import MemoryReplayStore, ReplayStore, SQLiteReplayStore
    from ._verify import CODES as TOKEN_ERROR_CODES
    from ._verify import TokenError, VerifiedToken, Verifier
from ._load import (
    compile_publishers_file,
    compile_publishers_text,
    load_policy_file,
    load_policy_text,
    load_providers,
)

__version__ = "0.1.0"

# Loaded on first use: the verifier stack (cryptography, PyJWT) and the engine cost
# more than the rest of `tppolicy check --claims` together (start-up target 0.3 s).
_LAZY = {
    "CheckResult": ("_engine", "CheckResult"),
    "CreateProject": ("_engine", "CreateProject"),
    "DecisionSink": ("_engine", "DecisionSink"),
    "Engine": ("_engine", "Engine"),
    "JsonLinesSink": ("_engine", "JsonLinesSink"),
    "ProjectCatalog": ("_engine", "ProjectCatalog"),
    "PublisherRecord": ("_index", "Record"),
    "ultranormalize_name": ("_engine", "ultranormalize_name"),
    "FetchError": ("_keys", "FetchError"),
    "HttpFetcher": ("_keys", "HttpFetcher"),
    "KeyCache": ("_keys", "KeyCache"),
    "MemoryReplayStore": ("_replay", "MemoryReplayStore"),
    "ReplayStore": ("_replay", "ReplayStore"),
    "SQLiteReplayStore": ("_replay", "SQLiteReplayStore"),
    "TOKEN_ERROR_CODES": ("_verify", "CODES"),
    "TokenError": ("_verify", "TokenError"),
    "VerifiedToken": ("_verify", "VerifiedToken"),
    "Verifier": ("_verify", "Verifier"),
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
    from ._format import format_policy as _format

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
