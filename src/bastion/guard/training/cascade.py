"""The two-stage harmful-request rail as a learner: n-grams first, the encoder on the rest.

Stage one is the n-gram classifier (:class:`~bastion.guard.training.learners.NgramLearner`),
stage two the encoder (:class:`~bastion.guard.training.encoder.EncoderLearner`), both trained
on the same examples. The gate — the n-gram score from which a text goes on to the encoder —
is set for ``gate_fpr`` of the training negatives (each source's weight capped, as every
threshold here). Those are scores of texts the first stage trained on, which run low, so more
than that share of unseen everyday traffic reaches the encoder (28% of single everyday
requests in ``benchmarks/guard_latency.py``); the rest is cleared in a millisecond. Scores
combine as the scanner combines them (:func:`~bastion.guard.encoder.cascade_score`); the
encoder reads the view the first stage found most harmful (the original text, or a decoded
one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bastion.guard.encoder import cascade_score
from bastion.guard.training.encoder import EncoderLearner, EncoderScorer
from bastion.guard.training.examples import Example
from bastion.guard.training.learners import NgramLearner, NgramScorer
from bastion.guard.training.loso import balanced_threshold
from bastion.text.normalize import normalize

GATE_FPR = 0.15


def decisive_view(text: str, index: int) -> str:
    """The text the encoder reads: the original for the canonical view, else the decoded."""
    return text if index == 0 else normalize(text).all_views()[index].text


@dataclass
class CascadeScorer:
    first: NgramScorer
    second: EncoderScorer
    gate: float

    def scores(self, examples: Sequence[Example]) -> list[float]:
        best = self.first.best_views(examples)
        escalated = [
            Example(decisive_view(e.text, view), e.label, e.source, e.group)
            for e, (score, view) in zip(examples, best, strict=True)
            if score >= self.gate
        ]
        second = iter(self.second.scores(escalated))
        return [
            cascade_score(score, self.gate, next(second) if score >= self.gate else None)
            for score, _ in best
        ]


@dataclass
class CascadeLearner:
    first: NgramLearner
    second: EncoderLearner
    gate_fpr: float = GATE_FPR

    def fit(self, examples: Sequence[Example]) -> CascadeScorer:
        first = self.first.fit(examples)
        negatives = [e for e in examples if not e.label]
        gate = balanced_threshold(
            first.scores(negatives), [e.source for e in negatives], self.gate_fpr
        )
        return CascadeScorer(first, self.second.fit(examples), gate)
