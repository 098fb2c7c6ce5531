"""Untrusted inputs only ever give the documented errors: random text and data as
publishers files (ConfigError), random text as policy files (PolicySyntaxError), mangled
tokens (TokenError with a stable code); and globs agree with a reference definition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tppolicy
from tests.test_publishers import GITLAB_ISSUER, PROVIDERS, load
from tests.test_verify import claims, verifier
from tests.tokens import rsa_key
from tppolicy import PolicySyntaxError
from tppolicy.decide.publishers import PublisherEntry, load_publishers_text
from tppolicy.errors import ConfigError
from tppolicy.language.ops import Glob
from tppolicy.language.parse import parse_policy
from tppolicy.token.verify import CODES, TokenError

# Hypothesis runs of hundreds of examples each: the slow group (.ci/run runs it).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def policy() -> tppolicy.Policy:
    return tppolicy.compile_publishers_file(Path(__file__).parents[2] / "examples/publishers.yaml")


# -------------------------------------------------------------------- properties
_YAML_CHARS = st.sampled_from([
    *":-[]{}&*!|>'\"#%@`,?<=~ \n\t.\\0123abcxyz",
    "publishers", "provider", "projects", "github", "<<", "---", "!!set", "!!binary", "!!int",
    "yes", "null", "\x00", "\ufeff", "é", "\ud800", "\x85", "  ", "- ",
])
_KEYS = sorted({"provider", "name", "projects", "pending_project", "zzz"}
               | {d.name for p in PROVIDERS.values() for d in p.fields})
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
            | st.text(max_size=12) | st.sampled_from(
                ["github", "gitlab", "google", "activestate", "demo", "octo-org", "65",
                 "release.yml", "https://gitlab.com", "", " x", "a/b.yml", "Foo_Bar", "foo-bar"]))
_DATA = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(_KEYS) | st.text(max_size=6), children, max_size=5),
    max_leaves=25,
)
_ENTRIES = st.lists(
    st.dictionaries(st.sampled_from(_KEYS), _DATA, max_size=8) | _DATA, max_size=4)


def _check_outcome(text: str) -> None:
    try:
        entries = load_publishers_text(text, "prop.yaml", PROVIDERS, GITLAB_ISSUER)
    except ConfigError as exc:
        error = exc
    else:
        _check_entries(entries)
        return
    assert error.diagnostics
    assert all(d.message for d in error.diagnostics)
    str(error)


def _check_entries(entries: tuple[PublisherEntry, ...]) -> None:
    for i, entry in enumerate(entries):
        assert isinstance(entry, PublisherEntry)
        assert entry.index == i
        assert entry.provider in PROVIDERS
        assert list(entry.fields) == [d.name for d in PROVIDERS[entry.provider].fields]
        assert (entry.projects == ()) == (entry.pending_project is not None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_YAML_CHARS, max_size=40).map("".join) | st.text(max_size=60))
def test_random_text_only_raises_config_error(text: str) -> None:
    _check_outcome(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_DATA)
def test_random_data_only_raises_config_error(data: Any) -> None:
    _check_outcome(yaml.safe_dump(data))


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ENTRIES, st.booleans())
def test_random_entries_only_raise_config_error(entries: list[Any], flow: bool) -> None:
    _check_outcome(yaml.safe_dump({"publishers": entries}, default_flow_style=flow))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["sampleproject", "a", "A1", "x.y_z-w"]),
       st.sampled_from(["", "pypi", "Release Env"]))
def test_generated_valid_entries_load(project: str, environment: str) -> None:
    data = {"publishers": [{
        "provider": "github", "projects": [project], "repository_owner": "octo-org",
        "repository_name": "r", "repository_owner_id": "65",
        "workflow_filename": "release.yml", "environment": environment,
    }]}
    (entry,) = load(yaml.safe_dump(data))
    assert entry.projects == (project,)
    assert entry.fields["environment"] == environment


# -------------------------------------------------------------- hypothesis
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ é\0"


@st.composite
def mangled(draw: st.DrawFn) -> str:
    token = rsa_key().sign(claims())
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.integers(0, 4))
        position = draw(st.integers(0, len(token)))
        if action == 0:
            token = token[:position] + token[position + 1:]
        elif action == 1:
            token = token[:position] + draw(st.text(_ALPHABET, max_size=4)) + token[position:]
        elif action == 2 and token:
            index = min(position, len(token) - 1)
            token = token[:index] + draw(st.sampled_from(_ALPHABET)) + token[index + 1:]
        elif action == 3:
            parts = token.split(".")
            token = ".".join(draw(st.permutations(parts)))
        else:
            token = token[:position]
    return token


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(token=st.one_of(mangled(), st.text(max_size=300), st.binary(max_size=300)))
def test_mangled_tokens_are_only_ever_refused(policy: tppolicy.Policy, token: Any) -> None:
    original = rsa_key().sign(claims())
    try:
        verified = verifier(policy).verify(token)
    except TokenError as exc:
        assert exc.code in CODES
    else:
        # Only a token that still carries the original signed content may pass.
        assert verified.claims == claims()
        assert token.split(".")[2][:-1] == original.split(".")[2][:-1] or token == original
    decision = policy.evaluate_token(token, verifier(policy))
    assert isinstance(decision.allowed, bool)


@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_a_syntax_error(text: str) -> None:
    try:
        parse_policy(text, "fuzz.tpp")
    except PolicySyntaxError as exc:
        assert exc.diagnostics[0].span is not None
        assert exc.diagnostics[0].span.source == "fuzz.tpp"


@given(st.text(alphabet="ab/*?", max_size=8), st.text(alphabet="ab/", max_size=12))
def test_glob_agrees_with_a_reference_definition(pattern: str, text: str) -> None:
    import re

    regex = "".join(".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?"
                    else re.escape(part)
                    for part in re.findall(r"\*\*|\*|\?|[^*?]", pattern))
    assert Glob(pattern)(text) is (re.fullmatch(regex, text, re.DOTALL) is not None)
