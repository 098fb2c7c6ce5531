"""tppolicy's C modules as the install left them: each compiled after its last change.
(Whether the install built them and tppolicy uses them: tests/test_quicktable.py and
tests/test_compact.py.)"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

# module -> its C source's name, beside the module (hatch_build.py's MODULES)
MODULES = {"tppolicy.decide._quicktable": "_quicktable.c",
           "tppolicy.token._compact": "_compact.c"}


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
