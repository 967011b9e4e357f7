"""A linear text classifier on hashed character and word n-grams, trained by Bastion itself.

Features: character 3-, 4- and 5-grams and word unigrams and bigrams of the *folded* text (so
case, diacritics, look-alikes and invisible characters change nothing), hashed with CRC-32
into ``2**18`` buckets, sublinear counts (``1 + log c``), L2-normalized. The model is one
weight per bucket and a bias (logistic regression), trained with AdamW on a seeded,
single-threaded schedule so that the same data gives the same weights bit for bit. Scoring a
1 KB text is a few thousand hash lookups: about a millisecond, no model server, no GPU.
"""

from __future__ import annotations

import itertools
import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bastion.text.fold import folded
from bastion.text.normalize import Normalized

DIM = 2**18
MAX_CHARS = 4000  # longer texts are scored on their first 4,000 folded characters


_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads the rolling hash's bits
_BASE = np.uint64(257)
_LOW_BITS = np.uint64(DIM - 1)
_WORD_PREFIX = zlib.crc32(b"w:")
_PAIR_PREFIX = zlib.crc32(b"b:")


def _byte_ngrams(data: bytes) -> np.ndarray:
    """Hashes of every 3-, 4- and 5-byte window, vectorized (uint64 arithmetic wraps).

    A window of n bytes hashes to ``n·B**n + a0·B**(n-1) + … + a(n-1)`` (the length is part
    of the hash); each size is grown from the one below: ``h(n+1) = h(n)·B + a(n) + B**(n+1)``.
    """
    a = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
    if len(a) < 3:
        return np.zeros(0, dtype=np.uint64)
    h = (np.uint64(3) * _BASE + a[:-2]) * _BASE + a[1:-1]  # 3·B² + a0·B + a1
    h = h * _BASE + a[2:]
    out = [h]
    for n in (4, 5):
        if len(a) < n:
            break
        h = h[:-1] * _BASE + a[n - 1 :] + _BASE**n
        out.append(h)
    return ((np.concatenate(out) * _MIX) >> np.uint64(40)) & _LOW_BITS  # % DIM: a power of 2


Features = tuple[np.ndarray, np.ndarray]  # bucket indices (int64), weights (float64)
_EMPTY: Features = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


def features(text: str, *, is_folded: bool = False) -> Features:
    """Bucket indices and weights of a text's n-grams (L2-normalized, sublinear counts).

    Character n-grams are taken over the UTF-8 bytes of the folded text (the same as character
    n-grams for ASCII, and stable for everything else), hashed with a vectorized polynomial
    hash; words and word pairs with CRC-32. ``is_folded`` skips folding for text that already
    is (the scanner has it at hand).
    """
    bare = (text if is_folded else folded(text[: MAX_CHARS * 2]).text)[:MAX_CHARS]
    data = f" {bare} ".encode()
    # folded text has no whitespace but spaces, so its bytes split into the UTF-8 of its words:
    # one encoding for the whole text, not one per word and word pair
    words = data.split()
    # CRC-32 of b"w:" + word, continued from the prefix's CRC: map() keeps the loop in C
    crc = zlib.crc32
    unigrams = map(crc, words, itertools.repeat(_WORD_PREFIX))
    bigrams = map(crc, map(b" ".join, itertools.pairwise(words)), itertools.repeat(_PAIR_PREFIX))
    word_hashes = np.fromiter(itertools.chain(unigrams, bigrams), dtype=np.uint64)
    hashes = np.concatenate([_byte_ngrams(data), word_hashes & _LOW_BITS])
    if not len(hashes):
        return _EMPTY
    index, counts = _counted(hashes.astype(np.int32))  # buckets < 2**18: a cheaper sort
    values = _SUBLINEAR[counts - 1] if counts.max() <= len(_SUBLINEAR) else 1.0 + np.log(counts)
    values /= np.sqrt((values * values).sum())
    return index.astype(np.int64), values


_SUBLINEAR = 1.0 + np.log(np.arange(1, 4097, dtype=np.float64))  # 1 + log c, looked up


def _counted(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, ascending, and how often each occurs (``np.unique(...,
    return_counts=True)`` without its general-purpose overhead)."""
    ordered = np.sort(hashes)
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.empty_like(starts)  # the gaps between starts (np.diff's own overhead is more)
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1] = len(ordered) - starts[-1]
    return ordered[starts], counts


def _bags(featurized: Sequence[Features]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EmbeddingBag inputs (flat indices, offsets, per-sample weights) for many texts."""
    sizes = [len(index) for index, _ in featurized]
    offsets = np.concatenate([[0], np.cumsum(sizes[:-1])]).astype(np.int64)
    return (
        torch.from_numpy(np.concatenate([index for index, _ in featurized])),
        torch.from_numpy(offsets),
        torch.from_numpy(np.concatenate([values for _, values in featurized]).astype(np.float32)),
    )


@dataclass
class NgramClassifier:
    """Weights, bias and the calibrated decision threshold of one trained classifier."""

    weight: torch.Tensor  # (DIM,)
    bias: float
    threshold: float
    meta: dict[str, str]
    _weight64: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._weight64 = self.weight.double().numpy()  # scoring runs in float64 numpy

    @property
    def review_threshold(self) -> float | None:
        """The calibrated review threshold the weights ship with, if any."""
        value = self.meta.get("review_threshold")
        return float(value) if value is not None else None

    def logit_of(self, featurized: Features) -> float:
        """One text's logit: its weighted buckets summed (float64, so that the calibration
        scores and the scanner's agree to the last bit on any machine)."""
        index, values = featurized
        return float(self._weight64[index] @ values) + self.bias

    def scores(self, texts: Sequence[str], *, is_folded: bool = False) -> list[float]:
        """Probabilities in [0, 1]."""
        return self.scores_of([features(t, is_folded=is_folded) for t in texts])

    def scores_of(self, featurized: Sequence[Features]) -> list[float]:
        """Probabilities of texts already turned into features."""
        return [sigmoid(self.logit_of(f)) for f in featurized]

    def view_scores(self, text: Normalized) -> list[float]:
        """One score per view of a normalized text (canonical first)."""
        return self.scores_of(view_features(text))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "bias": repr(self.bias), "threshold": repr(self.threshold)}
        save_file({"weight": self.weight.contiguous()}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Path) -> NgramClassifier:
        from safetensors import safe_open

        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
        bias, threshold = float(meta.pop("bias")), float(meta.pop("threshold"))
        return cls(tensors["weight"], bias, threshold, meta)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def train_classifier(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    epochs: int = 8,
    lr: float = 0.05,
    weight_decay: float = 1e-6,
    batch_size: int = 64,
    seed: int = 0,
    featurize: Callable[[str], Features] = features,
    sample_weights: Sequence[float] | None = None,
) -> tuple[torch.Tensor, float]:
    """Logistic regression on the hashed n-grams; classes weighted to balance (and each
    example by ``sample_weights``, when given). Deterministic: a seeded order and one
    thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(seed)
        weight = torch.zeros(DIM, 1, requires_grad=True)
        bias = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.AdamW([weight, bias], lr=lr, weight_decay=weight_decay)
        y = torch.tensor(labels, dtype=torch.float32)
        positives = float(y.sum())
        pos_weight = torch.tensor((len(y) - positives) / max(positives, 1.0))
        weights = None if sample_weights is None else torch.tensor(sample_weights)
        cached = [featurize(t) for t in texts]
        for _ in range(epochs):
            order = torch.randperm(len(texts), generator=generator).tolist()
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                flat, offsets, values = _bags([cached[i] for i in batch])
                logits = (
                    torch.nn.functional.embedding_bag(
                        flat, weight, offsets, mode="sum", per_sample_weights=values
                    ).squeeze(1)
                    + bias
                )
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits,
                    y[batch],
                    weight=None if weights is None else weights[batch],
                    pos_weight=pos_weight,
                )
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return weight.detach().squeeze(1), float(bias.detach())


def threshold_for_fpr(negative_scores: Sequence[float], target_fpr: float) -> float:
    """The lowest threshold whose false-positive rate on these negatives is ≤ ``target_fpr``
    (``flagged = score >= threshold``)."""
    ranked = sorted(negative_scores, reverse=True)
    allowed = math.floor(target_fpr * len(ranked))  # negatives that may score at or above
    if allowed >= len(ranked):
        return 0.0
    return math.nextafter(ranked[allowed], 1.0)  # just above the first one not allowed


def write_report(path: Path, report: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def view_features(text: Normalized) -> tuple[Features, ...]:
    """The features of every view of a normalized text (canonical first), computed once per
    text for all the classifiers that read them."""
    return text.memo(
        "ngram_features",
        lambda: tuple(features(view, is_folded=True) for view in text.folded_views),
    )
