"""The reward-hacking watch: signs that PPO is gaming its reward rather than learning.

The classic failure: the score keeps rising while the policy runs away from its reference
(KL) or pads its answers (length); and, whatever the score does, degenerate repetition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def repetition(tokens: Sequence[int], n: int = 3) -> float:
    """The share of a response's token n-grams that repeat an earlier one (0: none; near 1: one
    phrase over and over). Responses under ``2n`` tokens count as 0."""
    if len(tokens) < 2 * n:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams)


@dataclass
class WatchSettings:
    window: int = 5  # iterations over which the score trend is measured
    kl_limit: float = 10.0  # nats per sequence: KL above it has "run away"
    length_factor: float = 2.0  # mean length above this × the first iteration's has run away
    repetition_limit: float = 0.5  # a response repeating more than this share of its n-grams…
    repetition_share: float = 0.5  # …in more than this share of the batch: degenerate
    stop: bool = False  # end training at the first flag


@dataclass
class RewardHackingWatch:
    """Flags the classic failure: the score keeps rising (least-squares slope over the last
    ``window`` iterations > 0) while the KL to the reference exceeds ``kl_limit`` or the mean
    response length exceeds ``length_factor`` × the first iteration's (by 8 tokens at least);
    and, whatever the score does, degenerate repetition in much of the batch."""

    settings: WatchSettings = field(default_factory=WatchSettings)
    scores: list[float] = field(default_factory=list)
    first_length: float | None = None
    flags: list[dict[str, Any]] = field(default_factory=list)

    def observe(
        self, iteration: int, score: float, kl: float, length: float, repeats: Sequence[float]
    ) -> list[str]:
        s = self.settings
        self.scores.append(score)
        if self.first_length is None:
            self.first_length = length
        reasons = []
        recent = self.scores[-s.window :]
        if len(recent) >= min(3, s.window) and _slope(recent) > 0:
            if kl > s.kl_limit:
                reasons.append(
                    f"score rising while KL runs away ({kl:.2f} nats > limit {s.kl_limit})"
                )
            if length > max(s.length_factor * self.first_length, self.first_length + 8):
                reasons.append(
                    f"score rising while responses grow ({length:.1f} tokens, "
                    f"{length / max(self.first_length, 1e-9):.1f}× the start)"
                )
        degenerate = sum(r > s.repetition_limit for r in repeats) / max(len(repeats), 1)
        if degenerate > s.repetition_share:
            reasons.append(f"degenerate repetition in {degenerate:.0%} of the responses")
        if reasons:
            self.flags.append({"iteration": iteration, "reasons": reasons})
        return reasons

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the watch's history."""
        return {"scores": self.scores, "first_length": self.first_length, "flags": self.flags}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back the history :meth:`state` gave."""
        self.scores, self.first_length = state["scores"], state["first_length"]
        self.flags = state["flags"]


def _slope(values: Sequence[float]) -> float:
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return num / sum((i - mean_x) ** 2 for i in range(n))
