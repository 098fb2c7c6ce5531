"""Build hook: compiles the index's quick table (`src/tppolicy/decide/_quicktable.c`).

The extension makes a random check among a million publishers read fewer cache lines
(see the C file); everything works without it (`tppolicy.decide.index` then uses a
dict), so a machine without a C compiler still installs tppolicy: the hook says why on
stderr and builds a pure-Python wheel. `TPPOLICY_NO_EXTENSION=1` skips the compiler.

An editable install (`pip install -e .`) compiles the module next to its source; a wheel
gets it from a temporary folder and is tagged for the interpreter and platform.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "tppolicy.decide._quicktable"
SOURCE = Path("src/tppolicy/decide/_quicktable.c")


def _compile(root: Path, out: Path, temp: Path) -> Path:
    """The extension compiled into `out` (setuptools drives the platform's compiler)."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    extension = Extension(MODULE, [str(root / SOURCE)])
    command = build_ext(Distribution({"name": "tppolicy", "ext_modules": [extension]}))
    command.build_lib = str(out)
    command.build_temp = str(temp)
    command.ensure_finalized()
    command.run()
    return Path(command.get_ext_fullpath(MODULE))


class QuickTableHook(BuildHookInterface):  # type: ignore[misc]
    """Compiles `_quicktable` into the wheel (or in place, for an editable install)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._temp: str | None = None
        if self.target_name != "wheel" or os.environ.get("TPPOLICY_NO_EXTENSION") == "1":
            return
        root = Path(self.root)
        temp = tempfile.mkdtemp(prefix="tppolicy-build-")
        try:
            built = _compile(root, Path(temp) / "lib", Path(temp) / "build")
        except Exception as exc:  # no compiler, no headers: the pure-Python wheel
            shutil.rmtree(temp, ignore_errors=True)
            print(f"tppolicy: the quick table extension was not built ({exc}); "
                  "tppolicy works without it, with slower random lookups among many "
                  "publishers", file=sys.stderr)
            return
        if version == "editable":  # found next to its source, as the package is
            try:
                (root / "src" / "tppolicy" / "decide" / built.name).write_bytes(
                    built.read_bytes())
            except OSError as exc:  # a read-only tree: the dict serves
                print(f"tppolicy: the quick table extension was built but cannot be put "
                      f"next to its source ({exc}); tppolicy works without it",
                      file=sys.stderr)
            finally:
                shutil.rmtree(temp, ignore_errors=True)
            return
        self._temp = temp
        build_data["force_include"][str(built)] = f"tppolicy/decide/{built.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "_temp", None):
            shutil.rmtree(str(self._temp), ignore_errors=True)
