"""The engine benchmark stays runnable as the README shows it (small sizes; no timing is
asserted: figures belong to the benchmark, not to the tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_engine.py"


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_engine_benchmark_prints_every_size_and_the_ratios() -> None:
    out = _run("--sizes", "100,1000")
    assert "      1,000 " in out
    assert "at 1,000 vs 100: hot " in out
    assert "x thread CPU (" in out


@pytest.mark.slow
def test_engine_benchmark_draws_fresh_publishers_each_round() -> None:
    out = _run("--sizes", "100,1000", "--fresh")
    assert "at 1,000 vs 100: hot " in out and "x thread CPU (" in out


def test_retargeted_claims_name_other_publishers_that_allow_them() -> None:
    """--fresh keeps the claims dicts (the same objects, as warm at every size) and makes
    them name newly drawn publishers, each allowed."""
    import random
    import sys

    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench_engine
    finally:
        sys.path.remove(str(BENCH.parent))
    check, _, _ = bench_engine._loaded(300)
    picks, _ = bench_engine._tokens(300)
    before = [(id(claims), claims["repository"]) for claims in picks]
    bench_engine._retarget(picks, 300, random.Random(3))
    assert [id(claims) for claims in picks] == [identity for identity, _ in before]
    assert sum(claims["repository"] != old for claims, (_, old) in zip(
        picks, before, strict=True)) > 1500
    assert all(check(claims).allowed for claims in picks)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("valgrind"), reason="valgrind is not installed")
def test_engine_benchmark_counts_instructions_per_check() -> None:
    out = _run("--sizes", "100,100", "--instructions")
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["100"]]
    assert len(rows) == 2
    instructions = [int(row[-2].replace(",", "")) for row in rows]
    assert all(count > 0 for count in instructions), instructions  # bounds: the benchmark's
    ratio = float(out.split("instructions per check ")[1].split("x")[0])
    assert 0.98 <= ratio <= 1.02, out  # the same size twice: the same work


def _run_script(name: str, *args: str) -> str:
    script = BENCH.parent / name
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_publishers_benchmark_runs_every_tool() -> None:
    out = _run_script("bench_publishers.py", "--sizes", "5,20", "--rounds", "1")
    for tool in ("check", "lint", "fmt", "fmt-export", "fmt-write", "compile", "explain",
                 "test", "check-workflow"):
        assert re.search(rf"^{tool} +20 ", out, re.MULTILINE), out
    assert "alias bomb" in out and "refused (exit 3)" in out
    shapes = out.split("fmt --check on other shapes")[1]
    assert "JSON" in shapes and "flow mapping entries" in shapes
    # each shape's first row says how fmt wrote it (directly, or by the round trip)
    first_rows = [line for line in shapes.splitlines() if f" {5:>10} " in line]
    assert first_rows and all("written directly" in line or "round trip" in line
                              for line in first_rows), shapes


@pytest.mark.slow
def test_publishers_benchmark_runs_the_compiled_policy_tools() -> None:
    out = _run_script("bench_publishers.py", "--sizes", "5,20", "--rounds", "1", "--shapes", "",
                      "--tools", "check-policy,lint-policy,fmt-policy")
    for tool in ("check-policy", "lint-policy", "fmt-policy"):
        assert re.search(rf"^{tool} +20 ", out, re.MULTILINE), out


def test_outside_benchmark_prints_the_ratios() -> None:
    out = _run_script("bench_outside.py", "--publishers", "20", "--tokens", "5", "--rounds", "1")
    assert "check_claims / hand-written: " in out
    assert "check_token (sqlite replay store) / bare RSA-2048 verify: " in out
    assert "check_token (sqlite-exclusive replay store) / bare RSA-2048 verify: " in out
    assert "check_token (mapped replay store) / bare RSA-2048 verify: " in out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_outside_benchmark_counts_the_token_paths_instructions_piece_by_piece() -> None:
    out = _run_script("bench_outside.py", "--publishers", "20", "--instructions")
    counts = {line[:60].strip(): int(line[60:].replace(",", ""))
              for line in out.splitlines() if line.startswith("  ")}
    assert set(counts) == {
        "bare RSA-2048 verify (cryptography, for scale)", "Verifier.verify beside its RSA call",
        "decision and check_token's glue", "jti claim: MemoryReplayStore",
        "jti claim: SQLiteReplayStore (user space)",
        "jti claim: SQLiteReplayStore(exclusive=True) (user space)",
        "jti claim: MappedReplayStore", "check_token (memory) beside its RSA call"}, out
    assert all(count > 0 for count in counts.values()), out


@pytest.mark.slow
def test_verify_benchmark_prints_the_ratio() -> None:
    out = _run_script("bench_verify.py", "--tokens", "5", "--rounds", "1")
    assert "CPU: " in out
    assert "evaluate_token (MemoryReplayStore) / bare RSA-2048 verify: " in out


@pytest.mark.slow
@pytest.mark.parametrize("lookup", ["memory", "sql"])
def test_refusals_benchmark_prints_every_kind_at_every_size(lookup: str) -> None:
    out = _run_script("bench_refusals.py", "--sizes", "100,300", "--tokens", "3",
                      "--rounds", "1", "--lookup", lookup)
    assert "100 publishers" in out and "300 publishers" in out
    for kind in ("allowed", "stranger", "near miss", "crowded", "case"):
        assert f"check_claims {kind} " in out and f"check_token {kind} " in out, out
        assert f"answer {kind} " in out, out
