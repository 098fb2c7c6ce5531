import tppolicy


def test_public_api_is_pinned() -> None:
    assert tppolicy.__all__ == (
        "TOKEN_ERROR_CODES", "CheckResult", "ClaimsError", "ConfigError", "CreateProject",
        "Decision", "DecisionSink", "Diagnostic", "Engine", "FetchError", "HttpFetcher",
        "JsonLinesSink", "KeyCache", "MappedReplayStore", "MemoryReplayStore", "Policy",
        "PolicyCheckError",
        "PolicySyntaxError", "ProjectCatalog", "Provider", "PublisherRecord", "ReplayStore",
        "RuleResult", "SQLiteReplayStore", "Span", "TokenError", "TppolicyError", "VerifiedToken",
        "Verifier", "compile_publishers_file", "compile_publishers_text", "format_policy",
        "load_policy_file", "load_policy_text", "load_providers", "ultranormalize_name")


def test_errors_form_one_hierarchy() -> None:
    for error in (tppolicy.ConfigError, tppolicy.PolicyCheckError, tppolicy.PolicySyntaxError,
                  tppolicy.ClaimsError, tppolicy.TokenError):
        assert issubclass(error, tppolicy.TppolicyError)


def test_every_public_name_resolves() -> None:
    for name in tppolicy.__all__:
        assert getattr(tppolicy, name) is not None
