"""Padding-free forward passes: many sequences in one row, a shared prompt computed once.

Scoring and preference training run completions after prompts. Padding a batch to its longest
sequence wastes most of the work when lengths differ (a two-line refusal beside a page-long
answer), and chosen and rejected completions repeat the same prompt. Here every prompt is
placed once in a single packed row, followed by each completion that shares it:

    [prompt₁ completion₁ₐ completion₁ᵦ prompt₂ completion₂ₐ …]

Position ids restart per sequence (a completion's positions continue from its own prompt), and
attention runs per segment: ``prompt + first completion`` is plain causal attention, and each
further completion attends to the prompt and causally to itself, never to a sibling. The
result equals separate forward passes of ``prompt + completion`` (to float rounding), while
the trunk runs on ``Σ prompt + Σ completion`` tokens instead of ``rows × longest``.

This is done with a custom attention function registered with ``transformers`` and switched
on only for the duration of one forward call, so the same model keeps generating with its
usual attention.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

ATTENTION_NAME = "bastion_packed"
# Decoders whose attention goes through transformers' attention interface with rotary
# positions from ``position_ids`` and no sliding window or soft-capping by default.
PACKABLE_MODEL_TYPES = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "smollm3", "phi3", "olmo2", "granite", "gemma"}
)


@dataclass(frozen=True)
class Piece:
    """One attention call: queries ``q`` attend to keys ``kv`` (prompt + own tokens)."""

    q: slice
    kv: slice | Tensor  # a contiguous slice, or row indices (prompt then completion)
    mask: Tensor | None  # None: plain causal attention over ``q == kv``


@dataclass(frozen=True)
class PackedRow:
    """Token ids and positions of a packed row, and how to read completions back out."""

    ids: Tensor  # (1, T)
    positions: Tensor  # (1, T)
    pieces: tuple[Piece, ...]
    predictors: Tensor  # row positions whose hidden state predicts each completion token
    targets: Tensor  # the completion tokens, in the same order
    order: tuple[int, ...]  # input index of each completion, in row order
    lengths: tuple[int, ...]  # completion lengths, in input order


def pack(
    prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], device: torch.device
) -> PackedRow:
    """Lay out prompts once each (identical prompts are shared) and their completions."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError("every prompt needs at least one token")
        groups.setdefault(tuple(prompt), []).append(index)
    ids: list[int] = []
    positions: list[int] = []
    pieces: list[Piece] = []
    predictors: list[int] = []
    targets: list[int] = []
    order: list[int] = []
    for prompt, members in groups.items():
        start, p = len(ids), len(prompt)
        ids += prompt
        positions += range(p)
        for n, index in enumerate(members):
            completion = list(completions[index])
            offset, c = len(ids), len(completion)
            ids += completion
            positions += range(p, p + c)
            # the prompt's last position predicts the first completion token
            predictors += [start + p - 1, *range(offset, offset + c - 1)]
            targets += completion
            order.append(index)
            if n == 0:
                pieces.append(Piece(slice(start, offset + c), slice(start, offset + c), None))
            else:
                kv = torch.cat(
                    [torch.arange(start, start + p), torch.arange(offset, offset + c)]
                ).to(device)
                mask = torch.ones((c, p + c), dtype=torch.bool).tril(diagonal=p).to(device)
                pieces.append(Piece(slice(offset, offset + c), kv, mask))
    row = torch.tensor([ids], dtype=torch.long, device=device)
    return PackedRow(
        ids=row,
        positions=torch.tensor([positions], dtype=torch.long, device=device),
        pieces=tuple(pieces),
        predictors=torch.tensor(predictors, dtype=torch.long, device=device),
        targets=torch.tensor(targets, dtype=torch.long, device=device),
        order=tuple(order),
        lengths=tuple(len(c) for c in completions),
    )


def packed_attention(
    module: Any,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    """Attention over a packed row (batch 1), one SDPA call per piece; an ordinary call
    (no pieces: generation, a padded batch) is plain SDPA attention."""
    pieces: tuple[Piece, ...] | None = kwargs.pop("bastion_pieces", None)
    if pieces is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        out: tuple[Tensor, None] = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
        return out
    gqa = query.shape[1] != key.shape[1]
    outputs = []
    for piece in pieces:
        q = query[:, :, piece.q]
        if isinstance(piece.kv, slice):
            k, v = key[:, :, piece.kv], value[:, :, piece.kv]
        else:
            k, v = key.index_select(2, piece.kv), value.index_select(2, piece.kv)
        outputs.append(
            F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=piece.mask,
                dropout_p=dropout,
                is_causal=piece.mask is None,
                scale=scaling,
                enable_gqa=gqa,
            )
        )
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, packed_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)  # for ordinary calls


def base_model(model: Any) -> Any:
    """The transformers model under DDP (``.module``) and peft (``.get_base_model()``)."""
    model = getattr(model, "module", model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def hidden_pass(model: Any) -> tuple[Any, dict[str, Any]]:
    """What to call for a causal LM's last hidden states, and with which keywords: its
    decoder stack, adapters included (peft's LoRA layers sit inside it), so the output layer
    does not run at all; the whole model, asked for its hidden states, when it has no decoder
    to reach, a peft prompt-learning adapter (which adds tokens in the outer forward) or a
    wrapper whose forward must run (DDP, accelerate's autocast: a trainer's prepared model;
    PPO calls this inside its prepared module, on the bare policy). :func:`final_hidden`
    reads the result.

    Asking the whole model with ``logits_to_keep=1`` still runs the output layer on each row's
    last position, from a strided slice, which PyTorch computes as a batched matmul over a
    fresh copy of the (vocabulary × hidden) weight: about 20 ms on two CPU cores for
    SmolLM2's 49k × 576, per pass, for logits nobody reads."""
    prompt_learning = getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", 0)
    base = base_model(model)
    get = getattr(base, "get_decoder", None)
    reachable = not prompt_learning and not _wrapped(model)
    decoder = get() if callable(get) and reachable else None
    if decoder is not None and decoder is not base:
        return decoder, {}
    check = getattr(model, "_supports_logits_to_keep", None)
    keep = {"logits_to_keep": 1} if callable(check) and check() else {}
    return model, {"output_hidden_states": True, **keep}


def _wrapped(model: Any) -> bool:
    """Whether ``model``'s own forward does work its decoder's would skip: DDP's gradient
    synchronisation (a ``.module`` wrapper), accelerate's autocast (a prepared model keeps its
    ``_original_forward``)."""
    return getattr(model, "module", None) is not None or "_original_forward" in vars(model)


def final_hidden(output: Any) -> Tensor:
    """The last hidden states from a :func:`hidden_pass` call's output."""
    hidden: Tensor | None = getattr(output, "last_hidden_state", None)
    if hidden is None:
        hidden = output.hidden_states[-1]
    return hidden


def can_pack(model: Any) -> bool:
    config = getattr(base_model(model), "config", None)
    return (
        config is not None
        and getattr(config, "model_type", None) in PACKABLE_MODEL_TYPES
        and getattr(config, "_attn_implementation", None) in ("sdpa", ATTENTION_NAME)
        and getattr(config, "sliding_window", None) is None
    )


@contextlib.contextmanager
def packed_attention_on(model: Any) -> Iterator[None]:
    """Switch the model to packed attention, then back (nested uses leave it on).

    A forward call is enough without gradient checkpointing; with it, the backward pass runs
    the layers' forward again, so the training loop keeps packed attention on throughout.
    """
    _register()
    config = base_model(model).config
    previous = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = previous


def token_logps(head: Any, hidden: Tensor, targets: Tensor, chunk: int = 512) -> Tensor:
    """``log p(target)`` per position through the LM head, ``chunk`` positions at a time.

    Under autograd each chunk's logits are recomputed in the backward pass instead of kept,
    so the (positions × vocabulary) matrix never exists whole: with a 49k vocabulary this is
    the largest tensor of a training step.
    """

    def one(h: Tensor, t: Tensor) -> Tensor:
        logits: Tensor = head(h).float()
        return logits.gather(-1, t.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)

    parts = []
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start : start + chunk], targets[start : start + chunk]
        if torch.is_grad_enabled() and h.requires_grad:
            parts.append(torch.utils.checkpoint.checkpoint(one, h, t, use_reentrant=False))
        else:
            parts.append(one(h, t))
    out: Tensor = torch.cat(parts) if parts else hidden.new_zeros(0)
    return out


def packed_hidden(model: Any, row: PackedRow | PackedSequences) -> Tensor:
    """The last hidden state of every position of a packed row, ``(T, hidden)``."""
    with packed_attention_on(model):
        body, extra = hidden_pass(model)
        output = body(
            input_ids=row.ids,
            position_ids=row.positions,
            use_cache=False,
            bastion_pieces=row.pieces,
            **extra,
        )
    return final_hidden(output)[0]


def packed_completion_logps(
    model: Any,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
) -> tuple[Tensor, Tensor]:
    """Per-token completion log-probs from one packed forward pass.

    Same contract as :func:`bastion.models.scoring.completion_logps`: ``(logps, mask)`` of
    shape ``(n, L)``, each completion right-aligned, padded cells 0.
    """
    device = next(model.parameters()).device
    row = pack(prompts, completions, device)
    hidden = packed_hidden(model, row).index_select(0, row.predictors)
    picked = token_logps(base_model(model).get_output_embeddings(), hidden, row.targets)
    span = max(row.lengths)
    rows: list[int] = []
    cols: list[int] = []
    for index in row.order:
        n = row.lengths[index]
        rows += [index] * n
        cols += range(span - n, span)
    where = (torch.tensor(rows, device=device), torch.tensor(cols, device=device))
    logps = torch.zeros((len(row.lengths), span), dtype=picked.dtype, device=device)
    mask = torch.zeros((len(row.lengths), span), dtype=torch.bool, device=device)
    mask[where] = True
    return logps.index_put(where, picked), mask


@dataclass(frozen=True)
class PackedSequences:
    """Whole sequences side by side in one row, each attending only to itself."""

    ids: Tensor  # (1, T)
    positions: Tensor  # (1, T)
    pieces: tuple[Piece, ...]


def pack_sequences(sequences: Sequence[Sequence[int]], device: torch.device) -> PackedSequences:
    ids: list[int] = []
    positions: list[int] = []
    pieces = []
    for sequence in sequences:
        start = len(ids)
        ids += sequence
        positions += range(len(sequence))
        pieces.append(Piece(slice(start, len(ids)), slice(start, len(ids)), None))
    return PackedSequences(
        ids=torch.tensor([ids], dtype=torch.long, device=device),
        positions=torch.tensor([positions], dtype=torch.long, device=device),
        pieces=tuple(pieces),
    )
