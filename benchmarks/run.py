"""Every benchmark, one after the other: python benchmarks/run.py"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for name in ("bench_evaluate.py", "bench_verify.py", "bench_outside.py", "bench_engine.py",
             "bench_publishers.py", "bench_refusals.py", "bench_server.py", "bench_startup.py",
             "bench_patterns.py"):
    print(f"== {name}", flush=True)
    subprocess.run([sys.executable, str(HERE / name)], check=True)
    print(flush=True)
