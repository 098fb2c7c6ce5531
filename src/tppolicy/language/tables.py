"""Prepare the policy parser's LALR tables at build time: `python -m tppolicy.language.tables`.

Writes `policy.tables.json` beside `policy.lark` (run it after every grammar change;
tests/test_parse_tables.py fails until then). The file is data, read with `json`, and records
the SHA-256 of the grammar it was made from and the lark version (major.minor): `parse` uses
it only when both match, and otherwise builds the tables from the grammar (slower, same
parser). Lark numbers the states differently from one run to the next, so the file is checked
by the grammar's hash and by parsing alike, not byte for byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lark import Lark
from lark.grammar import Rule
from lark.lexer import TerminalDef

from tppolicy.language.parse import (
    GRAMMAR_FILE,
    PARSER_OPTIONS,
    TABLES_FILE,
    grammar_digest,
    grammar_text,
    lark_series,
)

__all__ = ["main", "tables_text"]


def tables_text(grammar: str) -> str:
    """The prepared tables of `grammar` as the JSON text of `policy.tables.json`."""
    parser = Lark(grammar, **PARSER_OPTIONS)
    data, memo = parser.memo_serialize([TerminalDef, Rule])
    document: dict[str, Any] = {
        "comment": f"generated from {GRAMMAR_FILE} by python -m tppolicy.language.tables: "
                   "do not edit",
        "grammar_sha256": grammar_digest(grammar),
        "lark": lark_series(),
        "data": data,
        "memo": memo,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the tables next to the grammar (or to the path given)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else Path(__file__).with_name(TABLES_FILE)
    target.write_text(tables_text(grammar_text()), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
