"""Small text helpers shared by reports: excerpts that never dump a harmful text in bulk."""

from __future__ import annotations


def excerpt(text: str, limit: int = 60) -> str:
    """One line, at most ``limit`` characters, with an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)].rstrip() + "…"
