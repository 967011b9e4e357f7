"""What a run feeds the loop and the guard: its successful prompts, and the attacker's pairs.

Every successful prompt goes to ``attack_seeds.jsonl`` (seeds for the guard's known-attack
index and for alignment data); an automated attacker's successes over its failures go to
``attacker_pairs.jsonl``, preference rows to train the attacker on its own successes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from bastion.data.jsonl import append_jsonl, iter_jsonl
from bastion.redteam.attacks.adaptive import attacker_pairs, successful_prompts
from bastion.redteam.results import Result

SEEDS = "attack_seeds.jsonl"
ATTACKER_PAIRS = "attacker_pairs.jsonl"


class AttackIndex(Protocol):
    """An index of known attacks (the guard's
    :class:`~bastion.guard.scanners.KnownAttackScanner`): it learns texts, says how many were
    new, and lives in a folder."""

    folder: Path

    def add(self, texts: Sequence[str], source: str) -> int: ...


def write_seeds(out_dir: Path, result: Result, goal: str, trail: list[dict[str, Any]]) -> None:
    """Successful prompts as seeds for the guard's known-attack index and for alignment data;
    an automated attacker's successes over its failures as preference pairs for itself."""
    prompts = successful_prompts(trail) or ([result.prompt] if result.success else [])
    rows = [
        {"text": p, "goal": goal, "attack": result.attack, "family": result.family,
         "category": result.category, "item": result.id}
        for p in dict.fromkeys(prompts)
    ]  # fmt: skip
    pairs = attacker_pairs(goal, trail)
    for path, found in ((out_dir / SEEDS, rows), (out_dir / ATTACKER_PAIRS, pairs)):
        if found:  # no file for a run that found nothing
            append_jsonl(path, found)


def read_seeds(out_dir: Path) -> list[dict[str, Any]]:
    """A run's successful prompts (``attack_seeds.jsonl``), deduplicated by text."""
    path = out_dir / SEEDS
    if not path.exists():
        return []
    rows: dict[str, dict[str, Any]] = {}
    for _, row in iter_jsonl(path):
        if isinstance(row.get("text"), str):
            rows.setdefault(row["text"], row)
    return list(rows.values())


def add_seeds_to_guard(out_dir: Path, scanner: AttackIndex) -> int:
    """Teach a known-attack index a run's successful prompts; returns how many were new."""
    texts = [row["text"] for row in read_seeds(out_dir)]
    return int(scanner.add(texts, f"redteam:{out_dir.name}")) if texts else 0
