"""Start-up: `tppolicy check` on the examples, from the outside, with empty cache directories.

The command is examples/run.sh's check of one claims file:

    tppolicy check --publishers examples/publishers.yaml --claims examples/claims/FILE.json

Each round runs it once per claims file of examples/claims (and, interleaved, a bare
`python3 -c pass` for the interpreter's own start), as a new process with XDG_CACHE_HOME,
TMPDIR and HOME pointed at fresh empty folders, so that nothing prepared by an earlier run
can help. The package's own bytecode is compiled first (`compileall`, as installing a wheel
does; PYTHONDONTWRITEBYTECODE would otherwise make every run compile every module), unless
--no-compile. Figures: wall time and the child's CPU time (user + system), medians over every
run; the target is a wall median <= 0.3 s. The CPU model and the load are printed beside them:
on a loaded machine wall times say little, CPU times a little more.

    python3 benchmarks/bench_startup.py [--rounds N] [--no-compile]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.3



def tppolicy_command() -> list[str]:
    script = shutil.which("tppolicy")
    return [script] if script else [sys.executable, "-m", "tppolicy"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, child CPU seconds, exit code) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    return wall, cpu, done.returncode


def fresh_env(base: Path, index: int) -> dict[str, str]:
    folders = {name: base / f"{name}-{index}" for name in ("cache", "tmp", "home")}
    for folder in folders.values():
        folder.mkdir()
    return {**os.environ, "XDG_CACHE_HOME": str(folders["cache"]),
            "TMPDIR": str(folders["tmp"]), "HOME": str(folders["home"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over the example claims files (default 3: 21 runs)")
    parser.add_argument("--no-compile", action="store_true",
                        help="do not compile the package's bytecode first")
    args = parser.parse_args()
    package = subprocess.run([sys.executable, "-c", "import tppolicy, os; "
                              "print(os.path.dirname(tppolicy.__file__))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if not args.no_compile:
        subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)
    claims = sorted((ROOT / "examples" / "claims").glob("*.json"))
    command = tppolicy_command()
    check_wall: list[float] = []
    check_cpu: list[float] = []
    bare_wall: list[float] = []
    bare_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as temp:
        base = Path(temp)
        runs = 0
        for _ in range(args.rounds):
            for path in claims:
                env = fresh_env(base, runs)
                runs += 1
                wall, cpu, _ = timed([*command, "check", "--publishers",
                                      "examples/publishers.yaml", "--claims",
                                      str(path.relative_to(ROOT))], env)
                check_wall.append(wall)
                check_cpu.append(cpu)
                wall, cpu, _ = timed([sys.executable, "-c", "pass"], env)
                bare_wall.append(wall)
                bare_cpu.append(cpu)
                leftovers = list(base.glob(f"*-{runs - 1}/*"))
                if leftovers:
                    raise SystemExit(f"a run left files in a cache folder: {leftovers}")
    load = os.getloadavg()[0]
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, load average {load:.2f} at the end")
    print(f"tppolicy check on the examples, empty cache folders, {len(check_wall)} runs "
          f"({' '.join(command)}; package {package}, bytecode "
          f"{'as found' if args.no_compile else 'compiled'}):")
    print(f"  wall median {statistics.median(check_wall):.3f} s "
          f"(min {min(check_wall):.3f}, max {max(check_wall):.3f}); "
          f"CPU median {statistics.median(check_cpu):.3f} s; target wall <= {TARGET} s: "
          + ("met" if statistics.median(check_wall) <= TARGET else "MISSED"))
    print(f"  python3 -c pass, interleaved: wall median {statistics.median(bare_wall):.3f} s, "
          f"CPU median {statistics.median(bare_cpu):.3f} s (the interpreter's own start, "
          "included above)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
