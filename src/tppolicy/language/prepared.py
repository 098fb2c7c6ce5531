"""Prepared syntax trees of the shipped provider files (`policy.prepared.json`).

Parsing the seven shipped provider files was most of a `tppolicy check` start-up, and
importing lark a good part of the rest. Their trees are prepared at build time
(`python -m tppolicy.language.tables`), as JSON data in the package: a tree is used only for
the very text it was made from, and only while the grammar, the parser (`parse.py`), this
module and the AST classes hash as recorded; otherwise the text is parsed. Decoding builds
the AST dataclasses by name and nothing else: no code runs, and nothing here imports lark.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from tppolicy.errors import Span
from tppolicy.language import ast as A

__all__ = ["PREPARED_FILE", "code_digest", "decode_tree", "encode_tree", "prepared_policy",
           "text_digest"]

PREPARED_FILE = "policy.prepared.json"
_HERE = Path(__file__).resolve().parent
_CODE = ("policy.lark", "parse.py", "prepared.py", "ast.py")
_AST_CLASSES: dict[str, type] = {
    name: value for name, value in vars(A).items()
    if isinstance(value, type) and getattr(value, "__dataclass_fields__", None) is not None
    and value.__module__ == A.__name__}


def code_digest() -> str:
    """The SHA-256 of what makes a tree from a text: the grammar, the parser, this module
    and the AST classes."""
    digest = hashlib.sha256()
    for name in _CODE:
        digest.update((_HERE / name).read_bytes())
    return digest.hexdigest()


def text_digest(text: str) -> str:
    """The key of a prepared tree: the SHA-256 of the policy text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def encode_tree(value: Any) -> Any:
    """A syntax tree as JSON data (spans without their source, which is given back on use)."""
    if isinstance(value, Span):
        return {"@": "Span", "v": [value.line, value.column, value.end_line, value.end_column]}
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return {"@": type(value).__name__,
                "v": [encode_tree(getattr(value, name)) for name in fields]}
    if isinstance(value, tuple):
        return [encode_tree(item) for item in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"cannot prepare a {type(value).__name__} in a syntax tree")


def decode_tree(data: Any, source: str) -> Any:
    """The tree `encode_tree` gave, its spans in `source` (KeyError, TypeError or ValueError
    on anything else)."""
    if isinstance(data, list):
        return tuple(decode_tree(item, source) for item in data)
    if isinstance(data, dict):
        kind, values = data["@"], data["v"]
        if kind == "Span":
            return Span(source, *values)
        return _AST_CLASSES[kind](*(decode_tree(item, source) for item in values))
    if data is None or isinstance(data, bool | int | str):
        return data
    raise ValueError(f"not a prepared tree: {type(data).__name__}")


@lru_cache(maxsize=1)
def _prepared_trees() -> dict[str, Any]:
    try:
        text = (_HERE / PREPARED_FILE).read_text("utf-8")
        prepared = json.loads(text)
        if not isinstance(prepared, dict) or prepared.get("code_sha256") != code_digest():
            return {}
        trees = prepared.get("trees")
        return trees if isinstance(trees, dict) else {}
    except (OSError, ValueError):
        return {}


def prepared_policy(text: str, source: str) -> A.PolicyFile | None:
    """The prepared tree of `text` (a shipped provider file, unchanged), else None."""
    if len(text) > 1_000_000:
        return None
    data = _prepared_trees().get(text_digest(text))
    if data is None:
        return None
    try:
        tree = decode_tree(data, source)
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(tree, A.PolicyFile):
        return None
    return replace(tree, source=source)
