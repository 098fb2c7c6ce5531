"""Publishers files at scale: `tppolicy check`, `lint`, `fmt --check`, `compile`, `explain`,
`test` and `check-workflow` on generated files of 100, 1 000, 10 000 and 25 000 publishers,
as a user runs them; and `check --policy`, `lint` and `fmt --check` on the compiled policy
of the same publishers.

`compile` writes the file's policy (-o); `explain` ranks every GitHub publisher for the
claims of the last one (allowed, exit 0: every publisher of the provider is explained);
`test` runs one case table of two cases on the file (an allowed and a denied token);
`check-workflow` checks a release workflow against every publisher (no --repository:
each publisher naming release.yml is compared with it). `check-policy`, `lint-policy` and
`fmt-policy` run `check --policy`, `lint` and `fmt --check` on the policy `compile` prints
for the file (made before the rounds, outside the figures; 34 lines, 1 KB a publisher).

`fmt` checks the generated file, which is in the canonical layout (exit 0); `fmt-export`
checks the same publishers as `yaml.safe_dump` writes them (keys sorted, entries' dashes at
column 0, block lists, single quotes), which fmt would rewrite whole: it prints the diff of
every line (exit 1); `fmt-write` rewrites a fresh copy of that file (exit 0; the copy is
made before the command, outside its figures).

Then `fmt --check` on the same publishers in other shapes that exporters and reviewers
write (`SHAPES`, at the sizes up to 10 000): each row says whether fmt writes that shape
directly or takes ruamel.yaml's round trip (about 1.7 ms per publisher), and the summary
which shapes meet issue 13's targets.

Run: python benchmarks/bench_publishers.py [--sizes 100,1000,10000,25000] [--rounds 3]

Each figure is one whole command in a fresh process (`python -m tppolicy ...`, forked
from a small launcher so that its peak RSS is its own): start-up,
reading and validating the file, compiling every publisher, and the tool's own work (for
`check`, one decision on a GitHub claims file matching the last publisher). Measured per
run: the process's CPU time (user + system, from wait4), wall time, and peak RSS. Rounds
are interleaved (each round runs every tool on every size), and the figures are medians.

"per publisher" is (peak RSS at N - peak RSS at the smallest size) / (N - smallest): the
memory the publishers add, without the interpreter's own. "x smallest" is the CPU time at N
over the CPU time at the smallest size. A summary then says, per tool, which of issue 13's
targets it meets at 10 000 publishers. The last line times the alias bomb (refused by
the YAML reader).

Targets (issue 13): each tool <= 2 s at 10 000 publishers, <= 8x its 100-publisher time,
linear beyond, <= 2 KB per publisher.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def exported_text(count: int) -> str:
    """The publishers of `publishers_text(count)` as `yaml.safe_dump` writes them (no
    comments, keys sorted, block lists, strings that need it in single quotes)."""
    import yaml

    return yaml.safe_dump(yaml.safe_load(publishers_text(count)), sort_keys=True)


def _flow_entries(data: dict[str, Any]) -> str:
    """Each entry a flow mapping on one line: `  - {name: a, provider: github, ...}`."""
    lines = ["publishers:"]
    for entry in data["publishers"]:
        items = ", ".join(f"{k}: [{', '.join(v)}]" if isinstance(v, list)
                          else f'{k}: "{v}"' if v.isdigit() else f"{k}: {v}"
                          for k, v in entry.items())
        lines.append(f"  - {{{items}}}")
    return "\n".join(lines) + "\n"


def _quoted(data: dict[str, Any]) -> str:
    """Block layout, every key and string double-quoted (JSON's strings in YAML's layout)."""
    lines = ['"publishers":']
    for entry in data["publishers"]:
        for number, (key, value) in enumerate(entry.items()):
            lines.append(("  - " if number == 0 else "    ") + f"{json.dumps(key)}: "
                         + json.dumps(value))
    return "\n".join(lines) + "\n"


def _block_projects_with_comments(text: str) -> str:
    """The canonical text with each `projects` a block list, a comment on each item."""
    out = []
    for line in text.splitlines():
        if line.startswith("    projects: ["):
            out.append("    projects:")
            out += [f"      - {p}  # owned by the release team"
                    for p in line[len("    projects: ["):-1].split(", ")]
        else:
            out.append(line)
    return "\n".join(out) + "\n"


# Other shapes of the same publishers (`shape(canonical text, data) -> text`).
SHAPES: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "yaml.dump(indent=4)": lambda t, d: yaml_dump(d, indent=4),
    "keys and values quoted": lambda t, d: _quoted(d),
    "comments at column 0": lambda t, d: t.replace("\n  # publisher", "\n# publisher"),
    "dashes at column 4": lambda t, d: t.replace("\n  ", "\n    "),
    "--- and ... lines": lambda t, d: "---\n" + t + "...\n",
    "CRLF and a BOM": lambda t, d: "\ufeff" + t.replace("\n", "\r\n"),
    "blanks at key line ends": lambda t, d: "\n".join(
        line if line.lstrip().startswith("#") else line + "  "
        for line in t.splitlines()) + "\n",
    "blanks at comment line ends": lambda t, d: t.replace("\n", "  \n"),
    "block projects with comments": lambda t, d: _block_projects_with_comments(t),
    "flow mapping entries": lambda t, d: _flow_entries(d),
    "JSON": lambda t, d: json.dumps(d, indent=2) + "\n",
    "fmt's output of JSON": lambda t, d: _formatted(json.dumps(d, indent=2) + "\n"),
}


def _formatted(text: str) -> str:
    """`text` as `tppolicy fmt` writes it (a JSON file: one flow mapping, its lines broken
    past the width)."""
    sys.path.insert(0, str(SOURCES))
    from tppolicy.language.providers import load_providers
    from tppolicy.tools.fmt import format_publishers_text

    providers = {name: p.ast for name, p in load_providers().items()}
    return format_publishers_text(text, "<shape>", providers)


def yaml_dump(data: dict[str, Any], **options: Any) -> str:
    """`yaml.safe_dump` of `data`, keys sorted."""
    import yaml

    return str(yaml.safe_dump(data, sort_keys=True, **options))


def shaped_texts(count: int) -> dict[str, str]:
    """The publishers of `publishers_text(count)` in each of `SHAPES`."""
    import yaml

    text = publishers_text(count)
    data = yaml.safe_load(text)
    return {name: shape(text, data) for name, shape in SHAPES.items()}


def written_directly(text: str) -> bool:
    """Whether `tppolicy fmt` writes `text` without ruamel.yaml's round trip."""
    sys.path.insert(0, str(SOURCES))
    from tppolicy.language.providers import load_providers
    from tppolicy.tools.fmt_canonical import format_simple_publishers, is_canonical_publishers

    providers = {name: p.ast for name, p in load_providers().items()}
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    return (is_canonical_publishers(text, providers)
            or format_simple_publishers(text, providers) is not None)


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


def cases_text(count: int) -> str:
    """A case table for the file of `count` publishers: the claims of its last GitHub
    publisher allowed (by it), the same claims from another environment denied."""
    i = max(j for j in range(count) if j % 4 in (0, 1))
    return (f"publishers: publishers-{count}.yaml\n"
            f"claims:\n  last: claims-{count}.json\n"
            "cases:\n"
            f"  - name: the last GitHub publisher's release\n    claims: last\n"
            f"    allowed: true\n    publisher: pub-{i}\n"
            "  - name: another environment\n    claims: last\n"
            "    set: {environment: staging}\n    allowed: false\n"
            "    failing: [environment]\n")


# A release workflow of the usual shape: published releases, the pypi environment.
WORKFLOW = """name: Release
on:
  release:
    types: [published]
jobs:
  pypi:
    runs-on: ubuntu-latest
    environment: pypi
    permissions:
      id-token: write
    steps:
      - uses: actions/checkout@v4
      - uses: pypa/gh-action-pypi-publish@release/v1
"""


# Runs one command and reports its usage. The command is the launcher's child: a child's
# peak RSS (ru_maxrss) counts the memory of the process it was forked from, so the
# command is forked from this small launcher, not from the benchmark (which holds the
# generated files and would be counted as the command's memory).
LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.execv(sys.executable, [sys.executable, "-m", "tppolicy", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
print(json.dumps([usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss * 1024,
                  os.waitstatus_to_exitcode(status)]))
"""


def run(argv: list[str]) -> tuple[float, float, int, int]:
    """(CPU seconds, wall seconds, peak RSS bytes, exit code) of one command, from
    wait4 on it."""
    env = {**os.environ, "PYTHONPATH": str(SOURCES), "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *argv], env=env, check=True,
                          capture_output=True, text=True)
    cpu, wall, rss, code = json.loads(done.stdout)
    return float(cpu), float(wall), int(rss), int(code)


def verdicts(results: list[dict[str, Any]], sizes: list[int]) -> str:
    """Each tool against issue 13's targets, when the sizes include 10 000: CPU <= 2 s,
    <= 8x the smallest size's, <= 2 KB per publisher, and linear beyond (the CPU each
    publisher past 10 000 adds, over the CPU each added up to 10 000: about 1)."""
    if 10_000 not in sizes or len(sizes) < 2:
        return "(targets: run with sizes 100 and 10000 to compare)"
    lines = ["targets at 10 000 publishers (issue 13):"]
    for tool in dict.fromkeys(r["tool"] for r in results):
        rows = {int(r["publishers"]): r for r in results if r["tool"] == tool}
        base, mid = rows[sizes[0]], rows[10_000]
        added = 10_000 - sizes[0]
        per = (mid["peak_rss_bytes"] - base["peak_rss_bytes"]) / added / 1024
        ratio = mid["cpu_s"] / base["cpu_s"]
        words = [f"{mid['cpu_s']:.2f} s CPU ({'met' if mid['cpu_s'] <= 2 else 'MISS'}: <= 2 s)",
                 f"{ratio:.1f}x the {sizes[0]} time ({'met' if ratio <= 8 else 'MISS'}: <= 8x)",
                 f"{per:.2f} KB per publisher ({'met' if per <= 2 else 'MISS'}: <= 2 KB)"]
        larger = [n for n in sizes if n > 10_000]
        if larger:
            top = rows[larger[-1]]
            slope = (top["cpu_s"] - mid["cpu_s"]) / (larger[-1] - 10_000)
            before = (mid["cpu_s"] - base["cpu_s"]) / added
            words.append(f"each publisher past 10 000 adds {slope / before:.2f}x the CPU of "
                         "one before (linear: about 1)")
        lines.append(f"  {tool}: " + "; ".join(words))
    return "\n".join(lines)


def _table(samples: dict[tuple[str, int], list[tuple[float, float, int]]], tools: list[str],
           sizes: list[int], notes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Print the medians of `samples`, one row per tool and size; return them."""
    results = []
    width = max(6, *(len(t) for t in tools))
    print(f"{'tool':{width}} {'publishers':>10} {'CPU s':>8} {'wall s':>8} {'peak RSS':>10} "
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
            note = f"  {notes[tool]}" if notes and size == sizes[0] else ""
            print(f"{tool:{width}} {size:>10} {cpu:8.2f} {wall:8.2f} {rss / 2 ** 20:8.0f} MB "
                  f"{per:>14} {ratio:>10}{note}", flush=True)
            results.append({"tool": tool, "publishers": size, "cpu_s": cpu, "wall_s": wall,
                            "peak_rss_bytes": rss})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,25000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tools", default="check,lint,fmt,fmt-export,fmt-write,compile,"
                        "explain,test,check-workflow,check-policy,lint-policy,fmt-policy",
                        help="the tools to run (check-policy, lint-policy, fmt-policy: on the "
                             "compiled policy of the file)")
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help="the shapes `fmt --check` is run on, at the sizes up to 10 000 "
                             "('' for none)")
    parser.add_argument("--json", action="store_true", help="print the medians as JSON too")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tools = args.tools.split(",")
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        raise SystemExit(f"unknown shapes {unknown}: choose from {sorted(SHAPES)}")
    shape_sizes = [n for n in sizes if n <= 10_000]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.rounds} interleaved "
          "rounds, medians; one fresh process per run", flush=True)
    directly: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {}
        workflow = folder / "release.yml"
        workflow.write_text(WORKFLOW)
        for size in sizes:
            files[size] = folder / f"publishers-{size}.yaml"
            files[size].write_text(publishers_text(size))
            (folder / f"exported-{size}.yaml").write_text(exported_text(size))
            (folder / f"claims-{size}.json").write_text(json.dumps(claims_for(size)))
            (folder / f"cases-{size}.tptest.yaml").write_text(cases_text(size))
            if {"check-policy", "lint-policy", "fmt-policy"} & set(tools):
                cpu, wall, rss, code = run(["compile", str(files[size]), "-o",
                                            str(folder / f"policy-{size}.tpp")])
                if code != 0:
                    raise SystemExit(f"compile on {size} publishers exited {code}")
            if size in shape_sizes and shapes:
                texts = shaped_texts(size)
                for number, shape in enumerate(shapes):
                    with open(folder / f"shape{number}-{size}.yaml", "w", encoding="utf-8",
                              newline="") as f:
                        f.write(texts[shape])
                    if size == shape_sizes[0]:
                        directly[shape] = ("written directly" if written_directly(texts[shape])
                                           else "ruamel.yaml round trip")
        commands = {
            "check": lambda n: ["check", "--publishers", str(files[n]),
                                "--claims", str(folder / f"claims-{n}.json")],
            "lint": lambda n: ["lint", str(files[n])],
            "fmt": lambda n: ["fmt", "--check", str(files[n])],
            "fmt-export": lambda n: ["fmt", "--check", str(folder / f"exported-{n}.yaml")],
            "fmt-write": lambda n: ["fmt", str(folder / f"rewritten-{n}.yaml")],
            "compile": lambda n: ["compile", str(files[n]), "-o",
                                  str(folder / f"compiled-{n}.tpp")],
            "explain": lambda n: ["explain", "--publishers", str(files[n]),
                                  "--claims", str(folder / f"claims-{n}.json")],
            "test": lambda n: ["test", str(folder / f"cases-{n}.tptest.yaml")],
            "check-workflow": lambda n: ["check-workflow", "--publishers", str(files[n]),
                                         str(workflow)],
            "check-policy": lambda n: ["check", "--policy", str(folder / f"policy-{n}.tpp"),
                                       "--claims", str(folder / f"claims-{n}.json")],
            "lint-policy": lambda n: ["lint", str(folder / f"policy-{n}.tpp")],
            "fmt-policy": lambda n: ["fmt", "--check", str(folder / f"policy-{n}.tpp")],
        }
        expected = {"check": 0, "lint": 0, "fmt": 0, "fmt-export": 1, "fmt-write": 0,
                    "compile": 0, "explain": 0, "test": 0, "check-workflow": 0,
                    "check-policy": 0, "lint-policy": 0, "fmt-policy": 0}
        unknown_tools = sorted(set(tools) - set(commands))
        if unknown_tools:
            raise SystemExit(f"unknown tools {unknown_tools}: choose from {sorted(commands)}")
        prepare = {"fmt-write": lambda n: shutil.copyfile(folder / f"exported-{n}.yaml",
                                                          folder / f"rewritten-{n}.yaml")}
        samples: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
        for _ in range(args.rounds):
            for size in sizes:
                for tool in tools:
                    if tool in prepare:
                        prepare[tool](size)
                    cpu, wall, rss, code = run(commands[tool](size))
                    if code != expected[tool]:
                        raise SystemExit(f"{tool} on {size} publishers exited {code}")
                    samples.setdefault((tool, size), []).append((cpu, wall, rss))
                if size not in shape_sizes:
                    continue
                for number, shape in enumerate(shapes):
                    cpu, wall, rss, code = run(["fmt", "--check",
                                                str(folder / f"shape{number}-{size}.yaml")])
                    if code not in (0, 1):
                        raise SystemExit(f"fmt --check on {shape}, {size} publishers, "
                                         f"exited {code}")
                    samples.setdefault((shape, size), []).append((cpu, wall, rss))
        bomb = folder / "bomb.yaml"
        bomb.write_text(BOMB)
        bomb_runs = [run(["check", "--publishers", str(bomb), "--claims",
                          str(folder / f"claims-{sizes[0]}.json")]) for _ in range(args.rounds)]
    results = _table(samples, tools, sizes)
    print(verdicts(results, sizes))
    shape_results: list[dict[str, Any]] = []
    if shapes:
        print("\nfmt --check on other shapes of the same publishers:")
        shape_results = _table(samples, shapes, shape_sizes, directly)
        print(verdicts(shape_results, shape_sizes))
    bomb_cpu = statistics.median(r[0] for r in bomb_runs)
    print(f"alias bomb ({len(BOMB.encode())} bytes): refused (exit "
          f"{bomb_runs[0][3]}) in {bomb_cpu:.2f} s CPU, the whole command")
    if args.json:
        print(json.dumps({"cpu": cpu_model(), "results": results, "shapes": shape_results,
                          "bomb_cpu_s": bomb_cpu}))


if __name__ == "__main__":
    main()
