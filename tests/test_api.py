import tppolicy


def test_public_api_is_pinned() -> None:
    assert tppolicy.__all__ == (
        "ClaimsError", "ConfigError", "Decision", "Diagnostic", "Policy", "PolicyCheckError",
        "PolicySyntaxError", "Provider", "RuleResult", "Span", "TppolicyError",
        "compile_publishers_file", "compile_publishers_text", "format_policy",
        "load_policy_file", "load_policy_text", "load_providers")


def test_errors_form_one_hierarchy() -> None:
    for error in (tppolicy.ConfigError, tppolicy.PolicyCheckError, tppolicy.PolicySyntaxError,
                  tppolicy.ClaimsError):
        assert issubclass(error, tppolicy.TppolicyError)
