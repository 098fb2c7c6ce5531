import tppolicy


def test_public_api_is_pinned() -> None:
    assert tppolicy.__all__ == (
        "TOKEN_ERROR_CODES", "ClaimsError", "ConfigError", "Decision", "Diagnostic",
        "FetchError", "HttpFetcher", "KeyCache", "MemoryReplayStore", "Policy",
        "PolicyCheckError", "PolicySyntaxError", "Provider", "ReplayStore", "RuleResult",
        "SQLiteReplayStore", "Span", "TokenError", "TppolicyError", "VerifiedToken", "Verifier",
        "compile_publishers_file", "compile_publishers_text", "format_policy",
        "load_policy_file", "load_policy_text", "load_providers")


def test_errors_form_one_hierarchy() -> None:
    for error in (tppolicy.ConfigError, tppolicy.PolicyCheckError, tppolicy.PolicySyntaxError,
                  tppolicy.ClaimsError, tppolicy.TokenError):
        assert issubclass(error, tppolicy.TppolicyError)
