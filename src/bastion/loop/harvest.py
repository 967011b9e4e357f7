"""Harvest: the failures the next model learns from, with where each came from.

* **Red team** (the baseline campaign's *train* half only): every successful attack (the model
  complied with a harmful request), every benign-but-sensitive prompt it refused, and — as
  anchors, so that refusing everything is never what is learned — the benign prompts it
  answered.
* **Production** (an event store, when given): reviewed events by their reviewers' consensus
  (:func:`bastion.monitor.export.consensus`) — unsafe answers and over-refusals, user reports
  included once reviewed (a report opens a review item), with a reviewer's better response
  when one was written.

A production prompt identical to a test prompt is dropped (and counted): the test half stays
unseen by training whatever the source.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bastion.redteam.attacks import Attack
from bastion.redteam.campaign import Item, build_case
from bastion.redteam.results import Result
from bastion.types import Message

COMPLIED = "harmful"  # a harmful request the model complied with
REFUSED = "benign"  # a benign request the model refused
ANSWERED = "anchor"  # a benign request the model answered (kept as "answer ≻ refusal")
KINDS = (COMPLIED, REFUSED, ANSWERED)


@dataclass(frozen=True)
class Failure:
    """One harvested exchange: the prompt conversation, what the model said, and why it is
    here."""

    id: str
    kind: str  # see KINDS
    messages: tuple[Message, ...]
    response: str
    source: str  # "redteam" or "production"
    origin: dict[str, Any] = field(default_factory=dict)
    better: str | None = None  # a reviewer's better response

    @property
    def prompt_text(self) -> str:
        return "\n".join(m.content for m in self.messages)

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["messages"] = [m.to_dict() for m in self.messages]
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Failure:
        messages = tuple(Message(m["role"], m["content"]) for m in row["messages"])
        return cls(
            row["id"], row["kind"], messages, row["response"], row["source"],
            dict(row.get("origin") or {}), row.get("better"),
        )  # fmt: skip


def fold(text: str) -> str:
    """Case-, width- and whitespace-folded text: the key for overlap and duplicates."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def from_results(
    results: Sequence[Result],
    items: Sequence[Item],
    attacks: Sequence[Attack],
    train_keys: set[tuple[str, str]],
    *,
    anchors: bool = True,
) -> list[Failure]:
    """Failures (and anchors) from a campaign's results on the train behaviours."""
    by_id = {item.id: item for item in items}
    by_name = {a.name: a for a in attacks}
    out = []
    for r in results:
        if (r.source, r.behavior_id) not in train_keys or r.id not in by_id:
            continue
        if r.kind == "attack" and r.success:
            kind = COMPLIED
        elif r.kind == "benign":
            kind = REFUSED if r.refused else ANSWERED
            if kind == ANSWERED and not anchors:
                continue
        else:
            continue
        messages = build_case(by_id[r.id], by_name).messages
        origin = {
            "item": r.id, "behavior": r.behavior_id, "behavior_source": r.source,
            "attack": r.attack, "family": r.family, "category": r.category, "scores": r.scores,
        }  # fmt: skip
        out.append(Failure(f"redteam:{r.id}", kind, messages, r.response, "redteam", origin))
    return out


def from_reviews(items: Iterable[Any]) -> list[Failure]:
    """Failures from reviewed production events (:class:`~bastion.monitor.export.ReviewedItem`)."""
    from bastion.monitor.export import better_response, consensus

    out = []
    for item in items:
        verdict = consensus(item.labels)
        event = item.event
        if verdict not in ("unsafe", "over_refusal") or not event.prompt.strip():
            continue
        kind = COMPLIED if verdict == "unsafe" else REFUSED
        origin = {
            "event_id": event.id, "item_id": item.item_id, "label": verdict,
            "reviewers": sorted({x.reviewer for x in item.labels}),
        }  # fmt: skip
        out.append(
            Failure(
                f"production:{event.id}", kind, (Message("user", event.prompt),),
                event.response, "production", origin, better_response(item.labels, verdict),
            )
        )  # fmt: skip
    return out


def from_store(target: str) -> list[Failure]:
    """Failures from an event store's reviewed items."""
    from bastion.monitor.store import EventStore
    from bastion.monitor.web import reviewed_items

    with EventStore(target, journal=False) as store:  # reads only, beside the gateway
        return from_reviews(reviewed_items(store, {}))


OVERLAP = 0.5  # share of a test prompt's word trigrams that a production prompt may not contain


def drop_test_overlap(
    failures: Sequence[Failure], test_prompts: Iterable[str], threshold: float = OVERLAP
) -> tuple[list[Failure], int]:
    """The failures that contain none of the test prompts, and how many were dropped.

    A user message overlaps a test prompt when it is the same text (case and whitespace
    folded) or contains at least ``threshold`` of the test prompt's word trigrams — a test
    behaviour quoted inside a jailbreak template, a role-play frame or a longer request.
    Rewordings with few words in common are not caught."""
    tests = [(key, _trigrams(key)) for key in {fold(p) for p in test_prompts}]

    def overlaps(text: str) -> bool:
        key = fold(text)
        grams = _trigrams(key)
        return any(
            key == test
            or (len(shingles) >= 2 and len(shingles & grams) >= threshold * len(shingles))
            for test, shingles in tests
        )

    kept = [f for f in failures if not any(overlaps(m.content) for m in _users(f))]
    return kept, len(failures) - len(kept)


def _trigrams(folded: str) -> set[tuple[str, ...]]:
    words = [w.strip(".,;:!?\"'()[]") for w in folded.split()]
    words = [w for w in words if w]
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def _users(failure: Failure) -> list[Message]:
    return [m for m in failure.messages if m.role == "user"]


def counts(failures: Sequence[Failure]) -> dict[str, dict[str, int]]:
    """How many failures of each kind each source gave."""
    table: dict[str, dict[str, int]] = {}
    for f in failures:
        row = table.setdefault(f.source, dict.fromkeys(KINDS, 0))
        row[f.kind] += 1
    return table
