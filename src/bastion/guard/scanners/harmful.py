"""Harmful requests, by category, with Bastion's own n-gram classifier.

The weights and category centroids ship with the package and are reproduced exactly by
``bastion guard train --task harmful``; the default threshold is the calibrated one (1% false
positives on the calibration split, over-refusal prompts and benign contrast halves among the
negatives). The highest-scoring view decides; its category is named in the result.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bastion.guard.normalize import Normalized
from bastion.guard.result import ScanResult, Span
from bastion.guard.scanners.base import Scanner, register
from bastion.guard.scanners.injection import best_view, load_classifier

if TYPE_CHECKING:
    from bastion.guard.harmful import Categories


@functools.lru_cache(maxsize=4)
def _categories(path: Path) -> Categories:
    from bastion.guard.harmful import load_categories

    return load_categories(path)


@register
class HarmfulRequestScanner(Scanner):
    """Scores how much a text asks for harm; names the likeliest category."""

    name: ClassVar[str] = "harmful"
    bounded: ClassVar[bool] = True
    stage: ClassVar[str] = "input"

    def __init__(
        self, *, weights: str | Path | None = None, threshold: float | None = None
    ) -> None:
        from bastion.guard.harmful import shipped_weights

        path = Path(weights) if weights else shipped_weights()
        self.model = load_classifier(path)
        self.categories = _categories(path.with_suffix(".categories.json"))
        super().__init__(threshold=self.model.threshold if threshold is None else threshold)

    def scan_normalized(self, text: Normalized) -> ScanResult:
        score, view = best_view(self.model, text)
        if score < self.threshold:
            return self.result(score, view=view)
        names = [v.name for v in text.all_views()]
        category, _ = self.categories.nearest(text.ngram_features[names.index(view)])
        span = Span(
            category, 0, len(text.original), view=view if view != "canonical" else "original"
        )
        return self.result(
            score,
            f"a harmful request ({category}; {view}, {score:.2f})",
            view=view,
            spans=(span,),
            meta={"category": category},
        )
