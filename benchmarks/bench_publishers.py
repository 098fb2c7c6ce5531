"""Publishers files at scale: `tppolicy check`, `lint` and `fmt --check` on generated files
of 100, 1 000, 10 000 and 25 000 publishers, as a user runs them.

Run: python benchmarks/bench_publishers.py [--sizes 100,1000,10000,25000] [--rounds 3]

Each figure is one whole command in a fresh process (`python -m tppolicy ...`): start-up,
reading and validating the file, compiling every publisher, and the tool's own work (for
`check`, one decision on a GitHub claims file matching the last publisher). Measured per
run: the process's CPU time (user + system, from wait4), wall time, and peak RSS. Rounds
are interleaved (each round runs every tool on every size), and the figures are medians.

"per publisher" is (peak RSS at N - peak RSS at the smallest size) / (N - smallest): the
memory the publishers add, without the interpreter's own. "x smallest" is the CPU time at N
over the CPU time at the smallest size. The last line times the 791-byte alias bomb
(refused by the YAML reader).

Targets (issue 13): each tool <= 2 s at 10 000 publishers, <= 8x its 100-publisher time,
linear beyond, <= 2 KB per publisher.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "src"
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{a}: &{a} [{','.join([f'*{p}'] * 9)}]\n" for p, a in zip("abcdefgh", "bcdefghi", strict=True))



def publishers_text(count: int) -> str:
    """A file of `count` publishers: half GitHub, a quarter GitLab, a quarter Google, with
    comments, distinct repositories and a few shared owners (as an organisation's file)."""
    out = ["# Trusted publishers of a large organisation (generated).", "publishers:"]
    for i in range(count):
        kind = i % 4
        out.append(f"  # publisher {i}")
        if kind in (0, 1):
            out += [f"  - name: pub-{i}", "    provider: github",
                    f"    projects: [project-{i}, project-{i}-extras]",
                    f"    repository_owner: org{i // 50}", f"    repository_name: repo{i}",
                    f'    repository_owner_id: "{100000 + i // 50}"',
                    "    workflow_filename: release.yml", "    environment: pypi"]
        elif kind == 2:
            out += [f"  - name: pub-{i}", "    provider: gitlab", f"    projects: [project-{i}]",
                    f"    namespace: group{i // 50}/python", f"    project: proj{i}",
                    "    workflow_filepath: ci/release.yml", "    environment: production"]
        else:
            out += [f"  - name: pub-{i}", "    provider: google", f"    projects: [project-{i}]",
                    f"    email: pub{i}@octo.iam.gserviceaccount.com",
                    f'    sub: "{10 ** 20 + i}"']
    return "\n".join(out) + "\n"


def claims_for(count: int) -> dict[str, object]:
    """GitHub claims matching the last GitHub publisher of a file of `count`."""
    i = max(j for j in range(count) if j % 4 in (0, 1))
    owner, repository = f"org{i // 50}", f"org{i // 50}/repo{i}"
    return {
        "iss": "https://token.actions.githubusercontent.com", "aud": "pypi",
        "sub": f"repo:{repository}:environment:pypi", "jti": "bench", "iat": 1, "nbf": 1,
        "exp": 4_000_000_000, "repository": repository, "repository_owner": owner,
        "repository_owner_id": str(100000 + i // 50), "repository_id": "1",
        "job_workflow_ref": f"{repository}/.github/workflows/release.yml@refs/tags/v1",
        "workflow_ref": f"{repository}/.github/workflows/release.yml@refs/tags/v1",
        "ref": "refs/tags/v1", "sha": "0" * 40, "event_name": "push", "environment": "pypi",
        "ref_type": "tag", "runner_environment": "github-hosted",
    }


def run(argv: list[str]) -> tuple[float, float, int, int]:
    """(CPU seconds, wall seconds, peak RSS bytes, exit code) of one command."""
    env = {**os.environ, "PYTHONPATH": str(SOURCES), "PYTHONHASHSEED": "0"}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "tppolicy", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.stderr is not None:
        process.stderr.read()
        process.stderr.close()
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss * 1024, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,25000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tools", default="check,lint,fmt")
    parser.add_argument("--json", action="store_true", help="print the medians as JSON too")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tools = args.tools.split(",")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.rounds} interleaved "
          "rounds, medians; one fresh process per run", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {}
        for size in sizes:
            files[size] = folder / f"publishers-{size}.yaml"
            files[size].write_text(publishers_text(size))
            (folder / f"claims-{size}.json").write_text(json.dumps(claims_for(size)))
        commands = {
            "check": lambda n: ["check", "--publishers", str(files[n]),
                                "--claims", str(folder / f"claims-{n}.json")],
            "lint": lambda n: ["lint", str(files[n])],
            "fmt": lambda n: ["fmt", "--check", str(files[n])],
        }
        expected = {"check": 0, "lint": 0, "fmt": 0}
        samples: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
        for _ in range(args.rounds):
            for size in sizes:
                for tool in tools:
                    cpu, wall, rss, code = run(commands[tool](size))
                    if code != expected[tool]:
                        raise SystemExit(f"{tool} on {size} publishers exited {code}")
                    samples.setdefault((tool, size), []).append((cpu, wall, rss))
        bomb = folder / "bomb.yaml"
        bomb.write_text(BOMB)
        bomb_runs = [run(["check", "--publishers", str(bomb), "--claims",
                          str(folder / f"claims-{sizes[0]}.json")]) for _ in range(args.rounds)]
    results = []
    print(f"{'tool':6} {'publishers':>10} {'CPU s':>8} {'wall s':>8} {'peak RSS':>10} "
          f"{'per publisher':>14} {'x smallest':>10}")
    for tool in tools:
        base_cpu = base_rss = None
        for size in sizes:
            cpu = statistics.median(s[0] for s in samples[(tool, size)])
            wall = statistics.median(s[1] for s in samples[(tool, size)])
            rss = int(statistics.median(s[2] for s in samples[(tool, size)]))
            if base_cpu is None:
                base_cpu, base_rss = cpu, rss
                per, ratio = "", ""
            else:
                assert base_rss is not None
                per = f"{(rss - base_rss) / (size - sizes[0]) / 1024:.1f} KB"
                ratio = f"{cpu / base_cpu:.1f}x"
            print(f"{tool:6} {size:>10} {cpu:8.2f} {wall:8.2f} {rss / 2 ** 20:8.0f} MB "
                  f"{per:>14} {ratio:>10}", flush=True)
            results.append({"tool": tool, "publishers": size, "cpu_s": cpu, "wall_s": wall,
                            "peak_rss_bytes": rss})
    bomb_cpu = statistics.median(r[0] for r in bomb_runs)
    print(f"alias bomb ({len(BOMB.encode())} bytes): refused (exit "
          f"{bomb_runs[0][3]}) in {bomb_cpu:.2f} s CPU, the whole command")
    if args.json:
        print(json.dumps({"cpu": cpu_model(), "results": results, "bomb_cpu_s": bomb_cpu}))


if __name__ == "__main__":
    main()
