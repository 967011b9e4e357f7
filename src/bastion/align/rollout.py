"""What PPO's stages pass to each other: the rollout batch (prompt + sampled response, and
where each response token sits), what the rollout's forward passes measured over it, and the
one forward pass the update may reuse."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bastion.align.sampled import sampled_logps


@dataclass
class Batch:
    """Prompt + response sequences, right-padded, and where each response token sits."""

    input_ids: Tensor
    attention_mask: Tensor
    index: Tensor  # (B, R): position predicting response token t
    responses: Tensor  # (B, R) token ids, padded
    mask: Tensor  # (B, R) float: 1 on response tokens (through the end-of-turn token)

    def rows(self, selection: Tensor) -> Batch:
        """The selected rows, cut to their own longest sequence: right padding beyond it
        changes no earlier position under causal attention, and a mini-batch of short rows
        should not pay for the batch's longest."""
        ids, attention = self.input_ids[selection], self.attention_mask[selection]
        width = max(int(attention.sum(1).max()), 1)
        return Batch(
            ids[:, :width],
            attention[:, :width],
            self.index[selection].clamp(max=width - 1),
            self.responses[selection],
            self.mask[selection],
        )


def build_batch(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int, device: Any
) -> Batch:
    """Each prompt's token ids followed by its response's, right-padded, on ``device``."""
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
    width, span = max(lengths), max(max(len(r) for r in responses), 1)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    index = torch.zeros((len(prompts), span), dtype=torch.long)
    tokens = torch.full((len(prompts), span), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), span))
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        sequence = list(prompt) + list(response)
        ids[row, : len(sequence)] = torch.tensor(sequence)
        attention[row, : len(sequence)] = 1
        index[row] = (len(prompt) - 1 + torch.arange(span)).clamp(max=width - 1)
        tokens[row, : len(response)] = torch.tensor(response, dtype=torch.long)
        mask[row, : len(response)] = 1
    return Batch(*(t.to(device) for t in (ids, attention, index, tokens, mask)))


def response_logps(logits: Tensor, tokens: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Log-probs of the sampled tokens and the entropy of each step's distribution (a metric:
    no gradient), at the sampling temperature (:mod:`bastion.align.sampled`)."""
    return sampled_logps(logits, tokens, temperature)


@dataclass
class Rollout:
    """What the rollout's passes measured, per response token (batch × response length): the
    policy's log-probs and values before the update, the KL to the reference, the entropy,
    and the whitened advantages and the returns the update works towards."""

    logps: Tensor
    values: Tensor
    kl: Tensor
    entropy: Tensor
    advantages: Tensor
    returns: Tensor


@dataclass
class PolicyPass:
    """One mini-batch's forward pass, graph attached: response log-probs, entropy, values."""

    logps: Tensor
    entropy: Tensor
    values: Tensor


@torch.no_grad()
def sample_responses(
    policy: Any,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    eos_ids: Sequence[int],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    device: Any,
) -> list[list[int]]:
    """One sampled response per prompt (token ids), cut after its first end-of-turn token;
    the policy is left in the mode (train or eval) it was in."""
    from bastion.models.scoring import left_pad

    was_training = policy.training
    policy.eval()
    ids, attention = left_pad(prompts, pad_id, device)
    torch.manual_seed(seed)
    output = policy.generate(
        input_ids=ids,
        attention_mask=attention,
        max_new_tokens=max_new_tokens,
        do_sample=True,
        temperature=temperature,
        top_p=top_p,
        top_k=0,
        eos_token_id=list(eos_ids),
        pad_token_id=pad_id,
    )
    policy.train(was_training)
    responses = []
    for row in output[:, ids.shape[1] :].tolist():
        ends = [i for i, t in enumerate(row) if t in eos_ids]
        responses.append(row[: ends[0] + 1] if ends else row)
    return responses
