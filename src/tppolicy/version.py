"""The package's version (one place: the CLI and the public API read it here)."""

__version__ = "0.1.0"
