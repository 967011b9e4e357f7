"""How strongly PPO holds the policy to its reference: the KL coefficient β, fixed or adapted.

Each iteration's reward is ``score − β·KL(policy ‖ reference)``; after the iteration the
controller sees the batch's mean per-sequence KL and the number of episodes, and may change β.
"""

from __future__ import annotations

from typing import Protocol

from bastion.errors import BastionError


class KLController(Protocol):
    """β (``value``) and how it follows the measured KL."""

    value: float

    def update(self, current: float, n_steps: int) -> None:
        """See a batch's mean per-sequence KL (``current``) over ``n_steps`` episodes."""


class FixedKL:
    """β stays where it was set."""

    def __init__(self, beta: float) -> None:
        self.value = beta

    def update(self, current: float, n_steps: int) -> None:
        return None


class AdaptiveKL:
    """Ziegler et al.'s controller: ``β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon)``, with
    ``n`` the episodes since the last update, so β rises while KL is above target."""

    def __init__(self, beta: float, target: float, horizon: int) -> None:
        if target <= 0 or horizon < 1:
            raise BastionError("target_kl must be > 0 and kl_horizon at least 1")
        self.value, self.target, self.horizon = beta, target, horizon

    def update(self, current: float, n_steps: int) -> None:
        error = min(max(current / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon


def kl_controller(beta: float, target: float | None, horizon: int) -> KLController:
    """The adaptive controller towards ``target`` when one is set, else β fixed."""
    return AdaptiveKL(beta, target, horizon) if target is not None else FixedKL(beta)
