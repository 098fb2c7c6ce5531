"""Publishers files: YAML lists of trusted publishers, checked against a JSON Schema.

A publishers file is a mapping whose ``publishers`` key holds a list of entries. Each entry
names its ``provider``, optionally a ``name``, exactly one of ``projects`` (a list of index
project names) or ``pending_project`` (one name), and the provider's fields as declared in the
provider's ``fields { ... }`` block.

Loading composes the YAML into nodes (so that every error can point at its line and column),
turns the nodes into plain data (reporting duplicate keys, non-string keys and unsupported tags
on the way), validates the data with ``jsonschema`` against the schema `publishers_schema`
generates from the providers, and then runs the checks a schema cannot express: unique names,
duplicate projects after PEP 503 normalization and registered issuers. Every problem found is
reported at once, in one `ConfigError`.
"""

from __future__ import annotations

import datetime
import difflib
import json
import os
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml

from tppolicy.decide.names import canonicalize_name
from tppolicy.errors import ConfigError, Diagnostic, Span
from tppolicy.language.ast import FieldDecl, Provider
from tppolicy.limits import MAX_FILE_PROBLEMS, MAX_PATTERN_VALUE, MAX_PROJECT_NAME
from tppolicy.readers.yaml import (
    LineIndex,
    NotPlain,
    YamlDocument,
    compose_yaml,
    construct_scalar,
    resolve_scalar,
    stream_items,
)
from tppolicy.text import ascii_lookalike_fix, project_name_problem

if TYPE_CHECKING:  # jsonschema is imported only to word errors (a valid file never needs it)
    from jsonschema import ValidationError

__all__ = [
    "NotPlain",
    "PlainCheck",
    "PublisherEntry",
    "iter_plain_publishers",
    "load_publishers_document",
    "load_publishers_file",
    "load_publishers_text",
    "publishers_schema",
    "write_shipped_schema",
]


@dataclass(frozen=True, slots=True)
class PublisherEntry:
    """One trusted publisher of a publishers file, validated, with its defaults filled in."""

    index: int
    name: str | None
    provider: str
    projects: tuple[str, ...]
    pending_project: str | None
    fields: Mapping[str, str | int | bool] = field(hash=False)  # a read-only mapping
    span: Span
    # From `iter_plain_publishers(positions=True)`: where each part is (the head span of
    # each key's value, of each list item under (key, position), of the entry under ()).
    positions: Mapping[Any, Span] | None = field(default=None, hash=False, compare=False)

    def as_row(self) -> dict[str, Any]:
        """The entry as a row, what `Engine.add_publishers` and a server's table take."""
        row: dict[str, Any] = {**self.fields, "provider": self.provider}
        if self.name is not None:
            row["name"] = self.name
        if self.pending_project is not None:
            row["pending_project"] = self.pending_project
        else:
            row["projects"] = list(self.projects)
        return row


# --------------------------------------------------------------------- constants
_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Printable ASCII, non-empty, no leading or trailing space.
_IDENTIFIER_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$"
# PyPI's project name rule (warehouse/oidc §4), spelled case-insensitively.
_PROJECT_NAME_PATTERN = r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$"
_COMMON_KEYS = ("provider", "name", "projects", "pending_project")
_TOP_KEYS = ("publishers",)
_FIELD_TYPES = {"string": "string", "int": "integer", "bool": "boolean"}
_ISSUER_HINT = "register it with --issuer URL=PROVIDER"
_FILENAME_HINT = "a file name such as release.yml, not a path"

_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_SCALAR_TAGS = frozenset(
    _TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")
)

PathItem: TypeAlias = "str | int"
Path: TypeAlias = "tuple[PathItem, ...]"


# ------------------------------------------------------------------------ schema
def publishers_schema(providers: Mapping[str, Provider]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a publishers file for these providers.

    The schema holds the common structure of an entry and one branch per provider, chosen by
    the entry's ``provider`` value (``if``/``then`` on a ``const``).
    """
    names = sorted(providers)
    defs: dict[str, Any] = {
        "identifier": {
            "type": "string",
            "pattern": _IDENTIFIER_PATTERN,
            "description": "printable ASCII, not empty, no leading or trailing spaces",
        },
        "project_name": {
            "type": "string",
            "pattern": _PROJECT_NAME_PATTERN,
            "maxLength": MAX_PROJECT_NAME,
            "description": "an index project name: ASCII letters, digits, '.', '_' and '-', "
                           f"starting and ending with a letter or a digit, at most "
                           f"{MAX_PROJECT_NAME} characters",
        },
    }
    branches: list[dict[str, Any]] = []
    for name in names:
        defs[f"provider_{name}"] = _provider_schema(name, providers[name])
        branches.append({
            "if": {"properties": {"provider": {"const": name}}, "required": ["provider"]},
            "then": {"$ref": f"#/$defs/provider_{name}"},
        })
    publisher: dict[str, Any] = {
        "type": "object",
        "description": "one trusted publisher: a provider, its fields, and the projects it "
                       "may publish (or the one project a pending publisher may create)",
        "required": ["provider"],
        "properties": {
            "provider": {"enum": names, "description": "the CI provider"},
            "name": {"$ref": "#/$defs/identifier",
                     "description": "a name for this publisher, unique in the file"},
            "projects": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/project_name"},
                "description": "the index projects this publisher may publish to",
            },
            "pending_project": {
                "$ref": "#/$defs/project_name",
                "description": "a pending publisher: the one project it may create",
            },
        },
        "anyOf": [{"required": ["projects"]}, {"required": ["pending_project"]}],
        "dependentSchemas": {"projects": {"not": {"required": ["pending_project"]}}},
    }
    if branches:
        publisher["allOf"] = branches
    defs["publisher"] = publisher
    return {
        "$schema": _SCHEMA_DIALECT,
        "$comment": "Generated by tppolicy from the providers' field declarations; do not edit.",
        "title": "tppolicy publishers file",
        "type": "object",
        "required": ["publishers"],
        "properties": {
            "publishers": {"type": "array", "items": {"$ref": "#/$defs/publisher"}},
        },
        "additionalProperties": False,
        "$defs": defs,
    }


def _provider_schema(name: str, provider: Provider) -> dict[str, Any]:
    properties: dict[str, Any] = dict.fromkeys(_COMMON_KEYS, True)
    required: list[str] = []
    for decl in provider.fields:
        if decl.name in _COMMON_KEYS:
            raise ValueError(f"provider {name}: field {decl.name!r} clashes with an entry key")
        properties[decl.name] = _field_schema(name, decl)
        if _default(decl) is None:
            required.append(decl.name)
    schema: dict[str, Any] = {
        "title": f"a {name} publisher",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def _default(decl: FieldDecl) -> str | int | bool | None:
    if decl.default is None or isinstance(decl.default.value, list):
        return None
    return decl.default.value


def _field_schema(provider: str, decl: FieldDecl) -> dict[str, Any]:
    if decl.type not in _FIELD_TYPES:
        raise ValueError(f"provider {provider}: field {decl.name!r} has unknown type {decl.type!r}")
    default = _default(decl)
    schema: dict[str, Any] = {}
    if decl.type == "string":
        value: dict[str, Any] = {"$ref": "#/$defs/identifier"}
        if decl.pattern is not None:
            value["pattern"] = decl.pattern
            value["maxLength"] = MAX_PATTERN_VALUE  # no pattern is run on longer values
        if default == "":
            # "" means "none": allowed as is; any other value is an identifier.
            schema.update({"if": {"const": ""}, "else": value})
        else:
            schema.update(value)
    else:
        schema["type"] = _FIELD_TYPES[decl.type]
        if decl.pattern is not None:
            schema["pattern"] = decl.pattern
    if decl.pattern_message is not None:
        schema["description"] = decl.pattern_message
    if default is not None:
        schema["default"] = default
    return schema


def write_shipped_schema(providers: Mapping[str, Provider],
                         path: str | os.PathLike[str]) -> None:
    """Write `publishers_schema` as JSON: sorted keys, indent 2, trailing newline."""
    text = json.dumps(publishers_schema(providers), sort_keys=True, indent=2) + "\n"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


# ------------------------------------------------- validation (jsonschema, ECMA $)
def _python_regex(pattern: str) -> str:
    """Rewrite a JSON Schema (ECMA 262) pattern for Python's `re`.

    Python's ``$`` also matches just before a final newline, ECMA's only at the very end, so
    every ``$`` anchor outside a character class becomes ``\\Z``.
    """
    out: list[str] = []
    i, in_class, class_start = 0, False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]" and i > class_start:
                in_class = False
        elif c == "[":
            in_class = True
            class_start = i + 1
            if pattern.startswith("^", class_start):
                class_start += 1
            if pattern.startswith("]", class_start):  # a leading ] is literal in Python
                class_start += 1
        elif c == "$":
            out.append(r"\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(_python_regex(pattern))
    except re.error:
        return None


def _pattern_keyword(validator: Any, pattern: str, instance: Any,
                     schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    from jsonschema import ValidationError

    if not isinstance(instance, str) or len(instance) > schema.get("maxLength", len(instance)):
        return  # too long to be matched: `maxLength` reports it
    compiled = _compiled(pattern)
    if compiled is None or compiled.search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@lru_cache(maxsize=1)
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend

    return extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, validators={"pattern": _pattern_keyword})


# ------------------------------------------------------- validation, the fast path
_FieldCheck: TypeAlias = "tuple[str, str, re.Pattern[str] | None, bool]"


def _plainly_valid(data: Any, providers: Mapping[str, Provider]) -> bool:
    """True only if `publishers_schema` certainly accepts `data`: the common case, checked
    in one pass without the schema machinery. False sends the data through the schema,
    which then finds (and words) every error; a doubtful value also answers False."""
    if type(data) is not dict or len(data) != 1 or type(data.get("publishers")) is not list:
        return False
    check = _EntryCheck(providers)
    return all(check.plainly_valid(entry) for entry in data["publishers"])


class _EntryCheck:
    """`_plainly_valid` for one entry."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.shapes = {name: _shape(provider) for name, provider in providers.items()}
        identifier = _compiled(_IDENTIFIER_PATTERN)
        project = _compiled(_PROJECT_NAME_PATTERN)
        assert identifier is not None  # constant patterns
        assert project is not None
        self.identifier, self.project = identifier, project
        # per (provider, field): string values found valid (the first `_KNOWN_VALUES`:
        # workflow files, environments, owners... repeat)
        self.known: dict[tuple[Any, str], set[str]] = {
            (name, check[0]): set() for name, shape in self.shapes.items()
            if shape is not None for check in shape[2]}

    def plainly_valid(self, entry: Any) -> bool:
        identifier, project = self.identifier, self.project
        if type(entry) is not dict:
            return False
        provider = entry.get("provider")
        shape = self.shapes.get(provider) if type(provider) is str else None
        if shape is None:
            return False
        allowed, required, checks = shape
        if not allowed.issuperset(entry) or not all(name in entry for name in required):
            return False
        name = entry.get("name")
        if name is not None and (type(name) is not str or not identifier.search(name)):
            return False
        if "name" in entry and name is None:
            return False
        projects = entry.get("projects")
        if ("projects" in entry) == ("pending_project" in entry):
            return False
        if projects is not None:
            if type(projects) is not list or not projects or not all(
                    type(p) is str and len(p) <= MAX_PROJECT_NAME and project.search(p)
                    for p in projects):
                return False
        elif "projects" in entry:
            return False
        else:
            pending = entry["pending_project"]
            if (type(pending) is not str or len(pending) > MAX_PROJECT_NAME
                    or not project.search(pending)):
                return False
        for field_name, field_type, pattern, empty_ok in checks:
            if field_name not in entry:
                continue
            value = entry[field_name]
            if field_type == "string":
                if type(value) is not str:
                    return False
                if value == "" and empty_ok:
                    continue
                known = self.known[(provider, field_name)]
                if value in known:
                    continue
                if not identifier.search(value) or (pattern is not None and (
                        len(value) > MAX_PATTERN_VALUE or not pattern.search(value))):
                    return False
                if len(known) < _KNOWN_VALUES:
                    known.add(value)
            elif type(value) is not (int if field_type == "int" else bool):
                return False
        return True


_KNOWN_VALUES = 256  # `_EntryCheck.known`'s bound per field


def _shape(provider: Provider) -> tuple[frozenset[str], tuple[str, ...],
                                        tuple[_FieldCheck, ...]] | None:
    """What `_provider_schema` requires of an entry, for `_plainly_valid`; None when a
    field is beyond the fast path (an unknown type, a pattern Python cannot compile)."""
    checks: list[_FieldCheck] = []
    for decl in provider.fields:
        if decl.type not in _FIELD_TYPES or decl.name in _COMMON_KEYS:
            return None
        pattern = None
        if decl.pattern is not None and decl.type == "string":
            pattern = _compiled(decl.pattern)
            if pattern is None:
                return None
        checks.append((decl.name, decl.type, pattern, _default(decl) == ""))
    required = tuple(d.name for d in provider.fields if _default(d) is None)
    allowed = frozenset((*_COMMON_KEYS, *(d.name for d in provider.fields)))
    return allowed, required, tuple(checks)


# ---------------------------------------------------------------- YAML → data
@dataclass
class _Loc:
    """Where a value of the document came from: its node, and its key's node."""

    node: yaml.Node
    key_node: yaml.Node | None = None
    children: dict[str, _Loc] | list[_Loc] | None = None


class _Invalid:
    """Stands for a value already reported as an error; it matches no JSON type."""


_INVALID = _Invalid()


@dataclass
class _Context:
    source: str
    text: str
    providers: Mapping[str, Provider]
    document: YamlDocument
    diagnostics: list[Diagnostic] = field(default_factory=list)
    reported: set[Path] = field(default_factory=set)  # paths with a diagnostic
    invalid: set[Path] = field(default_factory=set)  # values replaced by _INVALID
    distinct: set[tuple[Span | None, str]] = field(default_factory=set)  # (span, message)

    def span(self, node: yaml.Node | None) -> Span:
        return self.document.span(node)

    def report(self, node: yaml.Node | None, path: Path | None, message: str,
               hint: str | None = None) -> None:
        """Record a problem; `_TooMany` once `MAX_FILE_PROBLEMS` distinct ones are."""
        diagnostic = Diagnostic(message, self.span(node), _path_str(path), hint)
        self.diagnostics.append(diagnostic)
        if path is not None:
            self.reported.add(path)
        self.distinct.add((diagnostic.span, message))
        if len(self.distinct) >= MAX_FILE_PROBLEMS:
            raise _TooMany


class _TooMany(Exception):
    """`MAX_FILE_PROBLEMS` problems are found: reading the file stops there."""


def _path_str(path: Path | None) -> str | None:
    if not path:
        return None
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", item):
            out += f".{item}" if out else item
        else:
            out += f"[{json.dumps(item)}]"
    return out


def _construct_scalar(ctx: _Context, node: yaml.ScalarNode, path: Path,
                      is_value: bool = True) -> Any:
    """The value of a scalar; `_INVALID`, reported, if it has no plain JSON-like value."""
    if node.tag == _TAG + "value":  # a lone "=": PyYAML has no constructor for it
        return str(node.value)
    if node.tag not in _SCALAR_TAGS:
        ctx.report(node, path, f"unsupported YAML tag {node.tag}",
                   "use plain strings, numbers, booleans, lists and mappings")
    else:
        try:
            return construct_scalar(node)
        except Exception as exc:  # PyYAML raises all sorts on explicitly tagged scalars
            problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
            ctx.report(node, path, f"invalid {node.tag.removeprefix(_TAG)} value: {problem}")
    if is_value:
        ctx.invalid.add(path)
    return _INVALID


def _convert(ctx: _Context, node: yaml.Node, path: Path) -> tuple[Any, _Loc]:
    if isinstance(node, yaml.ScalarNode):
        return _construct_scalar(ctx, node, path), _Loc(node)
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _TAG + "seq":
            ctx.report(node, path, f"unsupported YAML tag {node.tag}", "use a plain list")
            ctx.invalid.add(path)
            return _INVALID, _Loc(node)
        items: list[Any] = []
        locs: list[_Loc] = []
        for i, child in enumerate(node.value):
            value, loc = _convert(ctx, child, (*path, i))
            items.append(value)
            locs.append(loc)
        return items, _Loc(node, children=locs)
    if isinstance(node, yaml.MappingNode):
        if node.tag != _TAG + "map":
            ctx.report(node, path, f"unsupported YAML tag {node.tag}", "use a plain mapping")
            ctx.invalid.add(path)
            return _INVALID, _Loc(node)
        return _convert_mapping(ctx, node, path)
    ctx.report(node, path, "unsupported YAML node")  # pragma: no cover - no other node kinds
    return _INVALID, _Loc(node)


def _convert_mapping(ctx: _Context, node: yaml.MappingNode,
                     path: Path) -> tuple[dict[str, Any], _Loc]:
    data: dict[str, Any] = {}
    locs: dict[str, _Loc] = {}
    merges: list[yaml.Node] = []
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _TAG + "merge":
            merges.append(value_node)
            continue
        key = _key(ctx, key_node, path)
        if key is None:
            continue
        if key in locs:
            first = locs[key].key_node
            where = f" (the first is at line {first.start_mark.line + 1})" if (
                first is not None and first.start_mark is not None) else ""
            ctx.report(key_node, (*path, key), f"duplicate key {key!r}{where}",
                       "remove one of them; YAML would silently keep only the last")
            continue
        value, loc = _convert(ctx, value_node, (*path, key))
        loc.key_node = key_node
        data[key] = value
        locs[key] = loc
    for merge in merges:
        sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
        if not all(isinstance(s, yaml.MappingNode) for s in sources):
            ctx.report(merge, path, "a merge key (<<) needs a mapping or a list of mappings")
            continue
        for source in sources:
            merged, merged_loc = _convert(ctx, source, path)
            if not isinstance(merged, dict) or not isinstance(merged_loc.children, dict):
                continue
            for key, value in merged.items():
                if key not in data:
                    data[key] = value
                    locs[key] = merged_loc.children[key]
    return data, _Loc(node, children=locs)


def _key(ctx: _Context, key_node: yaml.Node, path: Path) -> str | None:
    if not isinstance(key_node, yaml.ScalarNode):
        kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
        ctx.report(key_node, path, f"a key must be a string, found {kind}")
        return None
    value = _construct_scalar(ctx, key_node, path, is_value=False)
    if isinstance(value, str):
        return value
    if value is not _INVALID:
        ctx.report(key_node, path, f"a key must be a string, found {_describe(value, key_node)}",
                   _quote_hint(key_node))
    return None


# ------------------------------------------------------------------- describing
def _q(text: str) -> str:
    if len(text) > 60:
        text = text[:57] + "..."
    return repr(text)


def _yaml_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _plain(node: yaml.Node | None) -> str | None:
    """The source text of a plain (unquoted) scalar, else None."""
    # libyaml marks a plain scalar with style '', pyyaml's Python parser with None
    if isinstance(node, yaml.ScalarNode) and not node.style and isinstance(node.value, str):
        return node.value
    return None


def _quote_hint(node: yaml.Node | None) -> str | None:
    raw = _plain(node)
    return f"quote it: {_yaml_quote(raw)}" if raw else None


def _describe(value: Any, node: yaml.Node | None) -> str:
    raw = _plain(node)
    if isinstance(value, bool):
        word = "true" if value else "false"
        if raw is not None and raw.lower() != word:
            return f"{raw}, which YAML reads as the boolean {word}"
        return f"the boolean {word}"
    if isinstance(value, int):
        if raw is not None and raw != str(value):
            return f"{raw}, which YAML reads as the integer {value}"
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {raw if raw is not None else value}"
    if value is None:
        return "nothing (an empty value)" if raw == "" else "null"
    if isinstance(value, str):
        return f"the string {_q(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.date):
        return f"{raw}, which YAML reads as a date" if raw else "a date"
    if isinstance(value, bytes):
        return "binary data"
    return "an invalid value"


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "a boolean (true or false)",
    "array": "a list",
    "object": "a mapping",
}


def _expected(path: Path, type_name: str) -> str:
    if path == ():
        return "a mapping with a 'publishers' list"
    if path == ("publishers",):
        return "a list of publishers"
    if len(path) == 2 and path[0] == "publishers":
        return "a mapping (one publisher)"
    if len(path) == 3 and path[2] == "projects":
        return "a list of project names"
    return _TYPE_WORDS.get(type_name, type_name)


def _did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    # A key that is the start of a field's name ("workflow" for "workflow_filename") is
    # that field, before any spelling-alike ("caller_workflow").
    starts = [c for c in choices if c.startswith((word + "_", word + "-"))]
    close = starts[:1] or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _lookalike_hint(value: str) -> str | None:
    """For a value with look-alike or invisible characters: its ASCII retyping."""
    found = ascii_lookalike_fix(value)
    if found is None:
        return None
    fixed, changes = found
    return f"retype it in ASCII: {_yaml_quote(fixed)} ({'; '.join(changes)})"


# ----------------------------------------------------------- schema error → text
def _locate(root: _Loc, path: Path) -> tuple[_Loc, bool]:
    """The location of `path`, or of its deepest existing ancestor (and False)."""
    loc = root
    for item in path:
        children = loc.children
        if isinstance(children, dict) and isinstance(item, str) and item in children:
            loc = children[item]
            continue
        if isinstance(children, list) and isinstance(item, int) and 0 <= item < len(children):
            loc = children[item]
            continue
        return loc, False
    return loc, True


class _Renderer:
    def __init__(self, ctx: _Context, data: Any, root: _Loc) -> None:
        self.ctx, self.data, self.root = ctx, data, root
        # per path, the best value error so far: (rank, node, message, hint)
        self.value_errors: dict[Path, tuple[int, yaml.Node, str, str | None]] = {}

    def provider_of(self, path: Path) -> tuple[str, Provider] | None:
        if len(path) < 2 or path[0] != "publishers" or not isinstance(self.data, dict):
            return None
        entries = self.data.get("publishers")
        index = path[1]
        if not isinstance(entries, list) or not isinstance(index, int):
            return None
        entry = entries[index] if 0 <= index < len(entries) else None
        name = entry.get("provider") if isinstance(entry, dict) else None
        if isinstance(name, str) and name in self.ctx.providers:
            return name, self.ctx.providers[name]
        return None

    def value_error(self, rank: int, path: Path, node: yaml.Node, message: str,
                    hint: str | None = None) -> None:
        best = self.value_errors.get(path)
        if best is None or rank < best[0]:
            self.value_errors[path] = (rank, node, message, hint)

    def flush(self) -> None:
        for path, (_, node, message, hint) in self.value_errors.items():
            self.ctx.report(node, path, message, hint)

    def render(self, error: ValidationError) -> None:
        path: Path = tuple(error.absolute_path)
        if any(path[:n] in self.ctx.invalid for n in range(len(path) + 1)):
            return  # already reported while reading the YAML
        loc, _ = _locate(self.root, path)
        keyword = error.validator
        if keyword == "type":
            self.type_error(path, loc, error)
        elif keyword == "enum":
            self.enum_error(path, loc, error.instance)
        elif keyword == "pattern":
            self.pattern_error(path, loc, error.instance, str(error.validator_value))
        elif keyword == "required":
            self.required_error(path, loc, error)
        elif keyword == "additionalProperties":
            self.additional_error(path, loc, error)
        elif keyword == "anyOf" and len(path) == 2:
            self.ctx.report(loc.node, path,
                            "missing 'projects' (or 'pending_project' for a pending publisher)",
                            "add 'projects: [NAME, ...]' with the projects it may publish to")
        elif keyword == "not" and len(path) == 2:
            sub, _ = _locate(loc, ("pending_project",))
            self.ctx.report(sub.key_node or loc.node, (*path, "pending_project"),
                            "an entry has either 'projects' or 'pending_project', not both",
                            "a pending publisher (for a project that does not exist yet) has "
                            "only 'pending_project'")
        elif keyword == "maxLength" and path[-1] not in ("projects", "pending_project") \
                and not isinstance(path[-1], int):  # a field with a pattern
            self.value_error(1, path, loc.node, f"{len(str(error.instance))} characters long: "
                             f"limited to {MAX_PATTERN_VALUE} characters (the most a field's "
                             "pattern is run on)",
                             "no real value is this long: check what was pasted here")
        elif keyword == "maxLength":  # a project name
            self.value_error(1, path, loc.node, project_name_problem(error.instance)
                             or f"longer than {error.validator_value} characters",
                             "PyPI's file names (at most 255 bytes) hold the project's name")
        elif keyword == "minItems":
            self.value_error(1, path, loc.node, "'projects' is empty",
                             "list at least one project, or use 'pending_project' for a "
                             "project that does not exist yet")
        else:  # pragma: no cover - the schema uses no other keyword that fails on its own
            self.ctx.report(loc.node, path, error.message)

    def type_error(self, path: Path, loc: _Loc, error: ValidationError) -> None:
        expected_type = str(error.validator_value)
        instance, node = error.instance, loc.node
        message = f"expected {_expected(path, expected_type)}, found {_describe(instance, node)}"
        hint: str | None = None
        raw = _plain(node)
        if expected_type == "string" and not isinstance(instance, (str, list, dict)):
            hint = _quote_hint(node)
        elif expected_type == "integer" and isinstance(instance, str) and re.fullmatch(
                r"-?[0-9]+", instance):
            hint = f"write it without quotes: {instance}"
        elif expected_type == "boolean" and isinstance(instance, str) and instance.lower() in (
                "true", "false"):
            hint = f"write it without quotes: {instance.lower()}"
        elif path == ("publishers",):
            if instance is None:
                hint = "list entries such as '- provider: github', or write 'publishers: []'"
            elif isinstance(instance, dict):
                hint = "start each entry with '- ', e.g. '- provider: github'"
        elif len(path) == 3 and path[2] == "projects" and isinstance(instance, str):
            hint = f"write a list: projects: [{raw if raw is not None else _yaml_quote(instance)}]"
        elif path == () and isinstance(instance, list):
            hint = "put the list under a 'publishers:' key"
        elif len(path) == 2 and isinstance(instance, str) and instance in self.ctx.providers:
            hint = f"write '- provider: {instance}' followed by the publisher's keys"
        self.value_error(0, path, node, message, hint)

    def enum_error(self, path: Path, loc: _Loc, instance: Any) -> None:
        names = sorted(self.ctx.providers)
        known = ", ".join(names) if names else "none"
        if isinstance(instance, str):
            hint = _did_you_mean(instance, names) or f"the known providers are: {known}"
            self.value_error(0, path, loc.node, f"unknown provider {_q(instance)}", hint)
        else:
            self.value_error(0, path, loc.node,
                             f"expected a provider name ({known}), "
                             f"found {_describe(instance, loc.node)}")

    def pattern_error(self, path: Path, loc: _Loc, value: Any, pattern: str) -> None:
        if not isinstance(value, str):  # pragma: no cover - pattern applies to strings only
            return
        node = loc.node
        if pattern == _IDENTIFIER_PATTERN:
            self.identifier_error(path, node, value)
        elif pattern == _PROJECT_NAME_PATTERN:
            suggestion = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("._-")
            hint = _lookalike_hint(value) or (
                f"did you mean {suggestion!r}?" if suggestion and suggestion != value
                else "use ASCII letters, digits, '.', '_' and '-', starting and ending "
                     "with a letter or a digit")
            self.value_error(1, path, node,
                             f"expected a project name, found {_q(value)}", hint)
        else:
            decl = self.field_decl(path)
            what = decl.pattern_message if decl is not None and decl.pattern_message else (
                f"a value matching {pattern}")
            hint = None
            if decl is not None and decl.pattern_message:
                hint = f"the pattern is {pattern}"
            base = value.rstrip("/").rsplit("/", 1)[-1] or "release.yml"
            if "/" in value and str(path[-1]).endswith("filename"):
                hint = (f"write only the file name: {base}" if "not a path" in what
                        else _FILENAME_HINT)
            hint = _lookalike_hint(value) or hint
            self.value_error(2, path, node, f"expected {what}, found {_q(value)}", hint)

    def field_decl(self, path: Path) -> FieldDecl | None:
        found = self.provider_of(path)
        if found is None or len(path) != 3:
            return None
        return next((d for d in found[1].fields if d.name == path[2]), None)

    def identifier_error(self, path: Path, node: yaml.Node, value: str) -> None:
        key = path[-1] if path else ""
        bad = next((c for c in value if not " " <= c <= "~"), None)
        if value == "":
            hint = "remove the key" if key == "name" else "give it a value"
            self.value_error(1, path, node, f"{key!r} is empty", hint)
        elif bad is not None:
            self.value_error(1, path, node,
                             f"expected printable ASCII, found the character {bad!r} "
                             f"(U+{ord(bad):04X}) in {_q(value)}", _lookalike_hint(value))
        else:
            self.value_error(1, path, node,
                             f"expected no leading or trailing spaces, found {_q(value)}",
                             f"remove the spaces: {_yaml_quote(value.strip(' '))}")

    def required_error(self, path: Path, loc: _Loc, error: ValidationError) -> None:
        instance = error.instance
        if not isinstance(instance, dict):  # pragma: no cover - required applies to mappings
            return
        keys = error.validator_value
        for key in keys if isinstance(keys, list) else ():
            if key in instance:
                continue
            if path == ():
                self.ctx.report(loc.node, None, "missing the 'publishers' key",
                                "a publishers file is a mapping: 'publishers: [...]'")
            elif key == "provider":
                names = ", ".join(sorted(self.ctx.providers))
                self.ctx.report(loc.node, path, "missing 'provider'",
                                f"add 'provider: NAME', one of: {names}")
            else:
                found = self.provider_of(path)
                who = f"a {found[0]} publisher" if found else "this publisher"
                decl = next((d for d in found[1].fields if d.name == key), None) if found else None
                hint = (f"add '{key}:' with {decl.pattern_message}"
                        if decl is not None and decl.pattern_message else None)
                self.ctx.report(loc.node, path, f"missing {key!r}, which {who} needs", hint)

    def additional_error(self, path: Path, loc: _Loc, error: ValidationError) -> None:
        instance = error.instance
        if not isinstance(instance, dict):  # pragma: no cover
            return
        schema = error.schema
        allowed = [str(k) for k in schema.get("properties", {})] if isinstance(
            schema, Mapping) else []
        found = self.provider_of(path)
        for key in instance:
            if key in allowed:
                continue
            sub, _ = _locate(loc, (key,))
            hint = _did_you_mean(key, allowed)
            if path == ():
                message = f"unknown key {key!r}"
                hint = hint or "a publishers file has only a 'publishers' key"
            else:
                message = f"unknown key {key!r} for a {found[0]} publisher" if found else (
                    f"unknown key {key!r}")
                hint = hint or f"the keys are: {', '.join(allowed)}"
            self.ctx.report(sub.key_node or sub.node, (*path, key), message, hint)


# ------------------------------------------------------------------------ checks
def _semantic_checks(ctx: _Context, data: Any, root: _Loc,
                     registered_issuers: Mapping[str, str]) -> None:
    entries = data.get("publishers") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return
    names: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        path: Path = ("publishers", i)
        loc, _ = _locate(root, path)
        name = entry.get("name")
        if isinstance(name, str) and (*path, "name") not in ctx.reported:
            if name in names:
                ctx.report(_locate(loc, ("name",))[0].node, (*path, "name"),
                           f"duplicate publisher name {_q(name)} "
                           f"(also publishers[{names[name]}])", "give each publisher its own name")
            else:
                names[name] = i
        projects = entry.get("projects")
        if isinstance(projects, list):
            seen: dict[str, int] = {}
            for j, project in enumerate(projects):
                if not isinstance(project, str):
                    continue
                key = canonicalize_name(project)
                if key in seen:
                    first = projects[seen[key]]
                    same = "" if first == project else (
                        f", the same project as {_q(first)} once normalized")
                    ctx.report(_locate(loc, ("projects", j))[0].node, (*path, "projects", j),
                               f"duplicate project {_q(project)} "
                               f"(projects[{seen[key]}]{same})", "list each project once")
                else:
                    seen[key] = j
        _check_issuer(ctx, entry, path, loc, registered_issuers)


def _check_issuer(ctx: _Context, entry: dict[str, Any], path: Path, loc: _Loc,
                  registered_issuers: Mapping[str, str]) -> None:
    provider_name = entry.get("provider")
    if not isinstance(provider_name, str) or provider_name not in ctx.providers:
        return
    provider = ctx.providers[provider_name]
    decl = next((d for d in provider.fields if d.name == "issuer_url"), None)
    field_path: Path = (*path, "issuer_url")
    if decl is None or field_path in ctx.reported:
        return
    value = entry.get("issuer_url", _default(decl))
    if not isinstance(value, str) or value == "" or value in provider.issuers:
        return
    sub, present = _locate(loc, ("issuer_url",))
    node = sub.node if present else loc.node
    shown = _q(value)
    if not provider.custom_issuers:
        known = ", ".join(provider.issuers) or "none"
        ctx.report(node, field_path,
                   f"issuer {shown} is not an issuer of provider {provider_name!r}",
                   f"{provider_name} accepts no custom issuers; its issuers are: {known}")
        return
    registered = registered_issuers.get(value)
    if registered == provider_name:
        return
    if registered is None:
        message = f"issuer {shown} is neither an issuer of provider {provider_name!r} " \
                  "nor a registered custom issuer"
    else:
        message = f"issuer {shown} is registered for provider {registered!r}, " \
                  f"not {provider_name!r}"
    ctx.report(node, field_path, message,
               f"{_ISSUER_HINT} (here: --issuer {value}={provider_name})")


# -------------------------------------------------------------------- loading
def load_publishers_text(text: str, source: str, providers: Mapping[str, Provider],
                         registered_issuers: Mapping[str, str] | None = None,
                         ) -> tuple[PublisherEntry, ...]:
    """Load a publishers file's text; raise `ConfigError` with every problem found."""
    return load_publishers_document(compose_yaml(text, source, ConfigError), providers,
                                    registered_issuers)


def load_publishers_document(document: YamlDocument, providers: Mapping[str, Provider],
                             registered_issuers: Mapping[str, str] | None = None,
                             ) -> tuple[PublisherEntry, ...]:
    """`load_publishers_text` for a document already composed by `compose_yaml` (a tool
    that also wants the positions of the file's nodes reads the file once)."""
    text, source = document.text, document.source
    node = document.root
    if node is None:
        raise ConfigError([Diagnostic("the file is empty", Span(source, 0, 0, 0, 0),
                                      hint="a publishers file is a mapping: 'publishers: [...]'")],
                          source_text=text)
    ctx = _Context(source, text, providers, document)
    try:
        entries = _load(ctx, node, registered_issuers or {})
    except RecursionError:
        ctx.diagnostics = [Diagnostic("the YAML is nested too deeply", ctx.span(node))]
        entries = ()
    except _TooMany:
        entries = ()
    if ctx.diagnostics:
        # An aliased node is read once per use: report each of its problems once.
        seen: set[tuple[Span | None, str]] = set()
        unique: list[Diagnostic] = []
        for d in ctx.diagnostics:
            if (d.span, d.message) not in seen:
                seen.add((d.span, d.message))
                unique.append(d)
        unique.sort(key=lambda d: (d.span.line if d.span else 0,
                                   d.span.column if d.span else 0, d.path or ""))
        if len(seen) >= MAX_FILE_PROBLEMS:
            unique.append(Diagnostic(
                f"stopped reading the file after {MAX_FILE_PROBLEMS} problems",
                Span(source, 0, 0, 0, 0), hint="fix these and run again"))
        raise ConfigError(unique, source_text=text)
    return entries


def _load(ctx: _Context, node: yaml.Node,
          registered_issuers: Mapping[str, str]) -> tuple[PublisherEntry, ...]:
    data, root = _convert(ctx, node, ())
    if ctx.diagnostics or not _plainly_valid(data, ctx.providers):
        # The schema's own validation finds every error (and is 20 times slower).
        renderer = _Renderer(ctx, data, root)
        validator = _validator_class()(publishers_schema(ctx.providers))
        for error in validator.iter_errors(data):
            renderer.render(error)
        renderer.flush()
    _semantic_checks(ctx, data, root, registered_issuers)
    if ctx.diagnostics:
        return ()
    return tuple(_entry(ctx, i, entry, root) for i, entry in enumerate(data["publishers"]))


def _entry(ctx: _Context, index: int, entry: dict[str, Any], root: _Loc) -> PublisherEntry:
    provider = ctx.providers[entry["provider"]]
    values: dict[str, str | int | bool] = {}
    for decl in provider.fields:
        value = entry[decl.name] if decl.name in entry else _default(decl)
        if decl.type == "int" and isinstance(value, float):
            value = int(value)
        assert value is not None
        values[decl.name] = value
    loc, _ = _locate(root, ("publishers", index))
    return PublisherEntry(
        index=index,
        name=entry.get("name"),
        provider=entry["provider"],
        projects=tuple(entry.get("projects", ())),
        pending_project=entry.get("pending_project"),
        fields=types.MappingProxyType(values),
        span=ctx.span(loc.node),
    )


def load_publishers_file(path: str | os.PathLike[str], providers: Mapping[str, Provider],
                         registered_issuers: Mapping[str, str] | None = None,
                         ) -> tuple[PublisherEntry, ...]:
    """Load a publishers file; raise `ConfigError` with every problem found."""
    from pathlib import Path as FilePath

    from tppolicy.readers.source import read_source

    source = os.fsdecode(path)
    text = read_source(FilePath(source), ConfigError)
    return load_publishers_text(text, source, providers, registered_issuers)


# ------------------------------------------------------------------- streaming
def iter_plain_publishers(text: str, source: str, providers: Mapping[str, Provider],
                          registered_issuers: Mapping[str, str] | None = None, *,
                          positions: bool = False) -> Iterator[PublisherEntry]:
    """The entries of a plain publishers file, one at a time, read from the parser's
    events (`stream_items`): memory for one entry at a time, not for the file.

    Raises `NotPlain`, maybe after some entries, at anything `load_publishers_text` would
    report or that this reader leaves to it (anchors, tags, a value YAML reads as other
    than a string, a number or a boolean...): the caller then reads the file with
    `load_publishers_text`, which reports every problem. Names are checked unique, and
    projects within an entry, as `load_publishers_text` does."""
    check = PlainCheck(providers, registered_issuers)
    lines = LineIndex(source, text)
    # per provider: its fields' defaults, in its order
    plans = {name: {d.name: _default(d) for d in provider.fields}
             for name, provider in providers.items()}
    for index, events in enumerate(stream_items(text, "publishers")):
        entry, where = _plain_entry(events, lines, positions)
        if not check.accept(entry):
            raise NotPlain
        name = entry.get("name")
        projects = entry.get("projects", ())
        defaults = plans[entry["provider"]]
        # required fields are there (plainly valid): a default is None only for those;
        # the copy keeps the provider's order of the fields
        values: dict[str, str | int | bool] = defaults.copy()  # type: ignore[assignment]
        for key in entry:
            if key in values:
                values[key] = entry[key]
        yield PublisherEntry(
            index=index, name=name, provider=entry["provider"],
            projects=tuple(projects), pending_project=entry.get("pending_project"),
            fields=types.MappingProxyType(values),
            span=lines.span(events[0].start_mark, events[-1].end_mark), positions=where)


class PlainCheck:
    """The checks `iter_plain_publishers` makes of each entry it reads, in the file's
    order: `accept(entry)` (the entry's data: a mapping of its keys to scalars and lists
    of scalars, as YAML reads them) is False for an entry on which `load_publishers_text`
    may report a problem (not plainly valid, a name seen before, a project twice in its
    entry, an issuer not registered). A file whose entries are all accepted loads with
    no problem."""

    __slots__ = ("check", "issuers", "names", "providers", "registered")

    def __init__(self, providers: Mapping[str, Provider],
                 registered_issuers: Mapping[str, str] | None = None) -> None:
        self.providers = providers
        self.registered = registered_issuers or {}
        self.check = _EntryCheck(providers)
        self.names: set[str] = set()
        self.issuers = {name for name, provider in providers.items()
                        if any(d.name == "issuer_url" for d in provider.fields)}

    def accept(self, entry: Any) -> bool:
        """Whether `entry`, the next entry of the file, is plainly valid (see the class)."""
        if not self.check.plainly_valid(entry):
            return False
        name = entry.get("name")
        if name is not None:
            if name in self.names:
                return False
            self.names.add(name)
        projects = entry.get("projects", ())
        if len({canonicalize_name(p) for p in projects}) != len(projects):
            return False
        provider = entry["provider"]
        return provider not in self.issuers or _issuer_plain(
            entry, self.providers[provider], self.registered)


def _plain_entry(events: list[yaml.Event], lines: LineIndex,
                 positions: bool) -> tuple[dict[str, Any], Mapping[Any, Span] | None]:
    """An entry's data (a mapping of scalars and lists of scalars) from its events, and
    with `positions` where its parts are; `NotPlain` for anything else."""
    if not isinstance(events[0], yaml.MappingStartEvent):
        raise NotPlain
    data: dict[str, Any] = {}
    where: dict[Any, tuple[Any, Any]] | None = {
        (): (events[0].start_mark, events[-1].end_mark)} if positions else None
    i, last = 1, len(events) - 1
    while i < last:
        key_event, event = events[i], events[i + 1]
        if not isinstance(key_event, yaml.ScalarEvent) or resolve_scalar(key_event) != _STR:
            raise NotPlain
        key = key_event.value
        if key in data:
            raise NotPlain
        if isinstance(event, yaml.ScalarEvent):
            data[key] = _plain_scalar(event)
            if where is not None:
                where[key] = (event.start_mark, event.end_mark)
            i += 2
            continue
        if not isinstance(event, yaml.SequenceStartEvent):
            raise NotPlain
        items: list[Any] = []
        i += 2
        while not isinstance(events[i], yaml.SequenceEndEvent):
            item = events[i]
            if not isinstance(item, yaml.ScalarEvent):
                raise NotPlain
            if where is not None:
                where[(key, len(items))] = (item.start_mark, item.end_mark)
            items.append(_plain_scalar(item))
            i += 1
        if where is not None:
            where[key] = (event.start_mark, events[i].end_mark)
        data[key] = items
        i += 1
    return data, _Positions(lines, where) if where is not None else None


class _Positions(Mapping[Any, Span]):
    """An entry's positions (`PublisherEntry.positions`): the marks of each part, made
    spans when asked for (most never are)."""

    def __init__(self, lines: LineIndex, marks: dict[Any, tuple[Any, Any]]) -> None:
        self._lines = lines
        self._marks = marks

    def __getitem__(self, key: Any) -> Span:
        start, end = self._marks[key]
        return self._lines.head_span(start, end)

    def __contains__(self, key: object) -> bool:
        return key in self._marks

    def __iter__(self) -> Iterator[Any]:
        return iter(self._marks)

    def __len__(self) -> int:
        return len(self._marks)


def _plain_scalar(event: yaml.ScalarEvent) -> Any:
    tag = resolve_scalar(event)
    if tag == _STR:
        return event.value
    if tag not in _SCALAR_TAGS:
        raise NotPlain
    try:
        start: Any = event.start_mark  # libyaml's marks, or pyyaml's
        end: Any = event.end_mark
        return construct_scalar(yaml.ScalarNode(tag, event.value, start, end, event.style))
    except Exception:  # a value the safe loader refuses: reported by the full reader
        raise NotPlain from None


def _issuer_plain(entry: Mapping[str, Any], provider: Provider,
                  registered: Mapping[str, str]) -> bool:
    """Would `_check_issuer` accept this (plainly valid) entry's issuer?"""
    decl = next((d for d in provider.fields if d.name == "issuer_url"), None)
    if decl is None:
        return True
    value = entry.get("issuer_url", _default(decl))
    if not isinstance(value, str) or value == "" or value in provider.issuers:
        return True
    return provider.custom_issuers and registered.get(value) == provider.name
