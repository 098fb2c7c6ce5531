"""The other regular expressions user input meets run in linear time: check-workflow's
rewriting of branch and tag filters, and the server logs' masking of tokens. Every regex
constant of the package is also run through the field-pattern analysis: none is
exponential."""

from __future__ import annotations

import importlib
import pkgutil
import random
import re

import pytest

import tppolicy
from tppolicy.language.patterns import overlapping_loops, pattern_problem
from tppolicy.server.logs import mask
from tppolicy.tools.workflow import _brackets, check_workflow_text

from .test_workflow import WORKFLOW


def _package_regexes() -> list[tuple[str, str]]:
    found = []
    for module in pkgutil.walk_packages(tppolicy.__path__, "tppolicy."):
        if module.name.endswith("__main__"):
            continue
        for name, value in vars(importlib.import_module(module.name)).items():
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                found.append((f"{module.name}.{name}", value.pattern))
    return found


REGEXES = _package_regexes()


def test_the_package_has_regexes() -> None:
    assert len(REGEXES) >= 30


@pytest.mark.parametrize(("name", "pattern"), REGEXES, ids=[n for n, _ in REGEXES])
def test_no_regex_of_the_package_is_exponential(name: str, pattern: str) -> None:
    assert pattern_problem(pattern) is None
    assert overlapping_loops(pattern) <= 2


# ------------------------------------------------------------ check-workflow's filters
def test_brackets_replace_as_the_regex_did() -> None:
    rng = random.Random(13)

    def first(inside: str) -> str:
        return (inside.lstrip("!^") or "0")[0]

    for _ in range(5000):
        text = "".join(rng.choice("[]ab!^*") for _ in range(rng.randint(0, 14)))
        assert _brackets(text, first) == re.sub(r"\[([^\]]*)\]",
                                                 lambda m: first(m.group(1)), text)
        assert _brackets(text, lambda inside: "?") == re.sub(r"\[[^\]]*\]", "?", text)


def test_a_filter_of_many_open_brackets_is_read_in_linear_time() -> None:
    """A tag filter of 200 000 '[': the regex scanned from each '[' to the end (about 4
    minutes); it now takes milliseconds."""
    publishers = tppolicy.compile_publishers_text(
        "publishers: [{name: tags, provider: github, projects: [sampleproject], "
        "repository_owner: octo-org, repository_name: sampleproject, repository_owner_id: '65',"
        " workflow_filename: release.yml, environment: pypi, ref_pattern: 'refs/tags/v*'}]")
    text = WORKFLOW.replace("  release:\n    types: [published]\n",
                            f"  push:\n    tags: ['{'[' * 200_000}']\n")
    report = check_workflow_text(text, "release.yml", publishers, path="release.yml")
    assert report.findings is not None


# ------------------------------------------------------------------- the logs' mask
_OLD_SECRET = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|"
                         r"tpp-[A-Za-z0-9_-]{16,}")


def test_mask_leaves_nothing_the_former_mask_hid_and_changes_nothing_else() -> None:
    rng = random.Random(7)
    words = ["eyJ", "tpp-", "a", "bbbb", ".", " ", "-", "x1_", "a" * 16, "/"]
    for _ in range(20_000):
        text = "".join(rng.choice(words) for _ in range(rng.randint(0, 14)))
        masked = mask(text)
        left = masked.replace("[token]", " ").replace("[credential]", " ")
        assert _OLD_SECRET.search(left) is None, (text, masked)
        if _OLD_SECRET.search(text) is None:
            assert masked == text


def test_mask_masks_a_token_from_the_start_of_its_run() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    assert mask(f"Bearer {token}, then") == "Bearer [token], then"
    assert mask(f"id_token={token}") == "id_token=[token]"
    assert mask(f"x{token}") == "[token]"  # glued to what comes before: masked with it


@pytest.mark.parametrize(("text", "masked"), [
    # each eyJ was tried, scanning to the end: about 4 minutes (the former regex is not
    # run on these: it would take as long)
    ("eyJ" * 200_000, "eyJ" * 200_000),
    ("a" + "eyJa" * 150_000 + ".bbbb", "a" + "eyJa" * 150_000 + ".bbbb"),
    ("eyJaaaa." * 75_000, "[token]." * 25_000),
    ("tpp-" * 150_000, "[credential]"),
], ids=["eyJ", "one-dot", "parts", "tpp"])
def test_mask_is_linear_on_hostile_text(text: str, masked: str) -> None:
    assert mask(text) == masked
