"""Project names as an index compares them: one normaliser for the whole package.

`canonicalize_name` is PEP 503's (packaging's own function: `Foo.Bar_baz` and
`foo-bar-baz` are one project). `ultranormalize_name` is PyPI's test for names too
similar to tell apart (warehouse's `ultranormalize_name`): canonicalize, drop the
separators, then fold the confusables `l`/`i` to `1` and `o` to `0`, so `Foo-Bar`,
`foobar` and `f00bar` are one.
"""

from __future__ import annotations

from packaging.utils import canonicalize_name as _canonicalize

_CONFUSABLES = str.maketrans({"l": "1", "i": "1", "o": "0", "-": None})

__all__ = ["canonicalize_name", "ultranormalize_name"]


def canonicalize_name(name: str) -> str:
    """PEP 503 normalisation: the name under which an index stores a project."""
    return str(_canonicalize(name))


def ultranormalize_name(name: str) -> str:
    """PyPI's name for 'too similar': `Foo-Bar`, `foobar` and `f00bar` are one."""
    return _canonicalize(name).translate(_CONFUSABLES)
