"""Who imports whom inside ``bastion``, read from the source with :mod:`ast` at build time, so
the Concepts page shows the import graph the code has, not the one it was meant to have."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from docgen_table import code, table

PARTS = ("align", "redteam", "guard", "monitor", "serve", "loop", "cli")


def render_imports(arg: str) -> str:
    import bastion

    root = Path(bastion.__file__).parent
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        top = path.relative_to(root).parts[0].removesuffix(".py")
        if top in ("__init__", "__main__"):
            continue
        edges[top]  # every module and package gets a row, importing something or not
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "bastion" and len(parts) > 1 and parts[1] != top:
                    edges[top].add(parts[1])
    rows = []
    for part in sorted(edges, key=lambda p: (p in PARTS, PARTS.index(p) if p in PARTS else 0, p)):
        targets = sorted(edges[part], key=lambda p: (p in PARTS, p))
        core = [code(t) for t in targets if t not in PARTS]
        other = [code(t) for t in targets if t in PARTS]
        rows.append([code(f"bastion.{part}"), ", ".join(core) or "–", ", ".join(other) or "–"])
    return table(["module or package", "imports from the core", "imports from the parts"], rows)
