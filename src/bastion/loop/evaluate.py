"""The loop's measurements: behaviours split into train and test, campaigns on either, and
the summaries the gate and the report read.

Harmful behaviours and benign-but-sensitive prompts are each split by a stable hash of their
text (:func:`bastion.data.splits.assign_split`): a prompt is in the same split on every run
and machine, so what the model is trained on is never what it is measured on. The baseline
campaign runs on both halves (the train half's hits become training data, the test half is
the "before"); the re-evaluation runs on the test half only, with the same items (same ids,
same seeds), so before and after compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.data.splits import assign_split, stable_fraction
from bastion.errors import BastionError
from bastion.loop.config import RedteamSection
from bastion.models.base import ChatModel
from bastion.redteam.attacks import Attack, Behavior
from bastion.redteam.behaviors import load_behaviors
from bastion.redteam.campaign import CampaignProgress, Item, Judges, run_plan
from bastion.redteam.results import Result, summarize, write_summary
from bastion.redteam.targets import ModelTarget

SALT = "bastion-loop"


@dataclass(frozen=True)
class Splits:
    train: list[Behavior]
    test: list[Behavior]
    benign_train: list[Behavior]
    benign_test: list[Behavior]

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        def rows(behaviors: list[Behavior]) -> list[dict[str, str]]:
            return [
                {"id": b.id, "source": b.source, "category": b.category, "goal": b.goal}
                for b in behaviors
            ]

        return {
            "train": rows(self.train),
            "test": rows(self.test),
            "benign_train": rows(self.benign_train),
            "benign_test": rows(self.benign_test),
        }

    @classmethod
    def from_dict(cls, data: dict[str, list[dict[str, str]]]) -> Splits:
        def behaviors(key: str) -> list[Behavior]:
            return [
                Behavior(r["id"], r["goal"], r.get("category", "-"), r["source"]) for r in data[key]
            ]

        return cls(
            behaviors("train"), behaviors("test"), behaviors("benign_train"),
            behaviors("benign_test"),
        )  # fmt: skip

    def test_keys(self) -> set[tuple[str, str]]:
        return {(b.source, b.id) for b in [*self.test, *self.benign_test]}


def split_behaviors(
    harmful: Sequence[Behavior], benign: Sequence[Behavior], test_fraction: float
) -> Splits:
    """Train/test halves of both sets, by a stable hash of each prompt's text."""
    fractions = {"train": 1 - test_fraction, "test": test_fraction}

    def part(items: Sequence[Behavior], salt: str) -> tuple[list[Behavior], list[Behavior]]:
        train = [b for b in items if assign_split(b.goal, fractions, salt=salt) == "train"]
        test = [b for b in items if assign_split(b.goal, fractions, salt=salt) == "test"]
        return train, test

    train, test = part(harmful, SALT)
    benign_train, benign_test = part(benign, f"{SALT}-benign")
    for name, items in (("harmful", (train, test)), ("benign", (benign_train, benign_test))):
        if not items[0] or not items[1]:
            raise BastionError(
                f"the {name} prompts do not fill both a train and a test split "
                f"({len(items[0])} train, {len(items[1])} test): use more of them "
                "(redteam.limit / redteam.benign_limit) or change redteam.test_fraction"
            )
    return Splits(train, test, benign_train, benign_test)


def load_splits(section: RedteamSection) -> Splits:
    harmful = [
        b
        for b in load_behaviors(section.behaviors)
        if section.max_goal_chars is None or len(b.goal) <= section.max_goal_chars
    ]
    benign = load_behaviors(section.benign)
    # the choice under a limit hashes with its own salt: with the split's, the prompts it
    # keeps (the lowest hashes) would all fall in the train split
    harmful = _choose(harmful, section.limit, f"{SALT}-choice")
    benign = _choose(benign, section.benign_limit, f"{SALT}-benign-choice")
    return split_behaviors(harmful, benign, section.test_fraction)


def _choose(behaviors: list[Behavior], limit: int | None, salt: str) -> list[Behavior]:
    if limit is None:
        return behaviors
    return sorted(behaviors, key=lambda b: stable_fraction(b.goal, salt=salt))[:limit]


def run_items(
    model: ChatModel,
    items: Sequence[Item],
    attacks: Sequence[Attack],
    out_dir: Path,
    section: RedteamSection,
    judges: Judges,
    progress: CampaignProgress | None = None,
) -> list[Result]:
    """The items against the model (resumable: finished items in ``out_dir`` are kept); the
    results of these items only."""
    target = ModelTarget(model, max_new_tokens=section.max_new_tokens)
    return run_plan(
        target, items, attacks, out_dir, judges=judges, batch_size=section.batch_size,
        progress=progress,
    )  # fmt: skip


def subset(results: Sequence[Result], keys: set[tuple[str, str]]) -> list[Result]:
    """The results whose behaviour is one of ``keys`` ((source, id) pairs)."""
    return [r for r in results if (r.source, r.behavior_id) in keys]


def keys_of(behaviors: Sequence[Behavior]) -> set[tuple[str, str]]:
    return {(b.source, b.id) for b in behaviors}


def summary_file(path: Path, results: Sequence[Result], meta: dict[str, Any]) -> dict[str, Any]:
    """The summary of ``results`` (:func:`~bastion.redteam.results.summarize`), written to
    ``path``."""
    summary = summarize(results, meta)
    write_summary(path.parent, summary, path.name)
    return summary
