"""Child Python processes of the replay stores' tests: racers started together, children
killed with kill -9 and always reaped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def child_env() -> dict[str, str]:
    """This process's environment, with its import path (the package under test)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@contextmanager
def reaped(child: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """The child, killed and waited for if it still runs when the block ends, its pipes
    closed."""
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        for stream in (child.stdout, child.stdin, child.stderr):
            if stream is not None:
                stream.close()


def race(script: str, arguments: Sequence[str], processes: int, *,
         timeout: float = 60) -> list[tuple[str, str]]:
    """`processes` children running `script` (which prints "ready", then waits for a
    line on stdin before it races), all told to go at once; each one's (stdout, stderr)
    once it has exited 0."""
    racers = [subprocess.Popen([sys.executable, "-c", script, *arguments], env=child_env(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready"
        for racer in racers:  # all start together
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outputs = []
        for racer in racers:
            out, err = racer.communicate(timeout=timeout)
            assert racer.returncode == 0 and "Traceback" not in err, err
            outputs.append((out, err))
        return outputs
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait(timeout=30)
