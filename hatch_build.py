"""Build hook: compiles tppolicy's C modules.

- `src/tppolicy/decide/_quicktable.c`, the index's quick table: a random check among a
  million publishers reads fewer cache lines (`tppolicy.decide.index` uses a dict
  without it);
- `src/tppolicy/token/_compact.c`, the token path's hot parts: the usual compact JWT taken
  apart and its registered claims tested, one call each, `Verifier.verify`'s straight
  path, and `MemoryReplayStore`'s claim (`tppolicy.token.verify` and `.replay` do the
  same in Python without it);
- `src/tppolicy/language/_prologue.c`, a compiled check's claims read and typed in one
  call (`tppolicy.language.compile` writes the same reads in Python without it);
- `src/tppolicy/decide/_usual.c`, `Engine.check_token`'s usual answer in one call
  (the engine takes the same steps in Python without it);
- `src/tppolicy/token/_mapped.c`, `MappedReplayStore`'s file and claim (a replay store
  shared by a host's processes through a mapped file; it has no Python form: without
  it, opening one raises `ReplayStoreError`, and `SQLiteReplayStore` remains).

Everything works without them, so a machine without a C compiler still installs
tppolicy: the hook says why on stderr and builds a pure-Python wheel (a module that
fails alone is left out alone). `TPPOLICY_NO_EXTENSION=1` skips the compiler.

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

# module -> (its C source, what tppolicy does without it)
MODULES = {
    "tppolicy.decide._quicktable": (Path("src/tppolicy/decide/_quicktable.c"),
                                    "with slower random lookups among many publishers"),
    "tppolicy.token._compact": (Path("src/tppolicy/token/_compact.c"),
                                "running the token path in Python (slower)"),
    "tppolicy.language._prologue": (Path("src/tppolicy/language/_prologue.c"),
                                    "reading a compiled check's claims in Python (slower)"),
    "tppolicy.decide._usual": (Path("src/tppolicy/decide/_usual.c"),
                               "answering the usual token in Python (slower)"),
    "tppolicy.token._mapped": (Path("src/tppolicy/token/_mapped.c"),
                               "without MappedReplayStore (SQLiteReplayStore remains)"),
}


def _compile(module: str, source: Path, out: Path, temp: Path) -> Path:
    """The extension compiled into `out` (setuptools drives the platform's compiler)."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    extension = Extension(module, [str(source)])
    command = build_ext(Distribution({"name": "tppolicy", "ext_modules": [extension]}))
    command.build_lib = str(out)
    command.build_temp = str(temp)
    command.ensure_finalized()
    command.run()
    return Path(command.get_ext_fullpath(module))


class ExtensionsHook(BuildHookInterface):  # type: ignore[misc]
    """Compiles the C modules into the wheel (or in place, for an editable install)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._temp: str | None = None
        if self.target_name != "wheel" or os.environ.get("TPPOLICY_NO_EXTENSION") == "1":
            return
        root = Path(self.root)
        temp = tempfile.mkdtemp(prefix="tppolicy-build-")
        for n, (module, (source, without)) in enumerate(MODULES.items()):
            name = module.rpartition(".")[2]
            try:
                built = _compile(module, root / source, Path(temp) / f"lib{n}",
                                 Path(temp) / f"build{n}")
            except Exception as exc:  # no compiler, no headers: this module left out
                print(f"tppolicy: the C module {name} was not built ({exc}); tppolicy "
                      f"works without it, {without}", file=sys.stderr)
                continue
            if version == "editable":  # found next to its source, as the package is
                try:
                    (root / source).with_name(built.name).write_bytes(built.read_bytes())
                except OSError as exc:  # a read-only tree: tppolicy works without it
                    print(f"tppolicy: the C module {name} was built but cannot be put next "
                          f"to its source ({exc}); tppolicy works without it, {without}",
                          file=sys.stderr)
                continue
            package = "/".join(module.split(".")[:-1])
            build_data["force_include"][str(built)] = f"{package}/{built.name}"
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
        if build_data.get("pure_python", True):
            shutil.rmtree(temp, ignore_errors=True)  # nothing of it goes into the wheel
        else:
            self._temp = temp

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "_temp", None):
            shutil.rmtree(str(self._temp), ignore_errors=True)
