"""Datasets: JSONL in the TRL formats, the pinned corpus registry, and stable splits."""

from bastion.data.corpus import Corpus, CorpusItem
from bastion.data.jsonl import (
    append_jsonl,
    iter_jsonl,
    json_line,
    read_conversations,
    read_preferences,
    read_unpaired,
    write_jsonl,
)
from bastion.data.registry import get_corpus, load_corpus
from bastion.data.splits import assign_split, split, stable_fraction

__all__ = [
    "Corpus",
    "CorpusItem",
    "append_jsonl",
    "assign_split",
    "get_corpus",
    "iter_jsonl",
    "json_line",
    "load_corpus",
    "read_conversations",
    "read_preferences",
    "read_unpaired",
    "split",
    "stable_fraction",
    "write_jsonl",
]
