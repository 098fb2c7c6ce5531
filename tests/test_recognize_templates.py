"""A compiled publisher's rules written from one template of all of them
(`printer.format_bound_publisher`): the very text the printer writes for the rules bound,
for every shipped provider and publishers of every kind of value, once the template is
kept as before."""

from __future__ import annotations

from typing import Any

import pytest

from tppolicy.language import ast as A
from tppolicy.language import bind as B
from tppolicy.language import printer as P
from tppolicy.language.parse import parse_policy
from tppolicy.language.providers import load_providers

SAMPLES: list[Any] = ["", "octo-org", "release.yml", "refs/tags/v*", "pypi", "x" * 70,
                      "y" * 130, 'quote"and\\back', "tab\there", "\u2028é", "Octo-Org", 7,
                      True, False]


def _values(provider: Any, i: int) -> dict[str, Any]:
    """Publisher `i`'s fields: some its own (of growing length), some shared samples, some
    at their defaults."""
    values: dict[str, Any] = {}
    for j, name in enumerate(provider.fields):
        default = provider.fields[name].default
        values[name] = (f"own-{i}-{j}" * (1 + i % 7) if (i + j) % 4 == 0 else
                        SAMPLES[(i * j + j) % len(SAMPLES)] if i % 3 else
                        default.value if default is not None else f"own-{i}-{j}")
    return values


def _fields(values: dict[str, Any]) -> list[str]:
    return [P.binding_text(name, value) for name, value in values.items()
            if value is None or value.__class__ in (str, int, bool)]


def _bound(publisher: A.Publisher, rules: tuple[A.Rule, ...], values: dict[str, Any],
           fields: list[str]) -> str:
    """The block as the printer writes the rules bound (`bind_rules`, no template)."""
    lines = P._publisher_lines(A.Publisher(
        publisher.name, publisher.provider, publisher.projects, publisher.pending_project,
        rules=B.bind_rules(rules, values)), None, fields)
    return "\n".join(lines)


@pytest.mark.parametrize("compile_after", [1, 4])
def test_templated_rules_are_the_bound_rules_printed(compile_after: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shipped provider: publishers sharing some values and owning others (long
    ones, whose lines break; ones the printer escapes; integers and booleans where a
    string goes), printed twice over (the second time from the templates the first kept),
    are the bound rules printed; and templates were used."""
    monkeypatch.setattr(B, "_COMPILE_AFTER", compile_after)
    P._RULES_PARTS.clear()
    used = 0
    for provider in load_providers().values():
        for _ in range(2):
            for i in range(48):
                values = _values(provider, i)
                fields = _fields(values)
                publisher = A.Publisher(f"p{i}", provider.name, (f"project-{i}",))
                expected = _bound(publisher, provider.rules, values, fields)
                used += P._templated_rules(provider.rules, values) is not None
                assert P.format_bound_publisher(publisher, provider.rules, values,
                                                fields) == expected, (provider.name, values)
    assert used > 100


def test_a_template_made_on_short_values_writes_long_ones_as_the_printer() -> None:
    """A template kept on a publisher whose lines are short writes those of publishers
    whose lines break (the message on its own line, an `or` chain broken) or whose values
    are escaped, as the bound rules print."""
    rules = parse_policy(
        'provider p { rule a: claims.x == publisher.f else "the x claim is not f"\n'
        '  rule b {\n    require claims.y == publisher.f + "/" + publisher.g'
        ' or claims.z == publisher.g else "y or z"\n    require claims.w != "" }\n'
        '  rule c: claims.v == "fixed"\n'
        '  optional rule d: publisher.h == "" or claims.u == publisher.h }'
    ).providers[0].rules
    publisher = A.Publisher("p", "p")
    P._RULES_PARTS.clear()
    for f in ["s1", "s2", "s3", "s4", "s5", "f" * 70, "g" * 95, 'q"\\' * 20, "s6", "\u2028",
              "t" * 40]:
        for h in ["", "on", "h" * 99]:
            values = {"f": f, "g": f[::-1] + "x", "h": h}
            assert P.format_bound_publisher(publisher, rules, values, []) == \
                _bound(publisher, rules, values, []), (f, h)
    assert any(t is not None for parts in P._RULES_PARTS.values()
               for t in parts.templates.values())


def test_a_rule_shape_reading_a_value_keeps_its_template_to_that_value() -> None:
    """A rule whose folding reads a part's value (`lower(...) == "x"`) is written from
    the template only for publishers of that value; the others as the printer binds
    them."""
    rules = parse_policy(
        'provider p { rule a: publisher.g == "on" or claims.x == publisher.f\n'
        '  rule b: claims.y == lower(publisher.f) }').providers[0].rules
    publisher = A.Publisher("p", "p")
    P._RULES_PARTS.clear()
    for _ in range(3):
        for f in ["a", "B", "c" * 120]:
            for g in ["on", "off", "ON", ""]:
                values = {"f": f, "g": g}
                assert P.format_bound_publisher(publisher, rules, values, ["f = 1"]) == \
                    _bound(publisher, rules, values, ["f = 1"]), (f, g)
    templates = [t for parts in P._RULES_PARTS.values() for t in parts.templates.values()
                 if t is not None]
    # kept to the value of f (g "on": the rest folded away), or to no string value
    assert any(any(exact[0] is str for _, exact in t.read) for t in templates)
    assert any(all(exact[0] is not str for _, exact in t.read) for t in templates)
