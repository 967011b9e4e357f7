"""The n-gram classifier as a :class:`~bastion.guard.training.loso.Learner`.

Features are computed once per text and kept (every fold of a leave-one-source-out run trains
on nearly the same texts); scores are the scanner's — the highest over the canonical text and
every decoded view — so a threshold set on them is the scanner's threshold.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bastion.guard.toxicity import Lexicon, joined
from bastion.guard.training.examples import Example
from bastion.text.ngrams import (
    Features,
    NgramClassifier,
    sigmoid,
    train_classifier,
    view_features,
)
from bastion.text.normalize import normalize


def source_weights(examples: Sequence[Example]) -> list[float]:
    """Per-example weights under which every source of a class weighs the same in total
    (mean 1 over each class): ten thousand chats do not drown a hundred written requests,
    and the classifier is pushed to learn what the sources share rather than any one of
    them."""
    size = Counter((e.label, e.source) for e in examples)
    sources = Counter(label for label, _ in size)
    per_class = Counter(e.label for e in examples)
    return [per_class[e.label] / (sources[e.label] * size[e.label, e.source]) for e in examples]


@dataclass
class NgramScorer:
    model: NgramClassifier
    views: ViewCache
    # the weights in float64, as the classifier scores (logits of every view, compared before
    # the bias is added)
    weight64: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.weight64 = self.model.weight.double().numpy()

    def scores(self, examples: Sequence[Example]) -> list[float]:
        return [score for score, _ in self.best_views(examples)]

    def best_views(self, examples: Sequence[Example]) -> list[tuple[float, int]]:
        """Each example's score and the index of the view that gave it (0: canonical)."""
        weight = self.weight64
        out = []
        for example in examples:
            logits = [float(weight[i] @ v) for i, v in self.views.of(example.text)]
            best = max(range(len(logits)), key=logits.__getitem__)
            out.append((sigmoid(logits[best] + self.model.bias), best))
        return out


@dataclass
class ViewCache:
    """Each text's n-gram features, canonical first, then every decoded view's (with a
    lexicon's features joined, as the toxicity classifier reads them)."""

    lexicon: Lexicon | None = None
    _cache: dict[str, tuple[Features, ...]] = field(default_factory=dict)

    def of(self, text: str) -> tuple[Features, ...]:
        found = self._cache.get(text)
        if found is None:
            normalized = normalize(text)
            found = view_features(normalized)
            if self.lexicon is not None:
                found = tuple(
                    joined(f, self.lexicon.features_of(self.lexicon.hits(b)))
                    for f, b in zip(found, normalized.folded_views, strict=True)
                )
            self._cache[text] = found
        return found

    def canonical(self, text: str) -> Features:
        return self.of(text)[0]


@dataclass
class NgramLearner:
    """Logistic regression on hashed n-grams (:mod:`bastion.text.ngrams`)."""

    task: str
    epochs: int = 6
    lr: float = 0.05
    balance_sources: bool = True
    lexicon: Lexicon | None = None
    views: ViewCache = field(init=False)

    def __post_init__(self) -> None:
        self.views = ViewCache(self.lexicon)

    def fit(self, examples: Sequence[Example]) -> NgramScorer:
        return self.scorer(self.train(examples))

    def scorer(self, model: NgramClassifier) -> NgramScorer:
        """A trained model's scores, from this learner's cached features."""
        return NgramScorer(model, self.views)

    def train(self, examples: Sequence[Example]) -> NgramClassifier:
        texts = [e.text for e in examples]
        weight, bias = train_classifier(
            texts,
            [e.label for e in examples],
            epochs=self.epochs,
            lr=self.lr,
            featurize=self.views.canonical,
            sample_weights=source_weights(examples) if self.balance_sources else None,
        )
        data = hashlib.sha256(
            "\n".join(f"{e.label}\t{e.source}\t{e.group}\t{e.text}" for e in examples).encode()
        ).hexdigest()
        return NgramClassifier(weight, bias, 0.5, {"task": self.task, "train_sha256": data})
