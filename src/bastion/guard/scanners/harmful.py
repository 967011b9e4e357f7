"""Harmful requests, by category, with Bastion's own n-gram classifier.

Two stages. The n-gram classifier scores every text (the highest-scoring view decides); a text
it scores under the gate is cleared at once, any other is read by the encoder (the packaged
MiniLM with small trained adapters, :mod:`bastion.guard.encoder`), whose probability decides
(:func:`~bastion.guard.encoder.cascade_score`). ``encoder: false`` in a policy keeps the first
stage alone, with its own calibrated thresholds. The weights, the adapters and the category
centroids ship with the package and are reproduced by ``bastion guard train --task harmful``;
the default thresholds are the calibrated ones (block at 0.5%, review at 3% false positives
on held-back benign texts, each source's weight capped). The category is named in the result.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bastion.guard.encoder import cascade_score
from bastion.guard.result import ScanResult, Span
from bastion.guard.scanners.base import Scanner, register
from bastion.guard.scanners.injection import best_view, load_classifier
from bastion.text.ngrams import view_features
from bastion.text.normalize import Normalized

if TYPE_CHECKING:
    from bastion.guard.encoder import EncoderClassifier
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
        self,
        *,
        weights: str | Path | None = None,
        threshold: float | None = None,
        encoder: bool | str | Path = True,
    ) -> None:
        from bastion.guard.harmful import shipped_encoder, shipped_weights

        path = Path(weights) if weights else shipped_weights()
        self.model = load_classifier(path)
        self.categories = _categories(path.with_suffix(".categories.json"))
        self.encoder: EncoderClassifier | None = None
        if encoder is not False:
            from bastion.guard.encoder import EncoderClassifier

            found = shipped_encoder() if encoder is True else Path(encoder)
            if encoder is not True or found.is_file():  # a named file must exist
                self.encoder = EncoderClassifier.load(found)
            # the encoder's gate and thresholds hold only behind the first stage it was
            # calibrated with: a named pair must match; other weights run without the
            # shipped encoder
            first = self.encoder.meta.get("first_stage_sha256") if self.encoder else None
            if first is not None and first != self.model.meta.get("train_sha256"):
                if encoder is not True:
                    raise ValueError(
                        f"encoder {found} was calibrated behind other n-gram weights than {path}"
                    )
                self.encoder = None
        if self.encoder is not None:
            # one pass now: the first one pages the weights in and sets up the kernels, which
            # can take longer than the rail's time budget, and a rail over budget fails closed
            self.encoder.scores(["warm-up"])
        calibrated = self.encoder if self.encoder is not None else self.model
        super().__init__(threshold=calibrated.threshold if threshold is None else threshold)
        self.review_threshold = calibrated.review_threshold

    def is_bounded(self) -> bool:
        """Without the encoder, pure CPU work in linear time; with it, a model call."""
        return self.encoder is None

    def scan_normalized(self, text: Normalized) -> ScanResult:
        score, view = best_view(self.model, text)
        if self.encoder is not None:
            second = None
            if score >= self.encoder.gate:
                views = text.all_views()
                index = [v.name for v in views].index(view)
                read = text.original if index == 0 else views[index].text
                second = self.encoder.scores([read])[0]
            score = cascade_score(score, self.encoder.gate, second)
        if score < self.threshold:
            return self.result(score, view=view)
        names = [v.name for v in text.all_views()]
        category, _ = self.categories.nearest(view_features(text)[names.index(view)])
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
