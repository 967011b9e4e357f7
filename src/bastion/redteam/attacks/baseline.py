"""The ``baseline`` family: the goal as is, the reference every other family is compared with."""

from __future__ import annotations

import random

from bastion.redteam.attacks.base import Attack, AttackCase, Behavior, register, user


@register
class Direct(Attack):
    name = "direct"
    family = "baseline"
    description = "the goal as is: the reference every attack is compared with"

    def build(self, behavior: Behavior, rng: random.Random) -> AttackCase:
        return self.case(user(behavior.goal))
