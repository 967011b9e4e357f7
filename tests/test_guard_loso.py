"""Leave-one-source-out evaluation: the arithmetic on a tiny fixture with a table-driven
classifier, so every threshold and count is checked by hand."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from bastion.guard.training.examples import Example
from bastion.guard.training.loso import (
    SourceResult,
    Summary,
    Thresholds,
    balanced_threshold,
    calibration_split,
    leave_one_source_out,
    score_source,
)


@dataclass
class TableScorer:
    table: dict[str, float]

    def scores(self, examples: Sequence[Example]) -> list[float]:
        return [self.table[e.text] for e in examples]


@dataclass
class TableLearner:
    """Scores come from a fixed table; ``fits`` records what each fold trained on."""

    table: dict[str, float]
    fits: list[list[Example]] = field(default_factory=list)

    def fit(self, examples: Sequence[Example]) -> TableScorer:
        self.fits.append(list(examples))
        return TableScorer(self.table)


def calib_group(salt: str = "loso") -> str:
    """A group name that the calibration split puts in ``calib``."""
    for i in range(1000):
        example = Example("x", 0, "s", f"g{i}")
        if calibration_split([example], salt=salt)[1]:
            return f"g{i}"
    raise AssertionError("no group lands in calib")


def fixture() -> tuple[list[Example], dict[str, float]]:
    examples, table = [], {}

    def add(text: str, label: int, source: str, score: float, group: str | None = None) -> None:
        examples.append(Example(text, label, source, group or f"text:{text}"))
        table[text] = score

    for i in range(12):
        add(f"a{i}", 0, "A", 0.1)
    for i in range(11):
        add(f"b{i}", 0, "B", 0.1, group="fit-b" if i else None)
    add("b-hot", 0, "B", 0.9, group=calib_group())  # a benign text the model scores high
    for i in range(12):
        add(f"c{i}", 1, "C", 0.8)
    add("c-cold", 1, "C", 0.05)
    for i in range(10):
        add(f"d{i}", 1, "D", 0.95)
    return examples, table


def test_each_source_is_scored_at_thresholds_set_without_it() -> None:
    examples, table = fixture()
    learner = TableLearner(table)
    summary = leave_one_source_out(examples, learner, target_fpr=0.0)
    results = {r.source: replace(r, roc_auc=None) for r in summary.results}
    # A, C and D held out: B's calibration part holds b-hot (0.9), so nothing at or below 0.9
    # is flagged: C's positives (0.8) are missed, D's (0.95) caught, no benign text blocked
    above_hot = math.nextafter(0.9, math.inf)
    assert results["A"] == SourceResult("A", 0, 12, 0, 0, 0, above_hot)
    assert results["C"] == SourceResult("C", 13, 0, 0, 0, 0, above_hot)
    assert results["D"] == SourceResult("D", 10, 0, 10, 0, 0, above_hot)
    # B held out: the others' benign texts all score 0.1, so the threshold sits just above
    # it, and b-hot is B's one false positive of 12
    assert results["B"].threshold == math.nextafter(0.1, math.inf)
    assert (results["B"].blocked, results["B"].negatives, results["B"].fpr) == (1, 12, 1 / 12)
    # no fold trained on its held-out source or on its calibration part
    for fold, source in zip(learner.fits, ["A", "B", "C", "D"], strict=True):
        assert all(e.source != source for e in fold)
        assert all(e.text != "b-hot" for e in fold)
    # a one-class source's ROC-AUC is against the calibration texts of the other class:
    # D's positives (0.95) outscore every benign calibration text (0.1, b-hot's 0.9)
    assert {r.source: r.roc_auc for r in summary.results}["D"] == 1.0
    pooled = summary.pooled()
    assert pooled["tpr"] == 10 / 23 and pooled["fpr"] == pytest.approx(1 / 24)
    spread = summary.spread()
    assert spread["fpr"] == {"worst": 1 / 12, "median": 1 / 24, "best": 0.0}


def test_small_sources_train_but_are_not_held_out() -> None:
    examples, table = fixture()
    examples.append(Example("tiny", 0, "T", "text:tiny"))
    table["tiny"] = 0.1
    summary = leave_one_source_out(examples, TableLearner(table), target_fpr=0.0)
    assert [r.source for r in summary.results] == ["A", "B", "C", "D"]


def test_review_band_counts_benign_texts_between_the_two_thresholds() -> None:
    result = score_source(
        "s", [0.2, 0.5, 0.7, 0.95, 0.96], [0, 0, 0, 0, 1], Thresholds(block=0.9, review=0.5)
    )
    assert (result.blocked, result.reviewed, result.caught) == (1, 2, 1)
    assert result.roc_auc == 1.0 and result.tpr == 1.0 and result.fpr == 0.25


def test_thresholds_cap_what_a_large_source_weighs() -> None:
    scores = [0.9, 0.1, 0.1, 0.1, 0.8, 0.2]
    sources = ["A", "A", "A", "A", "B", "B"]
    # capped at 2 texts a source: each A text weighs 1/2, each B text 1, of 4 in all;
    # flagging 0.9 costs 0.5/4 = 0.125, adding 0.8 makes 1.5/4 = 0.375
    assert balanced_threshold(scores, sources, 0.25, cap=2) == 0.9
    assert balanced_threshold(scores, sources, 0.4, cap=2) == 0.8
    assert balanced_threshold(scores, sources, 0.0, cap=2) == math.nextafter(0.9, math.inf)
    assert balanced_threshold([0.3, 0.3], ["A", "A"], 0.5) == math.nextafter(0.3, math.inf)
    # uncapped, it is the plain false-positive rate: 2 of 6 flagged at 0.8
    assert balanced_threshold(scores, sources, 0.34) == 0.8


def test_summary_pools_every_held_out_text_once() -> None:
    summary = Summary(
        (
            SourceResult("x", 10, 0, 9, 0, 0, 0.5),
            SourceResult("y", 30, 100, 15, 2, 5, 0.5),
        ),
        target_fpr=0.01,
    )
    assert summary.pooled() == {"tpr": 24 / 40, "fpr": 2 / 100, "review_rate": 5 / 100}
    assert summary.spread()["tpr"] == {"worst": 0.5, "median": 0.7, "best": 0.9}


def test_folds_hold_sources_out_in_groups_and_score_each_once() -> None:
    examples, table = fixture()
    learner = TableLearner(table)
    summary = leave_one_source_out(examples, learner, target_fpr=0.0, folds=2)
    # sorted sources A, B, C, D: fold 0 holds out A and C, fold 1 B and D
    assert len(learner.fits) == 2 and summary.meta == {"folds": 2}
    assert {e.source for e in learner.fits[0]} == {"B", "D"}
    assert {e.source for e in learner.fits[1]} == {"A", "C"}
    assert [r.source for r in summary.results] == ["A", "B", "C", "D"]
    # B and D out: no benign calibration text scores above 0.1, so b-hot is B's false block
    results = {r.source: r for r in summary.results}
    assert results["B"].blocked == 1 and results["D"].caught == 10


def test_cascade_score_ranks_every_cleared_text_below_every_escalated_one() -> None:
    from bastion.guard.encoder import CLEARED, cascade_score

    assert cascade_score(0.4, 0.5, None) == pytest.approx(0.4 * CLEARED)
    assert cascade_score(0.5, 0.5, 0.0) == CLEARED
    assert cascade_score(0.9, 0.5, 1.0) == 1.0
    assert cascade_score(0.6, 0.5, 0.5) == pytest.approx(CLEARED + (1 - CLEARED) * 0.5)
    with pytest.raises(ValueError, match="needs the encoder"):
        cascade_score(0.6, 0.5, None)


def test_more_folds_than_sources_trains_no_empty_fold() -> None:
    examples, table = fixture()
    learner = TableLearner(table)
    summary = leave_one_source_out(examples, learner, target_fpr=0.0, sources=["A"], folds=5)
    assert len(learner.fits) == 1 and summary.meta == {"folds": 1}
