"""MkDocs hook: pages generated from the code and from the benchmarks' JSON at build time.

A page asks for generated Markdown with an HTML comment on a line of its own::

    <!-- generate: cli -->                                    the command-line reference
    <!-- generate: keys recipe-dpo -->                        a config model's keys
    <!-- generate: scanners -->                               the guard's scanners and options
    <!-- generate: default-roles -->                          the policy's default roles
    <!-- generate: corpora -->                                the corpus registry
    <!-- generate: imports -->                                who imports whom in bastion
    <!-- generate: bench gateway_soak benchmarks/measured/gateway_soak.json [more.json ...] -->

Nothing is skipped quietly: an unknown marker, a module that moved, a renamed class or a JSON
file without the expected keys stops the build with the page and the marker named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docgen_bench_gateway
import docgen_bench_models
import docgen_cli
import docgen_config
import docgen_corpora
import docgen_imports
from docgen_table import code
from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- generate: (?P<name>[\w-]+)(?P<arg>[^>]*?)\s*-->$", re.MULTILINE)
LOOSE = re.compile(r"^[ \t]*<!--\s*generate\b", re.MULTILINE)  # a marker meant, but malformed

BENCH: dict[str, Callable[[dict[str, Any]], str]] = {
    **docgen_bench_models.RENDERERS,
    **docgen_bench_gateway.RENDERERS,
}


def _bench(arg: str) -> str:
    kind, *paths = arg.split()
    if kind not in BENCH:
        raise KeyError(f"no table for benchmark {kind!r}; known: {', '.join(sorted(BENCH))}")
    if not paths:
        raise ValueError("name at least one JSON file")
    runs = {path: json.loads((ROOT / path).read_text(encoding="utf-8")) for path in paths}
    files = ", ".join(code(path) for path in paths)
    return BENCH[kind](runs) + f"\n\nGenerated from {files} when the site was built."


GENERATORS: dict[str, Callable[[str], str]] = {
    "cli": docgen_cli.render_cli,
    "keys": docgen_config.render_model,
    "scanners": docgen_config.render_scanners,
    "default-roles": docgen_config.render_roles,
    "corpora": docgen_corpora.render_corpora,
    "imports": docgen_imports.render_imports,
    "bench": _bench,
}


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    where = page.file.src_uri
    found = {m.start() for m in MARKER.finditer(markdown)}
    for loose in LOOSE.finditer(markdown):
        if loose.start() not in found:
            line = markdown.count("\n", 0, loose.start()) + 1
            raise PluginError(
                f"docs/{where}:{line}: write a generate marker as "
                "'<!-- generate: NAME ARGS -->' on a line of its own"
            )

    def replace(match: re.Match[str]) -> str:
        name, arg = match["name"], match["arg"].strip()
        if name not in GENERATORS:
            raise PluginError(
                f"docs/{where}: unknown marker {name!r}; known: {', '.join(GENERATORS)}"
            )
        try:
            return GENERATORS[name](arg)
        except Exception as exc:  # name the page and the marker, keep the cause
            raise PluginError(
                f"docs/{where}: <!-- generate: {name} {arg} -->: {type(exc).__name__}: {exc}"
            ) from exc

    return MARKER.sub(replace, markdown)
