"""The harmful-request classifier at run time: its categories and where its weights are.

Two stages (:mod:`bastion.guard.scanners.harmful`): hashed n-grams with logistic regression,
then, on the texts those do not clear, the packaged MiniLM with trained adapters
(:mod:`bastion.guard.encoder`). What they learn from is
:mod:`bastion.guard.training.data`'s ``task_examples("harmful")`` — the pinned harmful
behaviours and the written requests in eleven risk areas, beside everyday requests, the
over-refusal prompts and the written benign twins (same topic, another intent) —, how they are
trained and calibrated :mod:`bastion.guard.training.fit`.

Categories map each source's own labels onto one short list (:data:`CATEGORIES`); a request's
category is the nearest category centroid of the n-gram features (cosine), computed from the
training positives that carry a label (:func:`bastion.guard.training.fit.category_centroids`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from bastion.text.ngrams import DIM, Features

CATEGORIES = (
    "weapons",
    "cyber",
    "drugs",
    "fraud",
    "crime",
    "violence",
    "privacy",
    "hate",
    "sexual",
    "self-harm",
    "misinformation",
)


class Categories:
    """The category centroids as one dense (buckets × categories) matrix: naming a text's
    category is one gather and one small product."""

    def __init__(self, centroids: dict[str, dict[int, float]]) -> None:
        self.names = sorted(centroids)
        self.matrix = np.zeros((DIM, len(self.names)), dtype=np.float64)
        for column, name in enumerate(self.names):
            for bucket, value in centroids[name].items():
                self.matrix[bucket, column] = value

    def nearest(self, featurized: Features) -> tuple[str, float]:
        """The category of highest cosine similarity ("other" when none is positive)."""
        index, values = featurized
        similarity = values @ self.matrix[index]
        if not len(self.names) or similarity.max() <= 0.0:
            return "other", 0.0
        best = int(similarity.argmax())
        return self.names[best], float(similarity[best])


def shipped_weights() -> Path:
    return Path(str(resources.files("bastion.guard") / "weights" / "harmful.safetensors"))


def shipped_encoder() -> Path:
    """The second stage's adapters, head, gate and thresholds (see bastion.guard.encoder)."""
    return Path(str(resources.files("bastion.guard") / "weights" / "harmful.encoder.safetensors"))


def load_categories(path: Path) -> Categories:
    raw = json.loads(path.read_text())["categories"]
    return Categories({c: {int(i): float(v) for i, v in d.items()} for c, d in raw.items()})
