"""Limits and defaults of token verification, in a module light enough for the CLI's
option parsing (the verifier itself loads cryptography and PyJWT)."""

MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_LEEWAY = 30
REPLAY_MARGIN = 5  # seconds a used jti is kept past exp + leeway, as PyPI does
