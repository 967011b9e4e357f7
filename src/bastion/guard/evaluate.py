"""``bastion guard eval``: a policy measured on labelled texts.

Input: JSONL rows ``{"text": ..., "label": 1 | 0 | true | false, "source": ...}`` (label 1:
the guard should stop it; ``source`` optional, for the per-source breakdown). Each text goes
through the chosen stage of the guard as a user's would. A text counts as *blocked* when the
decision is ``block`` (the user gets no answer: TPR and FPR count these) and as *reviewed* when
it is ``review`` (answered, and queued for a person); its *score* is the highest score among
the scanners whose action is block or review, which gives the ROC-AUC and the TPR at 1% FPR a
threshold-free view. Latency is the decision's own wall time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.data.jsonl import iter_jsonl
from bastion.errors import DataError
from bastion.guard.metrics import rates, roc_auc, tpr_at_fpr
from bastion.guard.pipeline import Guard
from bastion.guard.policy import Stage, load_policy

STOPPING = ("block", "review")


@dataclass(frozen=True)
class Labelled:
    text: str
    label: int
    source: str


def read_labelled(path: Path) -> list[Labelled]:
    """Rows of a JSONL file; a bad row is an error naming the file, line and key."""
    rows = []
    for number, row in iter_jsonl(path):
        if not isinstance(row.get("text"), str):
            raise DataError("expected a string 'text'").at(str(path), number, "text")
        label = row.get("label")
        if label not in (0, 1, True, False):
            raise DataError(f"label must be 0/1 or true/false, got {label!r}").at(
                str(path), number, "label"
            )
        rows.append(Labelled(row["text"], int(label), str(row.get("source", "-"))))
    if not rows:
        raise DataError("no rows").at(str(path))
    return rows


def evaluate_labelled(
    data: Path,
    policy: Path | None = None,
    stage: Stage = "input",
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``bastion guard eval --data``: a policy (the shipped one by default) on a labelled JSONL
    file (:func:`read_labelled`), measured by :func:`evaluate_policy`."""
    guard = Guard(load_policy(policy))
    rows = read_labelled(data)
    if progress is not None:
        progress(f"scanning {len(rows)} texts…")
    return evaluate_policy(guard, rows, stage)


def percentile(values: list[float], q: float) -> float:
    ranked = sorted(values)
    return ranked[min(int(q * len(ranked)), len(ranked) - 1)]


def evaluate_policy(guard: Guard, rows: list[Labelled], stage: Stage) -> dict[str, Any]:
    scores, blocked, reviewed, latencies = [], [], [], []
    rails = guard.policy.rails(stage)
    for row in rows:
        decision = guard.check(row.text, stage)
        by_name = {r.scanner: r for r in decision.results}
        score = max(
            (by_name[rail.scanner.name].score for rail in rails if rail.action in STOPPING
             and rail.scanner.name in by_name),
            default=0.0,
        )  # fmt: skip
        scores.append(score)
        blocked.append(decision.action == "block")
        reviewed.append(decision.action == "review")
        latencies.append(decision.elapsed_ms)
    labels = [r.label for r in rows]
    counted = rates(blocked, labels)
    negatives = len(labels) - sum(labels)
    sources: dict[str, dict[str, Any]] = {}
    for row, hit, held in zip(rows, blocked, reviewed, strict=True):
        entry = sources.setdefault(
            row.source, {"n": 0, "positives": 0, "blocked": 0, "reviewed": 0}
        )
        entry["n"] += 1
        entry["positives"] += row.label
        entry["blocked"] += hit
        entry["reviewed"] += held
    for entry in sources.values():
        entry["block_rate"] = entry["blocked"] / entry["n"]
        entry["review_rate"] = entry["reviewed"] / entry["n"]
    return {
        "stage": stage,
        "rows": len(rows),
        **counted,
        "recall": counted["tpr"],
        "review_rate": (
            sum(r and not y for r, y in zip(reviewed, labels, strict=True)) / negatives
            if negatives
            else float("nan")
        ),
        "roc_auc": roc_auc(scores, labels),
        "tpr_at_1pct_fpr": tpr_at_fpr(scores, labels, 0.01),
        "latency_ms": {
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 0.95),
            "p99": percentile(latencies, 0.99),
        },
        "by_source": sources,
    }
