"""The worst case of the shipped field patterns on hostile values, as the checks run them.

Run: python benchmarks/bench_patterns.py [--length 1000] [--rounds 5]

Every `matches` pattern of policies/*.tpp is run on crafted values of `--length`
characters (default 1 000, within MAX_PATTERN_VALUE): each value repeats a word of one or
two characters (from a set of characters the patterns treat specially: letters, digits,
'-', '.', '_', '/', ':', '@', '{', '}', '*', ',', ' '...) after a prefix that gets past a
pattern's start ('refs/', 'https://', 'a@b.', ...), and ends in a character that makes the
match fail late ('!', ' ', '\\x00', '/'...). Each pattern is run as the engine runs it
(`fullmatch`) and as the publishers schema does (`search` of the pattern with '$' as '\\Z').

Reported per pattern: the slowest value's time (median of `--rounds` runs of it, the
measuring thread's CPU time), and overall the slowest pattern; then, for reference, a
pattern the checker refuses ((a+)+) on a value of 24 characters, and a pattern it accepts
with two overlapping loops ([a-z]*[a-z]*, n^2) on `--length` and MAX_PATTERN_VALUE
characters.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tppolicy.decide.publishers import _python_regex  # noqa: E402
from tppolicy.language.parse import parse_policy  # noqa: E402
from tppolicy.language.patterns import overlapping_loops, pattern_problem  # noqa: E402
from tppolicy.limits import MAX_PATTERN_VALUE  # noqa: E402

CHARS = "aA0-._/:@{}*, %+~$'\"`;\\!"
PREFIXES = ("", "a", "refs/", "https://", "https://a.b/", "a@b.", "a@", "a/b/", "{version}",
            "aa-", "a.github/workflows/a.yml@", "https://token.actions.a.ghe.com")
ENDS = ("", "!", " ", "\x00", "/", "-", ".", "\n", "@", "--", ".git")


def _shipped() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "policies").glob("*.tpp")):
        for provider in parse_policy(path.read_text("utf-8"), str(path)).providers:
            for decl in provider.fields:
                if decl.pattern is not None:
                    found.append((f"{path.stem}.{decl.name}", decl.pattern))
    return found


def _values(length: int) -> list[str]:
    words = list(CHARS) + [a + b for a in CHARS for b in CHARS]
    values = []
    for prefix in PREFIXES:
        for word in words:
            for end in ENDS:
                body = length - len(prefix) - len(end)
                values.append(prefix + (word * (body // len(word) + 1))[:body] + end)
    return values


def _cpu(run: object, value: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.thread_time()
        run(value)  # type: ignore[operator]
        times.append(time.thread_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    values = _values(args.length)
    print(f"{len(values)} hostile values of {args.length} characters per pattern")
    worst_all = (0.0, "", "")
    for name, pattern in _shipped():
        assert pattern_problem(pattern) is None, name
        engine = re.compile(pattern).fullmatch
        schema = re.compile(_python_regex(pattern)).search
        # One quick pass finds the slowest value of each way; it is then measured again.
        slowest = []
        for way, run in (("fullmatch", engine), ("search", schema)):
            quick = max(values, key=lambda v: _cpu(run, v, 1))
            slowest.append((_cpu(run, quick, args.rounds), way, quick))
        worst, way, value = max(slowest)
        print(f"{name:44} loops {overlapping_loops(pattern)}  worst {worst * 1e6:8.1f} us "
              f"({way}, {json.dumps(value[:12])}...{json.dumps(value[-4:])})")
        if worst > worst_all[0]:
            worst_all = (worst, name, way)
    print(f"slowest shipped pattern: {worst_all[1]} ({worst_all[2]}), "
          f"{worst_all[0] * 1e6:.1f} us on {args.length} characters")
    refused = re.compile(r"^(a+)+$").fullmatch
    print(f"for reference, (a+)+ (refused) on 24 characters: "
          f"{_cpu(refused, 'a' * 23 + '!', 1) * 1e3:.0f} ms (doubles per character)")
    quadratic = re.compile(r"^[a-z]*[a-z]*$").fullmatch
    for n in sorted({args.length, MAX_PATTERN_VALUE}):
        print(f"[a-z]*[a-z]* (accepted, n^2) on {n} characters: "
              f"{_cpu(quadratic, 'a' * (n - 1) + '!', args.rounds) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
