from __future__ import annotations

from tppolicy.language import ast as A
from tppolicy.language.bind import bind_expr, fold
from tppolicy.language.parse import parse_policy
from tppolicy.language.printer import format_expr


def _expr(text: str) -> A.Expr:
    return parse_policy(f"provider p {{ rule r: {text} }}").providers[0].rules[0].requires[0]\
        .condition


def _bound(text: str, **values: object) -> str:
    return format_expr(bind_expr(_expr(text), values))


def test_fields_are_substituted_and_folded() -> None:
    assert _bound('lower(claims.r) == lower(publisher.o + "/" + publisher.n)',
                  o="Octo-Org", n="Repo") == 'lower(claims.r) == "octo-org/repo"'


def test_an_empty_field_folds_the_rule_to_true() -> None:
    assert _bound('publisher.e == "" or lower(claims.e) == lower(publisher.e)', e="") == "true"
    assert _bound('publisher.e == "" or lower(claims.e) == lower(publisher.e)', e="PyPI") == \
        'lower(claims.e) == "pypi"'


def test_folding_keeps_what_fails_at_run_time() -> None:
    # before() of a string without the separator is an error: left for run time, not folded.
    assert format_expr(fold(_expr('before("abc", "/") == claims.x'))) == \
        'before("abc", "/") == claims.x'


def test_folding_never_drops_an_error_under_not() -> None:
    # `X and false` is not folded to false: X may be an error, and not(error) must stay one.
    assert format_expr(fold(_expr('not (claims.x == "a" and false)'))) == \
        'not (claims.x == "a" and false)'
