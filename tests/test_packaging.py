"""Packaging (issue 14): the LICENSE file ships, classifiers and project URLs are declared,
and Redis is an extra of its own (a single-host `serve` does not need it)."""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT


def test_license_is_the_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


@pytest.mark.slow
def test_built_distributions_carry_the_metadata(tmp_path: Path) -> None:
    """A real build (python -m build, no isolation: no network) of the sdist and wheel."""
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                           "--outdir", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = tmp_path.glob("*.whl")
    [sdist] = tmp_path.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_string(archive.read(metadata_name).decode())
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
        # The parser's prepared tables and the shipped files' trees ship as data (start-up).
        for prepared in ("policy.lark", "policy.tables.json", "policy.prepared.json"):
            assert f"tppolicy/language/{prepared}" in names, names
        # The five C modules, compiled (this machine has a compiler: .ci/run installs it),
        # each with its stub for type checkers.
        for module in ("decide/_quicktable", "token/_compact", "language/_prologue",
                       "decide/_usual", "token/_mapped"):
            assert any(n.startswith(f"tppolicy/{module}.") and n.endswith(".so")
                       for n in names), (module, names)
            assert f"tppolicy/{module}.pyi" in names, names
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("/LICENSE") for n in archive.getnames())
        for module in ("decide/_quicktable", "token/_compact", "language/_prologue",
                       "decide/_usual", "token/_mapped"):
            assert any(n.endswith(f"src/tppolicy/{module}.c") for n in archive.getnames())
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers and "Topic :: Security" in classifiers
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Issues"}
    extras = metadata.get_all("Provides-Extra") or []
    assert "redis" in extras and "server" in extras
    requires = metadata.get_all("Requires-Dist") or []
    server = [r for r in requires if "extra == 'server'" in r or 'extra == "server"' in r]
    assert server and not any(r.startswith("redis") for r in server)
    assert any(r.startswith("redis") and "redis" in r.split(";")[1] for r in requires)


def test_serve_redis_without_the_extra_is_a_usage_error(tmp_path: Path) -> None:
    """Run where `import redis` fails, as in an environment without the redis extra."""
    code = ("import sys; sys.modules['redis'] = None\n"
            "from tppolicy.cli import main\n"
            f"sys.exit(main(['serve', '--db', {str(tmp_path / 'i.db')!r}, "
            "'--redis', 'redis://127.0.0.1:1/0']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "pip install 'tppolicy[redis]'" in done.stderr
