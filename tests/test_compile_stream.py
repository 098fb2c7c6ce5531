"""`tppolicy compile` prints a plain publishers file as it reads it (each publisher bound and
printed in turn, none kept): the text is `format_policy` of the whole policy, byte for byte,
and a file the stream cannot read (or with a problem) is read whole, as before."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tppolicy.decide.load import (
    compile_publishers_blocks,
    compile_publishers_spooled,
    compile_publishers_text,
)
from tppolicy.errors import ConfigError
from tppolicy.language.printer import format_policy

ROOT = Path(__file__).resolve().parents[1]


def _whole(text: str) -> str:
    return format_policy(compile_publishers_text(text, "p.yaml").to_policy_file("p.yaml"))


def _streamed(text: str) -> str:
    blocks = compile_publishers_blocks(text, "p.yaml")
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _spooled(text: str) -> str:
    """As `tppolicy compile` writes it: the publishers spooled to a file, the headers
    returned, then both joined (a spool with a stale tail shows: it is written over)."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        spool.write("stale text of another run " * 50)
        spool.seek(0)
        spool.truncate()
        headers = compile_publishers_spooled(text, spool, "p.yaml")
        spool.seek(0)
        publishers = spool.read()
    blocks = [*headers, publishers] if publishers else headers
    return "\n\n".join(blocks) + "\n" if blocks else ""


GENERATED = "publishers:\n" + "".join(
    f"  - {{name: pub-{i}, provider: github, projects: [p{i}], repository_owner: org{i // 3},"
    f" repository_name: repo{i}, repository_owner_id: '{100 + i // 3}',"
    f" workflow_filename: {'release.yml' if i % 2 else 'publish.yaml'},"
    f" environment: '{'pypi' if i % 3 else ''}'}}\n" for i in range(40)) + (
    "  - {name: gl, provider: gitlab, projects: [g], namespace: grp/sub, project: proj,"
    " workflow_filepath: ci/release.yml}\n"
    "  - {name: pending, provider: github, pending_project: newproj, repository_owner: org1,"
    " repository_name: fresh, repository_owner_id: '101', workflow_filename: release.yml}\n")


@pytest.mark.parametrize("text", [
    (ROOT / "examples" / "publishers.yaml").read_text("utf-8"),
    GENERATED,
    # not plain (an anchor and its alias): read whole
    "publishers:\n  - &a {name: x, provider: github, projects: [x], repository_owner: o,"
    " repository_name: r, repository_owner_id: '1', workflow_filename: release.yml}\n",
    "publishers: []\n",
], ids=["examples", "generated", "anchor", "empty"])
def test_the_streamed_text_is_the_whole_policy_printed(text: str) -> None:
    assert _streamed(text) == _whole(text)
    assert _spooled(text) == _whole(text)


def test_a_file_read_whole_after_the_stream_started_is_spooled_anew() -> None:
    """A file the stream gives up on after some publishers (an alias at the end): what was
    spooled is dropped, and the whole read's publishers written once."""
    text = GENERATED + ("  - &b {name: late, provider: github, projects: [late],"
                        " repository_owner: o, repository_name: late,"
                        " repository_owner_id: '1', workflow_filename: release.yml}\n")
    assert _spooled(text) == _whole(text)
    assert _spooled(text).count("publisher \"pub-0\"") == 1


def test_a_problem_midway_is_reported_as_the_whole_read_reports_it() -> None:
    bad = GENERATED.replace("repository_owner: org5,", "repository_owner: 'bad owner',", 1)
    with pytest.raises(ConfigError) as whole:
        compile_publishers_text(bad, "p.yaml")
    with pytest.raises(ConfigError) as streamed:
        compile_publishers_blocks(bad, "p.yaml")
    assert str(streamed.value) == str(whole.value)
    assert "bad owner" in str(streamed.value)


def test_plain_files_take_the_stream() -> None:
    """The cases above that are plain are printed by the stream (not read whole)."""
    from tppolicy.decide.load import _compile_streamed
    from tppolicy.language.check import CheckedPublisher
    from tppolicy.language.providers import load_providers

    for text in ((ROOT / "examples" / "publishers.yaml").read_text("utf-8"), GENERATED):
        seen: list[CheckedPublisher] = []
        policy = _compile_streamed(text, "p.yaml", load_providers(), None, None,
                                   seen.append)
        assert seen and not policy.publishers  # each handed over, none kept


def test_an_engine_loads_a_plain_file_as_a_stream_and_a_bad_one_whole(tmp_path: Path) -> None:
    """`Engine.load_publishers_file` reads a plain file as a stream: the same publishers,
    in the same order, as the whole read gives; a problem is reported as the whole read
    reports it."""
    from tppolicy import Engine
    from tppolicy.decide.publishers import load_publishers_text
    from tppolicy.language.providers import load_providers

    providers = {n: p.ast for n, p in load_providers().items()}
    for text in ((ROOT / "examples" / "publishers.yaml").read_text("utf-8"), GENERATED):
        path = tmp_path / "p.yaml"
        path.write_text(text, "utf-8")
        engine = Engine(audience="pypi")
        engine.load_publishers_file(path)
        whole = [entry.as_row() for entry in load_publishers_text(text, str(path), providers)]
        other = Engine(publishers=whole, audience="pypi")
        assert [engine.row(r) for r in engine.publishers()] == \
            [other.row(r) for r in other.publishers()]
    bad = tmp_path / "bad.yaml"
    bad.write_text(GENERATED.replace("repository_owner: org5,", "repository_owner: 'bad owner',",
                                     1), "utf-8")
    with pytest.raises(ConfigError) as streamed:
        Engine(audience="pypi").load_publishers_file(bad)
    with pytest.raises(ConfigError) as whole_error:
        load_publishers_text(bad.read_text("utf-8"), str(bad), providers)
    assert str(streamed.value) == str(whole_error.value)


def test_streamed_publishers_with_constraints_print_as_the_whole_policy() -> None:
    """Optional constraints set and left (booleans, globs, tags), long values whose lines
    break, values the printer escapes: each publisher printed from its fields' values is
    the whole policy's."""
    entries = []
    for i in range(12):
        extra = ["ref_protected: true" if i % 2 else "ref_protected: false",
                 "ref_pattern: 'refs/tags/v*'" if i % 3 == 0 else "",
                 "version_tag: 'v{version}'" if i % 4 == 1 else "",
                 f"caller_workflow: ci{i}.yml" if i % 5 == 2 else ""]
        entries.append(
            f"  - {{name: 'pub \"{i}\"', provider: github, projects: [p{i}],"
            f" repository_owner: {'o' * (1 + 9 * i)}, repository_name: r{i},"
            f" repository_owner_id: '{i // 2}', workflow_filename: release.yml,"
            f" environment: 'env {i}'"
            + "".join(f", {e}" for e in extra if e) + "}\n")
    text = "publishers:\n" + "".join(entries)
    assert _streamed(text) == _whole(text)
