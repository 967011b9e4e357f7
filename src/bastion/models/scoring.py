"""Completion-only log-probabilities, shared by inference scoring and by training.

A completion is what the chat template renders for the next assistant turn, up to and including
its end-of-turn token. Sequences are padded on the left so that every completion ends at the
last position; the trunk runs on every token, but the LM head runs only on the hidden states
that predict a completion token. With a 49k-token vocabulary the logits are most of the memory
of a forward and backward pass, so not computing them for prompt and padding positions matters
more than anything else here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from bastion.errors import ModelError
from bastion.models.packing import (
    base_model,
    can_pack,
    final_hidden,
    hidden_pass,
    packed_completion_logps,
    token_logps,
)
from bastion.types import Conversation


def render_ids(
    tokenizer: Any, conversation: Conversation, *, add_generation_prompt: bool
) -> list[int]:
    """Token ids of a conversation rendered with the tokenizer's chat template."""
    from jinja2 import TemplateError

    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            "the tokenizer has no chat template: use text (prompt/completion string) data, or "
            "give the tokenizer a template"
        )
    try:
        text = tokenizer.apply_chat_template(
            conversation.to_dicts(), tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as exc:
        raise ModelError(f"the chat template rejects this conversation: {exc}") from None
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def split_prompt_completion(
    tokenizer: Any,
    prompt: Conversation,
    completion: Conversation,
    eos_ids: Sequence[int],
    *,
    keep_template_suffix: bool = False,
) -> tuple[list[int], list[int]]:
    """Ids of the prompt (ready for a reply) and of the completion turn(s) that follow it.

    The completion ends at its last end-of-turn token: what a template appends after it (a
    newline, say) is never generated, so it is not scored. ``keep_template_suffix`` keeps it
    (TRL's behaviour), for exact comparisons with TRL.
    """
    head = render_ids(tokenizer, prompt, add_generation_prompt=True)
    full = render_ids(tokenizer, prompt + completion, add_generation_prompt=False)
    if full[: len(head)] != head:
        raise ModelError(
            "the chat template renders the prompt differently with and without a reply; "
            "cannot separate the completion's tokens"
        )
    tail = full[len(head) :]
    if keep_template_suffix:
        return head, tail
    ends = [i for i, token in enumerate(tail) if token in eos_ids]
    return head, tail[: ends[-1] + 1] if ends else tail


def completion_logps(
    model: Any,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    pad_id: int,
    *,
    packed: bool = True,
) -> tuple[Tensor, Tensor]:
    """Per-token log-probs of each completion given its prompt, in one forward pass.

    Returns ``(logps, mask)``, both ``(batch, L)`` with ``L`` the longest completion; row ``i``
    holds its completion's tokens right-aligned, ``mask`` marks them, and padded cells are 0.
    Gradients flow when called outside ``torch.no_grad``.

    Models that :func:`~bastion.models.packing.can_pack` run padding-free, each distinct prompt
    once (:mod:`bastion.models.packing`); others, or ``packed=False``, run left-padded.
    """
    if len(prompts) != len(completions) or not prompts:
        raise ValueError("need one completion per prompt, and at least one")
    if any(not c for c in completions):
        raise ValueError("every completion needs at least one token")
    if packed and can_pack(model):
        return packed_completion_logps(model, prompts, completions)
    device = next(model.parameters()).device
    rows = [list(p) + list(c) for p, c in zip(prompts, completions, strict=True)]
    span = max(map(len, completions))
    ids, attention = left_pad(rows, pad_id, device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)  # positions count real tokens only
    mask = torch.zeros((len(rows), span), dtype=torch.bool, device=device)
    for row, completion in enumerate(completions):
        mask[row, span - len(completion) :] = True
    # The trunk runs on every token; the LM head only on the hidden states that predict a
    # completion token (not on prompt or padding positions), so the (tokens × vocabulary)
    # logits exist for completion tokens alone.
    body, extra = hidden_pass(model)
    output = body(input_ids=ids, attention_mask=attention, position_ids=positions, **extra)
    hidden = final_hidden(output)[:, -(span + 1) : -1][mask]
    head = base_model(model).get_output_embeddings()
    picked = token_logps(head, hidden, ids[:, -span:][mask])
    logps = torch.zeros((len(rows), span), dtype=picked.dtype, device=device)
    logps = logps.masked_scatter(mask, picked)
    return logps, mask


def left_pad(
    batch: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded on the left so every row ends at the last column."""
    return _padded(batch, pad_id, device, left=True)


def right_pad(
    batch: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded on the right so every row starts at column 0."""
    return _padded(batch, pad_id, device, left=False)


def _padded(
    batch: Sequence[Sequence[int]], pad_id: int, device: torch.device, *, left: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):
        columns = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, columns] = torch.tensor(seq, dtype=torch.long)
        mask[row, columns] = 1
    return ids.to(device), mask.to(device)
