"""A field's pattern is never run on a value longer than MAX_PATTERN_VALUE characters: every
way a publisher value enters (publishers files, both validation paths; rows given to the
engine, as `serve publishers add` and the server's forms give them; publishers in policy
files) refuses a longer value before matching, naming the field and the cap. With the
patterns language/patterns.py accepts (at most n^2), a check's cost then has a ceiling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tppolicy
from tppolicy import Engine, PolicyCheckError
from tppolicy.decide.publishers import _plainly_valid, load_publishers_text
from tppolicy.language.check import check_policy
from tppolicy.language.parse import parse_policy
from tppolicy.language.patterns import overlapping_loops
from tppolicy.language.providers import load_providers
from tppolicy.limits import MAX_PATTERN_VALUE

from .test_patterns import SHIPPED

GH = {"provider": "github", "repository_owner": "octo-org", "repository_name": "sampleproject",
      "repository_owner_id": "65", "workflow_filename": "release.yml"}
# A ref_pattern as long as allowed, and one character longer; both match the field's pattern
# "^(refs/(?!\\**$)[^\\x00-\\x20]+)?$", so only the cap refuses the longer one.
LONGEST = "refs/tags/" + "v" * (MAX_PATTERN_VALUE - len("refs/tags/"))
TOO_LONG = LONGEST + "1"


def test_the_cap() -> None:
    assert MAX_PATTERN_VALUE == 1024


@pytest.mark.parametrize(("file", "field", "pattern"), SHIPPED,
                         ids=[f"{f}:{n}" for f, n, _ in SHIPPED])
def test_every_shipped_pattern_matches_in_linear_time(file: str, field: str,
                                                      pattern: str) -> None:
    """No two loops of a shipped pattern overlap: its cost grows linearly with the value
    (benchmarks/bench_patterns.py measures the worst case on 1 000 characters)."""
    assert overlapping_loops(pattern) <= 1


def _publishers_yaml(value: str) -> str:
    return ("publishers:\n  - provider: github\n    projects: [demo]\n"
            + "".join(f"    {k}: {v!r}\n" for k, v in GH.items() if k != "provider")
            + f"    ref_pattern: {value}\n")


def test_a_publishers_file_value_past_the_cap_is_refused() -> None:
    providers = {name: p.ast for name, p in load_providers().items()}
    [entry] = load_publishers_text(_publishers_yaml(LONGEST), "p.yaml", providers)
    assert entry.fields["ref_pattern"] == LONGEST
    with pytest.raises(tppolicy.ConfigError) as info:
        load_publishers_text(_publishers_yaml(TOO_LONG), "p.yaml", providers)
    text = str(info.value)
    assert (f"publishers[0].ref_pattern: {MAX_PATTERN_VALUE + 1} characters long: limited to "
            f"{MAX_PATTERN_VALUE} characters (the most a field's pattern is run on)") in text
    assert "p.yaml:8:18: " in text


def test_the_fast_path_leaves_a_long_value_to_the_schema() -> None:
    providers = {name: p.ast for name, p in load_providers().items()}
    entry: dict[str, Any] = {**GH, "projects": ["demo"], "ref_pattern": LONGEST}
    assert _plainly_valid({"publishers": [entry]}, providers)
    entry["ref_pattern"] = TOO_LONG
    assert not _plainly_valid({"publishers": [entry]}, providers)


def test_engine_rows_past_the_cap_are_refused() -> None:
    engine = Engine(publishers=[{**GH, "projects": ["demo"], "ref_pattern": LONGEST}])
    assert len(list(engine.publishers())) == 1
    with pytest.raises(tppolicy.ConfigError) as info:
        engine.add_publisher({**GH, "projects": ["other"], "ref_pattern": TOO_LONG})
    assert (f"ref_pattern: {MAX_PATTERN_VALUE + 1} characters long: limited to "
            f"{MAX_PATTERN_VALUE} characters (the most a field's pattern is run on)") \
        in str(info.value)


def test_a_policy_file_publisher_past_the_cap_is_refused(tmp_path: Path) -> None:
    def policy(value: str) -> str:
        return ('publisher "one" {\n  provider github\n  projects ["demo"]\n  fields {\n'
                + "".join(f'    {k} = "{v}"\n' for k, v in GH.items() if k != "provider")
                + f'    ref_pattern = "{value}"\n  }}\n}}\n')

    providers = load_providers()
    check_policy(parse_policy(policy(LONGEST), "p.tpp"), providers, policy(LONGEST))
    with pytest.raises(PolicyCheckError) as info:
        check_policy(parse_policy(policy(TOO_LONG), "p.tpp"), providers, policy(TOO_LONG))
    # (the glob's own limit, MAX_GLOB_PATTERN, is reported after it)
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.message == (f"field 'ref_pattern' is {MAX_PATTERN_VALUE + 1} characters "
                                  f"long: limited to {MAX_PATTERN_VALUE} characters (the most a "
                                  "field's pattern is run on)")
    assert diagnostic.span is not None and diagnostic.span.line == 9
