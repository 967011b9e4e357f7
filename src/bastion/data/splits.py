"""Deterministic splits by a stable hash of the text.

A prompt lands in the same split on every machine, in every run, whatever else is in the data
set, so it can never move between train and test as the data grows. The hash is sha256 of the
case- and whitespace-folded text (plus an optional salt for an independent split), not Python's
randomized ``hash``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


def stable_fraction(text: str, *, salt: str = "") -> float:
    """A number in [0, 1) fixed by the folded text and the salt."""
    folded = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    digest = hashlib.sha256(f"{salt}\x00{folded}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(text: str, fractions: Mapping[str, float], *, salt: str = "") -> str:
    """The split (a key of ``fractions``) that ``text`` belongs to.

    ``fractions`` must sum to 1; keys are taken in the order given.
    """
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-9 or any(v < 0 for v in fractions.values()):
        raise ValueError(
            f"split fractions must be non-negative and sum to 1, got {dict(fractions)}"
        )
    point, edge = stable_fraction(text, salt=salt), 0.0
    names = list(fractions)
    for name in names:
        edge += fractions[name]
        if point < edge:
            return name
    return names[-1]


def split(
    items: Iterable[T],
    fractions: Mapping[str, float],
    *,
    key: Callable[[T], str],
    salt: str = "",
) -> dict[str, list[T]]:
    """Partition items by :func:`assign_split` of ``key(item)``; every split present, in order."""
    parts: dict[str, list[T]] = {name: [] for name in fractions}
    for item in items:
        parts[assign_split(key(item), fractions, salt=salt)].append(item)
    return parts
