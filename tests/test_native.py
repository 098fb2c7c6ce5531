"""tppolicy's C modules as the install left them: each compiled after its last change.
(Whether the install built them and tppolicy uses them: tests/test_quicktable.py,
tests/test_compact.py and the tests below.)"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

# module -> its C source's name, beside the module (hatch_build.py's MODULES)
MODULES = {"tppolicy.decide._quicktable": "_quicktable.c",
           "tppolicy.token._compact": "_compact.c",
           "tppolicy.language._prologue": "_prologue.c",
           "tppolicy.decide._usual": "_usual.c",
           "tppolicy.token._mapped": "_mapped.c"}


def test_the_list_is_the_build_hook_s() -> None:
    from .conftest import ROOT

    text = (ROOT / "hatch_build.py").read_text()
    assert all(f'"{module}"' in text for module in MODULES)
    assert text.count("Path(\"src/tppolicy/") == len(MODULES)


@pytest.mark.parametrize("module", ["tppolicy.language._prologue", "tppolicy.decide._usual"])
def test_the_install_built_the_module_and_tppolicy_uses_it(module: str) -> None:
    from tppolicy.decide import engine
    from tppolicy.language import compile as compile_module
    from tppolicy.native import EXTENSION_WANTED
    from tppolicy.token import verify

    if not EXTENSION_WANTED:
        assert compile_module._Prologue is None and engine._TokenPath is None
        return
    built = importlib.import_module(module)  # the install built it (a C compiler?)
    assert compile_module._Prologue is built.Prologue if module.endswith("_prologue") \
        else engine._TokenPath is built.TokenPath
    assert verify._Usual is not None


@pytest.mark.parametrize("module", MODULES)
def test_the_built_module_is_newer_than_its_source(module: str) -> None:
    """An editable install compiles each module once: after a change to its C file,
    `pip install -e .` again (else the tests would run the old code)."""
    try:
        built = importlib.import_module(module)
    except ImportError:
        pytest.skip("not built")
    assert built.__file__ is not None
    source = Path(importlib.import_module(module.rpartition(".")[0]).__path__[0]) / \
        MODULES[module]
    if not source.exists() or Path(built.__file__).parent != source.parent:
        pytest.skip("an installed wheel: no source beside it")
    assert Path(built.__file__).stat().st_mtime >= source.stat().st_mtime, (
        f"{source} changed since it was built: pip install -e .")
