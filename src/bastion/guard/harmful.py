"""The harmful-request classifier: is this a request for harm, and of which kind?

Same machinery as the injection classifier (:mod:`bastion.guard.injection`): hashed n-grams,
logistic regression, seeded single-threaded training, group-wise splits, a threshold set for
1% false positives on the calibration split, scored over all decoded views.

Positives: the harmful requests of the pinned corpora (AdvBench, HarmBench's standard and
contextual behaviours — not its copyright ones, which ask for lyrics and book passages —,
StrongREJECT, the harmful half of the contrast pairs). Negatives: benign prompts, agent tasks,
the over-refusal prompts (benign requests that *sound* sensitive) and the benign half of the
contrast pairs (a cooking question beside a weapons one) — the hard negatives that keep
"mentions a knife" from being "asks for harm".

Categories map each source's own labels onto one short list (:data:`CATEGORIES`); a request's
category is the nearest category centroid of the n-gram features (cosine), computed from the
training positives that carry a label.
"""

from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bastion.data.registry import CORPORA, load_corpus
from bastion.guard.injection import Example, fit_calibrated, split_examples, text_digest
from bastion.guard.ngrams import DIM, Features, NgramClassifier, features

CATEGORIES = (
    "weapons",
    "cyber",
    "crime",
    "violence",
    "hate",
    "sexual",
    "self-harm",
    "misinformation",
)
CATEGORY_OF = {
    # HarmBench
    "chemical_biological": "weapons",
    "cybercrime_intrusion": "cyber",
    "illegal": "crime",
    "misinformation_disinformation": "misinformation",
    "harassment_bullying": "hate",
    "harmful": "violence",
    # StrongREJECT
    "Non-violent crimes": "crime",
    "Violence": "violence",
    "Disinformation and deception": "misinformation",
    "Hate, harassment and discrimination": "hate",
    "Illegal goods and services": "crime",
    "Sexual content": "sexual",
}
POSITIVE_CORPORA = ("advbench", "harmbench-val", "harmbench-test", "strongreject")
NEGATIVE_KINDS = ("benign-prompt", "over-refusal")
HARD_NEGATIVES = ("rho-overrefusal", "rho-contrast")


def _contrast_category(pair_category: str) -> str | None:
    """'cooking_vs_weapons' → the harmful side's category, when it maps."""
    side = pair_category.split("_vs_")[-1]
    for key, category in (
        ("weapon", "weapons"), ("hack", "cyber"), ("phish", "cyber"), ("malware", "cyber"),
        ("drug", "crime"), ("theft", "crime"), ("forg", "crime"), ("counterfeit", "crime"),
        ("fraud", "crime"), ("poison", "violence"), ("violence", "violence"),
        ("incitement", "hate"), ("hate", "hate"), ("harass", "hate"), ("abuse", "violence"),
        ("exploitation", "sexual"), ("self_harm", "self-harm"), ("suicide", "self-harm"),
        ("misinformation", "misinformation"), ("disinformation", "misinformation"),
    ):  # fmt: skip
        if key in side:
            return category
    return None


@functools.lru_cache(maxsize=1)
def _examples() -> tuple[tuple[Example, str | None], ...]:
    rows: list[tuple[Example, str | None]] = []
    for name in POSITIVE_CORPORA:
        for item in load_corpus(name):
            if item.label == "copyright" or item.category == "copyright":
                continue
            example = Example(item.text, 1, name, "text:" + text_digest(item.text))
            rows.append((example, CATEGORY_OF.get(item.category or "")))
    for item in load_corpus("rho-contrast"):
        pair = "pair:" + str(item.meta.get("pair", item.id))  # both halves in one split
        harmful = item.label == "harmful"
        category = _contrast_category(item.category or "") if harmful else None
        rows.append((Example(item.text, int(harmful), "rho-contrast", pair), category))
    for name, corpus in CORPORA.items():
        if corpus.kind in NEGATIVE_KINDS:
            for item in load_corpus(name):
                rows.append((Example(item.text, 0, name, "text:" + text_digest(item.text)), None))
    seen: set[str] = set()
    unique = []
    for example, category in rows:
        key = text_digest(example.text)
        if key not in seen and example.text.strip():
            seen.add(key)
            unique.append((example, category))
    return tuple(unique)


def harmful_examples() -> list[Example]:
    return [example for example, _ in _examples()]


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
    target_fpr: float = 0.01,
) -> tuple[NgramClassifier, dict[str, Any], dict[str, Any]]:
    """Train, calibrate, evaluate; returns the model, the category centroids and the report."""
    rows = _examples()
    category_of = dict(rows)  # example -> category, where its source gives one
    splits = split_examples([e for e, _ in rows])
    model, report = fit_calibrated(splits, "harmful", target_fpr, HARD_NEGATIVES)
    centroids = category_centroids(
        [(e.text, c) for e in splits["train"] if (c := category_of[e]) is not None]
    )
    labelled_dev = [(e, c) for e in splits["dev"] if (c := category_of[e]) is not None]
    categories = Categories(centroids)
    correct = sum(categories.nearest(features(e.text))[0] == c for e, c in labelled_dev)
    report["dev_category_accuracy"] = correct / len(labelled_dev) if labelled_dev else float("nan")
    report["dev_categorized"] = len(labelled_dev)
    return (
        model,
        {"categories": {c: {str(i): v for i, v in d.items()} for c, d in centroids.items()}},
        report,
    )


def shipped_weights() -> Path:
    return Path(str(resources.files("bastion.guard") / "weights" / "harmful.safetensors"))


def save_centroids(path: Path, centroids: dict[str, Any]) -> None:
    path.write_text(json.dumps(centroids, sort_keys=True) + "\n")


def load_categories(path: Path) -> Categories:
    raw = json.loads(path.read_text())["categories"]
    return Categories({c: {int(i): float(v) for i, v in d.items()} for c, d in raw.items()})
