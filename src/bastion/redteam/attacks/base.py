"""What every attack is: a :class:`Behavior` in, an :class:`AttackCase` out, and the registry.

An attack turns a harmful goal into the conversation to send (a system prompt, fabricated
earlier turns and the final user turn, as the attack needs) and, for attacks judged by a
canary, the canary. Every attack is deterministic under its ``random.Random``; the campaign
seeds it from the behaviour, the attack and the sample number, so a rerun sends exactly the
same text. An attack class joins :data:`ATTACKS` with :func:`register` when its module loads;
:mod:`bastion.redteam.attacks` loads every family module.
"""

from __future__ import annotations

import abc
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bastion.types import Message


@dataclass(frozen=True)
class Behavior:
    """A harmful goal to try to elicit."""

    id: str
    goal: str
    category: str = "-"
    source: str = "user"


@dataclass(frozen=True)
class AttackCase:
    """What an attack sends for one behaviour: the whole conversation, and its canary."""

    attack: str
    family: str
    messages: tuple[Message, ...]
    canary: str | None = None  # success = the canary appears in the answer
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The final user turn."""
        return self.messages[-1].content


ATTACKS: dict[str, type[Attack]] = {}


def register(cls: type[Attack]) -> type[Attack]:
    """Add an attack class to :data:`ATTACKS` under its ``name`` (a class decorator)."""
    if cls.name in ATTACKS:
        raise ValueError(f"attack {cls.name!r} is registered twice")
    ATTACKS[cls.name] = cls
    return cls


class Attack(abc.ABC):
    """One way of asking for a harmful goal."""

    name: ClassVar[str]
    family: ClassVar[str]
    description: ClassVar[str]
    adaptive: ClassVar[bool] = False  # True: talks with the target (an AdaptiveAttack)
    needs_attacker: ClassVar[bool] = False  # True: only with an attacker chat model

    @abc.abstractmethod
    def build(self, behavior: Behavior, rng: random.Random) -> AttackCase: ...

    def case(self, *messages: Message, canary: str | None = None, **meta: Any) -> AttackCase:
        return AttackCase(self.name, self.family, tuple(messages), canary, meta)


def user(text: str) -> Message:
    return Message("user", text)
