"""`tppolicy serve --demo`: the README's lines, run as the server prints them, publish
with the real uv and install with the real pip; the demo says loudly what it is."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tppolicy.server.demo import BANNER

from .conftest import clean_env
from .test_e2e import CLIENT_TIMEOUT, tool

# The real clients (uv, twine, pip) in subprocesses: the slow group (`.ci/run` runs it).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def readme_demo_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Try it in two minutes: `tppolicy serve --demo`", 1)[1]
    block = re.search(r"```text\n(.+?)\n```", section, re.DOTALL)
    assert block is not None
    return block.group(1).splitlines()


def build_sampleproject(root: Path) -> Path:
    pytest.importorskip("build", reason="pip install -e '.[server-test]'")
    source = root / "sampleproject"
    (source / "src" / "sampleproject").mkdir(parents=True)
    (source / "src" / "sampleproject" / "__init__.py").write_text('VALUE = "from the demo"\n')
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "sampleproject"\nversion = "1.0"\n')
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel",
                           "--outdir", str(source / "dist"), str(source)],
                          capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False,
                          env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return source


def test_the_readme_demo_publishes_with_uv(tmp_path: Path) -> None:
    tool("uv")
    source = build_sampleproject(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "tppolicy", "serve", "--demo", "--port",
                               "0", "--reload-interval", "0.2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=clean_env(TMPDIR=str(temp)), cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()
    errors: list[str] = []

    def drain(stream: Any, into: Any) -> None:
        with stream:  # closed at the end of the output (warnings are errors)
            for raw in stream:
                into(raw.decode())

    drains = [threading.Thread(target=drain, args=(server.stdout, lines.put), daemon=True),
              threading.Thread(target=drain, args=(server.stderr, errors.append), daemon=True)]
    for thread in drains:
        thread.start()
    try:
        printed: list[str] = []
        deadline = time.monotonic() + 30
        while not any(line.lstrip().startswith("pip install") for line in printed):
            try:
                printed.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError("".join(printed + errors)) from None
        text = "".join(printed)
        assert BANNER in text and "NOT FOR PRODUCTION" in text
        url = re.search(r"listening on (https://127\.0\.0\.1:\d+)", text)
        demo_dir = re.search(r"export TPPOLICY_DEMO=(\S+)", text)
        assert url is not None and demo_dir is not None
        assert Path(demo_dir.group(1)).parent == temp  # a new temporary directory
        commands = [line.rstrip("\n") for line in printed if line.startswith("  ")]
        expected = [line.replace("https://127.0.0.1:8000", url.group(1))
                    .replace("/tmp/tppolicy-demo-XXXX", demo_dir.group(1))
                    for line in readme_demo_lines()]
        assert commands == expected  # the README shows exactly what the server prints

        script = "set -e\n" + "\n".join(line.strip() for line in commands[:3])
        script += ("\n" + commands[3].strip() + f" --target {tmp_path / 'site'} "
                   "--isolated --no-cache-dir --disable-pip-version-check\n")
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              timeout=CLIENT_TIMEOUT, check=False, cwd=source,
                              env=clean_env(HOME=str(tmp_path), UV_NO_CONFIG="1",
                                            UV_CACHE_DIR=str(tmp_path / "uv-cache")))
        assert done.returncode == 0, done.stdout + done.stderr + "".join(errors)
        assert "Uploading sampleproject-1.0-" in done.stderr
        installed = tmp_path / "site" / "sampleproject" / "__init__.py"
        assert installed.read_text() == 'VALUE = "from the demo"\n'

        # a refusal, explained, with the claim changed in the token URL
        refused = script.split("\n")[:3]
        refused[2] = refused[2].replace("api-version=2.0", "api-version=2.0&environment=release")
        done = subprocess.run(["bash", "-c", "\n".join([*refused, commands[2].strip()])],
                              capture_output=True, text=True, timeout=CLIENT_TIMEOUT,
                              check=False, cwd=source,
                              env=clean_env(HOME=str(tmp_path), UV_NO_CONFIG="1",
                                            UV_CACHE_DIR=str(tmp_path / "uv-cache")))
        assert done.returncode != 0
        assert "environment: token has 'release', publisher expects 'pypi'" in \
            done.stdout + done.stderr
    finally:
        server.terminate()
        server.wait(10)
        for thread in drains:
            thread.join(10)
    log = "".join(errors)
    assert "NOT FOR PRODUCTION" in log
    assert "mint allowed: publisher demo-sampleproject" in log
