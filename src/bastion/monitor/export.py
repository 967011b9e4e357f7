"""Reviewed production events as training data, and how much the reviewers agree.

A review item is an event with one label per reviewer (``safe``, ``unsafe`` or
``over_refusal``) and, optionally, a better response a reviewer wrote. The item's label is the
reviewers' majority; a tie goes to an admin's label when one labelled it, otherwise the item
is left out (people disagree: it is not training data yet). What each kind writes:

* ``preferences`` — ``{"prompt", "chosen", "rejected"}`` rows, the format ``bastion align dpo``
  reads: for an ``unsafe`` answer or an ``over_refusal``, chosen = the reviewer's better
  response, rejected = the answer the model gave. Items without a better response give none.
* ``sft`` — ``{"messages": [user, assistant]}`` rows for ``bastion align sft``: the better
  response where there is one, else the model's own answer when people judged it ``safe`` and
  it was not a refusal.
* ``attacks`` — ``{"text", "category", "source"}`` rows for the guard's known-attack index and
  the red team's seeds (``bastion redteam seeds`` reads the same ``text`` field): the prompts
  of items judged ``unsafe`` (the model complied with something it should not have).

Every row carries ``meta`` with the event id, the labels and the reviewers, so its provenance
is never lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from bastion.errors import BastionError
from bastion.monitor.events import LABELS, Event

KINDS = ("preferences", "sft", "attacks")


@dataclass(frozen=True)
class ReviewLabel:
    reviewer: str
    label: str
    better_response: str | None = None
    role: str = "reviewer"


@dataclass
class ReviewedItem:
    item_id: str
    event: Event
    labels: list[ReviewLabel] = field(default_factory=list)


def consensus(labels: Sequence[ReviewLabel]) -> str | None:
    """The majority label; a tie is settled by an admin's label, or left open (``None``)."""
    if not labels:
        return None
    counts = Counter(label.label for label in labels).most_common()
    top = [name for name, n in counts if n == counts[0][1]]
    if len(top) == 1:
        return top[0]
    admin = [label.label for label in labels if label.role == "admin" and label.label in top]
    return admin[0] if len(set(admin)) == 1 else None


def better_response(labels: Sequence[ReviewLabel], verdict: str) -> str | None:
    """The last better response written by a reviewer who gave the consensus label."""
    written = [x.better_response for x in labels if x.label == verdict and x.better_response]
    return written[-1] if written else None


def export_rows(items: Iterable[ReviewedItem], kind: str) -> list[dict[str, Any]]:
    """Training rows of one kind from reviewed items (see the module docstring)."""
    if kind not in KINDS:
        raise BastionError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    for item in items:
        verdict = consensus(item.labels)
        if verdict is None:
            continue
        event = item.event
        meta = {
            "event_id": event.id,
            "item_id": item.item_id,
            "label": verdict,
            "reviewers": sorted({x.reviewer for x in item.labels}),
            "source": "production-review",
        }
        better = better_response(item.labels, verdict)
        row: dict[str, Any] | None = None
        if kind == "preferences" and verdict in ("unsafe", "over_refusal") and better:
            row = {"prompt": event.prompt, "chosen": better, "rejected": event.response}
        elif kind == "sft":
            answer = better or (event.response if verdict == "safe" and not event.refused else None)
            if answer:
                row = {
                    "messages": [
                        {"role": "user", "content": event.prompt},
                        {"role": "assistant", "content": answer},
                    ]
                }
        elif kind == "attacks" and verdict == "unsafe":
            category = event.categories[0] if event.categories else "unknown"
            row = {"text": event.prompt, "category": category, "source": "production"}
        if row is None:
            continue
        key = tuple(str(v) for v in row.values())
        if key in seen:  # the same exchange reviewed twice gives one row
            continue
        seen.add(key)
        row["meta"] = meta
        rows.append(row)
    return rows


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's κ of two raters over the same items: (p_o − p_e) / (1 − p_e); 1.0 when both
    used a single identical label throughout (no disagreement possible to correct for)."""
    if len(first) != len(second) or not first:
        raise ValueError("need the same, non-empty set of items from both raters")
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    a_counts, b_counts = Counter(first), Counter(second)
    expected = sum(a_counts[k] * b_counts[k] for k in set(first) | set(second)) / n**2
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1 - expected)


def agreement(items: Iterable[ReviewedItem]) -> dict[str, Any]:
    """Cohen's κ for every pair of reviewers over the items both labelled, and their mean
    weighted by shared items (pairs with fewer than two shared items are listed, not used)."""
    by_reviewer: dict[str, dict[str, str]] = {}
    for item in items:
        for label in item.labels:
            if label.label in LABELS:
                by_reviewer.setdefault(label.reviewer, {})[item.item_id] = label.label
    pairs: list[dict[str, Any]] = []
    for a, b in combinations(sorted(by_reviewer), 2):
        shared = sorted(set(by_reviewer[a]) & set(by_reviewer[b]))
        if not shared:
            continue
        first = [by_reviewer[a][i] for i in shared]
        second = [by_reviewer[b][i] for i in shared]
        kappa = cohen_kappa(first, second) if len(shared) >= 2 else None
        pairs.append({"reviewers": [a, b], "items": len(shared), "kappa": kappa})
    usable = [(float(p["kappa"]), int(p["items"])) for p in pairs if p["kappa"] is not None]
    weight = sum(n for _, n in usable)
    mean = sum(k * n for k, n in usable) / weight if weight else None
    return {"pairs": pairs, "mean_kappa": mean}
