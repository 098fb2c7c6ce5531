"""The documented ASGI app, for running under other ASGI servers in tests
(`hypercorn tests.server.asgi_app:app`, `uvicorn tests.server.asgi_app:app`):
the database and the GitHub JWKS file come from TPPOLICY_TEST_DB, TPPOLICY_TEST_JWKS."""

from __future__ import annotations

import os

from tests.tokens import GITHUB
from tppolicy.server import Settings, build_index, create_app

app = create_app(build_index(Settings(db=os.environ["TPPOLICY_TEST_DB"],
                                      jwks={GITHUB: os.environ["TPPOLICY_TEST_JWKS"]})))
