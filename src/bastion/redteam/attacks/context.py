"""The ``context`` family: fabricated earlier turns in which the assistant complied (few-shot
and many-shot, from PyRIT's many-shot set), then the goal."""

from __future__ import annotations

import functools
import random
from typing import ClassVar

from bastion.errors import BastionError
from bastion.redteam.attacks.base import Attack, AttackCase, Behavior, register, user
from bastion.types import Message


@functools.lru_cache(maxsize=1)
def compliant_shots() -> tuple[tuple[str, str], ...]:
    """(question, compliant answer) pairs from PyRIT's many-shot set (the pinned corpus)."""
    from bastion.data.registry import load_corpus

    return tuple((i.text, i.response or "") for i in load_corpus("pyrit-many-shot") if i.response)


class ShotsAttack(Attack):
    """Fabricated earlier turns in which the assistant complied, then the goal."""

    family = "context"
    shots: ClassVar[int]

    def __init__(self, shots: int | None = None) -> None:
        self.n = shots if shots is not None else self.shots

    def build(self, behavior: Behavior, rng: random.Random) -> AttackCase:
        pool = compliant_shots()
        if not pool:
            raise BastionError("no compliant shots: run `bastion data pull --all` first")
        chosen = rng.sample(pool, min(self.n, len(pool)))
        turns: list[Message] = []
        for question, answer in chosen:
            turns += [Message("user", question), Message("assistant", answer)]
        return self.case(*turns, user(behavior.goal), shots=len(chosen))


@register
class FewShot(ShotsAttack):
    name = "few_shot"
    description = "three fabricated turns of compliance before the goal"
    shots = 3


@register
class ManyShot(ShotsAttack):
    name = "many_shot"
    description = "thirty-two fabricated turns of compliance before the goal"
    shots = 32
