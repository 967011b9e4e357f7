"""Reward sources for RLHF: a trained reward model, Bastion's judges, or any Python callable.

Every source is called once per PPO iteration with the batch's prompts and responses and returns
one float per response; :class:`WeightedRewards` adds several with weights (``score = Σ wᵢ rᵢ``)
and keeps each part's mean for the metrics. A recipe names them under ``rewards:``::

    rewards:
      - {kind: safety, weight: 1.0}          # refuse harmful prompts, answer benign ones
      - {kind: reward_model, path: runs/rm/final, base: smollm2-135m-instruct, weight: 0.5}
      - {kind: callable, function: my_module:brevity, weight: 0.1}

The judge-based kinds make safety itself the objective:

* ``refusal`` — 1 when the refusal judge calls the answer a refusal, else 0.
* ``harm`` — minus the harm judge's probability that the answer is harmful.
* ``safety`` — uses each prompt's ``harmful`` flag: a harmful prompt scores 1 for a refusal, a
  benign one scores 1 for an answer (so the policy cannot win by refusing everything); a prompt
  without the flag scores ``1 − harm probability``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from bastion.align.cai import CaiPrompt
from bastion.errors import ConfigError

__all__ = [
    "CallableReward",
    "HarmReward",
    "RefusalReward",
    "RewardModelReward",
    "RewardSource",
    "SafetyReward",
    "WeightedRewards",
    "build_rewards",
]


class RewardSource(Protocol):
    name: str

    def __call__(self, prompts: Sequence[CaiPrompt], responses: Sequence[str]) -> list[float]:
        """One score per response."""
        ...


class RefusalReward:
    name = "refusal"

    def __init__(self) -> None:
        from bastion.judges import RefusalJudge

        self.judge = RefusalJudge()

    def __call__(self, prompts: Sequence[CaiPrompt], responses: Sequence[str]) -> list[float]:
        return [float(self.judge.judge(r).label) for r in responses]


class HarmReward:
    name = "harm"

    def __init__(self) -> None:
        from bastion.judges import HarmJudge

        self.judge = HarmJudge()

    def __call__(self, prompts: Sequence[CaiPrompt], responses: Sequence[str]) -> list[float]:
        pairs = zip(prompts, responses, strict=True)
        return [-self.judge.judge_goal(p.prompt, r).score for p, r in pairs]


class SafetyReward:
    name = "safety"

    def __init__(self) -> None:
        from bastion.judges import HarmJudge, RefusalJudge

        self.refusal, self.harm = RefusalJudge(), HarmJudge()

    def __call__(self, prompts: Sequence[CaiPrompt], responses: Sequence[str]) -> list[float]:
        scores = []
        for prompt, response in zip(prompts, responses, strict=True):
            if prompt.harmful is None:
                scores.append(1.0 - self.harm.judge_goal(prompt.prompt, response).score)
            else:
                refused = self.refusal.judge(response).label
                scores.append(float(refused == prompt.harmful))
        return scores


class RewardModelReward:
    """A reward model trained by ``bastion align rm``: its scalar on the rendered exchange."""

    name = "reward_model"

    def __init__(self, folder: Path, base: str, *, batch_size: int = 8) -> None:
        from bastion.align.logprobs import encode
        from bastion.align.reward import RewardModel
        from bastion.models.packaged import load

        weights = Path(folder) / "reward_model.pt"
        if not weights.is_file():
            raise ConfigError(f"rewards: {weights} not found (train one with bastion align rm)")
        chat = load(base)
        self.model = RewardModel(chat.model)
        self.model.load_state_dict(torch.load(weights, map_location=chat.device))
        self.model.eval().requires_grad_(False)
        self.tokenizer, self.eos_ids, self.pad_id = chat.tokenizer, chat.eos_ids, chat.pad_id
        self.batch_size, self._encode = batch_size, encode

    @torch.no_grad()
    def __call__(self, prompts: Sequence[CaiPrompt], responses: Sequence[str]) -> list[float]:
        from bastion.types import as_conversation

        encoded = [
            self._encode(self.tokenizer, as_conversation(p.prompt), r or " ", eos_ids=self.eos_ids)
            for p, r in zip(prompts, responses, strict=True)
        ]
        out: list[float] = []
        for start in range(0, len(encoded), self.batch_size):
            out += self.model.score(encoded[start : start + self.batch_size], self.pad_id).tolist()
        return out


class CallableReward:
    """Any ``fn(prompts: list[str], responses: list[str]) -> list[float]``."""

    def __init__(self, fn: Callable[[list[str], list[str]], Sequence[float]], name: str) -> None:
        self.fn, self.name = fn, name

    def __call__(self, prompts: Sequence[CaiPrompt], responses: Sequence[str]) -> list[float]:
        scores = [float(s) for s in self.fn([p.prompt for p in prompts], list(responses))]
        if len(scores) != len(responses):
            raise ConfigError(
                f"rewards: {self.name} returned {len(scores)} scores for {len(responses)} responses"
            )
        return scores


@dataclass
class WeightedRewards:
    """``score = Σ weightᵢ · sourceᵢ``; :attr:`last_parts` holds each source's mean of the last
    call (logged as ``scores/<name>``)."""

    sources: list[tuple[RewardSource, float]]

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("rewards: at least one reward source is needed")
        self.last_parts: dict[str, float] = {}

    def __call__(self, prompts: Sequence[CaiPrompt], responses: Sequence[str]) -> list[float]:
        total = [0.0] * len(responses)
        self.last_parts = {}
        for source, weight in self.sources:
            part = source(prompts, responses)
            self.last_parts[source.name] = sum(part) / max(len(part), 1)
            total = [t + weight * s for t, s in zip(total, part, strict=True)]
        return total


def load_callable(spec: str) -> Callable[..., Any]:
    """``package.module:function`` → the function."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"rewards: function {spec!r}: expected module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"rewards: function {spec!r}: cannot import {module_name} ({exc})"
        ) from None
    fn = getattr(module, attribute, None)
    if not callable(fn):
        raise ConfigError(f"rewards: function {spec!r}: {module_name} has no function {attribute}")
    return fn  # type: ignore[no-any-return]


def build_rewards(specs: Sequence[Any]) -> WeightedRewards:
    """Reward sources from the recipe's ``rewards:`` entries (see the module docstring)."""
    sources: list[tuple[RewardSource, float]] = []
    for index, spec in enumerate(specs):
        source: RewardSource
        if spec.kind == "refusal":
            source = RefusalReward()
        elif spec.kind == "harm":
            source = HarmReward()
        elif spec.kind == "safety":
            source = SafetyReward()
        elif spec.kind == "reward_model":
            if spec.path is None:
                raise ConfigError(f"rewards.{index}.path: a reward_model needs its folder")
            source = RewardModelReward(spec.path, spec.base)
        else:
            if not spec.function:
                raise ConfigError(f"rewards.{index}.function: a callable needs module:function")
            source = CallableReward(load_callable(spec.function), spec.function)
        sources.append((source, spec.weight))
    return WeightedRewards(sources)
