"""The pipeline's layers, as the folders show them: nothing below imports anything
above, and no module imports itself back through another (no cycles).

    errors, limits, memo, native, text  <  readers  <  language  <  token  <  decide  <  tools
        <  cli, server

Imports made only for type checking count too: a layer that names an upper layer's
type in its signatures depends on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "src" / "tppolicy"
LAYERS = {"errors": 0, "limits": 0, "memo": 0, "native": 0, "version": 0, "text": 0, "readers": 1,
          "language": 2, "token": 3, "decide": 4, "tools": 5, "cli": 6, "server": 6}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tppolicy"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.startswith("tppolicy"):
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _modules() -> dict[str, set[str]]:
    modules = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in imports if i in modules and i != m}
            for m, imports in modules.items()}


def test_no_layer_imports_a_layer_above() -> None:
    wrong = []
    for module, imports in _modules().items():
        own = _layer(module)
        if own is None:  # tppolicy/__init__.py: the public API, above everything
            continue
        for imported in imports:
            theirs = _layer(imported)
            if theirs is None or theirs > own:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = _modules()
    cycles = []
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == 1:
                cycles.append(" -> ".join([*path[path.index(imported):], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
