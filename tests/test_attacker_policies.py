"""Hostile policy files (attacker sweep): what no policy file may hold is refused with its
place (exit 3), never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tppolicy.errors import PolicySyntaxError
from tppolicy.language.parse import parse_policy_fresh, parse_policy_with_comments

from .conftest import ROOT, run_cli, run_on_provider

GITHUB = (ROOT / "policies/github.tpp").read_text(encoding="utf-8")


def _with(old: str, new: str) -> str:
    assert old in GITHUB
    return GITHUB.replace(old, new, 1)


@pytest.mark.parametrize("literal", ["9" * 10_000, "-" + "9" * 5000, "1" * 41])
def test_an_integer_of_more_than_40_digits_is_refused_where_it_is(literal: str) -> None:
    # 10 000 digits made int() raise inside lark's tree builder (VisitError): exit 4.
    text = _with('let attestation_kind = "GitHub"', f"let attestation_kind = {literal}")
    for parse in (parse_policy_fresh, parse_policy_with_comments):
        with pytest.raises(PolicySyntaxError) as caught:
            parse(text, "p.tpp")
        assert "is too large" in str(caught.value)
        span = caught.value.diagnostics[0].span
        assert span is not None
        assert span.line == GITHUB[:GITHUB.index(
            'let attestation_kind')].count("\n") + 1


@pytest.mark.parametrize("literal", ["18446744073709551615", "-" + "9" * 40, "0"])
def test_integers_of_40_digits_are_kept(literal: str) -> None:
    parse_policy_fresh(_with('let attestation_kind = "GitHub"',
                             f"let attestation_kind = {literal}"), "p.tpp")


@pytest.mark.parametrize("command", ["lint", "fmt", "compile"])
def test_the_cli_exits_3(command: str, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_on_provider(capsys, command, tmp_path, _with(
        'let attestation_kind = "GitHub"', "let attestation_kind = " + "9" * 10_000))
    assert code == 3, (out, err)
    assert "internal error" not in err and "is too large" in err


@pytest.mark.parametrize("line_end", ["\r", "\n\r"])
def test_a_carriage_return_without_a_line_feed_is_refused(line_end: str) -> None:
    # A file with old Mac line ends (CR only) was read as one line, a comment: lint said
    # "no problems" and fmt rewrote it, for a file editors show as a whole provider.
    text = GITHUB.replace("\n", line_end)
    for parse in (parse_policy_fresh, parse_policy_with_comments):
        with pytest.raises(PolicySyntaxError) as caught:
            parse(text, "p.tpp")
        assert "carriage return without a line feed" in str(caught.value)


def test_windows_line_ends_are_kept() -> None:
    crlf = parse_policy_fresh(GITHUB.replace("\n", "\r\n"), "p.tpp")
    assert [p.name for p in crlf.providers] == ["github"]


def test_lint_refuses_a_cr_only_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "github.tpp"
    policy.write_bytes(GITHUB.replace("\n", "\r").encode())
    code, out, err = run_cli(capsys, "lint", str(policy))
    assert code == 3, (out, err)
    assert "carriage return" in err


def test_a_long_string_literal_costs_memory_in_proportion() -> None:
    # The string terminal repeated an alternation per character: Python's regex engine kept
    # ~120 bytes of backtracking state a character, and a 5 MB literal took lint, fmt and
    # compile to 700 MB (now 55-100 MB). A 1 MB literal: the parse's traced peak was 154 MB.
    import tracemalloc

    from tppolicy.language.parse import _parser

    text = _with('"GitHub"', '"' + "G" * 1_000_000 + '\\n"')
    tracemalloc.start()
    try:
        _parser().parse(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30_000_000, peak


def _provider(extra_lets: str, rule: str = "") -> str:
    """The github provider renamed, with these lets (and a rule) added."""
    text = GITHUB.replace("provider github", "provider mine").replace(
        "token.actions.githubusercontent.com", "ci.example")
    text = text.replace('  let attestation_kind = "GitHub"\n',
                        '  let attestation_kind = "GitHub"\n' + extra_lets, 1)
    if rule:
        text = text.replace("\n  rule ", f"\n  {rule}\n  rule ", 1)
    return text


def _check(text: str) -> list[str]:
    from tppolicy.errors import PolicyCheckError
    from tppolicy.language.check import check_policy

    try:
        check_policy(parse_policy_fresh(text, "mine.tpp"), {})
    except PolicyCheckError as exc:
        return [d.message for d in exc.diagnostics]
    return []


def test_lets_doubling_one_another_are_refused_where_they_grow() -> None:
    # `let d1 = d0 + d0`, `let d2 = d1 + d1`...: each filled in copies the one before twice.
    # 34 such lines (1 KB) made 2^34 parts: lint and compile never ended (16 took 1 s).
    lets = '  let d0 = "ab"\n' + "".join(f"  let d{i} = d{i - 1} + d{i - 1}\n"
                                         for i in range(1, 16))
    messages = _check(_provider(lets))
    assert messages and messages[0].startswith("'d12' grows too large"), messages


def test_the_parts_lets_add_in_a_file_have_a_ceiling() -> None:
    # Each let under the ceiling of one, but 40 of them reading a let of 3 000 parts (the
    # checker takes ~10 us a part).
    big = "  let big = [" + ", ".join(['"x"'] * 3000) + "]\n"
    readers = "".join(f"  let r{i} = \"x\" in big\n" for i in range(40))
    messages = _check(_provider(big + readers))
    assert messages and "in a file" in messages[0], messages[:1]
    assert messages[0].startswith("'r33' grows too large"), messages[0]


def test_a_long_list_written_out_is_not_refused() -> None:
    # The ceiling is on the parts filling in adds: a list written out is its own size.
    assert _check(_provider("  let big = [" + ", ".join(['"x"'] * 5000) + "]\n",
                            'rule big_rule: claims.ref in ["' + '", "'.join(
                                f"refs/tags/v{i}" for i in range(5000)) + '"]')) == []


def test_fix_conditions_reading_lets_count_toward_the_ceiling() -> None:
    # Rules were counted, but fixes, learns, lookups and workflow items fill in lets too.
    big = "  let big = [" + ", ".join(['"x"'] * 3000) + "]\n"
    text = _provider(big).replace(
        '    fix token when claims.job_workflow_ref == ""\n',
        '    fix token when "x" in big "many"\n' * 40
        + '    fix token when claims.job_workflow_ref == ""\n', 1)
    messages = _check(text)
    assert messages and messages[0].startswith("a condition grows too large"), messages[:1]
