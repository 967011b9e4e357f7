"""Markdown helpers shared by the generators: escaping and tables."""

from __future__ import annotations

import html
from collections.abc import Container, Iterable, Sequence


def text(value: object) -> str:
    """Plain text safe inside Markdown: no HTML tags, no table breaks, one line."""
    return html.escape(" ".join(str(value).split()), quote=False).replace("|", "\\|")


def code(value: object) -> str:
    """Inline code (backticks inside are doubled around; a table leaves pipes in code alone)."""
    raw = " ".join(str(value).split())
    return f"`` {raw} ``" if "`" in raw else f"`{raw}`"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: Container[int] = ()
) -> str:
    """A Markdown table; the columns whose index is in ``numeric`` align right."""
    rule = ["---:" if i in numeric else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"a row of {len(row)} cells under {len(headers)} headers: {row}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def number(value: float | int | None, digits: int = 2) -> str:
    """A figure as the docs write them: thousands separated, ``digits`` after the point."""
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def file_name(path: str) -> str:
    """The last part of a path, as tables cite a JSON report."""
    return path.rsplit("/", 1)[-1]
