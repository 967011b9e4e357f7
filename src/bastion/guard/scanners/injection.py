"""Jailbreak and prompt-injection detection with Bastion's own n-gram classifier.

The weights ship with the package (``bastion/guard/weights/injection.safetensors``) and are
reproduced exactly by ``bastion guard train`` from the pinned corpora; their calibrated
threshold (1% false positives on the calibration split) is the default. The classifier reads
the canonical text and every decoded view; the highest-scoring view decides, and is named.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bastion.errors import ConfigError
from bastion.guard.result import ScanResult
from bastion.guard.scanners.base import Scanner, register
from bastion.text.ngrams import NgramClassifier
from bastion.text.normalize import Normalized

if TYPE_CHECKING:
    from bastion.guard.injection import ViewScorer

_LOADED: dict[Path, NgramClassifier] = {}


def load_classifier(path: Path) -> NgramClassifier:
    """A classifier file, loaded once per process."""
    if path not in _LOADED:
        if not path.is_file():
            raise ConfigError(
                f"{path}: no classifier weights here (train them: bastion guard train)"
            )
        _LOADED[path] = NgramClassifier.load(path)
    return _LOADED[path]


def best_view(model: ViewScorer, text: Normalized) -> tuple[float, str]:
    """The highest score over the canonical text and every decoded view, and that view."""
    # on n-gram features shared with every such scanner
    return best_of(text, model.view_scores(text))


def best_of(text: Normalized, scores: list[float]) -> tuple[float, str]:
    """The highest of one score per view (canonical first), clipped to [0, 1], and its view."""
    views = text.all_views()
    best = max(range(len(views)), key=scores.__getitem__)
    return min(max(scores[best], 0.0), 1.0), views[best].name


@register
class InjectionScanner(Scanner):
    """Scores how much a text reads as a jailbreak or an injected instruction."""

    name: ClassVar[str] = "injection"
    bounded: ClassVar[bool] = True
    stage: ClassVar[str] = "input"

    def __init__(
        self, *, weights: str | Path | None = None, threshold: float | None = None
    ) -> None:
        from bastion.guard.injection import shipped_weights

        self.model = load_classifier(Path(weights) if weights else shipped_weights())
        super().__init__(threshold=self.model.threshold if threshold is None else threshold)
        self.review_threshold = self.model.review_threshold

    def scan_normalized(self, text: Normalized) -> ScanResult:
        score, view = best_view(self.model, text)
        reason = f"reads as a jailbreak or injection ({view}, {score:.2f})"
        return self.result(score, reason if score >= self.threshold else "", view=view)
