"""Leave-one-source-out evaluation: how a guard classifier does on a source it never saw.

A random split of the training sources says how well a classifier fits *them*; it says little
about traffic from elsewhere (the shipped harmful rail scored 0.88 TPR at 1% FPR on its own
split and blocked 23% of everyday requests from other sources). So every source is held out
in turn: the classifier is trained on all the others, its threshold is set on benign examples
of the others (a calibration part, split off by group, that it did not train on), and only
then is the held-out source scored. A benign source gives a false-positive rate, a harmful or
attack source a true-positive rate, a mixed one both; the figures across folds are pooled
(every held-out text once) and spread (worst, median, best source).

The arithmetic is independent of the model: a :class:`Learner` fits examples and returns a
:class:`Scorer`. The in-source figure (a group split of all sources, as the shipped report
gives) sits beside the out-of-source one for comparison, never alone.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from bastion.data.splits import assign_split
from bastion.errors import BastionError
from bastion.guard.metrics import roc_auc
from bastion.guard.training.examples import Example

CALIBRATION = 0.15  # of the training sources' groups: held back to set the threshold on


class Scorer(Protocol):
    """A fitted classifier: one score in [0, 1] per example, as the scanner computes it."""

    def scores(self, examples: Sequence[Example]) -> list[float]: ...


class Learner(Protocol):
    """Fits a classifier on examples."""

    def fit(self, examples: Sequence[Example]) -> Scorer: ...


@dataclass(frozen=True)
class Thresholds:
    """Where the score becomes a block, and (lower) where it becomes a review."""

    block: float
    review: float | None = None


@dataclass(frozen=True)
class SourceResult:
    """One held-out source: counts at the thresholds set without it."""

    source: str
    positives: int
    negatives: int
    caught: int  # positives at or above the block threshold
    blocked: int  # negatives at or above the block threshold
    reviewed: int  # negatives between the review and the block threshold
    threshold: float
    # its two classes against each other; a source of one class against the other class of
    # the calibration texts (other sources, never trained on)
    roc_auc: float | None = None

    @property
    def tpr(self) -> float | None:
        return self.caught / self.positives if self.positives else None

    @property
    def fpr(self) -> float | None:
        return self.blocked / self.negatives if self.negatives else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tpr": self.tpr, "fpr": self.fpr}


@dataclass(frozen=True)
class Summary:
    """Pooled and spread figures over the held-out sources."""

    results: tuple[SourceResult, ...]
    target_fpr: float
    review_fpr: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def pooled(self) -> dict[str, float | None]:
        """Every held-out text counted once: the rate a mix of these sources would see."""
        pos = sum(r.positives for r in self.results)
        neg = sum(r.negatives for r in self.results)
        return {
            "tpr": sum(r.caught for r in self.results) / pos if pos else None,
            "fpr": sum(r.blocked for r in self.results) / neg if neg else None,
            "review_rate": sum(r.reviewed for r in self.results) / neg if neg else None,
        }

    def spread(self) -> dict[str, dict[str, float] | None]:
        """Worst, median and best source, for each rate (sources with that class only)."""
        tprs = [r.tpr for r in self.results if r.tpr is not None]
        fprs = [r.fpr for r in self.results if r.fpr is not None]
        aucs = [r.roc_auc for r in self.results if r.roc_auc is not None]
        return {
            "tpr": _spread(tprs, worst=min) if tprs else None,
            "fpr": _spread(fprs, worst=max) if fprs else None,
            "roc_auc": _spread(aucs, worst=min) if aucs else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_fpr": self.target_fpr,
            "review_fpr": self.review_fpr,
            "pooled": self.pooled(),
            "spread": self.spread(),
            "sources": [r.to_dict() for r in self.results],
            **self.meta,
        }


def _spread(values: list[float], *, worst: Callable[[list[float]], float]) -> dict[str, float]:
    best = max if worst is min else min
    return {"worst": worst(values), "median": statistics.median(values), "best": best(values)}


def calibration_split(
    examples: Sequence[Example], *, salt: str, fraction: float = CALIBRATION
) -> tuple[list[Example], list[Example]]:
    """``(fit, calib)``: whole groups to each, by a stable hash of the group."""
    shares = {"fit": 1.0 - fraction, "calib": fraction}
    fit: list[Example] = []
    calib: list[Example] = []
    for example in examples:
        (fit if assign_split(example.group, shares, salt=salt) == "fit" else calib).append(example)
    return fit, calib


def calibrate(
    scorer: Scorer, calib: Sequence[Example], target_fpr: float, review_fpr: float | None
) -> Thresholds:
    """Thresholds for the target false-positive rates on ``calib``'s negatives, with every
    source's weight capped (:func:`balanced_threshold`): the threshold is not the largest
    corpus's alone."""
    negatives = [e for e in calib if not e.label]
    if not negatives:
        raise BastionError("no benign examples to set the threshold on")
    scores = scorer.scores(negatives)
    sources = [e.source for e in negatives]
    block = balanced_threshold(scores, sources, target_fpr)
    review = None
    if review_fpr is not None:
        review = min(balanced_threshold(scores, sources, review_fpr), block)
    return Thresholds(block, review)


SOURCE_CAP = 200  # a source's benign calibration texts count as at most this many


def balanced_threshold(
    scores: Sequence[float], sources: Sequence[str], target: float, *, cap: int = SOURCE_CAP
) -> float:
    """The lowest threshold whose false-positive rate is at most ``target`` when every source
    counts as at most ``cap`` texts (``flagged = score >= threshold``): a text of a source with
    ``n > cap`` benign texts weighs ``cap / n``, any other text 1. The largest corpus then
    cannot set the threshold alone, while a source of five texts does not make one false
    positive cost a fifth of the budget. Without sources over ``cap`` this is
    :func:`~bastion.text.ngrams.threshold_for_fpr`."""
    if not scores:
        raise BastionError("no scores to set a threshold on")
    size: dict[str, int] = defaultdict(int)
    for source in sources:
        size[source] += 1
    weight = {source: min(1.0, cap / n) for source, n in size.items()}
    budget = target * sum(weight[s] for s in sources)
    ranked = sorted(zip(scores, sources, strict=True), reverse=True)
    threshold = math.nextafter(ranked[0][0], math.inf)  # flags nothing
    spent, i = 0.0, 0
    while i < len(ranked):  # lower the threshold one distinct score at a time
        j, step = i, 0.0
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            step += weight[ranked[j][1]]
            j += 1
        if spent + step > budget + 1e-9:
            break
        spent, threshold, i = spent + step, ranked[i][0], j
    return threshold


def score_source(
    source: str, scores: Sequence[float], labels: Sequence[int], thresholds: Thresholds
) -> SourceResult:
    """Counts for one source's scores at the given thresholds."""
    review = thresholds.review if thresholds.review is not None else thresholds.block
    positives = sum(labels)
    both = 0 < positives < len(labels)
    return SourceResult(
        source=source,
        positives=positives,
        negatives=len(labels) - positives,
        caught=sum(s >= thresholds.block for s, y in zip(scores, labels, strict=True) if y),
        blocked=sum(s >= thresholds.block for s, y in zip(scores, labels, strict=True) if not y),
        reviewed=sum(
            review <= s < thresholds.block for s, y in zip(scores, labels, strict=True) if not y
        ),
        threshold=thresholds.block,
        roc_auc=roc_auc(list(scores), list(labels)) if both else None,
    )


def leave_one_source_out(
    examples: Sequence[Example],
    learner: Learner,
    *,
    target_fpr: float,
    review_fpr: float | None = None,
    sources: Sequence[str] | None = None,
    folds: int | None = None,
    min_examples: int = 10,
    salt: str = "loso",
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """Hold out each source (or those named) in turn: train on the rest, set the thresholds
    on the rest's calibration part, score the held-out source.

    Sources with fewer than ``min_examples`` examples are not held out (their rates would be
    noise) but still train every fold that keeps them. ``folds``: hold the sources out in
    that many groups instead of one by one (source *i* of the sorted names in group
    ``i mod folds``), for learners too slow to train once per source; every source is still
    scored once, by a model that never saw it (nor the others of its group).
    """
    counts: dict[str, int] = {}
    for example in examples:
        counts[example.source] = counts.get(example.source, 0) + 1
    held_out = list(sources) if sources is not None else sorted(counts)
    unknown = [s for s in held_out if s not in counts]
    if unknown:
        raise BastionError(f"no examples from source(s) {', '.join(unknown)}")
    held_out = [s for s in held_out if counts[s] >= min_examples]
    if folds is None:
        groups = [[s] for s in held_out]
    else:
        groups = [held_out[i::folds] for i in range(min(folds, len(held_out)))]
    results = []
    for group in groups:
        if progress is not None:
            progress(", ".join(group))
        rest = [e for e in examples if e.source not in group]
        fit, calib = calibration_split(rest, salt=salt)
        if len({e.label for e in fit}) < 2:
            raise BastionError(f"without {', '.join(group)}, the training data lacks a class")
        scorer = learner.fit(fit)
        thresholds = calibrate(scorer, calib, target_fpr, review_fpr)
        for source in group:
            test = [e for e in examples if e.source == source]
            results.append(_held_out(source, test, scorer, thresholds, calib))
    results.sort(key=lambda r: r.source)
    return Summary(tuple(results), target_fpr, review_fpr, {"folds": len(groups)})


def _held_out(
    source: str,
    test: list[Example],
    scorer: Scorer,
    thresholds: Thresholds,
    calib: list[Example],
) -> SourceResult:
    scores = scorer.scores(test)
    result = score_source(source, scores, [e.label for e in test], thresholds)
    if result.roc_auc is None:
        other = [e for e in calib if e.label != test[0].label]
        auc = roc_auc(scores + scorer.scores(other), [e.label for e in test + other])
        result = replace(result, roc_auc=auc if other else None)
    return result


def in_source(
    examples: Sequence[Example],
    learner: Learner,
    *,
    target_fpr: float,
    review_fpr: float | None = None,
    salt: str = "in-source",
) -> Summary:
    """The classic figure, for comparison: one group split of *all* sources into train,
    calibration and dev; dev's rates per source at the calibrated thresholds."""
    shares = {"train": 0.7, "calib": 0.15, "dev": 0.15}
    parts: dict[str, list[Example]] = {name: [] for name in shares}
    for example in examples:
        parts[assign_split(example.group, shares, salt=salt)].append(example)
    scorer = learner.fit(parts["train"])
    thresholds = calibrate(scorer, parts["calib"], target_fpr, review_fpr)
    dev = parts["dev"]
    scores = scorer.scores(dev)
    by_source: dict[str, tuple[list[float], list[int]]] = {}
    for example, score in zip(dev, scores, strict=True):
        entry = by_source.setdefault(example.source, ([], []))
        entry[0].append(score)
        entry[1].append(example.label)
    results = tuple(
        score_source(source, s, y, thresholds) for source, (s, y) in sorted(by_source.items())
    )
    return Summary(results, target_fpr, review_fpr)
