"""A training example of the guard's classifiers, its identity, and the classic group split.

Every example keeps its source (the corpus, or the written file) so that the evaluation can hold
each one out (:mod:`bastion.guard.training.loso`), and its group (a template with all its
fillings, a written topic with its benign twins, one text) so that a split never cuts one.
Splits go by group, not by row, by a stable hash (:mod:`bastion.data.splits`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.data.splits import assign_split
from bastion.text.normalize import folded

SPLITS = {"train": 0.7, "calib": 0.15, "dev": 0.15}


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # 1: what the rail should stop (a jailbreak, a harmful request, a toxic text)
    source: str  # the corpus it came from
    group: str  # what decides its split
    category: str | None = None  # the risk area or attack family, where the source gives one


def text_digest(text: str) -> str:
    """A short digest of a text's folded form: its identity for deduplication and splits."""
    return hashlib.sha256(folded(text).text.encode()).hexdigest()[:16]


def unique_examples(
    examples: Sequence[Example], *, group_by_text: bool = False
) -> tuple[Example, ...]:
    """The first example of each folded text, blank ones dropped; ``group_by_text`` makes each
    text its own split group."""
    seen: set[str] = set()
    unique = []
    for example in examples:
        key = text_digest(example.text)
        if key not in seen and example.text.strip():
            seen.add(key)
            if group_by_text:
                example = Example(example.text, example.label, example.source, "text:" + key)
            unique.append(example)
    return tuple(unique)


def split_examples(examples: list[Example]) -> dict[str, list[Example]]:
    """Train, calibration and dev parts (70/15/15%) by a stable hash of each group."""
    out: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for example in examples:
        out[assign_split(example.group, SPLITS, salt="guard-injection")].append(example)
    return out
