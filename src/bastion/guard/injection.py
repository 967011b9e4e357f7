"""The jailbreak/injection classifier at run time: where its shipped weights are, and what a
scanner reads of a classifier that scores every view.

What it trains on is :mod:`bastion.guard.training.data`'s (``task_examples("injection")``);
how it is trained and calibrated, :mod:`bastion.guard.training.fit`; how it is measured out of
source, :mod:`bastion.guard.training.loso`. Scores are computed as the scanner computes them —
the highest over the canonical text and every decoded view — so a threshold's false-positive
rate is the scanner's.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol

from bastion.text.normalize import Normalized


class ViewScorer(Protocol):
    """A classifier that scores every view of a normalized text, with a threshold."""

    threshold: float

    def view_scores(self, text: Normalized) -> list[float]: ...


def shipped_weights() -> Path:
    return Path(str(resources.files("bastion.guard") / "weights" / "injection.safetensors"))
