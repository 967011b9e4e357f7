"""The harmful-request classifier: is this a request for harm, and of which kind?

Two stages (:mod:`bastion.guard.scanners.harmful`): hashed n-grams with logistic regression,
then, on the texts those do not clear, the packaged MiniLM with trained adapters
(:mod:`bastion.guard.encoder`). What they learn from is
:mod:`bastion.guard.training.data`'s ``task_examples("harmful")`` — the pinned harmful
behaviours and the written requests in eleven risk areas, beside everyday requests, the
over-refusal prompts and the written benign twins (same topic, another intent) —, how they are
trained and calibrated :mod:`bastion.guard.training.fit`.

Categories map each source's own labels onto one short list (:data:`CATEGORIES`); a request's
category is the nearest category centroid of the n-gram features (cosine), computed from the
training positives that carry a label.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bastion.guard.injection import Example
from bastion.text.ngrams import DIM, Features, NgramClassifier, features

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


def contrast_category(pair_category: str) -> str | None:
    """'cooking_vs_weapons' → the harmful side's category, when it maps."""
    side = pair_category.split("_vs_")[-1]
    for key, category in (
        ("weapon", "weapons"), ("hack", "cyber"), ("phish", "cyber"), ("malware", "cyber"),
        ("drug", "drugs"), ("theft", "crime"), ("forg", "fraud"), ("counterfeit", "fraud"),
        ("fraud", "fraud"), ("poison", "violence"), ("violence", "violence"),
        ("incitement", "hate"), ("hate", "hate"), ("harass", "hate"), ("abuse", "violence"),
        ("exploitation", "sexual"), ("self_harm", "self-harm"), ("suicide", "self-harm"),
        ("misinformation", "misinformation"), ("disinformation", "misinformation"),
        ("privacy", "privacy"), ("stalk", "privacy"), ("dox", "privacy"),
    ):  # fmt: skip
        if key in side:
            return category
    return None


def harmful_examples() -> list[Example]:
    from bastion.guard.training.data import task_examples

    return task_examples("harmful")


def category_centroids(
    labelled: list[tuple[str, str]], top: int = 2000
) -> dict[str, dict[int, float]]:
    """Per category, the L2-normalized mean n-gram vector of its examples (``top`` buckets)."""
    sums: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for text, category in labelled:
        index, values = features(text)
        for i, v in zip(index.tolist(), values.tolist(), strict=True):
            sums[category][i] += v
    centroids = {}
    for category, vector in sorted(sums.items()):
        kept = sorted(vector.items(), key=lambda kv: -kv[1])[:top]
        norm = math.sqrt(sum(v * v for _, v in kept)) or 1.0
        centroids[category] = {i: round(v / norm, 5) for i, v in kept}
    return centroids


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


def train_harmful(
    target_fpr: float = 0.005, review_fpr: float | None = 0.03
) -> tuple[NgramClassifier, dict[str, Any], dict[str, Any]]:
    """Train, calibrate, evaluate; returns the model, the category centroids and the report."""
    from bastion.guard.training.fit import train_task

    model, fit, report = train_task("harmful", target_fpr, review_fpr)
    centroids = category_centroids([(e.text, e.category) for e in fit if e.label and e.category])
    return (
        model,
        {"categories": {c: {str(i): v for i, v in d.items()} for c, d in centroids.items()}},
        report,
    )


def shipped_weights() -> Path:
    return Path(str(resources.files("bastion.guard") / "weights" / "harmful.safetensors"))


def shipped_encoder() -> Path:
    """The second stage's adapters, head, gate and thresholds (see bastion.guard.encoder)."""
    return Path(str(resources.files("bastion.guard") / "weights" / "harmful.encoder.safetensors"))


def save_centroids(path: Path, centroids: dict[str, Any]) -> None:
    path.write_text(json.dumps(centroids, sort_keys=True) + "\n")


def load_categories(path: Path) -> Categories:
    raw = json.loads(path.read_text())["categories"]
    return Categories({c: {int(i): float(v) for i, v in d.items()} for c, d in raw.items()})
