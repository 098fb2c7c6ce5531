"""`Engine.check_token`'s usual answer in one call (`_usual.c`; see
`tppolicy.decide.engine`)."""

from typing import Any

class TokenPath:
    def __init__(self, engine: Any, core: Any, verifier: Any, replay: Any, audience: str,
                 margin: int, max_jti: int, result: type, /) -> None: ...
    def check(self, token: object, /) -> Any: ...
