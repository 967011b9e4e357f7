"""The design's rules, checked on the source (``../DESIGN``: who may import whom; STYLE: small
files, a thin CLI): an import circle, a private name used across modules, a part importing a
part it may not, a file past 500 lines or a command body past 40 lines fails here, naming it."""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "bastion"

# the core: imports none of the parts
CORE = {"", "types", "errors", "config", "cache", "exports", "text", "data", "models", "judges"}
# what each part may import besides the core and itself (DESIGN.md, "Who may import whom")
MAY_IMPORT = {
    "align": set(),
    "guard": set(),
    "redteam": {"guard"},  # the red team may target a guarded app
    "monitor": set(),
    "serve": {"guard", "monitor"},
    "loop": {"align", "redteam", "guard", "monitor", "serve"},
    "cli": {"align", "redteam", "guard", "monitor", "serve", "loop"},
    "__main__": {"cli"},  # python -m bastion
}


@functools.cache
def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _target(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


@functools.cache
def imports() -> dict[str, set[tuple[str, str]]]:
    """Every module's imports of Bastion: (module imported, name taken from it or "")."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom):
                target = _target(module, node, path.name == "__init__.py")
                if target.split(".")[0] != "bastion":
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found[module].add((sub, "") if sub in modules() else (target, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "bastion":
                        found[module].add((alias.name, ""))
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_source_file_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(SRC)): n
        for path in modules().values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}


def test_no_private_name_is_imported_from_another_module() -> None:
    private = sorted(
        f"{module} imports {name} from {target}"
        for module, found in imports().items()
        for target, name in found
        if name.startswith("_") and not name.startswith("__") and target != module
    )
    assert private == []


def test_parts_import_only_what_the_design_allows() -> None:
    broken = []
    for module, found in imports().items():
        part = _part(module)
        allowed = CORE | {part} | MAY_IMPORT.get(part, set())
        for target, _ in found:
            if _part(target) not in allowed:
                broken.append(f"{module} -> {target}")
    assert sorted(broken) == []


def test_no_import_circle() -> None:
    """Tarjan's strongly connected components of the import graph (function-level imports
    count: a circle hidden in a function is still a circle)."""
    graph = {m: {t for t, _ in imports().get(m, ()) if t in modules()} for m in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == []


def test_the_cli_is_thin() -> None:
    """One module per verb, each at most 300 lines, no command body over 40 lines."""
    long_modules, long_bodies = [], []
    for module, path in modules().items():
        if not module.startswith("bastion.cli"):
            continue
        source = path.read_text(encoding="utf-8")
        if len(source.splitlines()) > 300:
            long_modules.append(module)
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and node.decorator_list:
                body_start = node.body[0].lineno
                if isinstance(node.body[0], ast.Expr):  # the docstring is help, not body
                    body_start = node.body[1].lineno if len(node.body) > 1 else node.end_lineno
                if node.end_lineno - body_start + 1 > 40:  # type: ignore[operator]
                    long_bodies.append(f"{module}.{node.name}")
    assert (long_modules, long_bodies) == ([], [])


def test_the_checks_see_the_source() -> None:
    """The rules above would pass vacuously on an empty tree: they must see real modules."""
    assert {"bastion.guard.pipeline", "bastion.cli", "bastion.judges"} <= set(modules())
    assert "bastion.guard.result" in {target for target, _ in imports()["bastion.guard.pipeline"]}
