"""Ragged prefill: a prompt batch's key/value cache built with little padding and shared prefixes.

A left-padded batch pays for every row at the longest row's length, and pays again for the
tokens every row has in common (the chat template's system turn, an attack's persona or
many-shot preamble). On a CPU, where prefill is matrix-multiply bound, both are real time. Here
the rows (already sorted by length) are run through the model in small consecutive groups,
each left-padded only to its own longest row; a group's common prefix (for a group of one,
the prefix the whole batch shares) is run once, at batch size one, and repeated along the
batch. Each row's keys and values are then gathered into one cache, left-padded to the
batch's width, as a plain left-padded prefill would have laid them out (same positions, same
attention mask; the values equal up to floating-point rounding). ``generate`` continues from
that cache: it only runs each row's last prompt token, then decodes the whole batch together.

Only the prompt's last token is left out, so that ``generate`` computes the first logits itself.
Models whose cache is not a plain per-layer key/value store (sliding-window or hybrid layers,
prompt-learning adapters) are not handled: :func:`supports_ragged_prefill` says so and the
caller pads as usual.

The same idea serves whole forward passes, training included: :func:`forward_after_prefix`
runs the columns every row of a right-padded batch shares once, and the rest of the rows after
them (PPO's rollout and update passes use it, see :func:`bastion.align.policy_value.picked_logits`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

# A group is cut at this many (padded) tokens: large enough for efficient matrix multiplies,
# small enough that its rows' lengths stay close.
GROUP_TOKENS = 512
# Shorter shared prefixes are not worth a separate forward pass.
MIN_PREFIX = 8


def supports_ragged_prefill(model: Any) -> bool:
    """True when ``model`` keeps a plain key/value cache, takes explicit positions and a cache
    in its forward pass, and its generation config asks for no cache of its own (nor none)."""
    generation = getattr(model, "generation_config", None)
    if getattr(generation, "cache_implementation", None) is not None:
        return False  # generate refuses a cache passed beside its own choice of one
    if getattr(generation, "use_cache", True) is False:
        return False
    return keeps_plain_cache(model)


def keeps_plain_cache(model: Any) -> bool:
    """True when ``model`` is a decoder whose cache is a plain per-layer key/value store and
    whose forward pass takes explicit positions and a cache."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    adapter = getattr(model, "active_peft_config", None)
    if getattr(adapter, "is_prompt_learning", False):
        return False  # prefix tuning & co. bring a cache and positions of their own
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    takes = inspect.signature(type(base).forward).parameters
    if "position_ids" not in takes or not {"cache", "past_key_values"} & set(takes):
        return False
    try:
        layers = DynamicCache(config=config).layers
    except Exception:
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix every row starts with."""
    first = rows[0]
    limit = min(len(r) for r in rows)
    for index in range(limit):
        token = first[index]
        if any(r[index] != token for r in rows):
            return index
    return limit


def groups_by_tokens(lengths: Sequence[int], budget: int = GROUP_TOKENS) -> list[range]:
    """Consecutive index ranges whose rows × longest stays within ``budget`` (one row at least).

    ``lengths`` is expected sorted (either way); the longest of a range is its first or last."""
    groups: list[range] = []
    start = 0
    for end in range(1, len(lengths) + 1):
        if end == len(lengths):
            groups.append(range(start, end))
            break
        longest = max(lengths[start], lengths[end])
        if (end + 1 - start) * longest > budget:
            groups.append(range(start, end))
            start = end
    return groups


@torch.inference_mode()
def ragged_prefill(
    model: Any,
    prompts: Sequence[Sequence[int]],
    pad_id: int,
    *,
    group_tokens: int | None = None,
    min_prefix: int | None = None,
) -> Any:
    """A ``DynamicCache`` holding every prompt but its last token, left-padded to the longest.

    Row ``i`` of the cache is what a left-padded forward pass over ``prompts`` (each without its
    last token) would have stored: its real positions at the right end, numbered from 0, and
    positions before them masked out by the caller's attention mask. Every prompt needs at
    least two tokens.
    """

    if any(len(p) < 2 for p in prompts):
        raise ValueError("ragged prefill needs at least two tokens in every prompt")
    device = next(model.parameters()).device
    bodies = [list(p[:-1]) for p in prompts]
    width = max(len(b) for b in bodies)
    # what every row shares: a group of one (a prompt longer than the budget) still reuses it
    everyone = common_prefix_length(bodies)
    prefixes: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
    merged: list[tuple[torch.Tensor, torch.Tensor]] = []
    for group in groups_by_tokens(
        [len(b) for b in bodies], GROUP_TOKENS if group_tokens is None else group_tokens
    ):
        rows = [bodies[i] for i in group]
        shared = common_prefix_length(rows) if len(rows) > 1 else everyone
        shared = min(shared, min(len(r) for r in rows) - 1)
        if shared < (MIN_PREFIX if min_prefix is None else min_prefix):
            shared = 0
        prefix = tuple(rows[0][:shared])
        if shared and prefix not in prefixes:
            prefixes[prefix] = _forward(model, [list(prefix)], pad_id, device, None, 0)
        layers = _forward(
            model, [r[shared:] for r in rows], pad_id, device, prefixes.get(prefix), shared
        )
        if not merged:  # the batch's cache, filled group by group: no second copy of it
            merged = [
                (k.new_empty(len(bodies), k.shape[1], width, k.shape[3]),
                 v.new_empty(len(bodies), v.shape[1], width, v.shape[3]))
                for k, v in layers
            ]  # fmt: skip
        aligned = _right_align(layers, rows, shared, width, device)
        for (keys, values), (k, v) in zip(merged, aligned, strict=True):
            keys[group.start : group.stop] = k
            values[group.start : group.stop] = v
    return _cache_of(merged)


def shared_columns(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """How many leading columns hold the same real (attended) token in every row."""
    same = (input_ids == input_ids[:1]).all(0) & attention_mask.bool().all(0)
    return int(same.long().cumprod(0).sum())


def forward_after_prefix(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, shared: int, **kwargs: Any
) -> Any:
    """``model``'s output for the columns after the first ``shared``, which every row holds
    the same real tokens in (:func:`shared_columns`; rows start at column 0, padding on the
    right).

    The shared columns run once, at batch size one; their keys and values are repeated along
    the batch (a view, not a copy) as the cache the rest of the rows runs after. The outputs
    equal the plain forward pass's last ``width - shared`` positions up to rounding, and
    autograd sums the rows' gradients into the one prefix pass, so the result can be trained
    through. Not for activation checkpointing (a recomputed layer would extend the cache
    twice) nor dropout (the rows would share the prefix's dropout masks): the caller checks."""
    from transformers import DynamicCache

    rows, width = input_ids.shape
    keyword = cache_keyword(model)
    prefix = DynamicCache(config=model.config)
    positions = torch.arange(width, device=input_ids.device)[None]
    body, extra = _cache_filler(model)
    body(
        input_ids=input_ids[:1, :shared],
        attention_mask=attention_mask[:1, :shared],
        position_ids=positions[:, :shared],
        use_cache=True,
        **{keyword: prefix},
        **extra,
    )
    layers = [(layer.keys, layer.values) for layer in prefix.layers]
    return model(
        input_ids=input_ids[:, shared:],
        attention_mask=attention_mask,
        position_ids=positions[:, shared:].expand(rows, -1),
        use_cache=True,
        **{keyword: _repeated(layers, rows)},
        **kwargs,
    )


def _repeated(prefix: list[tuple[torch.Tensor, torch.Tensor]], rows: int) -> Any:
    """A cache holding a one-row ``prefix`` for ``rows`` rows: expanded views, no copy until
    the next pass appends to them."""
    return _cache_of([(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in prefix])


def _cache_of(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    """A ``DynamicCache`` that holds these tensors themselves (building one from data would
    copy them once more)."""
    from transformers import DynamicCache

    cache = DynamicCache(ddp_cache_data=[(k[:, :, :0], v[:, :, :0]) for k, v in layers])
    for layer, (keys, values) in zip(cache.layers, layers, strict=True):
        layer.keys, layer.values = keys, values
    return cache


def _forward(
    model: Any,
    rows: Sequence[Sequence[int]],
    pad_id: int,
    device: torch.device,
    prefix: list[tuple[torch.Tensor, torch.Tensor]] | None,
    shared: int,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Run left-padded ``rows`` after an optional cached ``prefix`` of ``shared`` tokens; return
    each layer's keys and values, shape (rows, heads, shared + padded length, head size)."""
    from transformers import DynamicCache

    from bastion.models.scoring import left_pad

    ids, mask = left_pad(rows, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0) + shared
    if prefix is not None:
        cache = _repeated(prefix, len(rows))
        mask = torch.cat([mask.new_ones(len(rows), shared), mask], dim=1)
    else:
        cache = DynamicCache(config=model.config)
    body, extra = _cache_filler(model)
    body(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **{cache_keyword(model): cache},
        **extra,
    )
    return [(layer.keys, layer.values) for layer in cache.layers]


def _cache_filler(model: Any) -> tuple[Any, dict[str, Any]]:
    """What to run for a pass whose only product is the cache: the trunk, without the output
    layer (:func:`~bastion.models.packing.hidden_pass`)."""
    from bastion.models.packing import hidden_pass

    body, extra = hidden_pass(model)
    extra.pop("output_hidden_states", None)
    return body, extra


def cache_keyword(model: Any) -> str:
    """The keyword the model's forward pass and ``generate`` take a cache by: ``cache`` in
    recent transformers releases, ``past_key_values`` before (still accepted, with a warning)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return (
        "cache"
        if "cache" in inspect.signature(type(base).forward).parameters
        else "past_key_values"
    )


def _right_align(
    layers: list[tuple[torch.Tensor, torch.Tensor]],
    rows: Sequence[Sequence[int]],
    shared: int,
    width: int,
    device: torch.device,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Gather each row's real positions to the right end of ``width`` columns.

    A group's cache holds, per row, ``shared`` prefix columns, then left padding up to the
    group's longest suffix, then the row's suffix. Columns left of a row's start take a copy of
    a real column (finite, and masked by the caller), never uninitialised memory."""
    suffix_width = max(len(r) for r in rows) - shared
    index = torch.empty((len(rows), width), dtype=torch.long)
    for row, tokens in enumerate(rows):
        length = len(tokens)
        suffix = length - shared
        real = torch.cat(
            [
                torch.arange(shared),
                torch.arange(shared + suffix_width - suffix, shared + suffix_width),
            ]
        )
        index[row, width - length :] = real
        index[row, : width - length] = real[0]  # every body has a token
    index = index.to(device)
    aligned = []
    for keys, values in layers:
        gather = index[:, None, :, None].expand(-1, keys.shape[1], -1, keys.shape[3])
        aligned.append((keys.gather(2, gather), values.gather(2, gather)))
    return aligned
