"""Toxic text (hateful, demeaning, abusive), with Bastion's n-gram + lexicon classifier.

The weights and the hashed lexicon ship with the package and are reproduced exactly by
``bastion guard train --task toxicity``; the default threshold is the calibrated one (1% false
positives on the calibration split, benign statements about the same groups among the
negatives). Every view is scored, so an answer smuggled out in ROT13 or base64 is read too;
lexicon terms found in the canonical text are reported as spans.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bastion.guard.result import ScanResult, Span
from bastion.guard.scanners.base import Scanner, register
from bastion.guard.scanners.injection import best_of, load_classifier
from bastion.text.normalize import Normalized

if TYPE_CHECKING:
    from bastion.guard.toxicity import Lexicon


@functools.lru_cache(maxsize=4)
def _lexicon(path: Path) -> Lexicon:
    from bastion.errors import ConfigError
    from bastion.guard.toxicity import Lexicon

    if not path.is_file():
        raise ConfigError(f"{path}: no lexicon beside the toxicity weights")
    return Lexicon.load(path)


@register
class ToxicityScanner(Scanner):
    """Scores how toxic a text is; names the lexicon terms it contains."""

    name: ClassVar[str] = "toxicity"
    bounded: ClassVar[bool] = True
    stage: ClassVar[str] = "both"

    def __init__(
        self, *, weights: str | Path | None = None, threshold: float | None = None
    ) -> None:
        from bastion.guard.toxicity import LexiconClassifier, lexicon_path, shipped_weights

        path = Path(weights) if weights else shipped_weights()
        self.model = LexiconClassifier(load_classifier(path), _lexicon(lexicon_path(path)))
        super().__init__(threshold=self.model.threshold if threshold is None else threshold)

    def scan_normalized(self, text: Normalized) -> ScanResult:
        scores, hits = self.model.scores_and_hits(text)
        score, view = best_of(text, scores)
        spans = tuple(
            Span("offensive-term", *text.folded.span(start, end)) for start, end, _ in hits
        )
        if score < self.threshold:
            return self.result(score, view=view, spans=spans)
        terms = f"; {len(hits)} lexicon term{'s' * (len(hits) != 1)}" if hits else ""
        return self.result(score, f"toxic ({view}, {score:.2f}{terms})", view=view, spans=spans)
