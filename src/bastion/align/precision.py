"""Mixed precision for the trainers: which precision runs, the autocast a pass outside the
prepared model must share with it, and faster passes under it.

Under mixed precision the accelerator runs a prepared model's ``forward`` in autocast; a
comparison of the policy with its reference (DPO's margins, PPO's KL, unlearning's retain KL)
must run its other side in the same autocast, or it measures rounding, not training.
:func:`lean_passes` makes a stretch of such passes cheaper without changing what they compute
beyond attention's rounding (see there).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

ATTENTION_NAME = "bastion_sdpa_fp32_cpu"


def resolve_precision(setting: str) -> str:
    """``mixed_precision`` as the accelerator gets it: ``auto`` is bf16 on a GPU that has it,
    else ``no`` (most CPUs lack fast bf16 matmuls)."""
    if setting != "auto":
        return setting
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bf16" if bf16 else "no"


def autocast_for(model: Any, precision: str) -> Any:
    """The autocast the accelerator runs a prepared model's forward in, for passes made
    outside it (a reference model, log-probs computed before training): under mixed
    precision, a comparison of the policy with its reference must not measure rounding.
    Like accelerate, no fp16 autocast on a CPU."""
    device = next(model.parameters()).device.type
    if precision == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    if precision == "fp16" and device != "cpu":
        return torch.autocast(device_type=device, dtype=torch.float16)
    return nullcontext()


def released(model: Any) -> Any:
    """``model`` (unwrapped after training) without what accelerate left on it: its mark
    as prepared, with which a later trainer on it (or a copy) would skip preparing it and so
    run without its own precision, and the autocast around its ``forward``, with which every
    later call (generation included) would still run in the training's precision."""
    state = model.__dict__
    state.pop("_is_accelerate_prepared", None)
    original = state.pop("_original_forward", None)
    if original is not None:
        if getattr(original, "__func__", None) is getattr(type(model), "forward", None):
            state.pop("forward", None)  # the class's own forward again
        else:
            model.forward = original
    return model


@contextmanager
def lean_passes(models: Sequence[nn.Module], precision: str) -> Iterator[None]:
    """A stretch of passes on a CPU that all run under bf16 autocast (a PPO iteration's
    rollout and update), made cheaper in two ways; outside it the models are as they were
    (fp32 weights for sampling and saving, their own attention).

    - **Frozen weights cast once.** Autocast caches only the casts of weights that require
      grad, so a frozen ``nn.Linear`` weight (every base layer under LoRA, a frozen reference
      model) is cast to bf16 again on every call: seven times per iteration of
      ``benchmarks/ppo_step.py``, each a pass over the weights in memory. Here each is cast
      once for the stretch, and autocast passes the cast weight through: the same bits. The
      fp32 weights stay for after, so the stretch holds half their size again.
    - **Attention in fp32.** PyTorch's CPU flash-attention backward is about twice as slow in
      bf16 as in fp32 at these shapes (PPO's rows of ~100 tokens), so a Llama-family model
      (:data:`~bastion.models.packing.PACKABLE_MODEL_TYPES`) on SDPA attention computes it in
      fp32 and hands the result back in bf16. This changes the rounding of attention (towards
      the more precise), identically for every pass in the stretch, so a policy still equal
      to its reference has a KL of exactly 0.

    Nothing is done off a CPU (a GPU's casts are cheap beside the memory copies would hold,
    and its bf16 attention is fast), without bf16 autocast, or for weights that are not fp32
    (already low precision, quantized)."""
    params = [p for model in models for p in model.parameters()]
    if precision != "bf16" or not params or params[0].device.type != "cpu":
        yield
        return
    with ExitStack() as stack:
        for model in models:
            stack.enter_context(_frozen_weights_cast(model, torch.bfloat16))
            stack.enter_context(_fp32_attention(model))
        yield


@contextmanager
def _frozen_weights_cast(model: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    swapped: list[tuple[nn.Module, nn.Parameter]] = []
    try:
        for module in model.modules():
            weight = module._parameters.get("weight") if isinstance(module, nn.Linear) else None
            if weight is None or weight.requires_grad or weight.dtype != torch.float32:
                continue
            module._parameters["weight"] = nn.Parameter(weight.detach().to(dtype), False)
            swapped.append((module, weight))
        yield
    finally:
        for module, weight in reversed(swapped):
            module._parameters["weight"] = weight


@contextmanager
def _fp32_attention(model: nn.Module) -> Iterator[None]:
    """Each Llama-family config on SDPA switched to :func:`fp32_sdpa`, and back. The stored
    value is set directly: transformers' setter would also rewrite every sub-config's."""
    from bastion.models.packing import PACKABLE_MODEL_TYPES

    configs: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if (
            getattr(config, "_attn_implementation_internal", None) == "sdpa"
            and getattr(config, "model_type", None) in PACKABLE_MODEL_TYPES
        ):
            configs[id(config)] = config
    if configs:
        _register()
    try:
        for config in configs.values():
            config._attn_implementation_internal = ATTENTION_NAME
        yield
    finally:
        for config in configs.values():
            config._attn_implementation_internal = "sdpa"


def fp32_sdpa(
    module: Any, query: Tensor, key: Tensor, value: Tensor, *args: Any, **kwargs: Any
) -> tuple[Tensor, Any]:
    """transformers' SDPA attention, in fp32 on a CPU where autocast or the inputs would run
    it in a lower precision; the output comes back in that precision (see
    :func:`lean_passes`). Under autocast the query and key usually arrive in fp32 (the rotary
    embedding's fp32 tables promote them) and the value in the low precision."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    autocast = query.device.type == "cpu" and torch.is_autocast_enabled("cpu")
    low = torch.get_autocast_dtype("cpu") if autocast else query.dtype
    if query.device.type != "cpu" or low == torch.float32:
        out: tuple[Tensor, Any] = sdpa_attention_forward(module, query, key, value, *args, **kwargs)
        return out
    args = tuple(_fp32(a) for a in args)  # a float mask, if any, with the query's dtype
    kwargs = {k: _fp32(v) for k, v in kwargs.items()}
    with torch.autocast("cpu", enabled=False):
        output, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), *args, **kwargs
        )
    return output.to(low), weights


def _fp32(value: Any) -> Any:
    """A floating tensor (an additive mask, a position bias) in fp32; anything else as is."""
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.float()
    return value


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, fp32_sdpa)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
