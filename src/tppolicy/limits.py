"""Limits and defaults of token verification and decisions, in a module light enough for
the CLI's option parsing (the verifier itself loads cryptography and PyJWT)."""

MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_LEEWAY = 30
REPLAY_MARGIN = 5  # seconds a used jti is kept past exp + leeway, as PyPI does
# The longest `jti` claimed in a replay store (characters). Providers' ids are UUIDs (36);
# a longer one is refused before any store sees it: PostgreSQL cannot index a key over
# 2 704 bytes, and a store's cost per claim then has a ceiling.
MAX_JTI_CHARS = 512

# Input files (policies, publishers, provider, test and workflow files): one cap for every
# reader, checked before parsing. A publishers file of 25 000 entries is about 8 MB.
MAX_SOURCE_BYTES = 16 * 1024 * 1024
# Workflow files are a few KB. The workflow reader (ruamel.yaml, pure Python, for positions)
# reads about 25-60 KB/s: a 29 MB file kept check-workflow busy for minutes, 1 MB took 43 s
# on a busy 2-core machine; 512 KiB keeps the worst case near 20 s.
MAX_WORKFLOW_BYTES = 512 * 1024
# Problems one publishers file reports: reading stops at this many (a file of 180 000 entries
# missing their fields gave 900 000 problems, minutes and gigabytes to find and print them).
MAX_FILE_PROBLEMS = 200

# Publisher field values a pattern (`matches "<regex>"`) is run on: longer ones are refused
# before matching. language/patterns.py refuses patterns of exponential cost and those
# sharing a text among more than 2 overlapping loops; the cost of the rest (n^2 at worst)
# has a ceiling through this. The longest real values (refs, globs: MAX_GLOB_PATTERN,
# workflow paths, URLs) are far shorter.
MAX_PATTERN_VALUE = 1024

# Globs (`glob(claims.ref, publisher.ref_pattern)`): a ref or workflow path is at most a few
# hundred characters; longer patterns and values are refused, so a check's cost has a ceiling.
MAX_GLOB_PATTERN = 1024
MAX_GLOB_TEXT = 4096

# The longest lifetime (exp - iat, seconds) a token may have. GitHub's and Google's live
# minutes to an hour, GitLab's live as long as the job's timeout (one hour by default);
# 24 hours covers every provider's default with room. A token claiming longer is refused
# as `invalid-token` (code "lifetime"); raise it (Verifier/Engine `max_lifetime`) for
# GitLab jobs with longer timeouts.
MAX_TOKEN_LIFETIME = 24 * 3600
# exp, iat and nbf must lie in [0, MAX_TIMESTAMP]: the year 9999, far inside a 64-bit
# integer (SQLite's) and inside the integers a JSON double holds exactly.
MAX_TIMESTAMP = 253402300799

# A refused token is explained against publishers sharing its identity (at most
# NEAR_MISSES of them); when none does, against every publisher of its provider if there
# are at most NEAR_MISS_SCAN (for the operator: such a near miss is not disclosed).
# Anyone may send refused tokens: each publisher explained costs ~0.1 ms of CPU, so a
# refusal costs at most NEAR_MISSES (or NEAR_MISS_SCAN) of them, whatever the number of
# publishers (a scan of 200 cost 28 ms per token). `tppolicy explain` ranks them all.
NEAR_MISSES = 20
NEAR_MISS_SCAN = 20

# Policy files: how deep expressions and blocks may nest (a chain of `or`, `and` or `+`
# counts one level per operand). Every stage after the parser walks the tree recursively.
MAX_POLICY_NESTING = 100

# Claims (a claims file, a token's payload): how deep arrays and objects may nest. Real
# tokens nest two levels at most; every stage after the reader (explain, JSON output,
# records) walks claim values recursively, so deeper claims are refused as invalid input.
MAX_CLAIMS_NESTING = 64

# Characters of a project name, at most. PyPI's rule names no length, but a file of a project
# must fit its name in a 255-byte file name with a version and a suffix ("-0.tar.gz"): a
# longer name could never upload anything.
MAX_PROJECT_NAME = 255 - len("-0.tar.gz")
