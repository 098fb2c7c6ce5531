from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from tppolicy.language import ast as A
from tppolicy.language.bind import bind_expr, fold
from tppolicy.language.parse import parse_policy
from tppolicy.language.printer import format_expr


def bottom_up(expr: A.Expr, values: Mapping[str, object]) -> A.Expr:
    """What `bind_expr` must give: one bottom-up transform, each `publisher.NAME` replaced
    by its value, every node folded in turn (no caches, no shapes)."""
    from tppolicy.language import bind as B

    def substitute(node: A.Expr) -> A.Expr:
        if isinstance(node, A.FieldRef) and node.name in values:
            return B._literal_node(values[node.name], node.span) or node
        return B._simplify(node)

    return A.transform(expr, substitute)


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


@pytest.mark.parametrize("compile_after", [1, 4, 10**9])
def test_kept_sub_expressions_bind_as_a_fresh_transform(compile_after: int,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """`bind_expr` keeps each folded sub-expression for the field values it reads; the
    result is the same as one bottom-up transform of the whole expression, for every rule
    of every shipped provider, with values shared between publishers and values of their
    own, bound in turn (so that later ones hit what earlier ones left); its parts'
    evaluation and its shapes made Python functions at their first use, their fourth
    (as shipped), or never."""
    from tppolicy.language import bind as B
    from tppolicy.language.providers import load_providers

    monkeypatch.setattr(B, "_COMPILE_AFTER", compile_after)
    B._SHAPES.clear()

    samples: list[object] = ["", "*", "octo-org", "release.yml", "refs/tags/v*", "Mixed/Case",
                             0, 7, True, False]
    for provider in load_providers().values():
        names = list(provider.fields)
        for i in range(36):
            values: dict[str, object] = {}
            for j, name in enumerate(names):
                default = provider.fields[name].default
                values[name] = (samples[(i + 3 * j) % len(samples)] if i % 3 else
                                default.value if default is not None else f"own-{i}-{j}")
            for rule in provider.rules:
                for req in rule.requires:
                    assert B.bind_expr(req.condition, values) == bottom_up(req.condition, values)


def test_an_empty_separator_is_an_error_not_a_crash() -> None:
    """before/after and their _last forms with an empty separator: an evaluation error (the
    rule fails, folding leaves the call written), as split() has it; it was a ValueError
    from str.partition (found by tests/property/test_bind.py)."""
    import pytest

    from tppolicy.language.interpret import Interpreter
    from tppolicy.language.ops import EvalError

    for function in ("before", "after", "before_last", "after_last"):
        assert format_expr(fold(_expr(f'{function}("a/b", "") == claims.x'))) == \
            f'{function}("a/b", "") == claims.x'
        with pytest.raises(EvalError, match="non-empty separator"):
            Interpreter({"x": "a/b", "s": ""}, {}).value(_expr(f"{function}(claims.x, claims.s)"))


def test_a_node_left_unfolded_for_one_publisher_is_bound_anew_for_the_next() -> None:
    """The shape of `before(if publisher.a == "" then claims.r else publisher.b, "/")`
    depends on b's content, not its kind: without '/', `before` fails and stays written;
    with one, it folds. Each publisher gets its own binding (a shape would have put the
    second one's value in the first one's unfolded call)."""
    expr = A.Call("before", (A.Conditional(A.Compare("==", A.FieldRef("a"), A.Literal("")),
                                           A.Claim("r"), A.FieldRef("b")), A.Literal("/")))
    for values in ({"a": "x", "b": "noslash"}, {"a": "x", "b": "has/slash"},
                   {"a": "x", "b": "other"}):
        assert bind_expr(expr, values) == bottom_up(expr, values)


def rules_by_requires(rules: tuple[A.Rule, ...], values: Mapping[str, object],
                      bind_one: Callable[[A.Expr, Mapping[str, object]], A.Expr],
                      off: Callable[[A.Rule, Mapping[str, object]], bool] | None = None
                      ) -> tuple[A.Rule, ...]:
    """Rules bound require by require (`bind_one`): those that fold to true left out, an
    optional rule that is `off` (or all of whose requires fold to true) left out, a rule
    left with none keeping its last."""
    out: list[A.Rule] = []
    for rule in rules:
        if rule.optional and off is not None and off(rule, values):
            continue
        requires = [A.Require(bind_one(req.condition, values), req.message, req.span)
                    for req in rule.requires]
        live = [req for req in requires
                if not (isinstance(req.condition, A.Literal) and req.condition.value is True)]
        if not live:
            if rule.optional:
                continue
            live = requires[-1:]
        out.append(A.Rule(rule.name, tuple(live), rule.span))
    return tuple(out)


def rules_bottom_up(rules: tuple[A.Rule, ...], values: Mapping[str, object]
                    ) -> tuple[A.Rule, ...]:
    """What `bind_rules` must give: `rules_by_requires` with `bottom_up`, an optional rule
    whose guards hold left out."""
    from tppolicy.language import bind as B

    return rules_by_requires(rules, values, bottom_up, B.optional_rule_off)


@pytest.mark.parametrize("compile_after", [1, 4, 10**9])
def test_rules_bind_by_their_shapes_as_require_by_require(compile_after: int,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """`bind_rules` (a rule's parts evaluated at once and the rule made by its shape for
    their kinds, an optional rule's guards kept per their fields' values) gives each
    shipped provider's rules as `rules_bottom_up` does, for publishers sharing some
    values and owning others, bound in turn; parts and shapes compiled at their first
    use, their fourth, or never."""
    from tppolicy.language import bind as B
    from tppolicy.language.providers import load_providers

    monkeypatch.setattr(B, "_COMPILE_AFTER", compile_after)
    for cache in (B._SHAPES, B.RULE_PLANS, B._BOUND_RULES, B._OFF,
                  B._GUARD_FIELDS, B._RULE_FIELDS):
        cache.clear()
    samples: list[object] = ["", "*", "octo-org", "release.yml", "refs/tags/v*", "Mixed/Case",
                             "pypi", 0, 7, True, False]
    for provider in load_providers().values():
        names = list(provider.fields)
        for i in range(60):
            values: dict[str, object] = {}
            for j, name in enumerate(names):
                default = provider.fields[name].default
                values[name] = (f"own-{i}-{j}" if (i + j) % 4 == 0 else
                                samples[(i * j + j) % len(samples)] if i % 3 else
                                default.value if default is not None else f"own-{i}-{j}")
            assert B.bind_rules(provider.rules, values) == \
                rules_bottom_up(provider.rules, values), (provider.name, values)


@pytest.mark.parametrize("compile_after", [1, 4])
def test_deferred_rules_make_and_print_the_bound_rules(compile_after: int,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """`bind_rules_deferred` gives `bind_rules`'s rules (a `DeferredRule` makes the same
    rule), and the printer writes a publisher of those rules as it writes the bound ones:
    each shipped provider's rules, for publishers sharing some values and owning others
    (long ones, whose lines break; ones the printer escapes), bound in turn."""
    from tppolicy.language import bind as B
    from tppolicy.language.printer import format_publisher
    from tppolicy.language.providers import load_providers

    monkeypatch.setattr(B, "_COMPILE_AFTER", compile_after)
    samples: list[object] = ["", "octo-org", "release.yml", "refs/tags/v*", "pypi",
                             "x" * 70, 'quote"and\\back', "tab\there", "\u2028é", 7, True,
                             False]
    for provider in load_providers().values():
        names = list(provider.fields)
        for i in range(24):
            values: dict[str, object] = {}
            for j, name in enumerate(names):
                default = provider.fields[name].default
                values[name] = (f"own-{i}-{j}" * (1 + i % 5) if (i + j) % 4 == 0 else
                                samples[(i * j + j) % len(samples)] if i % 3 else
                                default.value if default is not None else f"own-{i}-{j}")
            deferred = B.bind_rules_deferred(provider.rules, values)  # first: not kept
            bound = B.bind_rules(provider.rules, values)
            assert tuple(r.rule() if isinstance(r, B.DeferredRule) else r
                         for r in deferred) == bound, (provider.name, values)
            publisher = A.Publisher("p", provider.name, ("p",))
            assert format_publisher(publisher, deferred) == \
                format_publisher(A.Publisher("p", provider.name, ("p",), rules=bound))


def test_a_deferred_rule_shaped_on_short_values_prints_long_ones_as_bound() -> None:
    """A rule shape's text, made on a publisher whose lines are short, writes the rules of
    publishers whose lines break (long values, values the printer escapes) as the bound
    rules print: each GitLab and GitHub rule, publishers of short values first."""
    from tppolicy.language import bind as B
    from tppolicy.language.printer import format_publisher
    from tppolicy.language.providers import load_providers

    for cache in (B._SHAPES, B.RULE_PLANS, B._BOUND_RULES, B._DEFERRED_RULES):
        cache.clear()
    providers = load_providers()
    owners = [f"o{i}" for i in range(6)] + ["o" * 90, 'q"' * 30, "\u2028" * 40, "x"]
    for name, fields in (("github", {"repository_name": "r", "repository_owner_id": "1",
                                     "workflow_filename": "release.yml"}),
                         ("gitlab", {"project": "p", "workflow_filepath": "ci/r.yml",
                                     "environment": "prod"})):
        provider = providers[name]
        key = "repository_owner" if name == "github" else "namespace"
        deferred_count = 0
        for owner in owners:
            values = {f: d.default.value for f, d in provider.fields.items()
                      if d.default is not None}
            values.update(fields, **{key: owner})
            deferred = B.bind_rules_deferred(provider.rules, values)
            deferred_count += sum(isinstance(r, B.DeferredRule) for r in deferred)
            assert format_publisher(A.Publisher("p", name), deferred) == format_publisher(
                A.Publisher("p", name, rules=B.bind_rules(provider.rules, values))), owner
        assert deferred_count >= len(owners)


def test_a_deferred_rule_breaks_its_lines_as_the_bound_rule() -> None:
    """A rule shape's text made on short values writes the lines of long ones as the bound
    rule prints them: the message moved to its own line, an `or` chain broken."""
    from tppolicy.language import bind as B
    from tppolicy.language.printer import format_publisher

    rules = parse_policy(
        'provider p { rule a: claims.x == publisher.f else "the x claim is not f"\n'
        '  rule b {\n    require claims.y == publisher.f + "/" + publisher.g'
        ' or claims.z == publisher.g else "y or z"\n    require claims.w != "" } }'
    ).providers[0].rules
    for f in ["s1", "s2", "s3", "s4", "s5", "f" * 70, "g" * 95, 'q"\\' * 20, "s6"]:
        values = {"f": f, "g": f[::-1] + "x"}
        deferred = B.bind_rules_deferred(rules, values)
        assert format_publisher(A.Publisher("p", "p"), deferred) == format_publisher(
            A.Publisher("p", "p", rules=B.bind_rules(rules, values))), f
