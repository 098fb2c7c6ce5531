"""Whether tppolicy's C modules are wanted in this process.

Two modules are compiled at install when a C compiler is there (`hatch_build.py`): the
index's quick table (`tppolicy.decide._quicktable`) and the compact token reader
(`tppolicy.token._compact`). Each has a pure-Python stand-in giving the same answers.
They are not wanted when `TPPOLICY_NO_EXTENSION=1` says so, or when the interpreter runs
without a GIL (a free-threaded build: the quick table relies on the GIL, and importing a
module that does not declare itself free-threaded turns the GIL back on for the whole
process).
"""

from __future__ import annotations

import os
import sys

EXTENSION_WANTED: bool = os.environ.get("TPPOLICY_NO_EXTENSION") != "1" and bool(
    getattr(sys, "_is_gil_enabled", lambda: True)())
