"""A compiled function's claims prologue in one call (`_prologue.c`; see
`tppolicy.language.compile`)."""

from typing import Any

class Prologue:
    def __init__(self, names: tuple[str, ...], classes: tuple[type | None, ...],
                 kinds: tuple[int, ...], wrong: object, /) -> None: ...
    def take(self, claims: Any, /) -> tuple[Any, ...] | None: ...
