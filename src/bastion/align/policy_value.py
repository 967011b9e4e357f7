"""PPO's model: the policy and a value head on one trunk, and the forward pass that computes
logits and values only where a response token is predicted.

**Value head on the policy's trunk.** The critic is a linear head on the policy's last hidden
state, not a second model: one forward pass gives both the token log-probs and the values, and a
135M model on two CPU cores cannot afford a second trunk's forward and backward passes (TRL's
separate critic costs exactly that). The price is that value-loss gradients reach the shared
trunk; ``vf_coef`` (0.1) keeps them small. Under LoRA the head reads the adapted trunk.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from bastion.align.rollout import Batch
from bastion.models.packing import base_model, final_hidden, hidden_pass
from bastion.models.prefill import (
    MIN_PREFIX,
    forward_after_prefix,
    keeps_plain_cache,
    shared_columns,
)


class PolicyWithValue(nn.Module):
    """A causal LM (plain or with LoRA adapters) and a scalar value head on its last hidden
    state."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy
        hidden = int(policy.config.hidden_size)
        self.value_head = nn.Linear(hidden, 1)
        nn.init.normal_(self.value_head.weight, std=1 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.value_head.bias)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, index: Tensor, *, share_prefix: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Logits and values at the positions in ``index`` (batch × response length): the
        positions whose next token is a response token."""
        logits, hidden = picked_logits(
            self.policy, input_ids, attention_mask, index, share_prefix=share_prefix
        )
        with torch.autocast(hidden.device.type, enabled=False):  # the critic in fp32
            values: Tensor = self.value_head(hidden.float()).squeeze(-1)
        return logits, values


def picked_logits(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    index: Tensor,
    *,
    share_prefix: bool = True,
) -> tuple[Tensor, Tensor]:
    """Logits and last hidden states at ``index`` only. The trunk runs on every token, the LM
    head only where a response token is predicted: with a 49k vocabulary, the logits of prompt
    positions would be most of the pass's memory and time (see :mod:`bastion.models.scoring`).

    With ``share_prefix``, the tokens every row starts with (the chat template's system turn:
    24 of the ~93 tokens of a row in ``benchmarks/ppo_step.py``) run once for the batch, not
    once per row (:func:`~bastion.models.prefill.forward_after_prefix`); the results are the
    same up to rounding, gradients included."""
    shared = shared_prefix(model, input_ids, attention_mask, index) if share_prefix else 0
    body, extra = hidden_pass(model)  # the trunk: no output layer on positions not picked
    if shared:
        out = forward_after_prefix(body, input_ids, attention_mask, shared, **extra)
        index = index - shared
    else:
        out = body(input_ids=input_ids, attention_mask=attention_mask, **extra)
    hidden = final_hidden(out)
    picked = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
    logits: Tensor = base_model(model).get_output_embeddings()(picked)
    return logits, picked


def shared_prefix(model: Any, input_ids: Tensor, attention_mask: Tensor, index: Tensor) -> int:
    """How many leading tokens of a right-padded batch to run once for all its rows: 0 unless
    there are several rows sharing at least :data:`~bastion.models.prefill.MIN_PREFIX`, the
    model keeps a plain cache, and no activation checkpointing or dropout is active; never past
    a picked position."""
    if input_ids.shape[0] < 2:
        return 0
    shared = min(shared_columns(input_ids, attention_mask), int(index.min()))
    if shared < MIN_PREFIX or not keeps_plain_cache(model):
        return 0
    if model.training and (_checkpointing(model) or has_dropout(model)):
        return 0
    return shared


def _checkpointing(model: Any) -> bool:
    base = base_model(model)
    name = (
        "is_activation_checkpointing"  # transformers 5; the older name warns there
        if hasattr(type(base), "is_activation_checkpointing")
        else "is_gradient_checkpointing"
    )
    return bool(getattr(base, name, False))


def has_dropout(module: nn.Module) -> bool:
    """Whether a training-mode pass can differ from an eval-mode one: a dropout module, or
    any positive number under a config key naming dropout, layer drop or router jitter
    (applied functionally by many architectures). Wide on purpose: a false alarm only costs
    the reused pass and the shared prefix."""
    configs: dict[int, Any] = {}  # the submodules of a model mostly share one config
    for sub in module.modules():
        if isinstance(sub, nn.Dropout) and sub.p > 0:
            return True
        config = getattr(sub, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            configs[id(config)] = config
    return any(_random_in_training(config.to_dict()) for config in configs.values())


def _random_in_training(settings: dict[str, Any]) -> bool:
    for key, value in settings.items():
        if isinstance(value, dict) and _random_in_training(value):
            return True
        named = any(word in str(key).lower() for word in ("drop", "jitter", "noise"))
        if named and isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return True
    return False


def policy_divergence(policy: Any, reference: Any, batch: Batch, temperature: float = 1.0) -> float:
    """Mean per-sequence KL(policy ‖ reference) over a fixed set of responses, computed
    exactly over the vocabulary at every response position (for comparing runs)."""
    args = (batch.input_ids, batch.attention_mask, batch.index)
    with torch.no_grad():
        a = torch.log_softmax(picked_logits(policy, *args)[0].float() / temperature, -1)
        b = torch.log_softmax(picked_logits(reference, *args)[0].float() / temperature, -1)
        kl = (a.exp() * (a - b)).sum(-1) * batch.mask
    return float(kl.sum(-1).mean())
