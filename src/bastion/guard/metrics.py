"""The rates every guard classifier and policy is measured by: ROC-AUC, the counts and rates of
yes/no decisions against labels, and the true-positive rate read off the ROC curve at a fixed
false-positive rate."""

from __future__ import annotations

from typing import Any

from bastion.text.ngrams import threshold_for_fpr


def roc_auc(scores: list[float], labels: list[int]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos = sorted(s for s, y in zip(scores, labels, strict=True) if y)
    neg = sorted(s for s, y in zip(scores, labels, strict=True) if not y)
    if not pos or not neg:
        return float("nan")
    wins, j, k = 0.0, 0, 0
    for score in pos:  # count negatives below and equal, both sorted: one pass
        while j < len(neg) and neg[j] < score:
            j += 1
        k = max(k, j)
        while k < len(neg) and neg[k] == score:
            k += 1
        wins += j + (k - j) / 2
    return wins / (len(pos) * len(neg))


def rates(flagged: list[bool], labels: list[int]) -> dict[str, Any]:
    """Counts, TPR, FPR and precision of yes/no decisions against labels (nan where undefined)."""
    positives = sum(labels)
    negatives = len(labels) - positives
    tp = sum(f and y for f, y in zip(flagged, labels, strict=True))
    fp = sum(f and not y for f, y in zip(flagged, labels, strict=True))
    nan = float("nan")
    return {
        "positives": positives,
        "negatives": negatives,
        "tpr": tp / positives if positives else nan,
        "fpr": fp / negatives if negatives else nan,
        "precision": tp / (tp + fp) if tp + fp else nan,
    }


def tpr_at_fpr(scores: list[float], labels: list[int], fpr: float) -> float:
    """The true-positive rate at the lowest threshold whose false-positive rate on these same
    negatives is at most ``fpr`` (threshold-free: the ROC curve read at ``fpr``)."""
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    if not negatives or not positives:
        return float("nan")
    threshold = threshold_for_fpr(negatives, fpr)
    return sum(s >= threshold for s in positives) / len(positives)
