"""Reward models: a scalar head on a causal LM's trunk, trained with the Bradley-Terry loss.

The head reads the final hidden state of the last token (sequences are left-padded, so that is
always the last position); initializing the trunk from the SFT or policy model is what
InstructGPT (Ouyang et al. 2022) does. After training, :meth:`RewardTrainer.diagnose` measures
how much the rewards simply track response length, the superficial pattern reward models learn
most readily (Singhal et al. 2023, "A Long Way to Go"): a reward model whose rewards correlate
strongly with length, or that beats the "longer wins" baseline only barely, gets a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bastion.align.logprobs import Encoded, encode
from bastion.align.losses import reward_loss
from bastion.align.train import LoopTrainer, TrainConfig
from bastion.errors import DataError
from bastion.models.hf import end_of_turn_ids
from bastion.models.prefill import (
    MIN_PREFIX,
    common_prefix_length,
    forward_after_prefix,
    keeps_plain_cache,
)
from bastion.models.scoring import left_pad, right_pad
from bastion.types import PreferencePair

LENGTH_CORRELATION_WARNING = 0.5


class RewardModel(nn.Module):
    """``r(prompt, response)``: the trunk of a causal LM plus a linear head on the last token."""

    def __init__(self, causal_lm: Any) -> None:
        super().__init__()
        self.trunk = causal_lm.get_decoder() if hasattr(causal_lm, "get_decoder") else causal_lm
        hidden = int(causal_lm.config.hidden_size)
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=1 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self.trunk(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions
        ).last_hidden_state
        rewards: Tensor = self.head(hidden[:, -1].float()).squeeze(-1)
        return rewards

    def score(self, encoded: Sequence[Encoded], pad_id: int) -> Tensor:
        """The rewards of whole conversations. In eval mode, the tokens every row starts with
        (the chat template's system turn, a shared prompt) run once for the batch, not once
        per row (:func:`~bastion.models.prefill.forward_after_prefix`): the same rewards up
        to rounding (in `benchmarks/ppo_step.py`, 24 of a row's ~93 tokens are shared)."""
        device = next(self.parameters()).device
        rows = [e.prompt + e.completion for e in encoded]
        shared = self._shared_prefix(rows)
        if not shared:
            ids, mask = left_pad(rows, pad_id, device)
            rewards: Tensor = self(ids, mask)
            return rewards
        ids, mask = right_pad(rows, pad_id, device)
        hidden = forward_after_prefix(self.trunk, ids, mask, shared).last_hidden_state
        last = mask.sum(1) - 1 - shared  # each row's last token, after the prefix
        picked = hidden[torch.arange(len(rows), device=device), last]
        shared_rewards: Tensor = self.head(picked.float()).squeeze(-1)
        return shared_rewards

    def _shared_prefix(self, rows: Sequence[Sequence[int]]) -> int:
        """How many leading tokens to run once: 0 unless several rows share at least
        :data:`~bastion.models.prefill.MIN_PREFIX`, the model is in eval mode (no dropout to
        share) and keeps a plain cache; never a row's last token, which the head reads."""
        if len(rows) < 2 or self.training:
            return 0
        shared = min(common_prefix_length(rows), min(len(r) for r in rows) - 1)
        return shared if shared >= MIN_PREFIX and keeps_plain_cache(self.trunk) else 0

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), folder / "reward_model.pt")


class RewardTrainer(LoopTrainer):
    def __init__(
        self,
        causal_lm: Any,
        tokenizer: Any,
        pairs: Sequence[PreferencePair],
        train: TrainConfig,
        *,
        max_length: int = 512,
        margin_key: str = "margin",
        center_coefficient: float = 0.0,
    ) -> None:
        self.tokenizer, self.train_config = tokenizer, train
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.eos_ids = end_of_turn_ids(causal_lm, tokenizer)
        self.max_length, self.center_coefficient = max_length, center_coefficient
        self.model = RewardModel(causal_lm)
        self.chosen, self.rejected = self.encode(pairs)
        # An optional per-pair margin (Llama 2), read from the pair's meta.
        self.margins = torch.tensor([float(p.meta.get(margin_key, 0.0)) for p in pairs])

    def encode(self, pairs: Sequence[PreferencePair]) -> tuple[list[Encoded], list[Encoded]]:
        chosen: list[Encoded] = []
        rejected: list[Encoded] = []
        for i, pair in enumerate(pairs):
            try:
                for side, completion in ((chosen, pair.chosen), (rejected, pair.rejected)):
                    side.append(
                        encode(
                            self.tokenizer,
                            pair.prompt,
                            completion,
                            eos_ids=self.eos_ids,
                            max_length=self.max_length,
                        )
                    )
            except DataError as exc:
                raise exc.at(f"pair {pair.id or i}") from None
        return chosen, rejected

    def example_count(self) -> int:
        return len(self.chosen)

    def step(self, model: Any, batch: Sequence[int]) -> tuple[Tensor, dict[str, float]]:
        idx = list(batch)
        both = [self.chosen[i] for i in idx] + [self.rejected[i] for i in idx]
        device = next(model.parameters()).device
        ids, mask = left_pad([e.prompt + e.completion for e in both], self.pad_id, device)
        rewards = model(ids, mask)
        chosen, rejected = rewards[: len(idx)], rewards[len(idx) :]
        out = reward_loss(
            chosen_rewards=chosen,
            rejected_rewards=rejected,
            margin=self.margins[idx].to(device),
            center_coefficient=self.center_coefficient,
        )
        margin = (chosen - rejected).detach()
        return out.losses.mean(), {
            "accuracy": (margin > 0).float().mean().item(),
            "margin": margin.mean().item(),
        }

    def evaluate(
        self, pairs: Sequence[PreferencePair], *, batch_size: int = 8
    ) -> dict[str, float | bool]:
        """Accuracy and margin on held-out pairs, with the length-bias diagnostic."""
        chosen, rejected = self.encode(pairs)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            r_c, r_r = (
                torch.cat(
                    [
                        self.model.score(side[i : i + batch_size], self.pad_id)
                        for i in range(0, len(side), batch_size)
                    ]
                ).cpu()
                for side in (chosen, rejected)
            )
        self.model.train(was_training)
        return {
            "accuracy": (r_c > r_r).float().mean().item(),
            "margin": (r_c - r_r).mean().item(),
            **length_bias(
                torch.cat([r_c, r_r]),
                [len(e.completion) for e in chosen + rejected],
                [
                    len(c.completion) > len(r.completion)
                    for c, r in zip(chosen, rejected, strict=True)
                ],
            ),
        }


def length_bias(
    rewards: Tensor, lengths: Sequence[int], chosen_longer: Sequence[bool]
) -> dict[str, float | bool]:
    """Pearson correlation of reward with response length; accuracy of "longer wins"."""
    x = torch.tensor(lengths, dtype=torch.float64)
    y = rewards.double()
    if x.std() == 0 or y.std() == 0:
        correlation = 0.0
    else:
        correlation = float(torch.corrcoef(torch.stack([x, y]))[0, 1])
    return {
        "length_correlation": correlation,
        "longer_wins_accuracy": sum(chosen_longer) / max(len(chosen_longer), 1),
        "length_warning": abs(correlation) >= LENGTH_CORRELATION_WARNING,
    }
