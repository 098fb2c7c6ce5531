"""The public API (`tppolicy.__all__`) is small and every name in it says what it is for."""

from __future__ import annotations

import inspect

import tppolicy

DATA = {"TOKEN_ERROR_CODES"}  # plain values: documented in the package docstring


def test_every_public_name_has_its_own_docstring() -> None:
    missing = []
    for name in tppolicy.__all__:
        value = getattr(tppolicy, name)
        if name in DATA:
            assert f"`{name}`" in (tppolicy.__doc__ or ""), name
            continue
        doc = inspect.getdoc(value) or ""
        generated = doc.startswith(f"{getattr(value, '__name__', name)}(")  # a dataclass's
        if not doc.strip() or generated:
            missing.append(name)
    assert missing == []


def test_the_package_docstring_says_what_is_public() -> None:
    assert "`tppolicy.__all__`" in (tppolicy.__doc__ or "")
    assert "`tppolicy.server`" in (tppolicy.__doc__ or "")


def test_the_public_api_stays_small() -> None:
    assert len(tppolicy.__all__) <= 40
    assert sorted(dir(tppolicy)) == sorted([*tppolicy.__all__, "__version__"])
