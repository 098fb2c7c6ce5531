"""Limits and defaults of token verification, in a module light enough for the CLI's
option parsing (the verifier itself loads cryptography and PyJWT)."""

MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_LEEWAY = 30
REPLAY_MARGIN = 5  # seconds a used jti is kept past exp + leeway, as PyPI does

# Input files (policies, publishers, provider, test and workflow files): one cap for every
# reader, checked before parsing. A publishers file of 25 000 entries is about 8 MB.
MAX_SOURCE_BYTES = 16 * 1024 * 1024
# GitHub workflow files are a few KB; a 29 MB one once kept check-workflow busy for minutes.
MAX_WORKFLOW_BYTES = 1024 * 1024

# Globs (`glob(claims.ref, publisher.ref_pattern)`): a ref or workflow path is at most a few
# hundred characters; longer patterns and values are refused, so a check's cost has a ceiling.
MAX_GLOB_PATTERN = 1024
MAX_GLOB_TEXT = 4096
