"""The shipped classifiers: trained on every source, thresholds set on held-back groups.

``bastion guard train`` (:mod:`bastion.guard.training.tasks`) calls :func:`train_injection`,
:func:`train_harmful` or :func:`train_toxicity`, each :func:`train_task` with its extras. The
examples are :func:`~bastion.guard.training.data.task_examples` (the toxicity classifier's,
:func:`~bastion.guard.training.data.toxicity_examples`); a stable hash of each group holds 15%
of the groups back for calibration (:func:`~bastion.guard.training.loso.calibration_split`);
the model trains on the rest with every source weighing the same within its class; the block
threshold is set for ``target_fpr`` and the review threshold for ``review_fpr`` on the
held-back benign examples, each source weighing the same
(:func:`~bastion.guard.training.loso.calibrate`). The report gives the calibration part's rates
per source; the out-of-source figures are ``bastion guard eval --by-source``'s.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bastion.guard.encoder import EncoderClassifier
from bastion.guard.toxicity import LexiconClassifier
from bastion.guard.training.cascade import GATE_FPR, CascadeLearner, CascadeScorer
from bastion.guard.training.data import pinned_lexicon, task_examples, toxicity_examples
from bastion.guard.training.encoder import EncoderLearner, EncoderScorer
from bastion.guard.training.examples import Example
from bastion.guard.training.learners import NgramLearner
from bastion.guard.training.loso import (
    Learner,
    Scorer,
    Thresholds,
    balanced_threshold,
    calibrate,
    calibration_split,
    in_source,
    leave_one_source_out,
    score_source,
)
from bastion.text.ngrams import NgramClassifier, features

TARGET_FPR = 0.005
REVIEW_FPR = 0.03
TOXICITY_LEARNING_RATE = 0.02


def recipe(task: str) -> tuple[list[Example], NgramLearner]:
    """A task's examples and its learner (the toxicity classifier also reads the lexicons)."""
    if task == "toxicity":
        lexicon = pinned_lexicon()
        return toxicity_examples(), NgramLearner(task, lr=TOXICITY_LEARNING_RATE, lexicon=lexicon)
    return task_examples(task), NgramLearner(task)


def calibration_report(
    scorer: Scorer, calib: Sequence[Example], thresholds: Thresholds
) -> list[dict[str, Any]]:
    """The calibration part's rates, source by source, at the thresholds set on it."""
    by_source: dict[str, list[Example]] = defaultdict(list)
    for example in calib:
        by_source[example.source].append(example)
    return [
        score_source(source, scorer.scores(rows), [e.label for e in rows], thresholds).to_dict()
        for source, rows in sorted(by_source.items())
    ]


def train_task(
    task: str, target_fpr: float = TARGET_FPR, review_fpr: float | None = REVIEW_FPR
) -> tuple[NgramClassifier, list[Example], dict[str, Any]]:
    """The model, the examples it trained on, and the calibration report."""
    examples, learner = recipe(task)
    fit, calib = calibration_split(examples, salt=f"guard-{task}")
    model = learner.train(fit)
    scorer = learner.scorer(model)
    thresholds = calibrate(scorer, calib, target_fpr, review_fpr)
    model.threshold = thresholds.block
    if thresholds.review is not None:
        model.meta["review_threshold"] = repr(thresholds.review)
    report = {
        "task": task,
        "target_fpr": target_fpr,
        "review_fpr": review_fpr,
        "threshold": thresholds.block,
        "review_threshold": thresholds.review,
        "sizes": {"fit": len(fit), "calib": len(calib)},
        "sources": sorted({e.source for e in examples}),
        "calib": calibration_report(scorer, calib, thresholds),
    }
    return model, fit, report


def train_injection(
    target_fpr: float = TARGET_FPR, review_fpr: float | None = REVIEW_FPR
) -> tuple[NgramClassifier, dict[str, Any]]:
    """The injection classifier: trained on every source, thresholds set on held-back groups."""
    model, _, report = train_task("injection", target_fpr, review_fpr)
    return model, report


def train_harmful(
    target_fpr: float = TARGET_FPR, review_fpr: float | None = REVIEW_FPR
) -> tuple[NgramClassifier, dict[str, Any], dict[str, Any]]:
    """The harmful-request classifier's first stage: the model, the category centroids (as
    saved) and the report."""
    model, fit, report = train_task("harmful", target_fpr, review_fpr)
    centroids = category_centroids([(e.text, e.category) for e in fit if e.label and e.category])
    return (
        model,
        {"categories": {c: {str(i): v for i, v in d.items()} for c, d in centroids.items()}},
        report,
    )


def train_toxicity(target_fpr: float = TARGET_FPR) -> tuple[LexiconClassifier, dict[str, Any]]:
    """The toxicity classifier (no review threshold); the lexicon comes from the pinned
    corpora."""
    model, _, report = train_task("toxicity", target_fpr, None)
    lexicon = pinned_lexicon()
    report["lexicon_terms"] = len(lexicon)
    return LexiconClassifier(model, lexicon), report


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


def save_centroids(path: Path, centroids: dict[str, Any]) -> None:
    """The centroids as :func:`bastion.guard.harmful.load_categories` reads them."""
    path.write_text(json.dumps(centroids, sort_keys=True) + "\n")


def train_second_stage(
    task: str,
    first: NgramClassifier,
    target_fpr: float = TARGET_FPR,
    review_fpr: float | None = REVIEW_FPR,
    learner: EncoderLearner | None = None,
) -> tuple[EncoderClassifier, dict[str, Any]]:
    """The encoder stage behind a trained n-gram model (see :mod:`.cascade`): trained on
    the same part, gated and calibrated like the n-gram stage; its gate and thresholds go in
    its own file's metadata."""
    examples, ngram = recipe(task)
    fit, calib = calibration_split(examples, salt=f"guard-{task}")
    learner = learner or EncoderLearner(task)
    first_scorer = ngram.scorer(first)
    negatives = [e for e in fit if not e.label]
    gate = balanced_threshold(
        first_scorer.scores(negatives), [e.source for e in negatives], GATE_FPR
    )
    classifier = learner.train(fit)
    scorer = CascadeScorer(first_scorer, EncoderScorer(classifier), gate)
    thresholds = calibrate(scorer, calib, target_fpr, review_fpr)
    classifier.meta.update(
        gate=repr(gate),
        gate_fpr=repr(GATE_FPR),
        threshold=repr(thresholds.block),
        first_stage_sha256=first.meta.get("train_sha256", ""),
    )
    classifier.gate, classifier.threshold = gate, thresholds.block
    if thresholds.review is not None:
        classifier.meta["review_threshold"] = repr(thresholds.review)
        classifier.review_threshold = thresholds.review
    report = {
        "task": task,
        "stage": "encoder",
        "gate": gate,
        "gate_fpr": GATE_FPR,
        "threshold": thresholds.block,
        "review_threshold": thresholds.review,
        "sizes": {"fit": len(fit), "calib": len(calib)},
        "calib": calibration_report(scorer, calib, thresholds),
    }
    return classifier, report


def by_source(
    task: str,
    *,
    target_fpr: float = TARGET_FPR,
    review_fpr: float | None = REVIEW_FPR,
    sources: Sequence[str] | None = None,
    encoder: bool = False,
    folds: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``bastion guard eval --by-source``: every source held out in turn (or those named),
    beside the in-source figure of one group split, both with the shipped recipe; with
    ``encoder``, the two-stage rail (the n-grams, then the encoder), held out in ``folds``
    groups of sources (5 by default: it trains an encoder per fold)."""
    examples, ngram = recipe(task)
    learner: Learner = ngram
    if encoder:
        learner = CascadeLearner(ngram, EncoderLearner(task))
        folds = folds or 5
    out = leave_one_source_out(
        examples,
        learner,
        target_fpr=target_fpr,
        review_fpr=review_fpr,
        sources=sources,
        folds=folds,
        progress=progress,
    )
    inside = in_source(examples, learner, target_fpr=target_fpr, review_fpr=review_fpr)
    return {
        "task": task,
        "recipe": "n-grams, then the encoder" if encoder else "n-grams",
        "examples": len(examples),
        "out_of_source": out.to_dict(),
        "in_source": inside.to_dict(),
    }
