"""The attack library: one small class per attack, found by name through one registry.

Families, one module each: ``baseline`` (the goal as is, the reference every family is
compared with), ``encoding`` (base64, ROT13, hex, Pig Latin, leetspeak, Morse, reversed words,
character spacing, homoglyphs, zero-width insertion), ``roleplay`` (jailbreak personas from
the pinned templates, fiction), ``framing`` (hypothetical, past tense, payload splitting,
refusal suppression), ``context`` (few-shot and many-shot fabricated compliance),
``injection`` (indirect injection in a retrieved document, system-prompt extraction; judged by
canary), and in :mod:`~bastion.redteam.attacks.adaptive` the attacks that talk with the target
(``multi_turn``: crescendo; ``automated``: PAIR). Each module registers its attacks in
:data:`ATTACKS` when it loads; this package loads them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bastion.errors import BastionError
from bastion.redteam.attacks.base import ATTACKS, Attack, AttackCase, Behavior, register

# Each family module registers its attacks as it loads: this order is the registry's (the
# order of `bastion redteam attacks`, of `all` and of a family's members in a campaign).
# isort: off
from bastion.redteam.attacks import baseline, encoding, roleplay, framing, context, injection
from bastion.redteam.attacks import adaptive

# isort: on

if TYPE_CHECKING:
    from bastion.models.base import ChatModel

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackCase",
    "Behavior",
    "get_attacks",
    "register",
]

FAMILY_MODULES = (baseline, encoding, roleplay, framing, context, injection, adaptive)


def get_attacks(names: Iterable[str], *, attacker: ChatModel | None = None) -> list[Attack]:
    """Attacks by name (``all`` for every one, a family name for its members). Adaptive
    attacks get ``attacker`` (a chat model); those that need one are left out of ``all`` and
    of families when there is none, and are an error when named."""

    def make(cls: type[Attack]) -> Attack:
        if issubclass(cls, adaptive.AdaptiveAttack):
            return cls(attacker)
        return cls()

    usable = [c for c in ATTACKS.values() if attacker is not None or not c.needs_attacker]
    chosen: list[Attack] = []
    for name in names:
        if name == "all":
            chosen += [make(cls) for cls in usable]
        elif name in ATTACKS:
            if ATTACKS[name].needs_attacker and attacker is None:
                raise BastionError(f"--attacks: {name} needs an attacker model (--attacker)")
            chosen.append(make(ATTACKS[name]))
        elif any(cls.family == name for cls in ATTACKS.values()):
            chosen += [make(cls) for cls in usable if cls.family == name]
        else:
            known = ", ".join(sorted({*ATTACKS, *(c.family for c in ATTACKS.values())}))
            raise BastionError(f"--attacks: unknown attack or family {name!r} (known: {known})")
    unique: dict[str, Attack] = {}
    for attack in chosen:
        unique.setdefault(attack.name, attack)
    return list(unique.values())
